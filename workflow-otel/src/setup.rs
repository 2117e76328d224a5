//! One-call setup: resource, exporters, sampler and batching from code and the
//! standard `OTEL_*` environment variables, installed as the default for the
//! macros and, through an SDK tracer provider on the same pipeline, for every
//! library that uses OpenTelemetry's global API.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, ShouldSample, SpanExporter};

use crate::config::{self, ExporterKind, OtlpProtocol, SetupError};
use crate::console::ConsoleExporter;
use crate::fanout::{DynExporter, Fanout};
use crate::file::JsonLinesExporter;
use crate::instrumentation::{Instrumentation, SuccessStatus};
use crate::pipeline::{Pipeline, PipelineConfig};
use crate::processors::{RelationshipProcessor, WorkflowIdentityProcessor};

/// Builds and installs the tracing pipeline. Start with [`setup`].
///
/// Every setting can come from code or from the standard environment
/// variables; code wins. With neither, spans go to the console tree.
///
/// ```no_run
/// // OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 ./app
/// let telemetry = workflow_otel::setup()
///     .service_name("order-service")
///     .service_version(env!("CARGO_PKG_VERSION"))
///     .environment("production")
///     .install();
/// // ... run workflows ...
/// drop(telemetry); // exports what is left, within the export timeout
/// ```
#[must_use = "call .install() to set the pipeline up"]
pub struct Setup {
    service_name: Option<String>,
    resource_attributes: Vec<KeyValue>,
    exporters: Vec<Chosen>,
    sampler: Option<Sampler>,
    success_status: SuccessStatus,
    pipeline: Option<PipelineConfig>,
    otlp_endpoint: Option<String>,
    otlp_protocol: Option<OtlpProtocol>,
    workflow_processors: bool,
    environment: Lookup,
}

/// Reads one setting by name.
type Lookup = Box<dyn Fn(&str) -> Option<String>>;

enum Chosen {
    Kind(ExporterKind),
    Custom(Box<dyn DynExporter>),
}

/// Starts a [`Setup`].
pub fn setup() -> Setup {
    Setup {
        service_name: None,
        resource_attributes: Vec::new(),
        exporters: Vec::new(),
        sampler: None,
        success_status: SuccessStatus::Unset,
        pipeline: None,
        otlp_endpoint: None,
        otlp_protocol: None,
        workflow_processors: true,
        environment: Box::new(|name| std::env::var(name).ok()),
    }
}

impl Setup {
    /// `service.name` (else `OTEL_SERVICE_NAME`, else `unknown_service`).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// `service.version`.
    pub fn service_version(self, version: impl Into<String>) -> Self {
        self.resource_attribute(KeyValue::new("service.version", version.into()))
    }

    /// `deployment.environment.name`, e.g. `production`.
    pub fn environment(self, environment: impl Into<String>) -> Self {
        self.resource_attribute(KeyValue::new(
            "deployment.environment.name",
            environment.into(),
        ))
    }

    /// A resource attribute; overrides one of the same key from
    /// `OTEL_RESOURCE_ATTRIBUTES`.
    pub fn resource_attribute(mut self, attribute: KeyValue) -> Self {
        self.resource_attributes.push(attribute);
        self
    }

    /// Adds the console tree exporter.
    pub fn console(mut self) -> Self {
        self.exporters.push(Chosen::Kind(ExporterKind::Console));
        self
    }

    /// Adds the OTLP exporter (the `otlp` feature); endpoint, protocol,
    /// headers, timeout and compression come from the `OTEL_EXPORTER_OTLP_*`
    /// variables unless set with [`otlp_endpoint`](Self::otlp_endpoint) and
    /// [`otlp_protocol`](Self::otlp_protocol).
    pub fn otlp(mut self) -> Self {
        self.exporters.push(Chosen::Kind(ExporterKind::Otlp));
        self
    }

