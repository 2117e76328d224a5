//! The runtime the macros call: start a span from a static [`Site`], run the
//! body with it attached, finish it with the call's outcome.
//!
//! Generated code is `static SITE = Site::new(..); let span = start(&SITE, ..);`
//! followed by [`run`] (sync) or [`instrument`] (async). Everything per call is
//! here, so the expansion stays two calls long and can change without
//! touching user crates.

use std::any::Any;
use std::borrow::Cow;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Instant, SystemTime};

use opentelemetry::global::BoxedSpan;
use opentelemetry::trace::{
    Link, Span as _, SpanBuilder, SpanKind, Status, TraceContextExt, Tracer as _,
};
use opentelemetry::{Context, KeyValue, Value};

use crate::attributes as attr;
use crate::context::{CurrentWorkflow, WorkflowContext};
use crate::instrumentation::{Instrumentation, SuccessStatus};
use crate::time::rfc3339;

/// What an annotated function opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `#[workflow]`: a root workflow, or a nested one inside another workflow.
    Workflow,
    /// `#[child_workflow]`: a child of the current workflow, linked to its span.
    ChildWorkflow,
    /// `#[step]`: one unit of work inside the current workflow.
    Step,
}

/// Everything about an annotated function that is known at compile time.
/// The macro emits one per function as a `static`.
#[derive(Debug)]
pub struct Site {
    kind: Kind,
    name: &'static str,
    function: &'static str,
    file: &'static str,
    line: u32,
    err_debug: bool,
}

impl Site {
    /// Called only by the macros, in a `static` initialiser.
    pub const fn new(
        kind: Kind,
        name: &'static str,
        function: &'static str,
        file: &'static str,
        line: u32,
        err_debug: bool,
    ) -> Site {
        Site {
            kind,
            name,
            function,
            file,
            line,
            err_debug,
        }
    }
}

/// A started span: the `Context` that carries it (and its workflow), attached
/// around the body. If dropped before [`finish`](ActiveSpan::finish), the span
/// ends as cancelled (or as panicked, during unwinding): no path leaves it open.
#[derive(Debug)]
pub struct ActiveSpan {
    cx: Context,
    site: &'static Site,
    started_at: SystemTime,
    started: Instant,
    workflow: Option<Arc<WorkflowContext>>,
    success: SuccessStatus,
    recording: bool,
    finished: bool,
}

/// Records `args(..)` and `fields(..)` onto a span that is recording.
#[derive(Debug)]
pub struct Fields<'a> {
    span: &'a mut BoxedSpan,
}

impl Fields<'_> {
    /// A typed value (integer, float, bool, string).
    pub fn value(&mut self, key: &'static str, value: Value) {
        self.span.set_attribute(KeyValue::new(key, value));
    }

    /// A value recorded with its `Display` text (`fields(key = %value)`).
    pub fn display(&mut self, key: &'static str, value: &dyn Display) {
        self.span
            .set_attribute(KeyValue::new(key, value.to_string()));
    }

    /// A value recorded with its `Debug` text (`fields(key = ?value)`).
    pub fn debug(&mut self, key: &'static str, value: &dyn Debug) {
        self.span
            .set_attribute(KeyValue::new(key, format!("{value:?}")));
    }
}

