//! OTLP metrics: the snapshot as an `ExportMetricsServiceRequest` (the
//! official protobuf types of `opentelemetry-proto`), pushed over gRPC,
//! HTTP/protobuf or HTTP/JSON, with gzip if asked.
//!
//! Not through the SDK's `MetricExporter`: its data types cannot be built
//! outside the SDK, and the SDK (0.33) records no exemplars, which are the
//! point of histograms that lead to traces. Temporality is cumulative, so an
//! export that fails loses nothing: the next one carries the totals.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue as ProtoKeyValue, any_value,
};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar as ProtoExemplar, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, exemplar, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::transform::common::tonic::Attributes;
use opentelemetry_sdk::Resource;

use crate::error::SetupError;
use crate::export::OtlpSettings;
use crate::export::otlp_transport::{METRICS_EXPORT, OtlpTransport, Payload};
use crate::metrics::encode::Snapshot;
use crate::metrics::exemplar::Exemplar;
use crate::metrics::genai::{
    DURATION_BUCKETS as GEN_AI_DURATION, ModelSeries, TOKEN_BUCKETS as GEN_AI_TOKENS,
};
use crate::metrics::series::{Histogram as Counts, Outcome, SeriesKind, SeriesSnapshot};

/// Pushes metrics to an OTLP endpoint, over the transport spans use.
pub(crate) struct OtlpMetricsExporter {
    transport: OtlpTransport,
    resource: ProtoResource,
}

impl std::fmt::Debug for OtlpMetricsExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let settings = self.transport.settings();
        f.debug_struct("OtlpMetricsExporter")
            .field("endpoint", &settings.endpoint)
            .field("protocol", &settings.protocol)
            .finish_non_exhaustive()
    }
}

impl OtlpMetricsExporter {
    pub(crate) fn new(
        settings: &OtlpSettings,
        resource: &Resource,
        setting: &str,
    ) -> Result<OtlpMetricsExporter, SetupError> {
        let transport = OtlpTransport::new(settings, "workflow-otel-otlp-metrics", setting)?;
        Ok(OtlpMetricsExporter {
            transport,
            resource: ProtoResource {
                attributes: Attributes::from(
                    resource.iter().map(|(key, value)| {
                        opentelemetry::KeyValue::new(key.clone(), value.clone())
                    }),
                )
                .0,
                ..Default::default()
            },
        })
    }

    pub(crate) fn endpoint(&self) -> String {
        crate::setup::env::without_credentials(&self.transport.settings().endpoint)
    }

    /// Sends `snapshot`, within `timeout` (and the settings' own timeout).
    pub(crate) fn export(
        &self,
        snapshot: &Snapshot,
        started: SystemTime,
        timeout: Duration,
    ) -> Result<(), String> {
        let request = request(snapshot, self.resource.clone(), started, SystemTime::now());
        let payload = if self.transport.sends_json() {
            Payload::Json(json(&request)?)
        } else {
            Payload::Message(request)
        };
        self.transport
            .send::<_, ExportMetricsServiceResponse>(payload, METRICS_EXPORT, timeout)
    }
}

