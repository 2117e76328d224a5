//! Spans as Zipkin v2 JSON (`zipkin2-api.yaml`), by the OpenTelemetry
//! specification's mapping (`trace/sdk_exporters/zipkin.md`,
//! `common/mapping-to-non-otlp.md`): written straight from our records, as
//! the OTLP encoders write theirs, and from other libraries' `SpanData`.
//!
//! - `kind` is left out for INTERNAL spans, as the mapping says.
//! - `timestamp`, `duration` and annotation timestamps are whole
//!   microseconds, rounded to the nearest; a duration is at least 1, the
//!   API's minimum.
//! - Tags: every attribute as text (booleans `true`/`false`, doubles as
//!   their shortest round-trip form, arrays as a JSON list), the resource's
//!   attributes except `service.name` (the local endpoint's name), the scope
//!   as `otel.scope.*` and `otel.library.*`, the status as
//!   `otel.status_code` and, for errors, `error` (an attribute named `error`
//!   is left out: the status decides), and the dropped counts.
//! - Events become annotations whose value is `{"<name>":{<attributes>}}`.
//! - `remoteEndpoint`, for CLIENT and PRODUCER spans: `serviceName` from the
//!   best-ranked of the mapping's peer attributes, `ipv4`/`ipv6` and `port`
//!   from `network.peer.address`/`network.peer.port`.
//! - Links and the trace state have no Zipkin field (the mapping says TBD):
//!   only their dropped count is a tag.

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

use crate::export::otlp_json::write::{PushStr, integer, quoted_hex, string};
use crate::export::zipkin::remote::Peer;
use crate::export::zipkin::text::{
    json_member, json_string, value_text, write_float, write_tag_value,
};
use crate::pipeline::{Item, Records};
use crate::record::attributes as attr;
use crate::record::ids::unix_nanos;
use crate::record::limited::event_text;
use crate::record::raw::{Attr, AttributeSink, RawSpan, RawStatus};
use crate::record::time::Rfc3339;

/// What every span of an exporter shares: the local endpoint and the
/// resource's tags, written once when the resource is set.
#[derive(Debug, Default, Clone)]
pub(crate) struct Shared {
    /// `"localEndpoint":{…}` without a leading comma.
    local_endpoint: Vec<u8>,
    /// `"key":"value"` members, each after a comma.
    resource_tags: Vec<u8>,
}

impl Shared {
    pub(crate) fn new(resource: &Resource) -> Shared {
        let service = resource
            .get(&opentelemetry::Key::from_static_str("service.name"))
            .map_or_else(|| "unknown_service".to_owned(), |name| name.to_string());
        let mut local_endpoint = Vec::new();
        local_endpoint.push_str(r#""localEndpoint":{"serviceName":"#);
        string(&mut local_endpoint, &service);
        local_endpoint.push(b'}');
        let mut attributes: Vec<(&str, &Value)> = resource
            .iter()
            .map(|(key, value)| (key.as_str(), value))
            .filter(|(key, _)| *key != "service.name")
            .collect();
        // A resource is a set: sorted, the output is reproducible.
        attributes.sort_by_key(|(key, _)| *key);
        let mut resource_tags = Vec::new();
        for (key, value) in attributes {
            resource_tags.push(b',');
            tag(&mut resource_tags, key, &value_text(value));
        }
        Shared {
            local_endpoint,
            resource_tags,
        }
    }
}

/// The batch as one JSON array of Zipkin spans.
pub(crate) fn encode_records(out: &mut Vec<u8>, shared: &Shared, records: &Records<'_>) {
    out.reserve(2 + records.items.len() * 768);
    out.push(b'[');
    for (index, item) in records.items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        match item {
            Item::Ours(raw) => encode_record(out, shared, raw, records),
            Item::Foreign(span) => encode_span(out, shared, span),
        }
    }
    out.push(b']');
}

/// `spans` as one JSON array of Zipkin spans.
pub(crate) fn encode_spans(out: &mut Vec<u8>, shared: &Shared, spans: &[SpanData]) {
    out.push(b'[');
    for (index, span) in spans.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        encode_span(out, shared, span);
    }
    out.push(b']');
}

/// Nanoseconds as whole microseconds, rounded to the nearest.
fn micros(nanos: u64) -> u64 {
    nanos.saturating_add(500) / 1000
}

