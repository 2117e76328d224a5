//! OpenTelemetry spans for workflow code, from three attributes.
//!
//! ```
//! use workflow_otel::{child_workflow, step, workflow};
//!
//! #[derive(Debug)]
//! struct Order { id: u64, cents: u64 }
//!
//! #[workflow]
//! async fn handle_order(order: Order) -> Result<u64, String> {
//!     validate(&order).await?;
//!     bill(&order).await
//! }
//!
//! #[step(args(order))]
//! async fn validate(order: &Order) -> Result<(), String> {
//!     if order.cents == 0 { Err("empty order".into()) } else { Ok(()) }
//! }
//!
//! #[child_workflow(fields(order.id = order.id))]
//! async fn bill(order: &Order) -> Result<u64, String> {
//!     Ok(order.cents)
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # assert_eq!(handle_order(Order { id: 7, cents: 1250 }).await, Ok(1250));
//! # }
//! ```
//!
//! Each call opens one span, named at compile time, nested under the current
//! span, with status and duration, and the workflow's identity and lineage
//! ([`WorkflowContext`]: id, name, depth, hierarchy path, parent) as the
//! attributes listed in [`attributes`]. Spans go to the [`Pipeline`] of the
//! [`Instrumentation`] in effect, which exports them from a worker thread
//! through any `opentelemetry_sdk` span exporter; [`setup()`] installs one
//! that prints each trace as a tree, and `testing::Capture` (feature
//! `testing`) one that keeps spans for assertions. With no instrumentation in effect nothing is
//! recorded, and [`current_workflow`] still works.
//!
//! The same calls give metrics ([`metrics`]: duration histograms with
//! exemplars, calls by outcome, failures, workflows in flight, served to
//! Prometheus or pushed over OTLP) and, with the `logs` feature, log lines
//! that carry the trace and workflow (`logs`). The `workflow-otel-view`
//! binary in the repository shows JSON-lines span files as trees, a summary
//! or an HTML waterfall.
//!
//! # What the attributes expand to
//!
//! ```text
//! #[step]
//! fn validate(order: &Order) -> Result<(), Error> { body }
//! // becomes
//! fn validate(order: &Order) -> Result<(), Error> {
//!     static SITE: __private::Site = __private::Site::new(Kind::Step, "validate", /* path, file, line */);
//!     let span = __private::start(&SITE, __private::no_fields);
//!     __private::run::<Result<(), Error>, _, _>(span, move || body, /* outcome probe */)
//! }
//! ```
//!
//! An `async fn` gets `__private::instrument(span, async move { body }, probe).await`
//! instead: a future that attaches the span's context on every poll and ends the
//! span when the body completes, panics, or is dropped unfinished.

//!
//! The reference follows: configuration and the environment, what happens
//! when the backend fails, and crossing process boundaries. (The same text
//! is in `workflow-otel/docs/` in the repository.)
//!
#![doc = include_str!("../docs/configuration.md")]
#![doc = include_str!("../docs/failures.md")]
#![doc = include_str!("../docs/propagation.md")]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The parts, and which way they depend (see ARCHITECTURE.md):
// setup -> export, pipeline, record; record -> pipeline (hands it flat records);
// propagation -> record; view -> record; export -> view (the console tree).
mod error;
mod export;
pub mod genai;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod http;
#[cfg(feature = "logs")]
#[cfg_attr(docsrs, doc(cfg(feature = "logs")))]
pub mod logs;
pub mod metrics;
mod pipeline;
pub mod propagation;
mod record;
mod setup;
mod view;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use error::SetupError;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub use export::otlp::OtlpExporter;
pub use export::{
    ConsoleExporter, DEFAULT_MAX_PENDING_SPANS, JsonLinesExporter, OtlpProtocol, OtlpSettings,
    OtlpTls,
};
#[cfg(feature = "zipkin")]
#[cfg_attr(docsrs, doc(cfg(feature = "zipkin")))]
pub use export::{DEFAULT_ZIPKIN_ENDPOINT, ZipkinExporter, ZipkinSettings};
/// The `opentelemetry` crate this crate is built on, so that code using its
/// API (a `KeyValue`, a tracer) names the same version without a dependency
/// of its own.
pub use opentelemetry;
/// An attribute: what [`set_attribute`] and [`set_workflow_attribute`] take.
pub use opentelemetry::KeyValue;
pub use pipeline::error_text::{DEFAULT_MAX_ERROR_TEXT, ErrorText};
pub use pipeline::{
    DropReport, MAX_QUEUE_SIZE, Pipeline, PipelineConfig, PipelineProcessor, SAMPLING_REASON,
    SpanLimits, TailSampling, report_to_stderr,
};
pub use propagation::w3c;
pub use record::attributes;
pub use record::context::{
    ParentWorkflow, WorkflowContext, add_event, checkpoint, current_workflow, set_attribute,
    set_workflow_attribute,
};
pub use record::instrumentation::{Instrumentation, SuccessStatus};
pub use record::probe::ErrorType;
#[cfg(feature = "tokio")]
pub use record::spawn::spawn;
pub use record::spawn::{in_current_context, spawn_thread};
pub use record::usage::GenAiUsage;
pub use setup::env::{ExporterKind, LogExporterKind, MetricExporterKind};
pub use setup::lifecycle::flush;
pub use setup::processors::{RelationshipProcessor, WorkflowIdentityProcessor};
pub use setup::{Setup, TelemetryGuard, setup};
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use view::read_json::{read_json_line, read_json_line_with_resource, read_json_lines};
pub use view::terminal::terminal_safe;
pub use view::tree::{MAX_CONSOLE_DEPTH, NodeKind, SpanNode, SpanTree};