/// The fields closure of a function with no `args(..)` or `fields(..)`.
pub fn no_fields(_: &mut Fields<'_>) {}

/// Starts the span for one call of the function described by `site`, as a child
/// of the current context.
pub fn start(site: &'static Site, fields: impl FnOnce(&mut Fields<'_>)) -> ActiveSpan {
    let parent = Context::current();
    let instrumentation = Instrumentation::resolve(&parent);
    let parent_workflow = WorkflowContext::from_context(&parent);
    let started_at = SystemTime::now();
    let started = Instant::now();

    let mut attributes = Vec::with_capacity(6);
    attributes.push(KeyValue::new(attr::CODE_FUNCTION_NAME, site.function));
    attributes.push(KeyValue::new(attr::CODE_FILE_PATH, site.file));
    attributes.push(KeyValue::new(attr::CODE_LINE_NUMBER, i64::from(site.line)));
    let mut builder = SpanBuilder::from_name(site.name)
        .with_kind(SpanKind::Internal)
        .with_start_time(started_at);
    match (site.kind, &parent_workflow) {
        (Kind::Step, owner) => {
            attributes.push(KeyValue::new(attr::STEP_NAME, site.name));
            if let Some(owner) = owner {
                attributes.push(KeyValue::new(attr::WORKFLOW_NAME, owner.name().to_owned()));
                attributes.push(KeyValue::new(attr::WORKFLOW_ID, owner.id().to_string()));
            }
        }
        (Kind::ChildWorkflow, Some(parent)) => {
            builder = builder.with_links(vec![Link::new(
                parent.span_context().clone(),
                vec![KeyValue::new(attr::LINK_TYPE, attr::LINK_PARENT_WORKFLOW)],
                0,
            )]);
        }
        (Kind::ChildWorkflow | Kind::Workflow, _) => {}
    }
    let mut span = instrumentation
        .tracer()
        .build_with_context(builder.with_attributes(attributes), &parent);
    let recording = span.is_recording();

    let workflow = match site.kind {
        Kind::Step => None,
        Kind::Workflow | Kind::ChildWorkflow => {
            let workflow = Arc::new(WorkflowContext::start(
                Cow::Borrowed(site.name),
                parent_workflow.as_deref(),
                span.span_context().clone(),
                started_at,
                started,
            ));
            if recording {
                span.set_attributes(workflow_attributes(&workflow));
            }
            Some(workflow)
        }
    };
    if recording {
        fields(&mut Fields { span: &mut span });
    }

    let mut cx = parent.with_span(span);
    if let Some(workflow) = &workflow {
        cx = cx.with_value(CurrentWorkflow(workflow.clone()));
    }
    // Pin the instrumentation found for a root, so everything inside records into
    // the same tracer without looking it up again.
    if parent.get::<Instrumentation>().is_none() {
        cx = cx.with_value(instrumentation.clone());
    }
    ActiveSpan {
        cx,
        site,
        started_at,
        started,
        workflow,
        success: instrumentation.success(),
        recording,
        finished: false,
    }
}

fn workflow_attributes(workflow: &WorkflowContext) -> Vec<KeyValue> {
    let span_context = workflow.span_context();
    let mut attributes = vec![
        KeyValue::new(attr::TRACE_ID, span_context.trace_id().to_string()),
        KeyValue::new(attr::ROOT_SPAN_ID, workflow.root_span_id().to_string()),
        KeyValue::new(attr::CURRENT_SPAN_ID, span_context.span_id().to_string()),
        KeyValue::new(attr::WORKFLOW_NAME, workflow.name().to_owned()),
        KeyValue::new(attr::WORKFLOW_ID, workflow.id().to_string()),
        KeyValue::new(attr::WORKFLOW_DEPTH, i64::from(workflow.depth())),
        KeyValue::new(attr::WORKFLOW_START_TIME, rfc3339(workflow.started_at())),
        KeyValue::new(attr::HIERARCHY_PATH, workflow.hierarchy_path().to_owned()),
        KeyValue::new(attr::NESTING_LEVEL, i64::from(workflow.depth())),
        KeyValue::new(attr::CORRELATION_ID, workflow.correlation_id().to_owned()),
    ];
    match workflow.parent() {
        None => attributes.push(KeyValue::new(attr::RELATIONSHIP_TYPE, attr::ROOT_WORKFLOW)),
        Some(parent) => {
            attributes.push(KeyValue::new(attr::RELATIONSHIP_TYPE, attr::CHILD_WORKFLOW));
            attributes.push(KeyValue::new(
                attr::PARENT_WORKFLOW_NAME,
                parent.name().to_owned(),
            ));
            attributes.push(KeyValue::new(
                attr::PARENT_WORKFLOW_ID,
                parent.id().to_string(),
            ));
        }
    }
    if let Some(causation) = workflow.causation_id() {
        attributes.push(KeyValue::new(attr::CAUSATION_ID, causation.to_owned()));
    }
    attributes
}

