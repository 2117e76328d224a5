//! The service's instruments in the OTLP request: one `ScopeMetrics` per
//! meter, cumulative sums and histograms (their start is when the attribute
//! set was first measured, or when an observable instrument was made),
//! gauges without a start, exemplars on counters and histogram buckets.

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::transform::common::tonic::Attributes;

use crate::metrics::instruments::InstrumentSnapshot;
use crate::metrics::instruments::instrument::{DataKind, NumberValue, PointSnapshot};
use crate::metrics::otlp::proto_exemplars;
use crate::record::ids::unix_nanos;

fn number_point(point: &PointSnapshot, time: u64, start: bool) -> NumberDataPoint {
    let (value, integer) = match point.value {
        NumberValue::U64(value) => (
            number_data_point::Value::AsInt(i64::try_from(value).unwrap_or(i64::MAX)),
            true,
        ),
        NumberValue::I64(value) => (number_data_point::Value::AsInt(value), true),
        NumberValue::F64(value) => (number_data_point::Value::AsDouble(value), false),
    };
    NumberDataPoint {
        attributes: Attributes::from(point.attributes.iter().cloned()).0,
        start_time_unix_nano: if start { unix_nanos(point.start) } else { 0 },
        time_unix_nano: time,
        value: Some(value),
        exemplars: proto_exemplars(&point.exemplars, integer),
        ..Default::default()
    }
}

fn metric(snapshot: &InstrumentSnapshot, time: u64) -> Metric {
    let instrument = &snapshot.instrument;
    let cumulative = AggregationTemporality::Cumulative as i32;
    let data = match instrument.spec.kind.data() {
        DataKind::MonotonicSum | DataKind::Sum => metric::Data::Sum(Sum {
            data_points: snapshot
                .points
                .iter()
                .map(|point| number_point(point, time, true))
                .collect(),
            aggregation_temporality: cumulative,
            is_monotonic: instrument.spec.kind.data() == DataKind::MonotonicSum,
        }),
        DataKind::Gauge => metric::Data::Gauge(Gauge {
            data_points: snapshot
                .points
                .iter()
                .map(|point| number_point(point, time, false))
                .collect(),
        }),
        DataKind::Histogram => metric::Data::Histogram(Histogram {
            data_points: snapshot
                .points
                .iter()
                .filter_map(|point| {
                    let histogram = point.histogram.as_ref()?;
                    Some(HistogramDataPoint {
                        attributes: Attributes::from(point.attributes.iter().cloned()).0,
                        start_time_unix_nano: unix_nanos(point.start),
                        time_unix_nano: time,
                        count: histogram.count,
                        sum: Some(histogram.sum),
                        bucket_counts: histogram.buckets.clone(),
                        explicit_bounds: instrument.spec.bounds.to_vec(),
                        exemplars: proto_exemplars(&point.exemplars, false),
                        ..Default::default()
                    })
                })
                .collect(),
            aggregation_temporality: cumulative,
        }),
    };
    Metric {
        name: instrument.spec.name.clone(),
        description: instrument.spec.description.clone(),
        unit: instrument.spec.unit.clone(),
        data: Some(data),
        ..Default::default()
    }
}

/// The instruments as one `ScopeMetrics` per scope, in the order the scopes
/// were first used.
pub(crate) fn scope_metrics(instruments: &[InstrumentSnapshot], time: u64) -> Vec<ScopeMetrics> {
    let mut scopes: Vec<ScopeMetrics> = Vec::new();
    let mut keys = Vec::new();
    for snapshot in instruments {
        let scope = &snapshot.instrument.scope;
        let position = match keys.iter().position(|known| *known == **scope) {
            Some(position) => position,
            None => {
                keys.push((**scope).clone());
                scopes.push(ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: scope.name.clone(),
                        version: scope.version.clone(),
                        attributes: Attributes::from(scope.attributes.iter().cloned()).0,
                        ..Default::default()
                    }),
                    schema_url: scope.schema_url.clone(),
                    ..Default::default()
                });
                scopes.len() - 1
            }
        };
        scopes[position].metrics.push(metric(snapshot, time));
    }
    scopes
}
