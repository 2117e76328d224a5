//! A batch as an OTLP `ExportTraceServiceRequest` of the official protobuf
//! types (opentelemetry-proto): our records made into them directly, with
//! the same attribute walk as everything else reads them with; other
//! libraries' spans through opentelemetry-proto's own conversion. The
//! message equals that conversion of the batch made into `SpanData`.

use opentelemetry::trace::{SpanContext, SpanId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as ProtoKeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;

use crate::export::otlp_json::span_flags;
use crate::pipeline::{Item, Records};
use crate::record::attributes as attr;
use crate::record::raw::{Attr, AttributeSink, RawSpan, RawStatus};
use crate::record::time::{rfc3339, span_id_hex, trace_id_hex};

/// The request for `records`, with spans grouped by scope in the order the
/// scopes first appear.
pub(crate) fn request(
    resource: &ResourceAttributesWithSchema,
    records: &Records<'_>,
) -> ExportTraceServiceRequest {
    let mut scopes: Vec<(&InstrumentationScope, Vec<Span>)> = Vec::new();
    for item in records.items {
        let (scope, span) = match item {
            Item::Ours(raw) => (records.scope, record_span(raw, records)),
            Item::Foreign(span) => (&span.instrumentation_scope, Span::from((**span).clone())),
        };
        match scopes.iter_mut().find(|(known, _)| *known == scope) {
            Some((_, spans)) => spans.push(span),
            None => scopes.push((scope, vec![span])),
        }
    }
    let scope_spans = scopes
        .into_iter()
        .map(|(scope, spans)| ScopeSpans {
            schema_url: scope.schema_url().unwrap_or_default().to_owned(),
            scope: Some((scope, None).into()),
            spans,
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(ProtoResource {
                attributes: resource.attributes.0.clone(),
                dropped_attributes_count: 0,
                entity_refs: Vec::new(),
            }),
            schema_url: resource.schema_url.clone().unwrap_or_default(),
            scope_spans,
        }],
    }
}

/// A string attribute.
fn text(key: &str, value: impl Into<String>) -> ProtoKeyValue {
    ProtoKeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        key_strindex: 0,
    }
}

fn pair(attribute: &KeyValue) -> ProtoKeyValue {
    ProtoKeyValue {
        key: attribute.key.as_str().to_owned(),
        value: Some(attribute.value.clone().into()),
        key_strindex: 0,
    }
}

/// Collects a record's attributes as protobuf key-values.
struct ProtoAttributes(Vec<ProtoKeyValue>);

impl AttributeSink for ProtoAttributes {
    fn attribute(&mut self, key: &'static str, value: Attr<'_>) {
        let value = match value {
            Attr::Static(text) | Attr::Text(text) => any_value::Value::StringValue(text.to_owned()),
            Attr::Shared(text) => any_value::Value::StringValue(text.as_str().to_owned()),
            Attr::Int(number) => any_value::Value::IntValue(number),
            Attr::Seconds(length) => any_value::Value::DoubleValue(length.as_secs_f64()),
            Attr::TraceId(id) => any_value::Value::StringValue(trace_id_hex(id)),
            Attr::SpanId(id) => any_value::Value::StringValue(span_id_hex(id)),
            Attr::Time(time) => any_value::Value::StringValue(rfc3339(time)),
        };
        self.0.push(ProtoKeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            key_strindex: 0,
        });
    }

    fn pair(&mut self, attribute: &KeyValue) {
        self.0.push(pair(attribute));
    }
}

fn id_bytes(context: &SpanContext) -> (Vec<u8>, Vec<u8>) {
    (
        context.trace_id().to_bytes().to_vec(),
        context.span_id().to_bytes().to_vec(),
    )
}

fn trace_state(state: &TraceState) -> String {
    if *state == TraceState::NONE {
        String::new()
    } else {
        state.header()
    }
}

fn record_span(raw: &RawSpan, records: &Records<'_>) -> Span {
    let clock = records.clock;
    let site = raw.site;
    let times = raw.times(clock);
    let mut attributes = ProtoAttributes(Vec::with_capacity(16));
    raw.visit_attributes(&times, &mut attributes);
    let mut events: Vec<span::Event> = raw
        .events()
        .iter()
        .map(|(name, at, attributes)| span::Event {
            time_unix_nano: clock.unix_nanos(*at),
            name: name.to_string(),
            attributes: attributes
                .iter()
                .map(|attribute| ProtoKeyValue {
                    key: attribute.key.as_str().to_owned(),
                    value: Some(
                        records
                            .error_text
                            .event_value(name, attribute)
                            .into_owned()
                            .into(),
                    ),
                    key_strindex: 0,
                })
                .collect(),
            dropped_attributes_count: 0,
        })
        .collect();
    if let Some(error) = raw.error() {
        events.push(span::Event {
            time_unix_nano: times.end_unix,
            name: attr::EXCEPTION_EVENT.to_owned(),
            attributes: vec![
                text(attr::EXCEPTION_TYPE, error.type_name),
                text(
                    attr::EXCEPTION_MESSAGE,
                    records.error_text.filter(&error.message),
                ),
            ],
            dropped_attributes_count: 0,
        });
    }
    let links = raw
        .parent_link()
        .map(|parent| {
            let (trace_id, span_id) = id_bytes(parent);
            vec![span::Link {
                trace_id,
                span_id,
                trace_state: trace_state(parent.trace_state()),
                attributes: vec![text(attr::LINK_TYPE, attr::LINK_PARENT_WORKFLOW)],
                dropped_attributes_count: 0,
                flags: span_flags(parent, parent.is_remote()),
            }]
        })
        .unwrap_or_default();
    let (code, message) = match raw.status() {
        RawStatus::Unset => (status::StatusCode::Unset, String::new()),
        RawStatus::Ok => (status::StatusCode::Ok, String::new()),
        RawStatus::Error(message) => (
            status::StatusCode::Error,
            records.error_text.filter(message).into_owned(),
        ),
    };
    let (trace_id, span_id) = id_bytes(&raw.span_context);
    Span {
        trace_id,
        span_id,
        trace_state: trace_state(raw.span_context.trace_state()),
        parent_span_id: if raw.parent_span_id == SpanId::INVALID {
            Vec::new()
        } else {
            raw.parent_span_id.to_bytes().to_vec()
        },
        flags: span_flags(&raw.span_context, raw.parent_is_remote),
        name: site.name.to_owned(),
        kind: span::SpanKind::from(site.span_kind.clone()) as i32,
        start_time_unix_nano: times.start_unix,
        end_time_unix_nano: times.end_unix,
        attributes: attributes.0,
        dropped_attributes_count: 0,
        events,
        dropped_events_count: 0,
        links,
        dropped_links_count: 0,
        status: Some(Status {
            message,
            code: code as i32,
        }),
    }
}
