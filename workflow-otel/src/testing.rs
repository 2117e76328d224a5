//! An in-memory capture for tests: install it in one line, run code, and
//! assert on the finished spans as a tree.
//!
//! Each [`Capture`] has its own [`Pipeline`] and is put in effect through the
//! OpenTelemetry context, not a process global, so tests using it run in
//! parallel without seeing each other's spans. Spans travel the same path as in
//! production (queue, worker thread, conversion, exporter); reading them
//! flushes the pipeline first.

use std::future::{Future, ready};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry::ContextGuard;
use opentelemetry::context::WithContext;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, ShouldSample, SpanData, SpanExporter};

use crate::pipeline::{ExportFuture, NativeExport, Pipeline, PipelineConfig, Records};
use crate::record::instrumentation::{Instrumentation, SuccessStatus};
use crate::setup::processors::{RelationshipProcessor, WorkflowIdentityProcessor};
use crate::view::tree::SpanTree;

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
///        | event exception {exception.message: \"bad header\", exception.type: \"_OTHER\"}\n  \
///      parse #2 [step] Error(\"bad header\")\n    \
///        | step.status: \"failed\"\n    \
///        | event exception {exception.message: \"bad header\", exception.type: \"_OTHER\"}\n",
/// );
/// ```
#[derive(Clone, Debug)]
pub struct Capture {
    spans: Arc<Mutex<Vec<SpanData>>>,
    pipeline: Pipeline,
    provider: SdkTracerProvider,
    instrumentation: Instrumentation,
}

/// Keeps what it is given.
#[derive(Debug)]
struct CaptureExporter {
    spans: Arc<Mutex<Vec<SpanData>>>,
}

impl SpanExporter for CaptureExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.spans
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend(batch);
        ready(Ok(()))
    }
}

impl Capture {
    /// A capture with its own pipeline; every trace sampled, success `Unset`.
    pub fn new() -> Capture {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let config = PipelineConfig {
            // Room for any test; nothing may be dropped for lack of it.
            max_queue_size: 1 << 16,
            ..PipelineConfig::default()
        };
        let pipeline = Pipeline::with_config(
            CaptureExporter {
                spans: spans.clone(),
            },
            config,
            None,
        );
        let provider = SdkTracerProvider::builder()
            .with_span_processor(WorkflowIdentityProcessor)
            .with_span_processor(RelationshipProcessor)
            .with_span_processor(pipeline.span_processor())
            .build();
        let instrumentation = Instrumentation::new(&pipeline);
        Capture {
            spans,
            pipeline,
            provider,
            instrumentation,
        }
    }

    /// Sets the status given to spans whose function returned normally.
    pub fn success_status(mut self, status: SuccessStatus) -> Capture {
        self.instrumentation = self.instrumentation.success_status(status);
        self
    }

    /// Sets the sampler deciding which new traces are recorded.
    pub fn sampler(mut self, sampler: impl ShouldSample + 'static) -> Capture {
        self.instrumentation = self.instrumentation.sampler(sampler);
        self
    }

    /// Sets the prices of model calls (see [`crate::genai`]).
    pub fn prices(mut self, prices: crate::genai::PriceTable) -> Capture {
        self.instrumentation = self.instrumentation.prices(prices);
        self
    }

    /// Adds OpenInference's names to model-call spans.
    pub fn openinference(mut self, on: bool) -> Capture {
        self.instrumentation = self.instrumentation.openinference(on);
        self
    }

    /// Records prompt and completion text of model calls, cut to `max_bytes`.
    pub fn record_genai_content(mut self, max_bytes: usize) -> Capture {
        self.instrumentation = self.instrumentation.record_genai_content(max_bytes);
        self
    }

    /// A provider on the same pipeline, with the processors that stamp the
    /// workflow onto its spans: tracers from it (for spans opened through the
    /// OpenTelemetry API) record into this capture too.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// The pipeline behind the capture.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
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

    /// The spans that ended so far, in the order they reached the exporter.
    pub fn spans(&self) -> Vec<SpanData> {
        if let Err(error) = self.pipeline.force_flush() {
            panic!("the capture's pipeline did not flush: {error}");
        }
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
        let _ = self.pipeline.force_flush();
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

/// Counts the spans it is given and keeps nothing: a sink for benchmarks,
/// and for tests that only need to know how many spans were exported. Our
/// spans are counted as the records they are, with no `SpanData` made of
/// them, as the built-in exporters take them; other libraries' spans too.
///
/// ```
/// use workflow_otel::testing::CountingExporter;
/// use workflow_otel::{Instrumentation, Pipeline, step};
///
/// #[step]
/// fn resize(width: u32) -> u32 { width / 2 }
///
/// let counter = CountingExporter::new();
/// let pipeline = Pipeline::new(counter.clone());
/// Instrumentation::new(&pipeline).run(|| resize(640));
/// pipeline.shutdown().unwrap();
/// assert_eq!(counter.count(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct CountingExporter {
    spans: Arc<AtomicU64>,
}

impl CountingExporter {
    /// A counter at zero; its clones add to the same count.
    pub fn new() -> CountingExporter {
        CountingExporter::default()
    }

    /// Spans exported so far.
    pub fn count(&self) -> u64 {
        self.spans.load(Ordering::Relaxed)
    }
}

impl SpanExporter for CountingExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.spans.fetch_add(batch.len() as u64, Ordering::Relaxed);
        ready(Ok(()))
    }
}

impl NativeExport for CountingExporter {
    fn export_records<'a>(&'a self, records: &'a Records<'a>) -> ExportFuture<'a> {
        self.spans
            .fetch_add(records.items.len() as u64, Ordering::Relaxed);
        Box::pin(ready(Ok(())))
    }
}
