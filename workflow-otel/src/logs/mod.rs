//! Log lines that carry the workflow: `tracing` events (and `log` records,
//! bridged) written with the trace id, span id, workflow id, workflow name
//! and correlation id of the step or workflow they were emitted in, so that a
//! line found by search leads to its trace and back.
//!
//! Built on `tracing-subscriber`: [`JsonLines`] and [`Readable`] are its
//! event formatters, [`SpanEvents`] is a layer. [`Setup::logs`](crate::Setup::logs)
//! installs them as the global subscriber; programs that build their own
//! subscriber add the layers themselves:
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt as _;
//!
//! let subscriber = tracing_subscriber::registry()
//!     .with(workflow_otel::logs::json_layer(std::io::stdout))
//!     .with(workflow_otel::logs::SpanEvents::default());
//! tracing::subscriber::with_default(subscriber, || {
//!     tracing::info!(order = 7, "charged");
//! });
//! ```
//!
//! Inside a workflow, a line reads
//!
//! ```text
//! {"timestamp":"2026-11-22T09:30:05.123456Z","level":"INFO","target":"shop","message":"charged",
//!  "order":7,"trace_id":"4bf9…4736","span_id":"00f0…02b7","workflow_id":"0192…f405",
//!  "workflow_name":"handle_order","correlation_id":"0192…f405"}
//! ```
//!
//! and outside any, the same without the last five fields. The ids are those
//! of the OpenTelemetry `Context` current where the event is emitted: the
//! innermost `#[step]` or workflow, also in spawned tasks and threads that
//! carry the context (`workflow_otel::spawn`, `in_current_context`).

mod correlation;
pub(crate) mod export;
pub(crate) mod format;
mod span_events;

pub use correlation::Correlation;
pub use correlation::WorkflowIds;
pub use format::{JsonLines, Readable, service_name};
pub use span_events::{MAX_EVENT_NAME, SpanEvents};

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::registry::LookupSpan;

/// How [`Setup::logs`](crate::Setup::logs) writes log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, every field at the top level: what log
    /// shippers (Vector, Fluent Bit, Promtail, the Datadog agent) read.
    Json,
    /// A line for people: time, level, target, message, fields, then the
    /// trace and workflow.
    Readable,
}

/// A `tracing-subscriber` layer writing [`JsonLines`] to `writer` (for
/// example `std::io::stdout`).
pub fn json_layer<S, W>(
    writer: W,
) -> tracing_subscriber::fmt::Layer<S, tracing_subscriber::fmt::format::DefaultFields, JsonLines, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .event_format(JsonLines)
        .with_writer(writer)
}

/// A `tracing-subscriber` layer writing [`Readable`] lines to `writer`.
pub fn readable_layer<S, W>(
    writer: W,
) -> tracing_subscriber::fmt::Layer<S, tracing_subscriber::fmt::format::DefaultFields, Readable, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .event_format(Readable)
        .with_writer(writer)
}
