//! Reading OTLP/JSON lines back into spans: to print a tree from a file, or
//! to merge the files of several processes into one trace.

use std::borrow::Cow;
use std::io::{self, BufRead};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId,
};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use serde_json::Value as Json;

use crate::propagation::w3c;

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("not OTLP/JSON: {what}"))
}

/// Reads every span of a JSON-lines file as written by
/// [`JsonLinesExporter`](crate::JsonLinesExporter) (or the OpenTelemetry
/// Collector's file exporter). A line that is not OTLP/JSON is an error
/// naming its line number.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let line = r#"{"resourceSpans":[{"resource":{},"scopeSpans":[{"scope":{"name":"demo"},"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"load","kind":1,"startTimeUnixNano":"1","endTimeUnixNano":"2","status":{}}]}]}]}"#;
/// let spans = workflow_otel::read_json_lines(line.as_bytes())?;
/// assert_eq!(spans[0].name, "load");
/// # Ok(()) }
/// ```
pub fn read_json_lines(reader: impl BufRead) -> io::Result<Vec<SpanData>> {
    let mut spans = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let request: Json = serde_json::from_str(&line)
            .map_err(|error| invalid(&format!("line {}: {error}", number + 1)))?;
        read_request(&request, &mut |_, span| spans.push(span))
            .map_err(|error| invalid(&format!("line {}: {error}", number + 1)))?;
    }
    Ok(spans)
}

/// The spans of one line of such a file: for readers that go line by line
/// (a file still being written, or one too large to hold), and that decide
/// themselves what to do with a line that is not OTLP/JSON.
pub fn read_json_line(line: &str) -> io::Result<Vec<SpanData>> {
    let request: Json = serde_json::from_str(line).map_err(|error| invalid(&error.to_string()))?;
    let mut spans = Vec::new();
    read_request(&request, &mut |_, span| spans.push(span)).map_err(|error| invalid(&error))?;
    Ok(spans)
}

/// [`read_json_line`], each span with the resource it was exported under:
/// its `service.name` and version tell the processes of one trace apart.
pub fn read_json_line_with_resource(line: &str) -> io::Result<Vec<(Resource, SpanData)>> {
    let request: Json = serde_json::from_str(line).map_err(|error| invalid(&error.to_string()))?;
    let mut spans = Vec::new();
    read_request(&request, &mut |resource, span| {
        spans.push((resource.clone(), span))
    })
    .map_err(|error| invalid(&error))?;
    Ok(spans)
}

fn array<'a>(value: &'a Json, key: &str) -> &'a [Json] {
    value
        .get(key)
        .and_then(Json::as_array)
        .map_or(&[], Vec::as_slice)
}

fn text<'a>(value: &'a Json, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Json::as_str)
}

/// A 64-bit integer field: a decimal string (the OTLP/JSON form) or a number.
fn integer(value: &Json, key: &str) -> Option<u64> {
    match value.get(key)? {
        Json::String(text) => text.parse().ok(),
        Json::Number(number) => number.as_u64(),
        _ => None,
    }
}

/// A dropped count (`uint32`): a number, or a decimal string.
fn count(value: &Json, key: &str) -> u32 {
    integer(value, key).map_or(0, |count| u32::try_from(count).unwrap_or(u32::MAX))
}

fn time(value: &Json, key: &str) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(integer(value, key).unwrap_or(0))
}

fn read_request(request: &Json, spans: &mut impl FnMut(&Resource, SpanData)) -> Result<(), String> {
    for resource_spans in array(request, "resourceSpans") {
        let resource = Resource::builder_empty()
            .with_attributes(attributes(
                resource_spans.get("resource").unwrap_or(&Json::Null),
            ))
            .build();
        for scope_spans in array(resource_spans, "scopeSpans") {
            let scope = scope_spans.get("scope").unwrap_or(&Json::Null);
            let mut builder =
                InstrumentationScope::builder(text(scope, "name").unwrap_or_default().to_owned());
            if let Some(version) = text(scope, "version") {
                builder = builder.with_version(version.to_owned());
            }
            let scope = builder.build();
            for span in array(scope_spans, "spans") {
                spans(&resource, read_span(span, &scope)?);
            }
        }
    }
    Ok(())
}

fn span_context(value: &Json, flags: u32) -> Result<SpanContext, String> {
    let trace_id = text(value, "traceId")
        .and_then(|hex| TraceId::from_hex(hex).ok())
        .ok_or("a span without a valid traceId")?;
    let span_id = text(value, "spanId")
        .and_then(|hex| SpanId::from_hex(hex).ok())
        .ok_or("a span without a valid spanId")?;
    let state = text(value, "traceState")
        .and_then(|header| w3c::parse_tracestate(header).ok())
        .unwrap_or_default();
    Ok(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags as u8),
        flags & 0x200 != 0,
        state.to_trace_state(),
    ))
}

