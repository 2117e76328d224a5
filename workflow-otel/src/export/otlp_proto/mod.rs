//! A batch as the protobuf bytes of an OTLP `ExportTraceServiceRequest`,
//! written straight from our records, as the JSON-lines encoder writes its
//! text: no message of the official types is built for them, no string is
//! copied, and the attributes that are the same for every span of a site or
//! of a workflow's steps are kept as bytes. Other libraries' spans, and the
//! resource and scopes, go through opentelemetry-proto's own conversion.
//! Fields are written in prost's order, and left out where prost leaves them
//! out; decoded, the request equals the official conversion of the batch
//! made into `SpanData` (`tests/native_otlp.rs`).

mod wire;

use opentelemetry::trace::{SpanContext, SpanId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::common::v1::{
    InstrumentationScope as ProtoScope, KeyValue as ProtoKeyValue,
};
use opentelemetry_proto::tonic::trace::v1::{Span, span, status};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;

use crate::export::fragments::Fragments;
use crate::export::otlp_json::span_flags;
use crate::pipeline::{Item, Records};
use crate::record::attributes as attr;
use crate::record::context::WorkflowContext;
use crate::record::limited::event_text;
use crate::record::raw::{Attr, AttributeSink, RawSpan, RawStatus};
use crate::record::span::Site;
use crate::record::time::Rfc3339;

/// Appends the request for `records` to `out`, with spans grouped by scope
/// in the order the scopes first appear.
pub(crate) fn encode_request(
    out: &mut Vec<u8>,
    resource: &ResourceAttributesWithSchema,
    records: &Records<'_>,
    fragments: &mut Fragments,
) {
    let mut scopes: Vec<(&InstrumentationScope, Vec<&Item>)> = Vec::new();
    for item in records.items {
        let scope = match item {
            Item::Ours(_) => records.scope,
            Item::Foreign(span) => &span.instrumentation_scope,
        };
        match scopes.iter_mut().find(|(known, _)| *known == scope) {
            Some((_, items)) => items.push(item),
            None => scopes.push((scope, vec![item])),
        }
    }
    out.reserve(256 + records.items.len() * 512);
    // ExportTraceServiceRequest.resource_spans
    wire::message(out, 1, |out| {
        // ResourceSpans.resource
        wire::message(out, 1, |out| {
            for attribute in &resource.attributes.0 {
                wire::prost_message(out, 1, attribute);
            }
        });
        for (scope, items) in scopes {
            // ResourceSpans.scope_spans
            wire::message(out, 2, |out| {
                wire::prost_message(out, 1, &ProtoScope::from((scope, None)));
                for item in items {
                    match item {
                        Item::Ours(raw) => {
                            wire::message(out, 2, |out| record(out, raw, records, fragments));
                        }
                        Item::Foreign(span) => {
                            wire::prost_message(out, 2, &Span::from((**span).clone()));
                        }
                    }
                }
                wire::bytes(out, 3, scope.schema_url().unwrap_or_default().as_bytes());
            });
        }
        let schema_url = resource.schema_url.as_deref().unwrap_or_default();
        wire::bytes(out, 3, schema_url.as_bytes());
    });
}

/// An attribute of the user's, as the official conversion makes it.
fn pair(attribute: &KeyValue) -> ProtoKeyValue {
    ProtoKeyValue {
        key: attribute.key.as_str().to_owned(),
        value: Some(attribute.value.clone().into()),
        key_strindex: 0,
    }
}

fn trace_state(state: &TraceState) -> String {
    if *state == TraceState::NONE {
        String::new()
    } else {
        state.header()
    }
}

/// A `KeyValue` of a string, as an attribute list's member (field `field`).
fn text_attribute(out: &mut Vec<u8>, field: u32, key: &str, value: &str) {
    wire::message(out, field, |out| {
        wire::bytes(out, 1, key.as_bytes());
        wire::message(out, 2, |out| wire::bytes_always(out, 1, value.as_bytes()));
    });
}

/// Writes a record's attributes as `Span.attributes` members.
struct Attributes<'a> {
    out: &'a mut Vec<u8>,
    fragments: &'a mut Fragments,
}

impl Attributes<'_> {
    /// Runs `emit`, and returns what it wrote.
    fn capture(&mut self, emit: impl FnOnce(&mut Self)) -> Box<[u8]> {
        let start = self.out.len();
        emit(self);
        self.out[start..].into()
    }
}

/// `Span.attributes`.
const SPAN_ATTRIBUTES: u32 = 9;

