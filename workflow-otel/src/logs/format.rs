//! The two event formatters: JSON lines for log shippers, and a line for
//! people. Both end with the correlation of where the event was emitted.

use std::fmt::{self, Write as _};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::logs::Correlation;
use crate::record::time::rfc3339;

/// Keys this format writes itself; an event field of the same name is
/// written as `fields.<name>`, so that a log line never carries a field
/// twice and ids can always be trusted.
const RESERVED: [&str; 9] = [
    "timestamp",
    "level",
    "target",
    "message",
    "trace_id",
    "span_id",
    "workflow_id",
    "workflow_name",
    "correlation_id",
];

/// One JSON object per line: `timestamp` (RFC 3339, UTC, microseconds),
/// `level`, `target`, `message`, the event's fields, and, inside a span,
/// `trace_id` and `span_id`, plus, inside a workflow, `workflow_id`,
/// `workflow_name` and `correlation_id`. Every field at the top level.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonLines;

/// `2026-11-22T09:30:05.123456Z  INFO shop: charged order=7 trace_id=…
/// span_id=… workflow=handle_order workflow_id=…`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Readable;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut line = JsonLine::default();
        line.push("timestamp", rfc3339(SystemTime::now()).into());
        line.push("level", metadata.level().as_str().into());
        line.push("target", metadata.target().into());
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        if let Some(message) = fields.message.take() {
            line.push("message", message.into());
        }
        for (key, value) in fields.values {
            line.push_field(key, value);
        }
        if let Some(correlation) = Correlation::current() {
            line.push("trace_id", correlation.trace_id.into());
            line.push("span_id", correlation.span_id.into());
            if let Some(workflow) = correlation.workflow {
                line.push("workflow_id", workflow.id.into());
                line.push("workflow_name", workflow.name.into());
                line.push("correlation_id", workflow.correlation_id.into());
            }
        }
        writeln!(writer, "{}}}", line.text)
    }
}

/// A JSON object written in insertion order (the reader sees time, level
/// and message first).
#[derive(Default)]
struct JsonLine {
    text: String,
}

impl JsonLine {
    fn push(&mut self, key: &str, value: serde_json::Value) {
        self.text.push(if self.text.is_empty() { '{' } else { ',' });
        let _ = write!(self.text, "{}:{}", serde_json::Value::from(key), value);
    }

    fn push_field(&mut self, key: &str, value: serde_json::Value) {
        if RESERVED.contains(&key) {
            self.push(&format!("fields.{key}"), value);
        } else {
            self.push(key, value);
        }
    }
}

/// The event's fields as JSON values, `message` apart; the `log.*` fields
/// that the `log` bridge adds are left out (their content is in the
/// normalized metadata).
#[derive(Default)]
struct JsonFields {
    message: Option<String>,
    values: Vec<(&'static str, serde_json::Value)>,
}

impl JsonFields {
    fn set(&mut self, field: &Field, value: serde_json::Value) {
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        if name == "message" {
            self.message = Some(match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            });
        } else {
            self.values.push((name, value));
        }
    }
}

impl Visit for JsonFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.set(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field, format!("{value:?}").into());
    }
}

impl<S, N> FormatEvent<S, N> for Readable
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        write!(
            writer,
            "{} {:>5} {}: ",
            rfc3339(SystemTime::now()),
            metadata.level().as_str(),
            metadata.target()
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        if let Some(correlation) = Correlation::current() {
            write!(
                writer,
                " trace_id={} span_id={}",
                correlation.trace_id, correlation.span_id
            )?;
            if let Some(workflow) = correlation.workflow {
                write!(
                    writer,
                    " workflow={} workflow_id={}",
                    workflow.name, workflow.id
                )?;
                if workflow.correlation_id != workflow.id {
                    write!(writer, " correlation_id={}", workflow.correlation_id)?;
                }
            }
        }
        writeln!(writer)
    }
}
