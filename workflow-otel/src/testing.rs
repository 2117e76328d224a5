//! An in-memory capture for tests: install it in one line, run code, and
//! assert on the finished spans as a tree.
//!
//! Each [`Capture`] has its own tracer provider and is put in effect through the
//! OpenTelemetry context, not a process global, so tests using it run in
//! parallel without seeing each other's spans.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::context::WithContext;
use opentelemetry::{Context, ContextGuard};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, Span, SpanData, SpanProcessor};

use crate::instrumentation::{Instrumentation, SuccessStatus};
use crate::tree::SpanTree;

/// Captures every span that ends while it is in effect.
///
/// ```
/// use workflow_otel::testing::Capture;
/// use workflow_otel::{step, workflow};
///
/// #[workflow]
/// fn import() -> Result<(), String> { parse() }
///
/// #[step]
/// fn parse() -> Result<(), String> { Err("bad header".into()) }
///
/// let capture = Capture::new();
/// capture.run(|| import()).unwrap_err();
///
/// let tree = capture.tree();
/// assert_eq!(tree.roots()[0].children[0].span.name, "parse");
/// assert_eq!(
///     tree.render_with(|key| key == "step.status" || key == "observability.workflow_status"),
///     "import #1 [workflow] Error(\"bad header\")\n  \
///        | observability.workflow_status: \"failed\"\n  \
///        | event exception {exception.message: \"bad header\", exception.type: \"alloc::string::String\"}\n  \
///      parse #2 [step] Error(\"bad header\")\n    \
///        | step.status: \"failed\"\n    \
///        | event exception {exception.message: \"bad header\", exception.type: \"alloc::string::String\"}\n",
/// );
/// ```
#[derive(Clone, Debug)]
pub struct Capture {
    spans: Arc<Mutex<Vec<SpanData>>>,
    provider: SdkTracerProvider,
    instrumentation: Instrumentation,
}

/// Hands each ended span to the capture synchronously, so spans are readable as
/// soon as the code under test returns.
#[derive(Debug)]
struct CaptureProcessor {
    spans: Arc<Mutex<Vec<SpanData>>>,
}

impl SpanProcessor for CaptureProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        self.spans
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

impl Capture {
    /// A capture with its own provider; success leaves status `Unset`.
    pub fn new() -> Capture {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(CaptureProcessor {
                spans: spans.clone(),
            })
            .build();
        let instrumentation = Instrumentation::new(&provider);
        Capture {
            spans,
            provider,
            instrumentation,
        }
    }

    /// Sets the status given to spans whose function returned normally.
    pub fn success_status(mut self, status: SuccessStatus) -> Capture {
        self.instrumentation = self.instrumentation.success_status(status);
        self
    }

    /// The provider behind the capture: tracers from it (for spans opened
    /// through the OpenTelemetry API) record into the same capture.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// The instrumentation the macros use while the capture is in effect.
    pub fn instrumentation(&self) -> &Instrumentation {
        &self.instrumentation
    }

    /// Puts the capture in effect on this thread until the guard drops.
    pub fn enter(&self) -> ContextGuard {
        self.instrumentation.enter()
    }

    /// Runs `f` with the capture in effect.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        self.instrumentation.run(f)
    }

    /// Wraps a future so that it runs with the capture in effect.
    pub fn scope<F: Future>(&self, future: F) -> WithContext<F> {
        self.instrumentation.scope(future)
    }

    /// The spans that ended so far, in the order they ended.
    pub fn spans(&self) -> Vec<SpanData> {
        self.spans
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The spans that ended so far, arranged by parent.
    pub fn tree(&self) -> SpanTree {
        SpanTree::from_spans(self.spans())
    }

    /// Forgets the spans captured so far.
    pub fn clear(&self) {
        self.spans
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }
}

impl Default for Capture {
    fn default() -> Self {
        Self::new()
    }
}
