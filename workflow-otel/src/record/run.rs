//! Running an annotated body: sync with [`run`], async with [`instrument`];
//! both keep the span current while the body runs and finish it with the
//! outcome (returned, panicked, or, for a future dropped early, cancelled).

use std::any::Any;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::Poll;

use opentelemetry::Context;

use crate::metrics::Meter;
use crate::record::current::CurrentRecording;
use crate::record::ids;
use crate::record::raw::ErrorRecord;
use crate::record::span::{
    ActiveSpan, Ending, QuickLook, Recording, Site, no_fields, quick_look, start_under,
    unsampled_meter,
};

/// Runs a sync body with the span attached, then finishes the span with the
/// outcome `probe` reads from the return value. A panic ends the span as
/// failed and then keeps unwinding.
#[inline(always)]
pub fn run<R, F, P>(mut span: ActiveSpan, body: F, probe: P) -> R
where
    F: FnOnce() -> R,
    P: FnOnce(&R, &mut Finish),
{
    let value = run_in(&mut span, body, probe);
    forget_spent(span);
    value
}

/// Lets go of a call that is over without its drop glue, which would cost
/// more than the rest of its ending: it owns nothing by then. (A panic
/// unwinds past the caller's call of this, and drops the span.)
#[inline(always)]
fn forget_spent(span: ActiveSpan) {
    debug_assert!(span.is_spent());
    std::mem::forget(span);
}

/// [`run`] on a span that stays where it is: moving its recording would
/// copy it.
#[inline(always)]
fn run_in<R, F, P>(span: &mut ActiveSpan, body: F, probe: P) -> R
where
    F: FnOnce() -> R,
    P: FnOnce(&R, &mut Finish),
{
    let Some(recording) = &mut span.recording else {
        let _attached = span.cx.take().map(Context::attach);
        let Some(meter) = span.meter.take() else {
            return body();
        };
        let value = body();
        end_meter(meter, &value, probe);
        return value;
    };
    // A recorded call's metrics are in its recording: this one is empty.
    if let Some(meter) = span.meter.take() {
        std::mem::forget(meter);
    }
    let attached = span.cx.take().map(Context::attach);
    let current = CurrentRecording::enter(recording);
    let result = catch_unwind(AssertUnwindSafe(body));
    drop(current);
    drop(attached);
    match result {
        Ok(value) => {
            let mut finish = Finish::new(recording.site());
            probe(&value, &mut finish);
            recording.finish(Ending::Returned(finish));
            value
        }
        Err(payload) => {
            recording.finish(Ending::Panicked(panic_message(payload.as_ref())));
            resume_unwind(payload)
        }
    }
}

/// `run(start(site, no_fields), body, probe)`, for a function without
/// `args(..)` or `fields(..)`, with the commonest call first: a step in a
/// trace that is not sampled, metrics off, runs its body and nothing else.
/// The span is started and run in place, never moved.
#[inline(always)]
pub fn run_at<R, F, P>(site: &'static Site, body: F, probe: P) -> R
where
    F: FnOnce() -> R,
    P: FnOnce(&R, &mut Finish),
{
    // A look at the current context of its own: sharing the one that starts
    // the span would make this path, the commonest, pay for that one's size.
    match Context::map_current(|parent| quick_look(site, parent)) {
        QuickLook::Nothing => return body(),
        QuickLook::CountOnly => {
            // No span to start. The meter ends as panicked by its drop if
            // the body unwinds.
            let meter = Context::map_current(|parent| unsampled_meter(site, parent));
            let value = body();
            if let Some(meter) = meter {
                end_meter(meter, &value, probe);
            }
            return value;
        }
        QuickLook::Start => {}
    }
    let mut span = ActiveSpan::idle();
    Context::map_current(|parent| start_plain(&mut span, site, parent));
    let value = run_in(&mut span, body, probe);
    forget_spent(span);
    value
}

/// Starts a span without fields: one function for every such site, out of
/// line, so that the quick check before it stays small.
#[inline(never)]
fn start_plain(span: &mut ActiveSpan, site: &'static Site, parent: &Context) {
    start_under(span, site, parent, no_fields);
}

/// Wraps an async body: the span is attached on every poll, finished with the
/// outcome when the body completes, and ended as cancelled if the future is
/// dropped first.
pub fn instrument<R, F, P>(span: ActiveSpan, body: F, probe: P) -> Instrumented<F, P>
where
    F: Future<Output = R>,
    P: FnOnce(&R, &mut Finish),
{
    Instrumented {
        body: ManuallyDrop::new(body),
        body_dropped: false,
        cx: span.cx,
        recording: span.recording,
        meter: span.meter,
        probe: Some(probe),
    }
}

/// The future returned by [`instrument`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Instrumented<F, P> {
    // Dropped by hand in `Drop`, before `recording`, so that spans the body
    // still holds end before their parent does.
    body: ManuallyDrop<F>,
    /// The body completed and was dropped in `poll`, inside its context:
    /// then `Drop` has nothing to attach.
    body_dropped: bool,
    cx: Option<Context>,
    recording: Option<Recording>,
    meter: Option<Meter>,
    probe: Option<P>,
}