fn read_span(span: &Json, scope: &InstrumentationScope) -> Result<SpanData, String> {
    let flags = integer(span, "flags").unwrap_or(1) as u32;
    let mut context = span_context(span, flags)?;
    // The remote bit of a span's own flags speaks of its parent.
    let parent_span_is_remote = flags & 0x200 != 0;
    context = SpanContext::new(
        context.trace_id(),
        context.span_id(),
        context.trace_flags(),
        false,
        context.trace_state().clone(),
    );
    let parent_span_id = text(span, "parentSpanId")
        .and_then(|hex| SpanId::from_hex(hex).ok())
        .unwrap_or(SpanId::INVALID);
    let mut events = SpanEvents::default();
    events.events = array(span, "events")
        .iter()
        .map(|event| {
            Event::new(
                text(event, "name").unwrap_or_default().to_owned(),
                time(event, "timeUnixNano"),
                attributes(event),
                count(event, "droppedAttributesCount"),
            )
        })
        .collect();
    let mut links = SpanLinks::default();
    links.links = array(span, "links")
        .iter()
        .filter_map(|link| {
            let flags = integer(link, "flags").unwrap_or(1) as u32;
            span_context(link, flags).ok().map(|linked| {
                Link::new(
                    linked,
                    attributes(link),
                    count(link, "droppedAttributesCount"),
                )
            })
        })
        .collect();
    events.dropped_count = count(span, "droppedEventsCount");
    links.dropped_count = count(span, "droppedLinksCount");
    let status = span.get("status").unwrap_or(&Json::Null);
    let status = match integer(status, "code") {
        Some(1) => Status::Ok,
        Some(2) => Status::error(text(status, "message").unwrap_or_default().to_owned()),
        _ => Status::Unset,
    };
    Ok(SpanData {
        span_context: context,
        parent_span_id,
        parent_span_is_remote,
        span_kind: match integer(span, "kind") {
            Some(2) => SpanKind::Server,
            Some(3) => SpanKind::Client,
            Some(4) => SpanKind::Producer,
            Some(5) => SpanKind::Consumer,
            _ => SpanKind::Internal,
        },
        name: Cow::Owned(text(span, "name").unwrap_or_default().to_owned()),
        start_time: time(span, "startTimeUnixNano"),
        end_time: time(span, "endTimeUnixNano"),
        attributes: attributes(span),
        dropped_attributes_count: count(span, "droppedAttributesCount"),
        events,
        links,
        status,
        instrumentation_scope: scope.clone(),
    })
}

fn attributes(value: &Json) -> Vec<KeyValue> {
    array(value, "attributes")
        .iter()
        .filter_map(|attribute| {
            let key = text(attribute, "key")?.to_owned();
            Some(KeyValue::new(key, any_value(attribute.get("value")?)?))
        })
        .collect()
}

fn any_value(value: &Json) -> Option<Value> {
    if let Some(text) = value.get("stringValue").and_then(Json::as_str) {
        return Some(Value::from(text.to_owned()));
    }
    if let Some(flag) = value.get("boolValue").and_then(Json::as_bool) {
        return Some(Value::Bool(flag));
    }
    if value.get("intValue").is_some() {
        let number = match value.get("intValue")? {
            Json::String(text) => text.parse().ok()?,
            Json::Number(number) => number.as_i64()?,
            _ => return None,
        };
        return Some(Value::I64(number));
    }
    if let Some(double) = value.get("doubleValue") {
        return match double {
            Json::Number(number) => number.as_f64().map(Value::F64),
            Json::String(text) => match text.as_str() {
                "NaN" => Some(Value::F64(f64::NAN)),
                "Infinity" => Some(Value::F64(f64::INFINITY)),
                "-Infinity" => Some(Value::F64(f64::NEG_INFINITY)),
                _ => None,
            },
            _ => None,
        };
    }
    if let Some(values) = value
        .get("arrayValue")
        .map(|array_value| array(array_value, "values"))
    {
        let texts: Vec<String> = values
            .iter()
            .filter_map(|item| any_value(item).map(|value| value.as_str().into_owned()))
            .collect();
        return Some(Value::from(format!("[{}]", texts.join(", "))));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::otlp_json::encode_request;
    use opentelemetry_sdk::Resource;

    #[test]
    fn what_the_file_exporter_writes_reads_back_as_the_same_spans() {
        let mut events = SpanEvents::default();
        events.events = vec![Event::new(
            "exception",
            UNIX_EPOCH + Duration::from_nanos(5),
            vec![KeyValue::new("exception.message", "boom")],
            0,
        )];
        let span = SpanData {
            span_context: SpanContext::new(
                TraceId::from(7_u128),
                SpanId::from(9_u64),
                TraceFlags::SAMPLED,
                false,
                Default::default(),
            ),
            parent_span_id: SpanId::from(3_u64),
            parent_span_is_remote: true,
            span_kind: SpanKind::Server,
            name: Cow::Borrowed("handle"),
            start_time: UNIX_EPOCH + Duration::from_nanos(1_700_000_000_000_000_001),
            end_time: UNIX_EPOCH + Duration::from_nanos(1_700_000_000_000_000_009),
            attributes: vec![
                KeyValue::new("a", "x"),
                KeyValue::new("n", 5_i64),
                KeyValue::new("f", 0.25),
                KeyValue::new("b", true),
            ],
            dropped_attributes_count: 0,
            events,
            links: SpanLinks::default(),
            status: Status::error("boom"),
            instrumentation_scope: InstrumentationScope::builder("workflow-otel")
                .with_version("1")
                .build(),
        };
        let line = encode_request(
            &Resource::builder_empty().build(),
            std::slice::from_ref(&span),
        );
        let read = read_json_lines(line.as_bytes()).unwrap();
        assert_eq!(read, vec![span]);
        let error = read_json_lines("{}\nnot json".as_bytes()).unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
    }
}
