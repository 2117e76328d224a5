//! The request built from snapshots: names, units, bounds, exemplars, and
//! the JSON a receiver gets.

use super::*;
use crate::metrics::exemplar::Exemplar;

fn one_workflow() -> Snapshot {
    Snapshot {
        bounds: vec![0.1, 1.0],
        series: vec![SeriesSnapshot {
            kind: SeriesKind::Workflow,
            workflow: "w",
            step: "",
            duration: Counts {
                buckets: vec![1, 0, 2],
                count: 3,
                sum: 4.05,
            },
            outcomes: [2, 1, 0, 0],
            active: 1,
            exemplars: vec![
                Some(Exemplar {
                    trace_id: [1; 16],
                    span_id: [2; 8],
                    value: 0.05,
                    time: UNIX_EPOCH + Duration::from_secs(1),
                }),
                None,
                None,
            ],
            failures: vec![("my::Error", 1)],
        }],
        models: vec![],
        instruments: vec![],
    }
}

#[test]
fn a_snapshot_becomes_cumulative_otlp_metrics() {
    let request = request(
        &one_workflow(),
        ProtoResource::default(),
        UNIX_EPOCH,
        UNIX_EPOCH + Duration::from_secs(2),
    );
    let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
    let names: Vec<&str> = metrics.iter().map(|metric| metric.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "workflow.duration",
            "workflow.calls",
            "workflow.failures",
            "workflow.active"
        ]
    );
    let Some(metric::Data::Histogram(histogram)) = &metrics[0].data else {
        panic!("a histogram");
    };
    let point = &histogram.data_points[0];
    assert_eq!(
        (
            point.count,
            point.sum,
            &point.bucket_counts[..],
            &point.explicit_bounds[..]
        ),
        (3, Some(4.05), &[1, 0, 2][..], &[0.1, 1.0][..])
    );
    assert_eq!(point.time_unix_nano, 2_000_000_000);
    assert_eq!(point.exemplars[0].trace_id, vec![1; 16]);
    assert_eq!(point.exemplars[0].span_id, vec![2; 8]);
    assert_eq!(
        histogram.aggregation_temporality,
        AggregationTemporality::Cumulative as i32
    );
    let Some(metric::Data::Sum(active)) = &metrics[3].data else {
        panic!("a sum");
    };
    assert!(!active.is_monotonic, "in flight goes up and down");
}

#[test]
fn model_calls_become_the_genai_client_metrics() {
    use crate::metrics::genai::ModelSeries;
    let mut snapshot = one_workflow();
    let counts = |bounds: usize| Counts {
        buckets: vec![0; bounds + 1],
        sum: 0.0,
        count: 1,
    };
    snapshot.models.push(ModelSeries {
        operation: "chat".to_owned(),
        provider: "openai".to_owned(),
        model: "gpt-4o".to_owned(),
        error_type: String::new(),
        duration: counts(GEN_AI_DURATION.len()),
        input_tokens: counts(GEN_AI_TOKENS.len()),
        output_tokens: counts(GEN_AI_TOKENS.len()),
        cost: vec![("USD".to_owned(), 0.25)],
        exemplars: Default::default(),
    });
    let request = request(&snapshot, ProtoResource::default(), UNIX_EPOCH, UNIX_EPOCH);
    let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
    let find = |name: &str| metrics.iter().find(|metric| metric.name == name).unwrap();
    let Some(metric::Data::Histogram(duration)) = &find("gen_ai.client.operation.duration").data
    else {
        panic!("a histogram");
    };
    assert_eq!(
        duration.data_points[0].explicit_bounds,
        GEN_AI_DURATION.to_vec()
    );
    let Some(metric::Data::Histogram(tokens)) = &find("gen_ai.client.token.usage").data else {
        panic!("a histogram");
    };
    assert_eq!(tokens.data_points.len(), 2, "input and output");
    assert_eq!(
        tokens.data_points[0].explicit_bounds,
        GEN_AI_TOKENS.to_vec()
    );
    assert_eq!(find("gen_ai.client.token.usage").unit, "{token}");
    let Some(metric::Data::Sum(cost)) = &find("workflow.gen_ai.cost").data else {
        panic!("a sum");
    };
    assert_eq!(
        cost.data_points[0].value,
        Some(number_data_point::Value::AsDouble(0.25))
    );
}

#[test]
fn json_leaves_out_unset_fields_and_writes_integers_as_numbers() {
    let request = request(
        &one_workflow(),
        ProtoResource::default(),
        UNIX_EPOCH,
        UNIX_EPOCH + Duration::from_secs(2),
    );
    let text = String::from_utf8(json(&request).unwrap()).unwrap();
    assert!(!text.contains("null"), "{text}");
    assert!(text.contains(r#""asInt":2"#), "{text}");
    assert!(
        text.contains(r#""traceId":"01010101010101010101010101010101""#),
        "{text}"
    );
    assert!(text.contains(r#""spanId":"0202020202020202""#), "{text}");
    // 64-bit times keep the mapping's strings.
    assert!(text.contains(r#""timeUnixNano":"2000000000""#), "{text}");
}
