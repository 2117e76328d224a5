//! `tracing` events recorded as span events of the step they were emitted
//! in, so a trace viewer shows them in place on the span's timeline.

use std::borrow::Cow;
use std::fmt;

use opentelemetry::KeyValue;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::layer::Context;

/// Longest event name kept (the message, cut at a character boundary).
pub const MAX_EVENT_NAME: usize = 256;

/// A layer that adds every event at or above `level` emitted inside one of
/// our recorded steps or workflows to that span as a span event: named by
/// its message, with `level`, `target` and the event's fields as attributes.
/// Events inside another library's span, or outside any, are left alone.
///
/// Opt-in ([`Setup::log_span_events`](crate::Setup::log_span_events), or
/// add it to your own subscriber): span events travel with every span, so
/// chatty debug logging would make every trace heavier.
#[derive(Clone, Copy, Debug)]
pub struct SpanEvents {
    level: tracing::Level,
}

impl Default for SpanEvents {
    /// `INFO` and above.
    fn default() -> SpanEvents {
        SpanEvents {
            level: tracing::Level::INFO,
        }
    }
}

impl SpanEvents {
    /// Events at `level` or more severe.
    pub fn at_least(level: tracing::Level) -> SpanEvents {
        SpanEvents { level }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for SpanEvents {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        // Levels order from TRACE (greatest) to ERROR (least).
        if *metadata.level() > self.level {
            return;
        }
        let mut attributes = Attributes::default();
        event.record(&mut attributes);
        let name = attributes
            .message
            .take()
            .map(|mut message| {
                if message.len() > MAX_EVENT_NAME {
                    let mut end = MAX_EVENT_NAME;
                    while !message.is_char_boundary(end) {
                        end -= 1;
                    }
                    message.truncate(end);
                }
                message
            })
            .unwrap_or_else(|| metadata.name().to_owned());
        let mut values = vec![
            KeyValue::new("level", metadata.level().as_str()),
            KeyValue::new("target", metadata.target().to_owned()),
        ];
        values.append(&mut attributes.values);
        let _ = crate::record::current::with_current_recording(
            (Cow::Owned(name), values),
            |recording, (name, values)| recording.add_event(name, values),
        );
    }
}

#[derive(Default)]
struct Attributes {
    message: Option<String>,
    values: Vec<KeyValue>,
}

impl Attributes {
    fn push(&mut self, field: &Field, value: opentelemetry::Value) {
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        if name == "message" {
            self.message = Some(value.as_str().into_owned());
        } else {
            self.values.push(KeyValue::new(name, value));
        }
    }
}

impl Visit for Attributes {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(value) => self.push(field, value.into()),
            Err(_) => self.push(field, value.to_string().into()),
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.to_owned().into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, format!("{value:?}").into());
    }
}
