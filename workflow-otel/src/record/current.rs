//! Which recording of ours runs its body on this thread: set around every
//! recorded body, read by the runtime API (`set_attribute`, `checkpoint`),
//! by a step starting under it, and to know when the thread's outermost span
//! ends.

use std::cell::Cell;
use std::sync::Arc;

use opentelemetry::Context;
use opentelemetry::trace::{SpanId, TraceContextExt};

use crate::pipeline::flush_thread_buffer;
use crate::record::context::WorkflowContext;
use crate::record::span::Recording;

thread_local! {
    /// The recording whose body runs on this thread, if any.
    static CURRENT: Cell<*const Recording> = const { Cell::new(std::ptr::null()) };
}

/// The recording whose body runs on this thread, if any.
pub(crate) fn current_recording() -> *const Recording {
    CURRENT.try_with(Cell::get).unwrap_or(std::ptr::null())
}

/// Makes `recording` the current one until dropped, then restores the previous.
pub(crate) struct CurrentRecording {
    previous: *const Recording,
}

impl CurrentRecording {
    pub(crate) fn enter(recording: &Recording) -> CurrentRecording {
        let previous = CURRENT
            .try_with(|current| current.replace(recording))
            .unwrap_or(std::ptr::null());
        CurrentRecording { previous }
    }
}

impl Drop for CurrentRecording {
    // Leaving the outermost recording hands the thread's finished spans to
    // the queue.
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|current| current.set(self.previous));
        if self.previous.is_null() {
            flush_thread_buffer();
        }
    }
}

/// Applies `apply` to the recording of ours that is the current span, or gives
/// `value` back when the current span is someone else's (or there is none).
pub(crate) fn with_current_recording<V>(value: V, apply: impl FnOnce(&Recording, V)) -> Option<V> {
    let current = current_recording();
    if current.is_null() {
        return Some(value);
    }
    // SAFETY: `CURRENT` points to a recording only while a `CurrentRecording`
    // guard lives on this thread, and the guard is dropped before the
    // recording can move or be dropped (see `run` and `Instrumented::poll`).
    let recording = unsafe { &*current };
    let current_span = Context::map_current(|cx| cx.span().span_context().span_id());
    if current_span != recording.span_id() {
        // A span another library opened inside ours is the current one.
        return Some(value);
    }
    apply(recording, value);
    None
}

/// The workflow of the recording of ours that is the current span on this
/// thread, if `parent_span` is that span: the common case of a step called
/// from a workflow's or a step's body, which then needs no lookup in the
/// `Context`'s map.
pub(crate) fn recording_owner(
    parent: &Context,
    parent_span: SpanId,
) -> Option<&Arc<WorkflowContext>> {
    let _ = parent;
    let current = current_recording();
    if current.is_null() {
        return None;
    }
    // SAFETY: `CURRENT` points to a recording only while its guard lives on
    // this thread (see `with_current_recording`); a call starting here runs
    // inside that body, so the recording outlives the borrow, tied to the
    // current context's, which ends when this call has started.
    let recording = unsafe { &*current };
    let raw = recording.raw()?;
    if raw.span_context.span_id() != parent_span {
        return None;
    }
    raw.workflow.as_ref()
}