    /// The OTLP endpoint: for HTTP the full URL (`http://host:4318/v1/traces`),
    /// for gRPC `http://host:4317`. Implies [`otlp`](Self::otlp) if no
    /// exporter is chosen.
    pub fn otlp_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.otlp_endpoint = Some(endpoint.into());
        self
    }

    /// The OTLP wire format.
    pub fn otlp_protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.otlp_protocol = Some(protocol);
        self
    }

    /// Adds the JSON-lines file exporter, appending to `path`.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.exporters
            .push(Chosen::Kind(ExporterKind::File(path.into())));
        self
    }

    /// Adds any `opentelemetry_sdk` span exporter.
    pub fn exporter<E: SpanExporter + 'static>(mut self, exporter: E) -> Self {
        self.exporters.push(Chosen::Custom(Box::new(exporter)));
        self
    }

    /// Decides which new traces are recorded (else `OTEL_TRACES_SAMPLER`,
    /// else all); spans with a parent follow the parent.
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = Some(sampler);
        self
    }

    /// The status given to spans whose function returned normally.
    pub fn success_status(mut self, status: SuccessStatus) -> Self {
        self.success_status = status;
        self
    }

    /// Queue, batch and timing settings (else the `OTEL_BSP_*` variables).
    pub fn pipeline_config(mut self, config: PipelineConfig) -> Self {
        self.pipeline = Some(config);
        self
    }

    /// Leaves out the processors that stamp the workflow onto other
    /// libraries' spans ([`WorkflowIdentityProcessor`], [`RelationshipProcessor`]).
    pub fn without_workflow_processors(mut self) -> Self {
        self.workflow_processors = false;
        self
    }

    /// Reads settings through `lookup` instead of the process environment.
    pub fn environment_from(mut self, lookup: impl Fn(&str) -> Option<String> + 'static) -> Self {
        self.environment = Box::new(lookup);
        self
    }

    /// Installs, or says which setting is wrong. Nothing is installed on error.
    pub fn try_install(self) -> Result<TelemetryGuard, SetupError> {
        let env = config::from_env(&self.environment)?;
        let mut resource = Resource::builder_empty()
            .with_attributes(env.resource_attributes.clone())
            .with_attribute(KeyValue::new("telemetry.sdk.name", "workflow-otel"))
            .with_attribute(KeyValue::new("telemetry.sdk.language", "rust"))
            .with_attribute(KeyValue::new(
                "telemetry.sdk.version",
                env!("CARGO_PKG_VERSION"),
            ));
        let service_name = self
            .service_name
            .or(env.service_name)
            .unwrap_or_else(|| "unknown_service".to_owned());
        resource = resource
            .with_service_name(service_name)
            .with_attributes(self.resource_attributes);
        let resource = resource.build();

        let kinds_from_env = env.exporters.clone().unwrap_or_default();
        let mut chosen = self.exporters;
        if chosen.is_empty() {
            chosen = if self.otlp_endpoint.is_some() && kinds_from_env.is_empty() {
                vec![Chosen::Kind(ExporterKind::Otlp)]
            } else if kinds_from_env.is_empty() {
                vec![Chosen::Kind(ExporterKind::Console)]
            } else {
                kinds_from_env.into_iter().map(Chosen::Kind).collect()
            };
        }
        let console_only = matches!(chosen.as_slice(), [Chosen::Kind(ExporterKind::Console)]);
        let mut exporters: Vec<Box<dyn DynExporter>> = Vec::new();
        for choice in chosen {
            match choice {
                Chosen::Custom(exporter) => exporters.push(exporter),
                Chosen::Kind(ExporterKind::None) => {}
                Chosen::Kind(ExporterKind::Console) => {
                    exporters.push(Box::new(ConsoleExporter::new()))
                }
                Chosen::Kind(ExporterKind::File(path)) => {
                    let exporter = JsonLinesExporter::create(&path).map_err(|error| {
                        SetupError::new(
                            "WORKFLOW_OTEL_FILE",
                            &path.display().to_string(),
                            format!("cannot open the file: {error}"),
                        )
                    })?;
                    exporters.push(Box::new(exporter));
                }
                Chosen::Kind(ExporterKind::Otlp) => exporters.push(otlp_exporter(
                    &env.otlp,
                    self.otlp_endpoint.clone(),
                    self.otlp_protocol,
                )?),
            }
        }
        let explicit_pipeline = self.pipeline.is_some();
        let mut pipeline_config = self.pipeline.unwrap_or(env.pipeline);
        let delay_unset =
            pipeline_config.scheduled_delay == PipelineConfig::default().scheduled_delay;
        if console_only && !explicit_pipeline && delay_unset {
            // Print soon after a workflow ends, rather than up to 5 s later.
            pipeline_config.scheduled_delay = Duration::from_millis(200);
        }
        let pipeline =
            Pipeline::with_config(Fanout::new(exporters), pipeline_config, Some(resource));

        let sampler = self.sampler.or(env.sampler).unwrap_or(Sampler::AlwaysOn);
        let root_sampler: Box<dyn ShouldSample> = Box::new(sampler.clone());
        let mut provider =
            SdkTracerProvider::builder().with_sampler(Sampler::ParentBased(root_sampler));
        if self.workflow_processors {
            provider = provider
                .with_span_processor(WorkflowIdentityProcessor)
                .with_span_processor(RelationshipProcessor);
        }
        let provider = provider
            .with_span_processor(pipeline.span_processor())
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        Instrumentation::new(&pipeline)
            .sampler(sampler)
            .success_status(self.success_status)
            .install();
        Ok(TelemetryGuard { pipeline, provider })
    }

    /// Installs. A setting that is wrong is reported on stderr, naming the
    /// variable and value, and the console exporter is installed instead, so a
    /// typo in the environment never stops the program.
    pub fn install(self) -> TelemetryGuard {
        let service_name = self.service_name.clone();
        match self.try_install() {
            Ok(guard) => guard,
            Err(error) => {
                eprintln!("workflow-otel: {error}; exporting to the console instead");
                let mut fallback = setup().console().environment_from(|_| None);
                fallback.service_name = service_name;
                // The console alone reads no variable and opens no file.
                fallback.try_install().unwrap_or_else(|_| console_guard())
            }
        }
    }
}

