//! One-call setup: a pipeline with a service name and an exporter, made the
//! default for the macros, plus an SDK tracer provider on the same pipeline as
//! OpenTelemetry's global provider, so other libraries' spans join ours.

use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, ShouldSample, SpanExporter};

use crate::console::ConsoleExporter;
use crate::instrumentation::{Instrumentation, SuccessStatus};
use crate::pipeline::{Pipeline, PipelineConfig};

/// Builds and installs the tracing pipeline. Start with [`setup`].
///
/// ```no_run
/// let _telemetry = workflow_otel::setup().service_name("order-service").install();
/// // ... run workflows; each trace prints as a tree shortly after its root ends ...
/// // dropping the guard exports what is left and shuts the pipeline down
/// ```
#[must_use = "call .install() to set the pipeline up"]
#[derive(Debug)]
pub struct Setup {
    service_name: Option<String>,
    success_status: SuccessStatus,
    sampler: Sampler,
    config: Option<PipelineConfig>,
}

/// Starts a [`Setup`].
pub fn setup() -> Setup {
    Setup {
        service_name: None,
        success_status: SuccessStatus::Unset,
        sampler: Sampler::AlwaysOn,
        config: None,
    }
}

impl Setup {
    /// The `service.name` resource attribute. Without it the SDK reads
    /// `OTEL_SERVICE_NAME`, then falls back to `unknown_service`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// The status given to spans whose function returned normally.
    pub fn success_status(mut self, status: SuccessStatus) -> Self {
        self.success_status = status;
        self
    }

    /// Decides which new traces are recorded (spans with a parent follow it).
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// Queue, batch and timing settings of the pipeline.
    pub fn pipeline_config(mut self, config: PipelineConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Installs with the console tree exporter: each trace is printed on
    /// standard output shortly after its root span ends.
    pub fn install(self) -> TelemetryGuard {
        let config = self.config.clone().unwrap_or(PipelineConfig {
            // Print soon after a workflow ends, rather than up to 5 s later.
            scheduled_delay: Duration::from_millis(200),
            ..PipelineConfig::default()
        });
        self.pipeline_config(config)
            .install_with(ConsoleExporter::new())
    }

    /// Installs with `exporter`: any `opentelemetry_sdk` span exporter.
    pub fn install_with<E: SpanExporter + 'static>(self, exporter: E) -> TelemetryGuard {
        let mut resource = Resource::builder();
        if let Some(name) = self.service_name {
            resource = resource.with_service_name(name);
        }
        let pipeline = Pipeline::with_config(
            exporter,
            self.config.unwrap_or_default(),
            Some(resource.build()),
        );
        let root_sampler: Box<dyn ShouldSample> = Box::new(self.sampler.clone());
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(root_sampler))
            .with_span_processor(pipeline.span_processor())
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        Instrumentation::new(&pipeline)
            .sampler(self.sampler)
            .success_status(self.success_status)
            .install();
        TelemetryGuard { pipeline, provider }
    }
}

/// Exports what is left and shuts the pipeline down when dropped.
#[derive(Debug)]
pub struct TelemetryGuard {
    pipeline: Pipeline,
    provider: SdkTracerProvider,
}

impl TelemetryGuard {
    /// Exports every span ended so far (with the console exporter: prints the
    /// trees of finished traces now) and waits for the exporter.
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
        if let Err(error) = self.pipeline.force_flush() {
            eprintln!("workflow-otel: flushing the pipeline failed: {error}");
        }
    }

    /// The pipeline spans go to.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The SDK provider installed as OpenTelemetry's global provider; its
    /// spans go to the same pipeline.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        Instrumentation::uninstall();
        // The provider first: its spans still flow into the pipeline.
        let _ = self.provider.shutdown();
        if let Err(error) = self.pipeline.shutdown() {
            eprintln!("workflow-otel: shutting the pipeline down failed: {error}");
        }
    }
}
