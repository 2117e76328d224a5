use super::*;
use opentelemetry::Array;
use opentelemetry::trace::{Event, Link, TraceFlags, TraceId};
use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
use std::borrow::Cow;
use std::time::Duration;

fn at(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

fn span_context(trace: u128, span: u64, remote: bool) -> SpanContext {
    SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        TraceFlags::SAMPLED,
        remote,
        TraceState::from_key_value([("vendor", "x1")]).unwrap(),
    )
}

#[test]
fn a_span_encodes_to_the_exact_otlp_json_bytes() {
    let mut events = SpanEvents::default();
    events.events = vec![Event::new(
        "exception",
        at(1_700_000_000_500_000_000),
        vec![KeyValue::new("exception.message", "line 1\n\"quoted\"")],
        0,
    )];
    let mut links = SpanLinks::default();
    links.links = vec![Link::new(
        span_context(0xabc, 0xdef, true),
        vec![KeyValue::new("link.type", "parent_workflow")],
        0,
    )];
    let span = SpanData {
        span_context: span_context(
            0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            0x00f0_67aa_0ba9_02b7,
            false,
        ),
        parent_span_id: SpanId::from(0x1122_3344_5566_7788),
        parent_span_is_remote: true,
        span_kind: SpanKind::Internal,
        name: Cow::Borrowed("charge"),
        start_time: at(1_700_000_000_000_000_000),
        end_time: at(1_700_000_001_000_000_001),
        attributes: vec![
            KeyValue::new("step.name", "charge"),
            KeyValue::new("cents", 1250_i64),
            KeyValue::new("ratio", 0.5),
            KeyValue::new("ok", false),
            KeyValue::new("tags", Value::Array(Array::from(vec![1_i64, 2]))),
        ],
        dropped_attributes_count: 0,
        events,
        links,
        status: Status::error("card declined"),
        instrumentation_scope: InstrumentationScope::builder("workflow-otel")
            .with_version("0.1.0")
            .build(),
    };
    let resource = Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", "shop"),
            KeyValue::new("deployment.environment.name", "test"),
        ])
        .build();
    let expected = concat!(
        r#"{"resourceSpans":[{"resource":{"attributes":["#,
        r#"{"key":"deployment.environment.name","value":{"stringValue":"test"}},"#,
        r#"{"key":"service.name","value":{"stringValue":"shop"}}]},"#,
        r#""scopeSpans":[{"scope":{"name":"workflow-otel","version":"0.1.0"},"spans":[{"#,
        r#""traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","#,
        r#""traceState":"vendor=x1","parentSpanId":"1122334455667788","flags":769,"#,
        r#""name":"charge","kind":1,"#,
        r#""startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000001000000001","#,
        r#""attributes":[{"key":"step.name","value":{"stringValue":"charge"}},"#,
        r#"{"key":"cents","value":{"intValue":"1250"}},"#,
        r#"{"key":"ratio","value":{"doubleValue":0.5}},"#,
        r#"{"key":"ok","value":{"boolValue":false}},"#,
        r#"{"key":"tags","value":{"arrayValue":{"values":[{"intValue":"1"},{"intValue":"2"}]}}}],"#,
        r#""events":[{"timeUnixNano":"1700000000500000000","name":"exception","#,
        r#""attributes":[{"key":"exception.message","value":{"stringValue":"line 1\n\"quoted\""}}]}],"#,
        r#""links":[{"traceId":"00000000000000000000000000000abc","spanId":"0000000000000def","#,
        r#""traceState":"vendor=x1","attributes":[{"key":"link.type","value":{"stringValue":"parent_workflow"}}],"#,
        r#""flags":769}],"#,
        r#""status":{"message":"card declined","code":2}}]}]}]}"#,
    );
    assert_eq!(encode_request(&resource, &[span]), expected);
}

#[test]
fn strings_escape_what_json_requires_and_nothing_else() {
    let mut out = Vec::new();
    string(&mut out, "a\"b\\c\u{1}\u{1f}é→\u{7f}");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#""a\"b\\c\u0001\u001fé→\u{7f}""#.replace("\\u{7f}", "\u{7f}")
    );
}

#[test]
fn doubles_that_json_cannot_hold_use_the_protobuf_names() {
    for (value, text) in [
        (f64::NAN, "\"NaN\""),
        (f64::INFINITY, "\"Infinity\""),
        (f64::NEG_INFINITY, "\"-Infinity\""),
        (1e21, "1000000000000000000000"),
        (-0.25, "-0.25"),
    ] {
        let mut out = Vec::new();
        double(&mut out, value);
        assert_eq!(String::from_utf8(out).unwrap(), text);
    }
}

#[test]
fn integers_are_written_as_decimal_digits() {
    for value in [
        0,
        7,
        10,
        99,
        100,
        101,
        12_345,
        -1,
        -100,
        1_795_345_200_800_587_120,
        i64::MAX,
        i64::MIN,
    ] {
        let mut out = Vec::new();
        write::integer(&mut out, value.unsigned_abs(), value < 0);
        assert_eq!(String::from_utf8(out).unwrap(), value.to_string());
    }
    let mut out = Vec::new();
    write::integer(&mut out, u64::MAX, false);
    assert_eq!(String::from_utf8(out).unwrap(), u64::MAX.to_string());
}

/// The quick way for lengths under a second writes what `Display` of the
/// double does, for every digit pattern and length of nanoseconds.
#[test]
fn seconds_are_written_as_their_double_is() {
    let mut nanos: Vec<u64> = (0..20_000).collect();
    nanos.extend((0..200_000).map(|i| i * 4_999 % 1_000_000_000));
    nanos.extend([
        999_999_999,
        100_000_000,
        123_456_789,
        1_000,
        10_746,
        1_000_000_000,
        1_000_000_001,
        86_400_123_456_789,
        u64::from(u32::MAX) * 7,
    ]);
    for nanos in nanos {
        let length = Duration::from_nanos(nanos);
        let mut quick = Vec::new();
        write::seconds(&mut quick, length);
        let mut general = Vec::new();
        double(&mut general, length.as_secs_f64());
        assert_eq!(
            String::from_utf8(quick).unwrap(),
            String::from_utf8(general).unwrap(),
            "{nanos} ns"
        );
    }
}