/// OTLP/JSON of `request`. Two liberties the JSON mapping allows, for
/// receivers that read less than all of it: optional fields left unset are
/// left out (not `null`), and integer values (`asInt`, never near 2^53 here)
/// are numbers rather than strings. rotel 0.0.1a15, for one, reads an
/// `asInt` string as no value at all.
fn json(request: &ExportMetricsServiceRequest) -> Result<Vec<u8>, String> {
    fn tidy(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(fields) => {
                fields.retain(|_, field| !field.is_null());
                if let Some(serde_json::Value::String(text)) = fields.get("asInt")
                    && let Ok(number) = text.parse::<i64>()
                {
                    fields.insert("asInt".to_owned(), number.into());
                }
                fields.values_mut().for_each(tidy);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(tidy),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(request).map_err(|error| error.to_string())?;
    tidy(&mut value);
    serde_json::to_vec(&value).map_err(|error| error.to_string())
}

/// Kept exemplars as OTLP's; `integer` for an instrument of integers.
pub(crate) fn proto_exemplars(exemplars: &[Option<Exemplar>], integer: bool) -> Vec<ProtoExemplar> {
    exemplars
        .iter()
        .flatten()
        .map(|exemplar| ProtoExemplar {
            time_unix_nano: unix_nanos(exemplar.time),
            span_id: exemplar.span_id.to_vec(),
            trace_id: exemplar.trace_id.to_vec(),
            value: Some(if integer {
                exemplar::Value::AsInt(exemplar.value as i64)
            } else {
                exemplar::Value::AsDouble(exemplar.value)
            }),
            ..Default::default()
        })
        .collect()
}

fn unix_nanos(time: SystemTime) -> u64 {
    u64::try_from(
        time.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    )
    .unwrap_or(u64::MAX)
}

fn text(key: &str, value: &str) -> ProtoKeyValue {
    ProtoKeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn labels(series: &SeriesSnapshot) -> Vec<ProtoKeyValue> {
    let mut labels = vec![text("workflow.name", series.workflow)];
    if series.kind == SeriesKind::Step {
        labels.push(text("step.name", series.step));
    }
    labels
}

/// The request for `snapshot`: cumulative series that started at `started`.
pub(crate) fn request(
    snapshot: &Snapshot,
    resource: ProtoResource,
    started: SystemTime,
    now: SystemTime,
) -> ExportMetricsServiceRequest {
    let (start, time) = (unix_nanos(started), unix_nanos(now));
    let mut metrics = Vec::new();
    for (kind, name, description) in [
        (
            SeriesKind::Workflow,
            "workflow.duration",
            "Duration of workflow runs (root and child workflows).",
        ),
        (
            SeriesKind::Step,
            "workflow.step.duration",
            "Duration of step calls.",
        ),
    ] {
        let points: Vec<HistogramDataPoint> = members(snapshot, kind)
            .map(|series| HistogramDataPoint {
                exemplars: proto_exemplars(&series.exemplars, false),
                ..histogram_point(
                    labels(series),
                    &snapshot.bounds,
                    &series.duration,
                    (start, time),
                )
            })
            .collect();
        if !points.is_empty() {
            metrics.push(Metric {
                name: name.to_owned(),
                description: description.to_owned(),
                unit: "s".to_owned(),
                data: Some(metric::Data::Histogram(Histogram {
                    data_points: points,
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                })),
                ..Default::default()
            });
        }
    }
    let sum = |name: &str,
               description: &str,
               unit: &str,
               monotonic: bool,
               points: Vec<(Vec<ProtoKeyValue>, i64)>| {
        Metric {
            name: name.to_owned(),
            description: description.to_owned(),
            unit: unit.to_owned(),
            data: Some(metric::Data::Sum(Sum {
                data_points: points
                    .into_iter()
                    .map(|(attributes, value)| NumberDataPoint {
                        attributes,
                        start_time_unix_nano: start,
                        time_unix_nano: time,
                        value: Some(number_data_point::Value::AsInt(value)),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: monotonic,
            })),
            ..Default::default()
        }
    };
    for (kind, calls, failures) in [
        (SeriesKind::Workflow, "workflow.calls", "workflow.failures"),
        (
            SeriesKind::Step,
            "workflow.step.calls",
            "workflow.step.failures",
        ),
    ] {
        let mut call_points = Vec::new();
        let mut failure_points = Vec::new();
        for series in members(snapshot, kind) {
            for outcome in Outcome::ALL {
                let mut attributes = labels(series);
                attributes.push(text("outcome", outcome.as_str()));
                call_points.push((attributes, count(series.outcomes[outcome as usize])));
            }
            for (error_type, failed) in &series.failures {
                let mut attributes = labels(series);
                attributes.push(text("error.type", error_type));
                failure_points.push((attributes, count(*failed)));
            }
        }
        if !call_points.is_empty() {
            metrics.push(sum(
                calls,
                "Calls by outcome (ok, error, panic, cancelled).",
                "{call}",
                true,
                call_points,
            ));
        }
        if !failure_points.is_empty() {
            metrics.push(sum(
                failures,
                "Failed calls by error type.",
                "{call}",
                true,
                failure_points,
            ));
        }
    }
    let active: Vec<_> = members(snapshot, SeriesKind::Workflow)
        .map(|series| (labels(series), series.active))
        .collect();
    if !active.is_empty() {
        metrics.push(sum(
            "workflow.active",
            "Workflow runs in flight.",
            "{workflow}",
            false,
            active,
        ));
    }
    model_metrics(&mut metrics, snapshot, start, time);
    let mut scope_metrics = vec![ScopeMetrics {
        scope: Some(InstrumentationScope {
            name: "workflow-otel".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ..Default::default()
        }),
        metrics,
        ..Default::default()
    }];
    scope_metrics.extend(crate::metrics::instruments::otlp::scope_metrics(
        &snapshot.instruments,
        time,
    ));
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource),
            scope_metrics,
            ..Default::default()
        }],
    }
}

fn model_labels(series: &ModelSeries) -> Vec<ProtoKeyValue> {
    let mut labels = vec![
        text("gen_ai.operation.name", &series.operation),
        text("gen_ai.provider.name", &series.provider),
        text("gen_ai.request.model", &series.model),
    ];
    if !series.error_type.is_empty() {
        labels.push(text("error.type", &series.error_type));
    }
    labels
}

fn histogram_point(
    attributes: Vec<ProtoKeyValue>,
    bounds: &[f64],
    histogram: &Counts,
    (start, time): (u64, u64),
) -> HistogramDataPoint {
    HistogramDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: time,
        count: histogram.count,
        sum: Some(histogram.sum),
        bucket_counts: histogram.buckets.clone(),
        explicit_bounds: bounds.to_vec(),
        ..Default::default()
    }
}

