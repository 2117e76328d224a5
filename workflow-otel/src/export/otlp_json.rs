//! The OTLP/JSON encoding of spans: one `ExportTraceServiceRequest` object.
//!
//! Follows the OTLP specification's JSON mapping of the protobuf messages
//! (opentelemetry-proto `trace/v1`, `common/v1`, `resource/v1`): field names in
//! lowerCamelCase; trace and span ids as lowercase hex, not base64; enums as
//! their integer values; 64-bit integers (timestamps, `intValue`) as decimal
//! strings; fields at their default value left out; non-finite doubles as
//! `"NaN"`, `"Infinity"`, `"-Infinity"`. It is what the OpenTelemetry
//! Collector's file exporter writes and its OTLP JSON receivers read.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceState};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

/// OTLP span flag: the flags say whether the parent (or linked) span is remote.
const CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
/// OTLP span flag: the parent (or linked) span is remote.
const CONTEXT_IS_REMOTE: u32 = 0x200;

/// Encodes `spans` as one JSON object, without a trailing newline. Spans are
/// grouped by instrumentation scope, in order of first appearance.
pub(crate) fn encode_request(resource: &Resource, spans: &[SpanData]) -> String {
    let mut out = String::with_capacity(256 + spans.len() * 512);
    out.push_str(r#"{"resourceSpans":[{"resource":{"attributes":["#);
    // A resource is a set: sorted keys make the output reproducible.
    let attributes: BTreeMap<&str, &Value> = resource
        .iter()
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    for (index, (key, value)) in attributes.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        key_value(&mut out, key, value);
    }
    out.push_str("]}");
    if let Some(schema_url) = resource.schema_url() {
        out.push_str(r#","schemaUrl":"#);
        string(&mut out, schema_url);
    }
    out.push_str(r#","scopeSpans":["#);
    let mut scopes: Vec<(&InstrumentationScope, Vec<&SpanData>)> = Vec::new();
    for span in spans {
        match scopes
            .iter_mut()
            .find(|(scope, _)| **scope == span.instrumentation_scope)
        {
            Some((_, members)) => members.push(span),
            None => scopes.push((&span.instrumentation_scope, vec![span])),
        }
    }
    for (index, (scope, members)) in scopes.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        scope_spans(&mut out, scope, &members);
    }
    out.push_str("]}]}");
    out
}

fn scope_spans(out: &mut String, scope: &InstrumentationScope, spans: &[&SpanData]) {
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
    out.push('}');
    if let Some(schema_url) = scope.schema_url() {
        out.push_str(r#","schemaUrl":"#);
        string(out, schema_url);
    }
    out.push_str(r#","spans":["#);
    for (index, span) in spans.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        encode_span(out, span);
    }
    out.push_str("]}");
}

fn encode_span(out: &mut String, span: &SpanData) {
    out.push('{');
    let mut fields = Fields::new(out);
    let context = &span.span_context;
    fields.raw("traceId", &format!("\"{}\"", context.trace_id()));
    fields.raw("spanId", &format!("\"{}\"", context.span_id()));
    trace_state(&mut fields, context.trace_state());
    if span.parent_span_id != SpanId::INVALID {
        fields.raw("parentSpanId", &format!("\"{}\"", span.parent_span_id));
    }
    fields.number(
        "flags",
        span_flags(context, span.parent_span_is_remote).into(),
    );
    fields.string("name", &span.name);
    fields.number("kind", kind(&span.span_kind));
    fields.raw(
        "startTimeUnixNano",
        &format!("\"{}\"", unix_nanos(span.start_time)),
    );
    fields.raw(
        "endTimeUnixNano",
        &format!("\"{}\"", unix_nanos(span.end_time)),
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
        fields.out.push('[');
        for (index, event) in span.events.iter().enumerate() {
            if index > 0 {
                fields.out.push(',');
            }
            fields.out.push('{');
            let mut event_fields = Fields::new(fields.out);
            event_fields.raw(
                "timeUnixNano",
                &format!("\"{}\"", unix_nanos(event.timestamp)),
            );
            event_fields.string("name", &event.name);
            if !event.attributes.is_empty() {
                event_fields.key("attributes");
                attribute_list(event_fields.out, event.attributes.iter());
            }
            if event.dropped_attributes_count > 0 {
                event_fields.number(
                    "droppedAttributesCount",
                    event.dropped_attributes_count.into(),
                );
            }
            fields.out.push('}');
        }
        fields.out.push(']');
    }
    if span.events.dropped_count > 0 {
        fields.number("droppedEventsCount", span.events.dropped_count.into());
    }
    if !span.links.is_empty() {
        fields.key("links");
        fields.out.push('[');
        for (index, link) in span.links.iter().enumerate() {
            if index > 0 {
                fields.out.push(',');
            }
            fields.out.push('{');
            let mut link_fields = Fields::new(fields.out);
            let linked = &link.span_context;
            link_fields.raw("traceId", &format!("\"{}\"", linked.trace_id()));
            link_fields.raw("spanId", &format!("\"{}\"", linked.span_id()));
            trace_state(&mut link_fields, linked.trace_state());
            if !link.attributes.is_empty() {
                link_fields.key("attributes");
                attribute_list(link_fields.out, link.attributes.iter());
            }
            if link.dropped_attributes_count > 0 {
                link_fields.number(
                    "droppedAttributesCount",
                    link.dropped_attributes_count.into(),
                );
            }
            link_fields.number("flags", span_flags(linked, linked.is_remote()).into());
            fields.out.push('}');
        }
        fields.out.push(']');
    }
    if span.links.dropped_count > 0 {
        fields.number("droppedLinksCount", span.links.dropped_count.into());
    }
    fields.key("status");
    fields.out.push('{');
    let mut status_fields = Fields::new(fields.out);
    match &span.status {
        Status::Unset => {}
        Status::Ok => status_fields.number("code", 1),
        Status::Error { description } => {
            if !description.is_empty() {
                status_fields.string("message", description);
            }
            status_fields.number("code", 2);
        }
    }
    fields.out.push('}');
    out.push('}');
}

fn trace_state(fields: &mut Fields<'_>, state: &TraceState) {
    let header = state.header();
    if !header.is_empty() {
        fields.string("traceState", &header);
    }
}

/// W3C trace flags in the low byte, and whether the parent is remote.
fn span_flags(context: &SpanContext, remote: bool) -> u32 {
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

fn unix_nanos(time: SystemTime) -> u128 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos())
}

/// Writes `"name":value` pairs with the commas between them.
struct Fields<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Fields<'a> {
    fn new(out: &'a mut String) -> Self {
        Fields { out, first: true }
    }

    fn key(&mut self, name: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(name);
        self.out.push_str("\":");
    }

    fn raw(&mut self, name: &str, json: &str) {
        self.key(name);
        self.out.push_str(json);
    }

    fn string(&mut self, name: &str, value: &str) {
        self.key(name);
        string(self.out, value);
    }

    fn number(&mut self, name: &str, value: i64) {
        self.key(name);
        let _ = write!(self.out, "{value}");
    }
}