fn console_guard() -> TelemetryGuard {
    let pipeline = Pipeline::new(ConsoleExporter::new());
    let provider = SdkTracerProvider::builder()
        .with_span_processor(pipeline.span_processor())
        .build();
    TelemetryGuard { pipeline, provider }
}

#[cfg(feature = "otlp")]
fn otlp_exporter(
    env: &config::OtlpEnv,
    endpoint: Option<String>,
    protocol: Option<OtlpProtocol>,
) -> Result<Box<dyn DynExporter>, SetupError> {
    let mut settings = env.settings(protocol);
    if let Some(endpoint) = endpoint {
        settings.endpoint = endpoint;
    }
    Ok(Box::new(crate::otlp::OtlpExporter::new(&settings)?))
}

#[cfg(not(feature = "otlp"))]
fn otlp_exporter(
    _env: &config::OtlpEnv,
    _endpoint: Option<String>,
    _protocol: Option<OtlpProtocol>,
) -> Result<Box<dyn DynExporter>, SetupError> {
    Err(SetupError::new(
        "OTEL_TRACES_EXPORTER",
        "otlp",
        "this build has no OTLP exporter: enable the `otlp` feature of workflow-otel",
    ))
}

impl fmt::Debug for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Setup")
            .field("service_name", &self.service_name)
            .field("exporters", &self.exporters.len())
            .field("sampler", &self.sampler)
            .finish_non_exhaustive()
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
        Instrumentation::uninstall_if_for(&self.pipeline);
        // The provider first: its spans still flow into the pipeline.
        let _ = self.provider.shutdown();
        if let Err(error) = self.pipeline.shutdown() {
            eprintln!("workflow-otel: shutting the pipeline down failed: {error}");
        }
    }
}
