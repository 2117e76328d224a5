//! The OTLP/JSON encoding of spans: one `ExportTraceServiceRequest` object.
//!
//! Follows the OTLP specification's JSON mapping of the protobuf messages
//! (opentelemetry-proto `trace/v1`, `common/v1`, `resource/v1`): field names in
//! lowerCamelCase; trace and span ids as lowercase hex, not base64; enums as
//! their integer values; 64-bit integers (timestamps, `intValue`) as decimal
//! strings; fields at their default value left out; non-finite doubles as
//! `"NaN"`, `"Infinity"`, `"-Infinity"`. It is what the OpenTelemetry
//! Collector's file exporter writes and its OTLP JSON receivers read.

#[cfg(test)]
mod tests;
pub(crate) mod write;

use std::collections::BTreeMap;
use std::time::SystemTime;
#[cfg(test)]
use std::time::UNIX_EPOCH;

use opentelemetry::trace::{Event, SpanContext, SpanId, SpanKind, Status, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

pub(crate) use crate::export::fragments::Fragments;
use crate::pipeline::{Item, Records};
use crate::record::attributes as attr;
use crate::record::context::WorkflowContext;
use crate::record::ids::unix_nanos;
use crate::record::limited::event_text;
use crate::record::raw::{Attr, AttributeSink, RawSpan, RawStatus};
use crate::record::span::Site;
#[cfg(test)]
use write::double;
use write::{
    Fields, PushStr, attr_value, attribute_list, key_head, key_value, static_key_head, string,
};

/// OTLP span flag: the flags say whether the parent (or linked) span is remote.
const CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
/// OTLP span flag: the parent (or linked) span is remote.
const CONTEXT_IS_REMOTE: u32 = 0x200;

/// One span to encode: a record of ours, or another library's `SpanData`.
#[derive(Clone, Copy)]
enum Source<'a> {
    Ours(&'a RawSpan, &'a Records<'a>),
    Foreign(&'a SpanData),
}

/// Encodes `spans` as one JSON object, without a trailing newline. Spans are
/// grouped by instrumentation scope, in order of first appearance.
#[cfg(test)]
pub(crate) fn encode_request(resource: &Resource, spans: &[SpanData]) -> String {
    let mut out = Vec::new();
    encode_request_into(&mut out, resource, spans);
    String::from_utf8(out).unwrap_or_default()
}

/// [`encode_request`] appended to `out`.
pub(crate) fn encode_request_into(out: &mut Vec<u8>, resource: &Resource, spans: &[SpanData]) {
    let sources: Vec<Source<'_>> = spans.iter().map(Source::Foreign).collect();
    encode(out, resource, &sources, &mut Fragments::default());
}

/// The same bytes as [`encode_request`] would write for the batch made into
/// `SpanData`, appended to `out` straight from the records.
pub(crate) fn encode_records(
    out: &mut Vec<u8>,
    resource: &Resource,
    records: &Records<'_>,
    fragments: &mut Fragments,
) {
    let sources: Vec<Source<'_>> = records
        .items
        .iter()
        .map(|item| match item {
            Item::Ours(raw) => Source::Ours(raw, records),
            Item::Foreign(span) => Source::Foreign(span),
        })
        .collect();
    encode(out, resource, &sources, fragments);
}

fn encode(out: &mut Vec<u8>, resource: &Resource, spans: &[Source<'_>], fragments: &mut Fragments) {
    out.reserve(256 + spans.len() * 1024);
    out.push_str(r#"{"resourceSpans":[{"resource":{"attributes":["#);
    // A resource is a set: sorted keys make the output reproducible.
    let attributes: BTreeMap<&str, &Value> = resource
        .iter()
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    for (index, (key, value)) in attributes.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        key_value(out, key, value);
    }
    out.push_str("]}");
    if let Some(schema_url) = resource.schema_url() {
        out.push_str(r#","schemaUrl":"#);
        string(out, schema_url);
    }
    out.push_str(r#","scopeSpans":["#);
    let mut scopes: Vec<(&InstrumentationScope, Vec<Source<'_>>)> = Vec::new();
    for span in spans {
        let scope = match span {
            Source::Ours(_, records) => records.scope,
            Source::Foreign(span) => &span.instrumentation_scope,
        };
        match scopes.iter_mut().find(|(known, _)| *known == scope) {
            Some((_, members)) => members.push(*span),
            None => scopes.push((scope, vec![*span])),
        }
    }
    for (index, (scope, members)) in scopes.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        scope_spans(out, scope, &members, fragments);
    }
    out.push_str("]}]}");
}

fn scope_spans(
    out: &mut Vec<u8>,
    scope: &InstrumentationScope,
    spans: &[Source<'_>],
    fragments: &mut Fragments,
) {
    out.push_str(r#"{"scope":{"#);
    let mut fields = Fields::new(out);
    if !scope.name().is_empty() {
        fields.string("name", scope.name());
    }
    if let Some(version) = scope.version() {
        fields.string("version", version);
    }
    let attributes: Vec<&KeyValue> = scope.attributes().collect();
    if !attributes.is_empty() {
        fields.key("attributes");
        attribute_list(fields.out, attributes.into_iter());
    }
    out.push(b'}');
    if let Some(schema_url) = scope.schema_url() {
        out.push_str(r#","schemaUrl":"#);
        string(out, schema_url);
    }
    out.push_str(r#","spans":["#);
    for (index, span) in spans.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        match span {
            Source::Ours(raw, records) => encode_record(out, raw, records, fragments),
            Source::Foreign(span) => encode_span(out, span),
        }
    }
    out.push_str("]}");
}

/// The fields every span starts with, up to its attributes.
#[allow(clippy::too_many_arguments)]
fn span_head(
    fields: &mut Fields<'_>,
    context: &SpanContext,
    parent_span_id: SpanId,
    parent_is_remote: bool,
    name: &str,
    span_kind: &SpanKind,
    (start, end): (u64, u64),
) {
    fields.trace_id("traceId", context.trace_id());
    fields.span_id("spanId", context.span_id());
    trace_state(fields, context.trace_state());
    if parent_span_id != SpanId::INVALID {
        fields.span_id("parentSpanId", parent_span_id);
    }
    fields.number("flags", span_flags(context, parent_is_remote).into());
    fields.string("name", name);
    fields.number("kind", kind(span_kind));
    fields.unix_nanos("startTimeUnixNano", start);
    fields.unix_nanos("endTimeUnixNano", end);
}

/// Writes the members of a list into the line, if there are any.
type ListWriter<'a> = Option<&'a dyn Fn(&mut Vec<u8>)>;

/// The `attributes` list of an event or a link, and how many were dropped.
fn attribute_fields(fields: &mut Fields<'_>, attributes: ListWriter<'_>, dropped: u32) {
    if let Some(attributes) = attributes {
        fields.key("attributes");
        fields.out.push(b'[');
        attributes(fields.out);
        fields.out.push(b']');
    }
    if dropped > 0 {
        fields.number("droppedAttributesCount", dropped.into());
    }
}

/// One event object; `attributes` writes the list's members, if any.
fn event(
    out: &mut Vec<u8>,
    time: SystemTime,
    name: &str,
    attributes: ListWriter<'_>,
    dropped_attributes: u32,
) {
    out.push(b'{');
    let mut fields = Fields::new(out);
    fields.time("timeUnixNano", time);
    fields.string("name", name);
    attribute_fields(&mut fields, attributes, dropped_attributes);
    out.push(b'}');
}

/// One link object; `attributes` writes the list's members, if any.
fn link(
    out: &mut Vec<u8>,
    linked: &SpanContext,
    attributes: ListWriter<'_>,
    dropped_attributes: u32,
) {
    out.push(b'{');
    let mut fields = Fields::new(out);
    fields.trace_id("traceId", linked.trace_id());
    fields.span_id("spanId", linked.span_id());
    trace_state(&mut fields, linked.trace_state());
    attribute_fields(&mut fields, attributes, dropped_attributes);
    fields.number("flags", span_flags(linked, linked.is_remote()).into());
    out.push(b'}');
}

fn status(fields: &mut Fields<'_>, status: RawStatus<'_>) {
    fields.key("status");
    fields.out.push(b'{');
    let mut status_fields = Fields::new(fields.out);
    match status {
        RawStatus::Unset => {}
        RawStatus::Ok => status_fields.number("code", 1),
        RawStatus::Error(description) => {
            if !description.is_empty() {
                status_fields.string("message", description);
            }
            status_fields.number("code", 2);
        }
    }
    fields.out.push(b'}');
}

/// Writes the members of an attribute list, commas between them.
struct JsonAttributes<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    fragments: &'a mut Fragments,
}

impl JsonAttributes<'_> {
    fn separate(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    /// Runs `emit`, and returns what it wrote, without a leading comma.
    fn capture(&mut self, emit: impl FnOnce(&mut Self)) -> Box<[u8]> {
        let first = self.first;
        let start = self.out.len();
        emit(self);
        let written = &self.out[start..];
        let written = if first {
            written
        } else {
            written.strip_prefix(b",").unwrap_or(written)
        };
        written.into()
    }
}

impl AttributeSink for JsonAttributes<'_> {
    fn attribute(&mut self, key: &'static str, value: Attr<'_>) {
        self.separate();
        static_key_head(self.out, key);
        attr_value(self.out, value);
        self.out.push(b'}');
    }

    fn pair(&mut self, attribute: &KeyValue) {
        self.separate();
        key_value(self.out, attribute.key.as_str(), &attribute.value);
    }

    fn same_for_site(&mut self, site: &'static Site, emit: impl FnOnce(&mut Self)) {
        if let Some(fragment) = self.fragments.of_site(site) {
            push_fragment(self.out, &mut self.first, fragment);
            return;
        }
        let fragment = self.capture(emit);
        self.fragments.keep_site(site, fragment);
    }

    fn same_for_workflow(&mut self, workflow: &WorkflowContext, emit: impl FnOnce(&mut Self)) {
        if let Some(fragment) = self.fragments.of_workflow(workflow) {
            push_fragment(self.out, &mut self.first, fragment);
            return;
        }
        let fragment = self.capture(emit);
        self.fragments.keep_workflow(workflow, fragment);
    }
}

/// Writes a fragment kept from an earlier span into an attribute list.
fn push_fragment(out: &mut Vec<u8>, first: &mut bool, fragment: &[u8]) {
    if fragment.is_empty() {
        return;
    }
    if !*first {
        out.push(b',');
    }
    *first = false;
    out.extend_from_slice(fragment);
}

/// A record of ours: the fields `encode_span` writes for its `SpanData`.
fn encode_record(
    out: &mut Vec<u8>,
    raw: &RawSpan,
    records: &Records<'_>,
    fragments: &mut Fragments,
) {
    let clock = records.clock;
    let times = raw.times(clock);
    let site = raw.site;
    out.push(b'{');
    let mut fields = Fields::new(out);
    span_head(
        &mut fields,
        &raw.span_context,
        raw.parent_span_id,
        raw.parent_is_remote,
        site.span_name,
        &site.span_kind,
        (times.start_unix, times.end_unix),
    );
    fields.key("attributes");
    fields.out.push(b'[');
    let dropped_attributes = raw.visit_limited(
        &times,
        records.limits,
        &mut JsonAttributes {
            out: fields.out,
            first: true,
            fragments,
        },
    );
    fields.out.push(b']');
    if dropped_attributes > 0 {
        fields.number("droppedAttributesCount", dropped_attributes.into());
    }
    let error = raw.error();
    let events = raw.events();
    if !events.is_empty() || error.is_some() {
        fields.key("events");
        fields.out.push(b'[');
        for (index, raw_event) in events.iter().enumerate() {
            if index > 0 {
                fields.out.push(b',');
            }
            let name = &raw_event.name;
            let write = |out: &mut Vec<u8>| {
                for (index, attribute) in raw_event.attributes.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    let value = records.error_text.event_value(name, attribute);
                    key_value(out, attribute.key.as_str(), &value);
                }
            };
            let attributes =
                (!raw_event.attributes.is_empty()).then_some(&write as &dyn Fn(&mut Vec<u8>));
            event(
                fields.out,
                clock.system_time(raw_event.at),
                name,
                attributes,
                raw_event.dropped_attributes,
            );
        }
        if let Some(error) = error {
            if !events.is_empty() {
                fields.out.push(b',');
            }
            let write = |out: &mut Vec<u8>| {
                key_head(out, attr::EXCEPTION_TYPE);
                write::string_value(out, event_text(records.limits, error.type_name));
                out.push_str("},");
                key_head(out, attr::EXCEPTION_MESSAGE);
                let message = records.error_text.filter(&error.message);
                write::string_value(out, event_text(records.limits, &message));
                out.push(b'}');
            };
            event(
                fields.out,
                times.end,
                attr::EXCEPTION_EVENT,
                Some(&write),
                0,
            );
        }
        fields.out.push(b']');
    }
    if raw.dropped_events() > 0 {
        fields.number("droppedEventsCount", raw.dropped_events().into());
    }
    let parent_link = raw.parent_link_within(records.limits);
    if let Some(parent) = parent_link.link {
        fields.key("links");
        fields.out.push(b'[');
        let write = |out: &mut Vec<u8>| {
            key_head(out, attr::LINK_TYPE);
            write::string_value(out, attr::LINK_PARENT_WORKFLOW);
            out.push(b'}');
        };
        let attributes = parent_link
            .with_type
            .then_some(&write as &dyn Fn(&mut Vec<u8>));
        link(
            fields.out,
            parent,
            attributes,
            parent_link.dropped_attributes(),
        );
        fields.out.push(b']');
    }
    if parent_link.dropped_links > 0 {
        fields.number("droppedLinksCount", parent_link.dropped_links.into());
    }
    let raw_status = match raw.status() {
        RawStatus::Error(message) => {
            let filtered = records.error_text.filter(message);
            status(&mut fields, RawStatus::Error(&filtered));
            out.push(b'}');
            return;
        }
        other => other,
    };
    status(&mut fields, raw_status);
    out.push(b'}');
}

fn encode_span(out: &mut Vec<u8>, span: &SpanData) {
    out.push(b'{');
    let mut fields = Fields::new(out);
    span_head(
        &mut fields,
        &span.span_context,
        span.parent_span_id,
        span.parent_span_is_remote,
        &span.name,
        &span.span_kind,
        (unix_nanos(span.start_time), unix_nanos(span.end_time)),
    );
    if !span.attributes.is_empty() {
        fields.key("attributes");
        attribute_list(fields.out, span.attributes.iter());
    }
    if span.dropped_attributes_count > 0 {
        fields.number(
            "droppedAttributesCount",
            span.dropped_attributes_count.into(),
        );
    }
    if !span.events.is_empty() {
        fields.key("events");
        fields.out.push(b'[');
        for (index, event_data) in span.events.iter().enumerate() {
            if index > 0 {
                fields.out.push(b',');
            }
            let Event {
                name,
                timestamp,
                attributes,
                dropped_attributes_count,
                ..
            } = event_data;
            let write = |out: &mut Vec<u8>| list_members(out, attributes);
            let attributes = (!attributes.is_empty()).then_some(&write as &dyn Fn(&mut Vec<u8>));
            event(
                fields.out,
                *timestamp,
                name,
                attributes,
                *dropped_attributes_count,
            );
        }
        fields.out.push(b']');
    }
    if span.events.dropped_count > 0 {
        fields.number("droppedEventsCount", span.events.dropped_count.into());
    }
    if !span.links.is_empty() {
        fields.key("links");
        fields.out.push(b'[');
        for (index, link_data) in span.links.iter().enumerate() {
            if index > 0 {
                fields.out.push(b',');
            }
            let write = |out: &mut Vec<u8>| list_members(out, &link_data.attributes);
            let attributes =
                (!link_data.attributes.is_empty()).then_some(&write as &dyn Fn(&mut Vec<u8>));
            link(
                fields.out,
                &link_data.span_context,
                attributes,
                link_data.dropped_attributes_count,
            );
        }
        fields.out.push(b']');
    }
    if span.links.dropped_count > 0 {
        fields.number("droppedLinksCount", span.links.dropped_count.into());
    }
    let span_status = match &span.status {
        Status::Unset => RawStatus::Unset,
        Status::Ok => RawStatus::Ok,
        Status::Error { description } => RawStatus::Error(description),
    };
    status(&mut fields, span_status);
    out.push(b'}');
}

fn list_members(out: &mut Vec<u8>, attributes: &[KeyValue]) {
    for (index, attribute) in attributes.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        key_value(out, attribute.key.as_str(), &attribute.value);
    }
}

fn trace_state(fields: &mut Fields<'_>, state: &TraceState) {
    // Most spans have none: no header to build.
    if *state == TraceState::NONE {
        return;
    }
    let header = state.header();
    if !header.is_empty() {
        fields.string("traceState", &header);
    }
}

/// W3C trace flags in the low byte, and whether the parent is remote.
pub(crate) fn span_flags(context: &SpanContext, remote: bool) -> u32 {
    let mut flags = u32::from(context.trace_flags().to_u8()) | CONTEXT_HAS_IS_REMOTE;
    if remote {
        flags |= CONTEXT_IS_REMOTE;
    }
    flags
}

/// `SPAN_KIND_*` values of `trace/v1/trace.proto`.
fn kind(kind: &SpanKind) -> i64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}