fn attribute_list<'k>(out: &mut String, attributes: impl Iterator<Item = &'k KeyValue>) {
    out.push('[');
    for (index, attribute) in attributes.enumerate() {
        if index > 0 {
            out.push(',');
        }
        key_value(out, attribute.key.as_str(), &attribute.value);
    }
    out.push(']');
}

fn key_value(out: &mut String, key: &str, value: &Value) {
    out.push_str(r#"{"key":"#);
    string(out, key);
    out.push_str(r#","value":"#);
    any_value(out, value);
    out.push('}');
}

fn any_value(out: &mut String, value: &Value) {
    match value {
        Value::Bool(value) => {
            let _ = write!(out, r#"{{"boolValue":{value}}}"#);
        }
        Value::I64(value) => {
            let _ = write!(out, r#"{{"intValue":"{value}"}}"#);
        }
        Value::F64(value) => {
            out.push_str(r#"{"doubleValue":"#);
            double(out, *value);
            out.push('}');
        }
        Value::String(value) => {
            out.push_str(r#"{"stringValue":"#);
            string(out, value.as_str());
            out.push('}');
        }
        Value::Array(array) => {
            out.push_str(r#"{"arrayValue":{"values":["#);
            match array {
                Array::Bool(values) => list(out, values, |out, value| {
                    let _ = write!(out, r#"{{"boolValue":{value}}}"#);
                }),
                Array::I64(values) => list(out, values, |out, value| {
                    let _ = write!(out, r#"{{"intValue":"{value}"}}"#);
                }),
                Array::F64(values) => list(out, values, |out, value| {
                    out.push_str(r#"{"doubleValue":"#);
                    double(out, *value);
                    out.push('}');
                }),
                Array::String(values) => list(out, values, |out, value| {
                    out.push_str(r#"{"stringValue":"#);
                    string(out, value.as_str());
                    out.push('}');
                }),
                // `Array` is non-exhaustive: a kind added later is sent as its text.
                other => {
                    out.push_str(r#"{"stringValue":"#);
                    string(out, &other.to_string());
                    out.push('}');
                }
            }
            out.push_str("]}}");
        }
        // `Value` is non-exhaustive: a kind added later is sent as its text.
        other => {
            out.push_str(r#"{"stringValue":"#);
            string(out, other.as_str().as_ref());
            out.push('}');
        }
    }
}

fn list<T>(out: &mut String, values: &[T], mut each: impl FnMut(&mut String, &T)) {
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        each(out, value);
    }
}

fn double(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("\"NaN\"");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else {
        // Rust prints finite doubles without exponent and with enough digits
        // to read back the same value: a valid JSON number.
        let _ = write!(out, "{value}");
    }
}

/// A JSON string literal (RFC 8259): quotes, backslashes and control
/// characters escaped, everything else written as UTF-8.
fn string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let mut out = String::new();
        string(&mut out, "a\"b\\c\u{1}\u{1f}é→\u{7f}");
        assert_eq!(
            out,
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
            let mut out = String::new();
            double(&mut out, value);
            assert_eq!(out, text);
        }
    }
}