impl AttributeSink for Attributes<'_> {
    fn attribute(&mut self, key: &'static str, value: Attr<'_>) {
        wire::message(self.out, SPAN_ATTRIBUTES, |out| {
            wire::bytes(out, 1, key.as_bytes());
            // KeyValue.value: an AnyValue, its one member always written.
            wire::message(out, 2, |out| match value {
                Attr::Static(text) | Attr::Text(text) => {
                    wire::bytes_always(out, 1, text.as_bytes());
                }
                Attr::Shared(text) => wire::bytes_always(out, 1, text.as_str().as_bytes()),
                Attr::Int(number) => wire::int_always(out, 3, number),
                Attr::Float(number) => wire::double_always(out, 4, number),
                Attr::Bool(flag) => wire::bool_always(out, 2, flag),
                Attr::Seconds(length) => wire::double_always(out, 4, length.as_secs_f64()),
                Attr::TraceId(id) => wire::bytes_always(out, 1, id.to_string().as_bytes()),
                Attr::SpanId(id) => wire::bytes_always(out, 1, id.to_string().as_bytes()),
                Attr::Time(time) => {
                    wire::bytes_always(out, 1, Rfc3339(time).to_string().as_bytes());
                }
            });
        });
    }

    fn pair(&mut self, attribute: &KeyValue) {
        wire::prost_message(self.out, SPAN_ATTRIBUTES, &pair(attribute));
    }

    fn same_for_site(&mut self, site: &'static Site, emit: impl FnOnce(&mut Self)) {
        if let Some(fragment) = self.fragments.of_site(site) {
            self.out.extend_from_slice(fragment);
            return;
        }
        let fragment = self.capture(emit);
        self.fragments.keep_site(site, fragment);
    }

    fn same_for_workflow(&mut self, workflow: &WorkflowContext, emit: impl FnOnce(&mut Self)) {
        if let Some(fragment) = self.fragments.of_workflow(workflow) {
            self.out.extend_from_slice(fragment);
            return;
        }
        let fragment = self.capture(emit);
        self.fragments.keep_workflow(workflow, fragment);
    }
}

fn ids(out: &mut Vec<u8>, context: &SpanContext) {
    wire::bytes(out, 1, &context.trace_id().to_bytes());
    wire::bytes(out, 2, &context.span_id().to_bytes());
    wire::bytes(out, 3, trace_state(context.trace_state()).as_bytes());
}

/// The fields of a `Span` for a record of ours, in prost's order.
fn record(out: &mut Vec<u8>, raw: &RawSpan, records: &Records<'_>, fragments: &mut Fragments) {
    let clock = records.clock;
    let site = raw.site;
    let times = raw.times(clock);
    ids(out, &raw.span_context);
    if raw.parent_span_id != SpanId::INVALID {
        wire::bytes(out, 4, &raw.parent_span_id.to_bytes());
    }
    wire::fixed32(out, 16, span_flags(&raw.span_context, raw.parent_is_remote));
    wire::bytes(out, 5, site.span_name.as_bytes());
    wire::uint(out, 6, span::SpanKind::from(site.span_kind.clone()) as u64);
    wire::fixed64(out, 7, times.start_unix);
    wire::fixed64(out, 8, times.end_unix);
    let dropped_attributes =
        raw.visit_limited(&times, records.limits, &mut Attributes { out, fragments });
    // Span.dropped_attributes_count
    wire::uint(out, 10, dropped_attributes.into());
    for event in raw.events() {
        let name = &event.name;
        // Span.events
        wire::message(out, 11, |out| {
            wire::fixed64(out, 1, clock.unix_nanos(event.at));
            wire::bytes(out, 2, name.as_bytes());
            for attribute in &event.attributes {
                let value = records.error_text.event_value(name, attribute);
                let member = ProtoKeyValue {
                    key: attribute.key.as_str().to_owned(),
                    value: Some(value.into_owned().into()),
                    key_strindex: 0,
                };
                wire::prost_message(out, 3, &member);
            }
            // Event.dropped_attributes_count
            wire::uint(out, 4, event.dropped_attributes.into());
        });
    }
    if let Some(error) = raw.error() {
        wire::message(out, 11, |out| {
            wire::fixed64(out, 1, times.end_unix);
            wire::bytes(out, 2, attr::EXCEPTION_EVENT.as_bytes());
            let limits = records.limits;
            text_attribute(
                out,
                3,
                attr::EXCEPTION_TYPE,
                event_text(limits, error.type_name),
            );
            let message = records.error_text.filter(&error.message);
            text_attribute(
                out,
                3,
                attr::EXCEPTION_MESSAGE,
                event_text(limits, &message),
            );
        });
    }
    // Span.dropped_events_count
    wire::uint(out, 12, raw.dropped_events().into());
    let parent_link = raw.parent_link_within(records.limits);
    if let Some(parent) = parent_link.link {
        // Span.links
        wire::message(out, 13, |out| {
            ids(out, parent);
            if parent_link.with_type {
                text_attribute(out, 4, attr::LINK_TYPE, attr::LINK_PARENT_WORKFLOW);
            }
            // Link.dropped_attributes_count
            wire::uint(out, 5, parent_link.dropped_attributes().into());
            wire::fixed32(out, 6, span_flags(parent, parent.is_remote()));
        });
    }
    // Span.dropped_links_count
    wire::uint(out, 14, parent_link.dropped_links.into());
    // Span.status: always present, as the official conversion makes it.
    wire::message(out, 15, |out| match raw.status() {
        RawStatus::Unset => {}
        RawStatus::Ok => wire::uint(out, 3, status::StatusCode::Ok as u64),
        RawStatus::Error(message) => {
            wire::bytes(out, 2, records.error_text.filter(message).as_bytes());
            wire::uint(out, 3, status::StatusCode::Error as u64);
        }
    });
}
