//! Where spans go and how they are sampled and marked: what the macros use.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::trace::{SpanKind, TraceId, TraceState};
use opentelemetry::{Context, ContextGuard, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, ShouldSample};

use crate::pipeline::Pipeline;
use crate::record::usage::PriceTable;

/// The status a span gets when its function returns normally.
///
/// OpenTelemetry's guidance for instrumentation libraries is to leave it
/// [`Unset`](SuccessStatus::Unset), so that only the application marks `Ok`;
/// some backends count only `Ok` spans as successes, hence the choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SuccessStatus {
    /// Leave the status `Unset` (the default).
    #[default]
    Unset,
    /// Set the status to `Ok`.
    Ok,
}

/// The [`Pipeline`] that `#[workflow]`, `#[child_workflow]` and `#[step]`
/// record into, with how they sample and mark spans. Cheap to clone.
///
/// **Sampling** is decided once per trace: a span with a parent (ours, another
/// library's, or a remote one) follows the parent's sampled flag; only a span
/// that starts a trace asks the sampler. So the configured sampler acts as the
/// root sampler of OpenTelemetry's `ParentBased` sampler, a sampled workflow
/// never loses its steps, and a step inside an unsampled trace costs almost
/// nothing.
///
/// The macros look for it, in order: the one pinned by the enclosing workflow
/// (the one in effect when the root workflow started); the one in the current
/// OpenTelemetry [`Context`] (put there by [`enter`](Self::enter),
/// [`run`](Self::run) or [`scope`](Self::scope)); the process default set with
/// [`install`](Self::install). With none, nothing is recorded, though
/// [`current_workflow`](crate::current_workflow) still works. A scope per test
/// lets tests run in parallel, each with its own pipeline.
///
/// ```
/// use workflow_otel::{ConsoleExporter, Instrumentation, Pipeline, SuccessStatus, step};
///
/// #[step]
/// fn parse(input: &str) -> Result<u32, std::num::ParseIntError> {
///     input.parse()
/// }
///
/// let pipeline = Pipeline::new(ConsoleExporter::new());
/// let instrumentation = Instrumentation::new(&pipeline).success_status(SuccessStatus::Ok);
/// assert_eq!(instrumentation.run(|| parse("42")), Ok(42));
/// pipeline.shutdown().unwrap();
/// ```
#[derive(Clone)]
pub struct Instrumentation {
    pipeline: Pipeline,
    sampler: Arc<dyn ShouldSample>,
    success_status: SuccessStatus,
    prices: Option<Arc<PriceTable>>,
    genai_content: Option<usize>,
    openinference: bool,
}

static DEFAULT: RwLock<Option<Instrumentation>> = RwLock::new(None);

/// Whether the default was removed by its guard's drop (and nothing replaced
/// it), and whether a workflow running since was told so.
static DROPPED_BY_GUARD: AtomicBool = AtomicBool::new(false);
static WARNED: AtomicBool = AtomicBool::new(false);

/// The guard of the default instrumentation was dropped: nothing records
/// from now on.
pub(crate) fn guard_dropped() {
    DROPPED_BY_GUARD.store(true, Ordering::Relaxed);
}

/// A workflow or step ran with nothing to record into: say once why, if the
/// reason is a guard dropped too early.
pub(crate) fn nothing_records() {
    if DROPPED_BY_GUARD.load(Ordering::Relaxed) && !WARNED.swap(true, Ordering::Relaxed) {
        eprintln!(
            "workflow-otel: a workflow ran after the telemetry guard was dropped, so nothing is \
             recorded. Keep the guard alive until the program ends: \
             `let _telemetry = workflow_otel::setup().install();` (not `let _ = ...`)"
        );
    }
}

impl Instrumentation {
    /// Records every trace into `pipeline`.
    pub fn new(pipeline: &Pipeline) -> Self {
        Instrumentation {
            pipeline: pipeline.clone(),
            sampler: Arc::new(Sampler::AlwaysOn),
            success_status: SuccessStatus::Unset,
            prices: None,
            genai_content: None,
            openinference: false,
        }
    }