/// How a call ended.
enum Ending {
    Returned(Finish),
    Panicked(String),
    Cancelled,
}

impl ActiveSpan {
    fn finish(&mut self, ending: Ending) {
        if self.finished {
            return;
        }
        self.finished = true;
        let span = self.cx.span();
        let elapsed = self.started.elapsed();
        // The end timestamp is derived from the monotonic clock so that the
        // exported duration equals the measured one.
        let ended_at = self.started_at + elapsed;
        if !self.recording {
            span.end_with_timestamp(ended_at);
            return;
        }
        let (state, error) = match ending {
            Ending::Returned(finish) => {
                if let Some(value) = finish.return_value {
                    span.set_attribute(KeyValue::new(attr::RETURN_VALUE, value));
                }
                match finish.error {
                    Some(error) => (attr::STATUS_FAILED, Some(error)),
                    None => (attr::STATUS_COMPLETED, None),
                }
            }
            Ending::Panicked(message) => (
                attr::STATUS_FAILED,
                Some(ErrorRecord {
                    type_name: "panic",
                    message,
                }),
            ),
            Ending::Cancelled => (attr::STATUS_CANCELLED, None),
        };
        match error {
            Some(error) => {
                span.set_attribute(KeyValue::new(attr::ERROR_TYPE, error.type_name));
                span.add_event(
                    attr::EXCEPTION_EVENT,
                    vec![
                        KeyValue::new(attr::EXCEPTION_TYPE, error.type_name),
                        KeyValue::new(attr::EXCEPTION_MESSAGE, error.message.clone()),
                    ],
                );
                span.set_status(Status::error(error.message));
            }
            None if state == attr::STATUS_COMPLETED && self.success == SuccessStatus::Ok => {
                span.set_status(Status::Ok);
            }
            None => {}
        }
        let seconds = elapsed.as_secs_f64();
        match &self.workflow {
            Some(workflow) => {
                span.set_attribute(KeyValue::new(attr::WORKFLOW_STATUS, state));
                span.set_attribute(KeyValue::new(attr::WORKFLOW_END_TIME, rfc3339(ended_at)));
                span.set_attribute(KeyValue::new(attr::WORKFLOW_DURATION, seconds));
                for attribute in workflow.take_attributes() {
                    span.set_attribute(attribute);
                }
            }
            None => {
                span.set_attribute(KeyValue::new(attr::STEP_STATUS, state));
                span.set_attribute(KeyValue::new(attr::STEP_DURATION, seconds));
            }
        }
        span.end_with_timestamp(ended_at);
    }
}

impl Drop for ActiveSpan {
    fn drop(&mut self) {
        if !self.finished {
            let ending = if std::thread::panicking() {
                Ending::Panicked("panicked".to_owned())
            } else {
                Ending::Cancelled
            };
            self.finish(ending);
        }
    }
}

/// Runs a sync body with the span attached, then finishes the span with the
/// outcome `probe` reads from the return value. A panic ends the span as
/// failed and then keeps unwinding.
pub fn run<R, F, P>(mut span: ActiveSpan, body: F, probe: P) -> R
where
    F: FnOnce() -> R,
    P: FnOnce(&R, &mut Finish),
{
    let guard = span.cx.clone().attach();
    let result = catch_unwind(AssertUnwindSafe(body));
    drop(guard);
    match result {
        Ok(value) => {
            let mut finish = Finish::new(span.site);
            probe(&value, &mut finish);
            span.finish(Ending::Returned(finish));
            value
        }
        Err(payload) => {
            span.finish(Ending::Panicked(panic_message(payload.as_ref())));
            resume_unwind(payload)
        }
    }
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
        span,
        probe: Some(probe),
    }
}

