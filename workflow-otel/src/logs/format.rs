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

use std::sync::atomic::{AtomicPtr, Ordering};

use crate::logs::correlation;
use crate::record::time::{Rfc3339, rfc3339};

/// Keys this format writes itself; an event field of the same name (but the
/// message) is written as `fields.<name>`, so that a log line never carries
/// a key twice and ids can always be trusted.
const RESERVED: [&str; 10] = [
    "timestamp",
    "level",
    "target",
    "service.name",
    "message",
    "trace_id",
    "span_id",
    "workflow_id",
    "workflow_name",
    "correlation_id",
];

/// The service the lines are of, set by each `setup()`; leaked, since a
/// process sets it a handful of times and every line reads it.
static SERVICE_NAME: AtomicPtr<String> = AtomicPtr::new(std::ptr::null_mut());

/// Names the service on every line from now on (`setup()` does, with the
/// resource's `service.name`).
pub(crate) fn set_service_name(name: &str) {
    let current = SERVICE_NAME.load(Ordering::Acquire);
    // SAFETY: the pointer is null or a leaked `String`, never freed.
    if !current.is_null() && unsafe { &*current } == name {
        return;
    }
    let leaked = Box::leak(Box::new(name.to_owned()));
    SERVICE_NAME.store(leaked, Ordering::Release);
}

/// The `service.name` every log line carries, so that the lines of several
/// services in one stream can be told apart: the one the last `setup()`
/// was given, or, before any, the resource the environment describes
/// (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, else
/// `unknown_service`), as the OpenTelemetry SDK would name it.
pub fn service_name() -> &'static str {
    let mut current = SERVICE_NAME.load(Ordering::Acquire);
    if current.is_null() {
        let detected = opentelemetry_sdk::Resource::builder()
            .build()
            .get(&opentelemetry::Key::from_static_str("service.name"))
            .map_or_else(|| "unknown_service".to_owned(), |name| name.to_string());
        let leaked: *mut String = Box::leak(Box::new(detected));
        current = match SERVICE_NAME.compare_exchange(
            std::ptr::null_mut(),
            leaked,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => leaked,
            // Another thread (or setup) named it first; this one's stays leaked, once.
            Err(set) => set,
        };
    }
    // SAFETY: as in `set_service_name`.
    unsafe { &*current }
}

/// One JSON object per line: `timestamp` (RFC 3339, UTC, microseconds),
/// `level`, `target`, `service.name` (see [`service_name`]), `message`, the
/// event's fields, and, inside a span,
/// `trace_id` and `span_id`, plus, inside a workflow, `workflow_id`,
/// `workflow_name` and `correlation_id`. Every field at the top level.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonLines;

/// `2026-11-22T09:30:05.123456Z  INFO shop: charged order=7 service=orders
/// trace_id=… span_id=… workflow=handle_order workflow_id=…`.
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
        // Written straight into the subscriber's reused buffer: no value is
        // built on the heap on the way.
        let mut line = JsonLine {
            out: &mut writer,
            first: true,
            result: Ok(()),
        };
        line.key("timestamp");
        line.raw(format_args!("\"{}\"", Rfc3339(SystemTime::now())));
        line.key("level");
        line.string(metadata.level().as_str());
        line.key("target");
        line.string(metadata.target());
        line.key("service.name");
        line.string(service_name());
        event.record(&mut line);
        correlation::with_current(|ids| {
            line.key("trace_id");
            line.raw(format_args!("\"{:032x}\"", ids.trace_id));
            line.key("span_id");
            line.raw(format_args!("\"{:016x}\"", ids.span_id));
            if let Some(workflow) = ids.workflow {
                line.key("workflow_id");
                line.string(workflow.id);
                line.key("workflow_name");
                line.string(workflow.name);
                line.key("correlation_id");
                line.string(workflow.correlation_id);
            }
        });
        line.result?;
        writer.write_str("}\n")
    }
}