/// The fields up to and with the local endpoint.
fn head(
    out: &mut Vec<u8>,
    shared: &Shared,
    context: &SpanContext,
    parent: SpanId,
    kind: &SpanKind,
    name: &str,
    (start, end): (u64, u64),
) {
    out.push_str(r#"{"traceId":"#);
    quoted_hex(out, &context.trace_id().to_bytes());
    out.push_str(r#","id":"#);
    quoted_hex(out, &context.span_id().to_bytes());
    if parent != SpanId::INVALID {
        out.push_str(r#","parentId":"#);
        quoted_hex(out, &parent.to_bytes());
    }
    let kind = match kind {
        SpanKind::Internal => None,
        SpanKind::Server => Some("SERVER"),
        SpanKind::Client => Some("CLIENT"),
        SpanKind::Producer => Some("PRODUCER"),
        SpanKind::Consumer => Some("CONSUMER"),
    };
    if let Some(kind) = kind {
        out.push_str(r#","kind":""#);
        out.push_str(kind);
        out.push(b'"');
    }
    out.push_str(r#","name":"#);
    string(out, name);
    out.push_str(r#","timestamp":"#);
    integer(out, micros(start), false);
    out.push_str(r#","duration":"#);
    integer(out, micros(end.saturating_sub(start)).max(1), false);
    out.push(b',');
    out.extend_from_slice(&shared.local_endpoint);
}

/// The tags after the span's attributes: resource, scope, status, counts.
fn closing_tags(
    out: &mut Vec<u8>,
    shared: &Shared,
    scope: &InstrumentationScope,
    status: RawStatus<'_>,
    [attributes, events, links]: [u32; 3],
) {
    out.extend_from_slice(&shared.resource_tags);
    // The deprecated `otel.library.*` names too: the mapping asks for both.
    for key in ["otel.scope.name", "otel.library.name"] {
        out.push(b',');
        tag(out, key, scope.name());
    }
    if let Some(version) = scope.version() {
        for key in ["otel.scope.version", "otel.library.version"] {
            out.push(b',');
            tag(out, key, version);
        }
    }
    match status {
        RawStatus::Unset => {}
        RawStatus::Ok => out.push_str(r#","otel.status_code":"OK""#),
        RawStatus::Error(description) => {
            out.push_str(r#","otel.status_code":"ERROR","error":"#);
            string(out, description);
        }
    }
    for (key, count) in [
        ("otel.dropped_attributes_count", attributes),
        ("otel.dropped_events_count", events),
        ("otel.dropped_links_count", links),
    ] {
        if count > 0 {
            out.push(b',');
            tag(out, key, &count.to_string());
        }
    }
}

/// `"key":"text"`.
fn tag(out: &mut Vec<u8>, key: &str, text: &str) {
    string(out, key);
    out.push(b':');
    string(out, text);
}

/// Writes a record's attributes as tags, commas before each.
struct Tags<'a> {
    out: &'a mut Vec<u8>,
    /// The peer attributes a remote endpoint is made of, for CLIENT and
    /// PRODUCER spans.
    peer: Option<&'a mut Peer>,
}

impl AttributeSink for Tags<'_> {
    fn attribute(&mut self, key: &'static str, value: Attr<'_>) {
        // A literal of the user's (`fields(peer.service = "billing")`).
        if key == "error" {
            return;
        }
        if let Some(peer) = self.peer.as_deref_mut()
            && Peer::reads(key)
        {
            peer.offer(&KeyValue::new(key, value.to_value()));
        }
        self.out.push(b',');
        string(self.out, key);
        self.out.push(b':');
        match value {
            Attr::Static(text) | Attr::Text(text) => string(self.out, text),
            Attr::Shared(text) => string(self.out, text.as_str()),
            Attr::Int(number) => {
                self.out.push(b'"');
                integer(self.out, number.unsigned_abs(), number < 0);
                self.out.push(b'"');
            }
            Attr::Float(number) => {
                self.out.push(b'"');
                write_float(self.out, number);
                self.out.push(b'"');
            }
            Attr::Seconds(length) => {
                self.out.push(b'"');
                write_float(self.out, length.as_secs_f64());
                self.out.push(b'"');
            }
            Attr::Bool(flag) => self
                .out
                .push_str(if flag { r#""true""# } else { r#""false""# }),
            Attr::TraceId(id) => quoted_hex(self.out, &id.to_bytes()),
            Attr::SpanId(id) => quoted_hex(self.out, &id.to_bytes()),
            Attr::Time(time) => {
                // RFC 3339 text has nothing to escape.
                self.out.push(b'"');
                let _ = std::io::Write::write_fmt(self.out, format_args!("{}", Rfc3339(time)));
                self.out.push(b'"');
            }
        }
    }

    fn pair(&mut self, attribute: &KeyValue) {
        let key = attribute.key.as_str();
        if key == "error" {
            return;
        }
        if let Some(peer) = self.peer.as_deref_mut() {
            peer.offer(attribute);
        }
        self.out.push(b',');
        string(self.out, key);
        self.out.push(b':');
        write_tag_value(self.out, &attribute.value);
    }
}

fn encode_record(out: &mut Vec<u8>, shared: &Shared, raw: &RawSpan, records: &Records<'_>) {
    let times = raw.times(records.clock);
    let site = raw.site;
    head(
        out,
        shared,
        &raw.span_context,
        raw.parent_span_id,
        &site.span_kind,
        site.span_name,
        (times.start_unix, times.end_unix),
    );
    let error = raw.error();
    let events = raw.events();
    if !events.is_empty() || error.is_some() {
        out.push_str(r#","annotations":["#);
        for (index, event) in events.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            let at = records.clock.unix_nanos(event.at);
            annotation(out, at, &event.name, |json| {
                for (index, attribute) in event.attributes.iter().enumerate() {
                    if index > 0 {
                        json.push(',');
                    }
                    let value = records.error_text.event_value(&event.name, attribute);
                    json_member(json, attribute.key.as_str(), &value);
                }
            });
        }
        if let Some(error) = error {
            if !events.is_empty() {
                out.push(b',');
            }
            let message = records.error_text.filter(&error.message);
            annotation(out, times.end_unix, attr::EXCEPTION_EVENT, |json| {
                let limits = records.limits;
                json_member(
                    json,
                    attr::EXCEPTION_TYPE,
                    &Value::from(event_text(limits, error.type_name).to_owned()),
                );
                json.push(',');
                json_member(
                    json,
                    attr::EXCEPTION_MESSAGE,
                    &Value::from(event_text(limits, &message).to_owned()),
                );
            });
        }
        out.push(b']');
    }
    let mut peer = wants_remote(&site.span_kind).then(Peer::default);
    let start = start_tags(out);
    let dropped_attributes = raw.visit_limited(
        &times,
        records.limits,
        &mut Tags {
            out,
            peer: peer.as_mut(),
        },
    );
    let status = match raw.status() {
        RawStatus::Error(message) => Some(records.error_text.filter(message)),
        _ => None,
    };
    let raw_status = match (&status, raw.status()) {
        (Some(message), _) => RawStatus::Error(message),
        (None, other) => other,
    };
    let link = raw.parent_link_within(records.limits);
    closing_tags(
        out,
        shared,
        records.scope,
        raw_status,
        [dropped_attributes, raw.dropped_events(), link.dropped_links],
    );
    end_tags(out, start);
    if let Some(peer) = peer {
        peer.write(out);
    }
    out.push(b'}');
}

fn encode_span(out: &mut Vec<u8>, shared: &Shared, span: &SpanData) {
    head(
        out,
        shared,
        &span.span_context,
        span.parent_span_id,
        &span.span_kind,
        &span.name,
        (unix_nanos(span.start_time), unix_nanos(span.end_time)),
    );
    if !span.events.is_empty() {
        out.push_str(r#","annotations":["#);
        for (index, event) in span.events.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            annotation(out, unix_nanos(event.timestamp), &event.name, |json| {
                for (index, attribute) in event.attributes.iter().enumerate() {
                    if index > 0 {
                        json.push(',');
                    }
                    json_member(json, attribute.key.as_str(), &attribute.value);
                }
            });
        }
        out.push(b']');
    }
    let mut peer = wants_remote(&span.span_kind).then(Peer::default);
    let start = start_tags(out);
    let mut tags = Tags {
        out,
        peer: peer.as_mut(),
    };
    for attribute in &span.attributes {
        tags.pair(attribute);
    }
    let status = match &span.status {
        Status::Unset => RawStatus::Unset,
        Status::Ok => RawStatus::Ok,
        Status::Error { description } => RawStatus::Error(description),
    };
    closing_tags(
        out,
        shared,
        &span.instrumentation_scope,
        status,
        [
            span.dropped_attributes_count,
            span.events.dropped_count,
            span.links.dropped_count,
        ],
    );
    end_tags(out, start);
    if let Some(peer) = peer {
        peer.write(out);
    }
    out.push(b'}');
}

/// Starts the `"tags"` object; returns where its first member's comma is.
fn start_tags(out: &mut Vec<u8>) -> usize {
    out.push_str(r#","tags":"#);
    out.len()
}

/// Ends the tags written from `start` on, each after a comma: there is
/// always at least one, the scope's.
fn end_tags(out: &mut Vec<u8>, start: usize) {
    out[start] = b'{';
    out.push(b'}');
}

/// One annotation: `{"<name>":{<members>}}` as its value.
fn annotation(out: &mut Vec<u8>, at: u64, name: &str, members: impl FnOnce(&mut String)) {
    let mut json = String::with_capacity(64);
    json.push('{');
    json_string(&mut json, name);
    json.push_str(":{");
    members(&mut json);
    json.push_str("}}");
    out.push_str(r#"{"timestamp":"#);
    integer(out, micros(at), false);
    out.push_str(r#","value":"#);
    string(out, &json);
    out.push(b'}');
}

fn wants_remote(kind: &SpanKind) -> bool {
    matches!(kind, SpanKind::Client | SpanKind::Producer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microseconds_round_to_the_nearest() {
        assert_eq!(micros(1_234), 1);
        assert_eq!(micros(1_500), 2);
        assert_eq!(micros(u64::MAX), u64::MAX / 1000);
    }
}