/// The future returned by [`instrument`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Instrumented<F, P> {
    // Dropped by hand in `Drop`, before `span`, so that spans the body still
    // holds end before their parent does.
    body: ManuallyDrop<F>,
    span: ActiveSpan,
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
        // and is dropped in place in `Drop`. The other fields are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above; `this.body` stays where it is for the future's life.
        let body = unsafe { Pin::new_unchecked(&mut *this.body) };
        let guard = this.span.cx.clone().attach();
        let polled = catch_unwind(AssertUnwindSafe(|| body.poll(task)));
        drop(guard);
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => {
                if let Some(probe) = this.probe.take() {
                    let mut finish = Finish::new(this.span.site);
                    probe(&value, &mut finish);
                    this.span.finish(Ending::Returned(finish));
                }
                Poll::Ready(value)
            }
            Err(payload) => {
                this.span
                    .finish(Ending::Panicked(panic_message(payload.as_ref())));
                resume_unwind(payload)
            }
        }
    }
}

impl<F, P> Drop for Instrumented<F, P> {
    fn drop(&mut self) {
        let guard = self.span.cx.clone().attach();
        // SAFETY: `body` is dropped exactly once, here, in place (so the pin
        // contract holds) and never touched again.
        unsafe { ManuallyDrop::drop(&mut self.body) };
        drop(guard);
        // `self.span` drops next and ends the span as cancelled if unfinished.
    }
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

/// An error read from a return value.
#[derive(Debug)]
struct ErrorRecord {
    type_name: &'static str,
    message: String,
}

/// What the outcome probe found in a return value.
#[derive(Debug)]
pub struct Finish {
    err_debug: bool,
    error: Option<ErrorRecord>,
    return_value: Option<String>,
}

impl Finish {
    fn new(site: &Site) -> Finish {
        Finish {
            err_debug: site.err_debug,
            error: None,
            return_value: None,
        }
    }

    fn error(&mut self, type_name: &'static str, message: String) {
        self.error = Some(ErrorRecord { type_name, message });
    }

    /// Records the return value with `Debug` (`ret`).
    pub fn return_debug<T: Debug + ?Sized>(&mut self, value: &T) {
        self.return_value = Some(format!("{value:?}"));
    }

    /// Records the return value with `Display` (`ret(Display)`).
    pub fn return_display<T: Display + ?Sized>(&mut self, value: &T) {
        self.return_value = Some(value.to_string());
    }
}

/// The probe of a function whose return type the macro cannot name.
pub fn no_probe<R>(_: &R, _: &mut Finish) {}

/// Wraps a reference so that the compiler picks, through autoref
/// specialisation, the most specific of the traits below that applies.
#[derive(Debug)]
pub struct Probe<'a, T: ?Sized>(pub &'a T);

/// `Err(e)` of any `Result` whose error has `Display` and `Debug`.
pub trait ResultError {
    #[doc(hidden)]
    fn __wfo_outcome(&self, finish: &mut Finish);
}

impl<T, E: Display + Debug> ResultError for &&&Probe<'_, Result<T, E>> {
    fn __wfo_outcome(&self, finish: &mut Finish) {
        if let Err(error) = self.0 {
            let message = if finish.err_debug {
                format!("{error:?}")
            } else {
                error.to_string()
            };
            finish.error(std::any::type_name::<E>(), message);
        }
    }
}

/// `Err(e)` of a `Result` whose error has only `Debug`.
pub trait ResultDebugError {
    #[doc(hidden)]
    fn __wfo_outcome(&self, finish: &mut Finish);
}

