//! One-call setup: a tracer provider with a service name and exporters, made
//! the default for the macros and for OpenTelemetry's global API.

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter, TracerProviderBuilder};

use crate::console::ConsoleExporter;
use crate::instrumentation::{Instrumentation, SuccessStatus};

/// Builds and installs the tracing pipeline. Start with [`setup`].
///
/// ```no_run
/// let _telemetry = workflow_otel::setup().service_name("order-service").install();
/// // ... run workflows; spans print as trees when each workflow ends ...
/// // dropping the guard flushes and shuts the exporters down
/// ```
#[must_use = "call .install() to set the pipeline up"]
#[derive(Debug)]
pub struct Setup {
    service_name: Option<String>,
    console: bool,
    success_status: SuccessStatus,
    provider: TracerProviderBuilder,
    has_exporter: bool,
}

/// Starts a [`Setup`]. With no exporter added, spans go to the console tree.
pub fn setup() -> Setup {
    Setup {
        service_name: None,
        console: false,
        success_status: SuccessStatus::Unset,
        provider: SdkTracerProvider::builder(),
        has_exporter: false,
    }
}

impl Setup {
    /// The `service.name` resource attribute. Without it the SDK reads
    /// `OTEL_SERVICE_NAME`, then falls back to `unknown_service`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Prints each trace as a tree on standard output when its root ends.
    pub fn console(mut self) -> Self {
        self.console = true;
        self
    }

    /// Sends spans to `exporter` through a batch processor (export happens on a
    /// background thread, not on the caller's).
    pub fn exporter<E: SpanExporter + 'static>(mut self, exporter: E) -> Self {
        self.provider = self.provider.with_batch_exporter(exporter);
        self.has_exporter = true;
        self
    }

    /// The status given to spans whose function returned normally.
    pub fn success_status(mut self, status: SuccessStatus) -> Self {
        self.success_status = status;
        self
    }

    /// Builds the provider, makes it the default for the macros and for
    /// `opentelemetry::global`, and returns the guard that shuts it down.
    pub fn install(self) -> TelemetryGuard {
        let mut resource = Resource::builder();
        if let Some(name) = self.service_name {
            resource = resource.with_service_name(name);
        }
        let mut provider = self.provider.with_resource(resource.build());
        if self.console || !self.has_exporter {
            // Printing synchronously at the root's end keeps the tree next to the
            // program's own output, in order.
            provider = provider.with_simple_exporter(ConsoleExporter::new());
        }
        let provider = provider.build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        Instrumentation::new(&provider)
            .success_status(self.success_status)
            .install();
        TelemetryGuard { provider }
    }
}

/// Flushes and shuts the pipeline down when dropped.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl TelemetryGuard {
    /// The installed provider, e.g. for tracers of other libraries.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        Instrumentation::uninstall();
        if let Err(error) = self.provider.shutdown() {
            eprintln!("workflow-otel: shutting the tracer provider down failed: {error}");
        }
    }
}