impl<F, P> Future for Instrumented<F, P>
where
    F: Future,
    P: FnOnce(&F::Output, &mut Finish),
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut std::task::Context<'_>) -> Poll<F::Output> {
        // SAFETY: `body` is structurally pinned: it is never moved out of `self`,
        // and is dropped in place in `Drop`. The other fields are not pinned,
        // and `recording` is not moved while `current` below points to it.
        let this = unsafe { self.get_unchecked_mut() };
        // As an `async fn`'s future does: its body is gone.
        assert!(!this.body_dropped, "`async fn` resumed after completion");
        // SAFETY: see above; `this.body` stays where it is for the future's life.
        let body = unsafe { Pin::new_unchecked(&mut *this.body) };
        let Some(recording) = &mut this.recording else {
            let attached = this.cx.clone().map(Context::attach);
            let polled = body.poll(task);
            if polled.is_ready() {
                drop_body(&mut this.body, &mut this.body_dropped, &mut this.cx);
            }
            drop(attached);
            if let Poll::Ready(value) = &polled
                && let Some(meter) = this.meter.take()
                && let Some(probe) = this.probe.take()
            {
                end_meter(meter, value, probe);
            }
            return polled;
        };
        let attached = this.cx.clone().map(Context::attach);
        let current = CurrentRecording::enter(recording);
        let polled = catch_unwind(AssertUnwindSafe(|| body.poll(task)));
        drop(current);
        if let Ok(Poll::Ready(_)) = &polled {
            drop_body(&mut this.body, &mut this.body_dropped, &mut this.cx);
        }
        drop(attached);
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => {
                if let Some(probe) = this.probe.take() {
                    let mut finish = Finish::new(recording.site());
                    probe(&value, &mut finish);
                    recording.finish(Ending::Returned(finish));
                }
                Poll::Ready(value)
            }
            Err(payload) => {
                recording.finish(Ending::Panicked(panic_message(payload.as_ref())));
                resume_unwind(payload)
            }
        }
    }
}

/// Drops a completed body in place, in the context attached around it, and
/// lets go of the context: nothing is left for `Drop` to attach.
fn drop_body<F>(body: &mut ManuallyDrop<F>, dropped: &mut bool, cx: &mut Option<Context>) {
    if !*dropped {
        *dropped = true;
        // SAFETY: `body` is dropped exactly once (the flag), in place (so the
        // pin contract holds), and never polled again: a completed future is
        // not polled.
        unsafe { ManuallyDrop::drop(body) };
    }
    *cx = None;
}

impl<F, P> Drop for Instrumented<F, P> {
    fn drop(&mut self) {
        if self.body_dropped {
            return;
        }
        let attached = self.cx.clone().map(Context::attach);
        // SAFETY: `body` is dropped exactly once, here, in place (so the pin
        // contract holds) and never touched again.
        unsafe { ManuallyDrop::drop(&mut self.body) };
        drop(attached);
        // `self.recording` drops next and ends the span as cancelled if unfinished.
    }
}

/// Ends the metrics of an unrecorded call with the outcome `probe` reads.
fn end_meter<R, P: FnOnce(&R, &mut Finish)>(meter: Meter, value: &R, probe: P) {
    let mut finish = Finish::outcome_only();
    probe(value, &mut finish);
    let error_type = finish.error.map(|error| error.type_name);
    meter.end(ids::now(), false, error_type, None);
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panicked with a non-string payload".to_owned()
    }
}

/// What the outcome probe found in a return value.
#[derive(Debug)]
pub struct Finish {
    /// Only whether the call failed, and with what type, is wanted: the
    /// call is not recorded, its metrics are.
    pub(crate) outcome_only: bool,
    pub(crate) err_debug: bool,
    pub(crate) error: Option<ErrorRecord>,
    pub(crate) return_value: Option<String>,
}

impl Finish {
    pub(crate) fn new(site: &Site) -> Finish {
        Finish {
            outcome_only: false,
            err_debug: site.err_debug,
            error: None,
            return_value: None,
        }
    }

    fn outcome_only() -> Finish {
        Finish {
            outcome_only: true,
            err_debug: false,
            error: None,
            return_value: None,
        }
    }

    pub(crate) fn error(&mut self, type_name: &'static str, message: String) {
        self.error = Some(ErrorRecord { type_name, message });
    }

    /// The error's own name for its type ([`ErrorType`](crate::ErrorType)).
    pub(crate) fn name_error(&mut self, type_name: &'static str) {
        if let Some(error) = &mut self.error {
            error.type_name = type_name;
        }
    }

    /// Records the return value with `Debug` (`ret`).
    pub fn return_debug<T: Debug + ?Sized>(&mut self, value: &T) {
        if self.outcome_only {
            return;
        }
        self.return_value = Some(format!("{value:?}"));
    }

    /// Records the return value with `Display` (`ret(Display)`).
    pub fn return_display<T: Display + ?Sized>(&mut self, value: &T) {
        if self.outcome_only {
            return;
        }
        self.return_value = Some(value.to_string());
    }
}

/// The probe of a function whose return type the macro cannot name.
pub fn no_probe<R>(_: &R, _: &mut Finish) {}
