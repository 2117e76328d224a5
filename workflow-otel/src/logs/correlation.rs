//! What a log line carries of the place it was emitted in.

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt as _;

use crate::record::context::CurrentWorkflow;
use crate::record::time::{span_id_hex, trace_id_hex};

/// The trace, span and workflow current where a log line is emitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Correlation {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits: the innermost step or workflow (or another
    /// library's span inside it).
    pub span_id: String,
    /// Whether the trace is recorded; a line of an unsampled trace still
    /// carries its ids.
    pub sampled: bool,
    /// The workflow the span belongs to, if any.
    pub workflow: Option<WorkflowIds>,
}

/// The workflow part of a [`Correlation`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowIds {
    /// The workflow's UUID, hyphenated.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Shared by every workflow of one run, across processes.
    pub correlation_id: String,
}

impl Correlation {
    /// The correlation of the current OpenTelemetry `Context`; `None` outside
    /// any span.
    pub fn current() -> Option<Correlation> {
        Context::map_current(Correlation::of)
    }

    /// The correlation of `cx`.
    pub fn of(cx: &Context) -> Option<Correlation> {
        ids_of(cx, |ids| Correlation {
            trace_id: trace_id_hex(ids.trace_id),
            span_id: span_id_hex(ids.span_id),
            sampled: ids.sampled,
            workflow: ids.workflow.map(|workflow| WorkflowIds {
                id: workflow.id.to_owned(),
                name: workflow.name.to_owned(),
                correlation_id: workflow.correlation_id.to_owned(),
            }),
        })
    }
}

/// The ids of where a log line is emitted, borrowed from a `Context` for the
/// time it takes to write them.
pub(crate) struct CurrentIds<'a> {
    pub(crate) trace_id: opentelemetry::trace::TraceId,
    pub(crate) span_id: opentelemetry::trace::SpanId,
    pub(crate) sampled: bool,
    pub(crate) workflow: Option<CurrentWorkflowIds<'a>>,
}

/// The workflow part of [`CurrentIds`].
pub(crate) struct CurrentWorkflowIds<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) correlation_id: &'a str,
}

/// What `read` makes of the ids in `cx`, if it has a span; nothing is copied
/// on the way.
fn ids_of<R>(cx: &Context, read: impl FnOnce(CurrentIds<'_>) -> R) -> Option<R> {
    let span = cx.span();
    let span_context = span.span_context();
    if !span_context.is_valid() {
        return None;
    }
    let workflow = cx
        .get::<CurrentWorkflow>()
        .map(|current| CurrentWorkflowIds {
            id: current.0.id_text(),
            name: current.0.name(),
            correlation_id: current.0.correlation_id(),
        });
    Some(read(CurrentIds {
        trace_id: span_context.trace_id(),
        span_id: span_context.span_id(),
        sampled: span_context.is_sampled(),
        workflow,
    }))
}

/// Calls `write` with the current ids, if there is a span.
pub(crate) fn with_current(write: impl FnOnce(CurrentIds<'_>)) {
    Context::map_current(|cx| ids_of(cx, write));
}