/// A JSON object being written, members in the order they come (the reader
/// sees time, level and target first).
struct JsonLine<'w, 'a> {
    out: &'w mut Writer<'a>,
    first: bool,
    /// The first write error; later writes are skipped.
    result: fmt::Result,
}

impl JsonLine<'_, '_> {
    fn key(&mut self, key: &str) {
        let separator = if self.first { '{' } else { ',' };
        self.first = false;
        if self.result.is_ok() {
            self.result = self.out.write_char(separator);
        }
        self.string(key);
        if self.result.is_ok() {
            self.result = self.out.write_char(':');
        }
    }

    fn raw(&mut self, value: fmt::Arguments<'_>) {
        if self.result.is_ok() {
            self.result = self.out.write_fmt(value);
        }
    }

    /// `text` as a JSON string: quotes, backslashes and control characters
    /// escaped, everything else as is.
    fn string(&mut self, text: &str) {
        if self.result.is_err() {
            return;
        }
        self.result = write_json_string(self.out, text);
    }

    fn field(&mut self, field: &Field) -> bool {
        let name = field.name();
        if name.starts_with("log.") {
            return false;
        }
        if RESERVED.contains(&name) && name != "message" {
            let separator = if self.first { '{' } else { ',' };
            self.first = false;
            if self.result.is_ok() {
                self.result = write!(self.out, "{separator}\"fields.");
            }
            if self.result.is_ok() {
                self.result = write_json_string_body(self.out, name);
            }
            if self.result.is_ok() {
                self.result = self.out.write_str("\":");
            }
        } else {
            self.key(name);
        }
        true
    }
}

fn write_json_string(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    write_json_string_body(out, text)?;
    out.write_char('"')
}

fn write_json_string_body(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    let mut start = 0;
    for (index, character) in text.char_indices() {
        let escape = match character {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            control if (control as u32) < 0x20 => "",
            _ => continue,
        };
        out.write_str(&text[start..index])?;
        if escape.is_empty() {
            write!(out, "\\u{:04x}", character as u32)?;
        } else {
            out.write_str(escape)?;
        }
        start = index + character.len_utf8();
    }
    out.write_str(&text[start..])
}

/// A `Debug` value written as a JSON string, escaped as it is formatted.
struct Escaping<'w, W: fmt::Write>(&'w mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write_json_string_body(self.0, text)
    }
}

impl Visit for JsonLine<'_, '_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.field(field) {
            if value.is_finite() {
                self.raw(format_args!("{value}"));
            } else {
                // JSON has no NaN or infinity.
                self.raw(format_args!("\"{value}\""));
            }
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.field(field) {
            self.raw(format_args!("{value}"));
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.field(field) {
            self.raw(format_args!("{value}"));
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.field(field) {
            self.raw(format_args!("{value}"));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.field(field) {
            self.string(value);
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.field(field) && self.result.is_ok() {
            self.result = (|| {
                self.out.write_char('"')?;
                write!(Escaping(&mut *self.out), "{value:?}")?;
                self.out.write_char('"')
            })();
        }
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
        mut out: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // The line is made first, then written with its control characters
        // shown (`\u{1b}`): it is for a person's terminal.
        let mut line = String::new();
        let mut writer = Writer::new(&mut line);
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
        write!(writer, " service={}", service_name())?;
        let mut result = Ok(());
        correlation::with_current(|ids| {
            result = write!(
                writer,
                " trace_id={:032x} span_id={:016x}",
                ids.trace_id, ids.span_id
            );
            if let (Ok(()), Some(workflow)) = (&result, ids.workflow) {
                result = write!(
                    writer,
                    " workflow={} workflow_id={}",
                    workflow.name, workflow.id
                );
                if result.is_ok() && workflow.correlation_id != workflow.id {
                    result = write!(writer, " correlation_id={}", workflow.correlation_id);
                }
            }
        });
        result?;
        out.write_str(&crate::terminal_safe(&line))?;
        writeln!(out)
    }
}