/// The GenAI conventions' client metrics, and the cost counter.
fn model_metrics(metrics: &mut Vec<Metric>, snapshot: &Snapshot, start: u64, time: u64) {
    if snapshot.models.is_empty() {
        return;
    }
    let times = (start, time);
    let histogram =
        |name: &str, description: &str, unit: &str, points: Vec<HistogramDataPoint>| Metric {
            name: name.to_owned(),
            description: description.to_owned(),
            unit: unit.to_owned(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        };
    let durations = snapshot
        .models
        .iter()
        .map(|series| HistogramDataPoint {
            exemplars: proto_exemplars(&series.exemplars[0], false),
            ..histogram_point(
                model_labels(series),
                &GEN_AI_DURATION,
                &series.duration,
                times,
            )
        })
        .collect();
    metrics.push(histogram(
        "gen_ai.client.operation.duration",
        "GenAI operation duration.",
        "s",
        durations,
    ));
    let mut tokens = Vec::new();
    let mut costs = Vec::new();
    for series in &snapshot.models {
        if series.input_tokens.count > 0 {
            for (token_type, counts, index) in [
                ("input", &series.input_tokens, 1),
                ("output", &series.output_tokens, 2),
            ] {
                let mut labels = model_labels(series);
                labels.push(text("gen_ai.token.type", token_type));
                tokens.push(HistogramDataPoint {
                    exemplars: proto_exemplars(&series.exemplars[index], false),
                    ..histogram_point(labels, &GEN_AI_TOKENS, counts, times)
                });
            }
        }
        for (currency, total) in &series.cost {
            costs.push(NumberDataPoint {
                attributes: vec![
                    text("gen_ai.provider.name", &series.provider),
                    text("gen_ai.request.model", &series.model),
                    text("currency", currency),
                ],
                start_time_unix_nano: start,
                time_unix_nano: time,
                value: Some(number_data_point::Value::AsDouble(*total)),
                ..Default::default()
            });
        }
    }
    if !tokens.is_empty() {
        metrics.push(histogram(
            "gen_ai.client.token.usage",
            "Tokens used by model calls.",
            "{token}",
            tokens,
        ));
    }
    if !costs.is_empty() {
        metrics.push(Metric {
            name: "workflow.gen_ai.cost".to_owned(),
            description: "Cost of model calls, from the price table.".to_owned(),
            unit: "{currency}".to_owned(),
            data: Some(metric::Data::Sum(Sum {
                data_points: costs,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        });
    }
}

fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn members(snapshot: &Snapshot, kind: SeriesKind) -> impl Iterator<Item = &SeriesSnapshot> {
    snapshot
        .series
        .iter()
        .filter(move |series| series.kind == kind)
}

#[cfg(test)]
mod tests;