/// Opens a workflow span around every call of the function.
///
/// With no workflow active, the call is a **root workflow**: depth 0,
/// `relationship.type = "root_workflow"`, a new workflow id that is also the
/// correlation id of everything below. Called inside another workflow it
/// **nests as a child** (depth + 1, hierarchy path extended, parent name and id
/// recorded), so composing workflows never breaks the lineage; use
/// [`child_workflow`] to say so explicitly and get a link to the parent.
///
/// Works on sync and `async` functions, methods (`self`, `&self`,
/// `&mut self`), generic functions, functions returning `impl Trait`, and
/// `async fn` in traits (on the body: a default method or an implementation).
///
/// # Options
///
/// | option | effect |
/// |---|---|
/// | `name = "checkout"` | span name instead of the function name; 1–128 characters from `A-Z a-z 0-9 _ - . :`, checked at compile time |
/// | `args(order, user)` | record these arguments (as `arg.<name>`): integers, floats, bools and strings typed, slices and `Vec`s of them as arrays, anything else with `Debug`. Nothing is recorded by default, so secrets never leak by accident |
/// | `fields(key = value, ..)` | extra attributes, evaluated before the body runs; `%value` records `Display`, `?value` `Debug`; keys may be dotted (`order.id`) or string literals |
/// | `err`, `err(Debug)` | format error messages with `Display` (the default) or `Debug` |
/// | `ret`, `ret(Display)` | record the return value as `return.value` (`Debug` by default) |
/// | `kind = server` | the OpenTelemetry span kind: `server` (handles a request), `client` (makes one), `producer`, `consumer`, `internal` (the default) |
/// | `parent = msg` | continue the trace and lineage of another process: a message with `#[derive(Carried)]`, headers (`http::HeaderMap`, `HashMap<String, String>`), a [`propagation::TraceCarrier`] or a `Context` (workflows and child workflows) |
/// | `detached` | start a trace of its own, linked to the parent, keeping the lineage (child workflows) |
/// | `genai = agent` | the GenAI conventions' role: `workflow` (`invoke_workflow`), `agent` (`invoke_agent`) or `tool` (`execute_tool`, counted as a tool call), and the span name that goes with it (`invoke_agent {name}`); `agent("openai")` gives `gen_ai.provider.name`; see [`genai`] |
/// | `retry(attempts = 3, backoff_ms = 100, max_backoff_ms = 10000, jitter = true, when = f)` | steps returning a `Result`: run again on `Err` (if `f(&err)`), each attempt a span `<name>.attempt` with `retry.attempt`; the step gets `retry.count`. By-value arguments must be `Clone` |
/// | `crate = path` | where to find this crate if it is renamed |
///
/// # Outcomes
///
/// `Err(e)` of any `Result` type (also `io::Result<T>`, `anyhow::Result<T>`:
/// the compiler, not the spelling, decides) sets status `Error` with the
/// message, `error.type` = the error's type name ([`ErrorType`] to name your
/// own; `_OTHER` for a tuple, `String` or `dyn Error`) and an `exception` event. A
/// panic does the same (`error.type = "panic"`) and keeps unwinding. A future
/// dropped before it completes ends its span with status `workflow_status =
/// "cancelled"` and status `Unset`. Success leaves status `Unset` unless
/// [`SuccessStatus::Ok`] is chosen.
///
/// ```
/// use workflow_otel::workflow;
///
/// #[workflow(name = "nightly-import", args(day), fields(source = "s3"))]
/// fn import(day: u32) -> std::io::Result<usize> {
///     Ok(day as usize)
/// }
/// assert_eq!(import(3).unwrap(), 3);
/// ```
pub use workflow_otel_macros::workflow;