    /// Adds OpenInference's names to model-call spans besides the GenAI
    /// conventions' (`llm.system`, `llm.provider`, `llm.model_name`,
    /// `llm.token_count.*`, `llm.cost.total` when the price table is in USD),
    /// for Arize Phoenix, which reads those and not `gen_ai.*`. Off by
    /// default: eight more attributes per call that other backends ignore.
    pub fn openinference(mut self, on: bool) -> Self {
        self.openinference = on;
        self
    }

    pub(crate) fn openinference_on(&self) -> bool {
        self.openinference
    }

    /// The prices that turn model calls' token counts into costs.
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.prices = Some(Arc::new(prices));
        self
    }

    /// Records the text of prompts and completions given to model calls
    /// (`gen_ai.input.messages`, `gen_ai.output.messages`), each cut to
    /// `max_bytes`. Off by default: prompts often hold personal data.
    pub fn record_genai_content(mut self, max_bytes: usize) -> Self {
        self.genai_content = Some(max_bytes);
        self
    }

    pub(crate) fn price_table(&self) -> Option<&PriceTable> {
        self.prices.as_deref()
    }

    pub(crate) fn genai_content_limit(&self) -> Option<usize> {
        self.genai_content
    }

    /// Decides which new traces are recorded, e.g.
    /// `Sampler::TraceIdRatioBased(0.1)`; spans with a parent follow it.
    pub fn sampler(mut self, sampler: impl ShouldSample + 'static) -> Self {
        self.sampler = Arc::new(sampler);
        self
    }

    /// Sets the status given to spans whose function returned normally.
    pub fn success_status(mut self, status: SuccessStatus) -> Self {
        self.success_status = status;
        self
    }

    /// Makes this the process default, used wherever no scope is active.
    pub fn install(self) {
        DROPPED_BY_GUARD.store(false, Ordering::Relaxed);
        *DEFAULT
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(self);
    }

    /// Removes the process default set by [`install`](Self::install).
    pub fn uninstall() {
        *DEFAULT
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }

    /// Removes the process default only if it records into `pipeline`, so that
    /// dropping an old setup never uninstalls a newer one.
    pub(crate) fn uninstall_if_for(pipeline: &Pipeline) -> bool {
        let mut default = DEFAULT
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let ours = default
            .as_ref()
            .is_some_and(|installed| installed.pipeline.same_as(pipeline));
        if ours {
            *default = None;
        }
        ours
    }

    /// The default installed with [`install`](Self::install), if any.
    pub(crate) fn installed() -> Option<Instrumentation> {
        DEFAULT
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Uses this instrumentation on the current thread until the guard drops.
    pub fn enter(&self) -> ContextGuard {
        Context::current().with_value(self.clone()).attach()
    }

    /// Runs `f` with this instrumentation in effect.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.enter();
        f()
    }

    /// Wraps a future so that it runs with this instrumentation in effect on
    /// every poll, whichever thread polls it.
    pub fn scope<F: Future>(&self, future: F) -> WithContext<F> {
        future.with_context(Context::current().with_value(self.clone()))
    }

    /// The pipeline spans go to.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The status set on spans whose function returned normally.
    pub fn success(&self) -> SuccessStatus {
        self.success_status
    }

    /// Whether a new trace `trace_id`, started by span `name`, is recorded.
    /// The sampler's decision on a new root, the attributes it adds to the
    /// span and the trace state the trace starts with.
    pub(crate) fn samples_root(
        &self,
        parent: &Context,
        trace_id: TraceId,
        (name, kind): (&str, &SpanKind),
        attributes: &[KeyValue],
    ) -> (bool, Vec<KeyValue>, TraceState) {
        let result =
            self.sampler
                .should_sample(Some(parent), trace_id, name, kind, attributes, &[]);
        let sampled = result.decision == SamplingDecision::RecordAndSample;
        (sampled, result.attributes, result.trace_state)
    }

    /// The instrumentation in effect in `cx` when no workflow pinned one.
    pub(crate) fn from_context(cx: &Context) -> Option<Cow<'_, Instrumentation>> {
        if let Some(found) = cx.get::<Instrumentation>() {
            return Some(Cow::Borrowed(found));
        }
        DEFAULT
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .map(Cow::Owned)
    }
}

impl fmt::Debug for Instrumentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instrumentation")
            .field("pipeline", &self.pipeline)
            .field("success_status", &self.success_status)
            .finish_non_exhaustive()
    }
}
