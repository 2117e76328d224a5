//! Where spans go: the tracer the macros use and how they mark success.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock};

use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{Tracer, TracerProvider};
use opentelemetry::{Context, ContextGuard, InstrumentationScope};

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

/// The tracer that `#[workflow]`, `#[child_workflow]` and `#[step]` record into,
/// with the options that shape their spans. Cheap to clone.
///
/// The macros look for it, in order: in the current OpenTelemetry [`Context`]
/// (put there by [`enter`](Self::enter), [`run`](Self::run) or
/// [`scope`](Self::scope), and inherited by every span started inside); then the
/// process default set with [`install`](Self::install); then OpenTelemetry's
/// global tracer provider. A scope per test lets tests run in parallel, each
/// with its own provider.
///
/// ```
/// use opentelemetry_sdk::trace::SdkTracerProvider;
/// use workflow_otel::{Instrumentation, SuccessStatus, step};
///
/// #[step]
/// fn parse(input: &str) -> Result<u32, std::num::ParseIntError> {
///     input.parse()
/// }
///
/// let provider = SdkTracerProvider::builder().build();
/// let instrumentation = Instrumentation::new(&provider).success_status(SuccessStatus::Ok);
/// assert_eq!(instrumentation.run(|| parse("42")), Ok(42));
/// ```
#[derive(Clone)]
pub struct Instrumentation {
    tracer: Arc<BoxedTracer>,
    success_status: SuccessStatus,
}

/// The instrumentation scope every span of ours carries.
pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("workflow-otel")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

static DEFAULT: RwLock<Option<Instrumentation>> = RwLock::new(None);

impl Instrumentation {
    /// Records into a tracer of `provider`, named `workflow-otel`.
    pub fn new<P>(provider: &P) -> Self
    where
        P: TracerProvider,
        P::Tracer: Send + Sync + 'static,
        <P::Tracer as Tracer>::Span: Send + Sync + 'static,
    {
        Self::from_tracer(BoxedTracer::new(Box::new(
            provider.tracer_with_scope(scope()),
        )))
    }

    fn from_tracer(tracer: BoxedTracer) -> Self {
        Instrumentation {
            tracer: Arc::new(tracer),
            success_status: SuccessStatus::Unset,
        }
    }

    /// Sets the status given to spans whose function returned normally.
    pub fn success_status(mut self, status: SuccessStatus) -> Self {
        self.success_status = status;
        self
    }

    /// Makes this the process default, used wherever no scope is active.
    pub fn install(self) {
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

    /// The status set on spans whose function returned normally.
    pub fn success(&self) -> SuccessStatus {
        self.success_status
    }

    pub(crate) fn tracer(&self) -> &BoxedTracer {
        &self.tracer
    }

    /// The instrumentation in effect for spans started under `cx`.
    pub(crate) fn resolve(cx: &Context) -> Instrumentation {
        if let Some(found) = cx.get::<Instrumentation>() {
            return found.clone();
        }
        if let Some(default) = DEFAULT
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
        {
            return default.clone();
        }
        Self::from_tracer(opentelemetry::global::tracer_with_scope(scope()))
    }
}

impl fmt::Debug for Instrumentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instrumentation")
            .field("success_status", &self.success_status)
            .finish_non_exhaustive()
    }
}