/// Opens a child-workflow span: like [`workflow`] inside another workflow
/// (depth + 1, hierarchy path, parent name and id), plus a span link to the
/// parent workflow's span with `link.type = "parent_workflow"`, which matters
/// when the parent span is a step rather than the workflow itself. Called
/// with no workflow active it starts a root workflow. Options as for [`workflow`].
///
/// ```
/// use workflow_otel::{child_workflow, workflow, current_workflow};
///
/// #[workflow]
/// fn release() -> String { publish() }
///
/// #[child_workflow]
/// fn publish() -> String {
///     current_workflow().unwrap().parent().unwrap().name().to_owned()
/// }
/// assert_eq!(release(), "release");
/// ```
pub use workflow_otel_macros::child_workflow;

/// Opens a step span: one unit of work inside the current workflow, carrying
/// `step.name`, `step.status`, `step.duration` and the owning workflow's name
/// and id. Outside any workflow a step still records its span (nested under
/// whatever span is current, or as a root) without workflow attributes, so
/// library code annotated with `#[step]` stays visible wherever it is called.
/// Options as for [`workflow`].
///
/// ```
/// use workflow_otel::step;
///
/// struct Cache { hits: u32 }
///
/// impl Cache {
///     #[step(ret)]
///     fn hit(&mut self) -> u32 { self.hits += 1; self.hits }
/// }
/// assert_eq!(Cache { hits: 0 }.hit(), 1);
/// ```
pub use workflow_otel_macros::step;

pub use propagation::Carried;
/// Derives [`propagation::Carried`] for a message struct: mark the field that
/// carries the context with `#[trace_context]` (a
/// [`propagation::TraceCarrier`]); `#[trace_context(crate = path)]` on the
/// struct if this crate is renamed. The sender calls
/// `inject_current_context()`; the receiver continues the trace with
/// `#[child_workflow(parent = msg)]`.
///
/// ```
/// use workflow_otel::propagation::TraceCarrier;
/// use workflow_otel::{Carried, child_workflow, workflow};
///
/// #[derive(Carried, Default)]
/// struct Job {
///     payload: u32,
///     #[trace_context]
///     context: TraceCarrier,
/// }
///
/// #[workflow]
/// fn dispatch() -> u32 {
///     let mut job = Job { payload: 20, ..Job::default() };
///     job.inject_current_context(); // then send it: a queue, a database row, a socket
///     handle(&job)
/// }
///
/// #[child_workflow(parent = job)]
/// fn handle(job: &Job) -> u32 {
///     job.payload + workflow_otel::current_workflow().map_or(0, |w| w.depth())
/// }
/// # let pipeline = workflow_otel::Pipeline::new(workflow_otel::ConsoleExporter::with_writer(std::io::sink()));
/// assert_eq!(workflow_otel::Instrumentation::new(&pipeline).run(dispatch), 21);
/// ```
pub use workflow_otel_macros::Carried;

/// The runtime the attribute macros expand to. Not a stable API: it changes
/// without notice, in patch releases too.
#[doc(hidden)]
pub mod __private {
    pub use crate::propagation::parent_context;
    pub use crate::record::probe::{
        ArrayItem, AttributeValue, DebugField, NamedError, NotAResult, Probe, Recordable,
        ResultDebugError, ResultError, ResultOpaqueError, TypedField, UnnamedError,
    };
    pub use crate::record::retry::{
        RetryArgument, RetryPolicy, Retryable, attempt_number, retry, retry_always, retry_argument,
        retry_async,
    };
    pub use crate::record::run::{Finish, Instrumented, instrument, no_probe, run, run_at};
    pub use crate::record::span::{
        ActiveSpan, Fields, GenAiRole, Kind, Literal, Site, no_fields, start, start_from,
    };
    pub use opentelemetry::Context;
    pub use opentelemetry::trace::SpanKind;

    /// Turns metrics on (with the default buckets) or off, without an
    /// endpoint: for the overhead benchmark's side-by-side cases.
    pub fn set_metrics(on: bool) {
        crate::metrics::series::set_enabled(on);
    }

    /// What an instrument of the service's holds, summed over its points:
    /// a counter's total, a histogram's count. For the benchmark's check
    /// that every measurement was kept.
    pub fn instrument_total(name: &str) -> Option<f64> {
        crate::metrics::instruments::total(name)
    }
}

/// The README's Rust code, compiled and run as doctests so that the tour
/// cannot drift from the API (with every feature on: it shows them all).
#[cfg(all(
    doctest,
    feature = "serde",
    feature = "http",
    feature = "otlp",
    feature = "testing"
))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