impl<T, E: Debug> ResultDebugError for &&Probe<'_, Result<T, E>> {
    fn __wfo_outcome(&self, finish: &mut Finish) {
        if let Err(error) = self.0 {
            finish.error(std::any::type_name::<E>(), format!("{error:?}"));
        }
    }
}

/// `Err(e)` of a `Result` whose error can't be formatted: its type names it.
pub trait ResultOpaqueError {
    #[doc(hidden)]
    fn __wfo_outcome(&self, finish: &mut Finish);
}

impl<T, E> ResultOpaqueError for &Probe<'_, Result<T, E>> {
    fn __wfo_outcome(&self, finish: &mut Finish) {
        if self.0.is_err() {
            let type_name = std::any::type_name::<E>();
            finish.error(type_name, type_name.to_owned());
        }
    }
}

/// Any other return value: the call succeeded.
pub trait NotAResult {
    #[doc(hidden)]
    fn __wfo_outcome(&self, finish: &mut Finish);
}

impl<T: ?Sized> NotAResult for Probe<'_, T> {
    fn __wfo_outcome(&self, _: &mut Finish) {}
}

/// Values that become typed attributes rather than strings.
pub trait AttributeValue {
    /// The attribute value.
    fn to_attribute_value(&self) -> Value;
}

macro_rules! lossless_ints {
    ($($t:ty),*) => {$(
        impl AttributeValue for $t {
            fn to_attribute_value(&self) -> Value {
                Value::I64(i64::from(*self))
            }
        }
    )*};
}
lossless_ints!(i8, i16, i32, i64, u8, u16, u32);

// OpenTelemetry integers are i64; a value that does not fit is kept exactly,
// as its decimal text, rather than wrapped.
macro_rules! wide_ints {
    ($($t:ty),*) => {$(
        impl AttributeValue for $t {
            fn to_attribute_value(&self) -> Value {
                match i64::try_from(*self) {
                    Ok(value) => Value::I64(value),
                    Err(_) => Value::from(self.to_string()),
                }
            }
        }
    )*};
}
wide_ints!(u64, usize, isize, i128, u128);

impl AttributeValue for f64 {
    fn to_attribute_value(&self) -> Value {
        Value::F64(*self)
    }
}

impl AttributeValue for f32 {
    fn to_attribute_value(&self) -> Value {
        Value::F64(f64::from(*self))
    }
}

impl AttributeValue for bool {
    fn to_attribute_value(&self) -> Value {
        Value::Bool(*self)
    }
}

impl AttributeValue for str {
    fn to_attribute_value(&self) -> Value {
        Value::from(self.to_owned())
    }
}

impl AttributeValue for String {
    fn to_attribute_value(&self) -> Value {
        Value::from(self.clone())
    }
}

impl AttributeValue for Cow<'_, str> {
    fn to_attribute_value(&self) -> Value {
        Value::from(self.clone().into_owned())
    }
}

impl<T: AttributeValue + ?Sized> AttributeValue for &T {
    fn to_attribute_value(&self) -> Value {
        (**self).to_attribute_value()
    }
}

/// A field whose type is an [`AttributeValue`] is recorded typed.
pub trait TypedField {
    #[doc(hidden)]
    fn __wfo_record(&self, fields: &mut Fields<'_>, key: &'static str);
}

impl<T: AttributeValue + ?Sized> TypedField for &Probe<'_, T> {
    fn __wfo_record(&self, fields: &mut Fields<'_>, key: &'static str) {
        fields.value(key, self.0.to_attribute_value());
    }
}

/// Any other field is recorded with `Debug`.
pub trait DebugField {
    #[doc(hidden)]
    fn __wfo_record(&self, fields: &mut Fields<'_>, key: &'static str);
}

impl<T: Debug + ?Sized> DebugField for Probe<'_, T> {
    fn __wfo_record(&self, fields: &mut Fields<'_>, key: &'static str) {
        fields.debug(key, &self.0);
    }
}
