//! One-call setup: resource, exporters, sampler and batching from code and the
//! standard `OTEL_*` environment variables, installed as the default for the
//! macros and, through an SDK tracer provider on the same pipeline, for every
//! library that uses OpenTelemetry's global API.

pub(crate) mod env;
mod exporters;
mod guard;
pub(crate) mod lifecycle;
#[cfg(feature = "logs")]
pub(crate) mod logs;
pub(crate) mod metrics;
mod options;
pub(crate) mod processors;

pub use guard::TelemetryGuard;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, ShouldSample, SpanExporter};

use crate::error::SetupError;
use crate::export::OtlpProtocol;
use crate::export::console::ConsoleExporter;
use crate::export::fanout::{DynExporter, Fanout};
use crate::pipeline::error_text::ErrorText;
use crate::pipeline::{Pipeline, PipelineConfig};
use crate::record::instrumentation::{Instrumentation, SuccessStatus};
use crate::record::usage::PriceTable;
use crate::setup::processors::{RelationshipProcessor, WorkflowIdentityProcessor};
use env::{ExporterKind, MetricExporterKind};

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
    default_service_name: Option<String>,
    resource_attributes: Vec<KeyValue>,
    exporters: Vec<Chosen>,
    sampler: Option<Sampler>,
    success_status: SuccessStatus,
    pipeline: Option<PipelineConfig>,
    otlp_endpoint: Option<String>,
    otlp_protocol: Option<OtlpProtocol>,
    zipkin_endpoint: Option<String>,
    workflow_processors: bool,
    error_text: Option<ErrorText>,
    prices: Option<PriceTable>,
    genai_content: Option<usize>,
    openinference: bool,
    tail_sampling: Option<crate::pipeline::TailSampling>,
    span_limits: Option<crate::pipeline::SpanLimits>,
    metrics: metrics::MetricsChoice,
    #[cfg(feature = "logs")]
    logs: logs::LogsChoice,
    environment: Lookup,
}

/// Reads one setting by name.
type Lookup = Box<dyn Fn(&str) -> Option<String>>;

pub(crate) enum Chosen {
    Kind(ExporterKind),
    Custom(Box<dyn DynExporter>),
}

/// Starts a [`Setup`].
pub fn setup() -> Setup {
    Setup {
        service_name: None,
        default_service_name: None,
        resource_attributes: Vec::new(),
        exporters: Vec::new(),
        sampler: None,
        success_status: SuccessStatus::Unset,
        pipeline: None,
        otlp_endpoint: None,
        otlp_protocol: None,
        zipkin_endpoint: None,
        workflow_processors: true,
        error_text: None,
        prices: None,
        genai_content: None,
        openinference: false,
        tail_sampling: None,
        span_limits: None,
        metrics: metrics::MetricsChoice::default(),
        #[cfg(feature = "logs")]
        logs: logs::LogsChoice::default(),
        environment: Box::new(|name| std::env::var(name).ok()),
    }
}

impl Setup {
    /// `service.name` (else `OTEL_SERVICE_NAME`, else `unknown_service`).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// `service.name` when neither code nor the environment
    /// (`OTEL_SERVICE_NAME`, or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`)
    /// names the service: the right choice for programs that others run and
    /// configure.
    pub fn default_service_name(mut self, name: impl Into<String>) -> Self {
        self.default_service_name = Some(name.into());
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

    /// Adds the Zipkin exporter (the `zipkin` feature): Zipkin v2 JSON to
    /// `OTEL_EXPORTER_ZIPKIN_ENDPOINT` (default
    /// `http://localhost:9411/api/v2/spans`), each export bounded by
    /// `OTEL_EXPORTER_ZIPKIN_TIMEOUT` (10 s), unless set with
    /// [`zipkin_endpoint`](Self::zipkin_endpoint).
    pub fn zipkin(mut self) -> Self {
        self.exporters.push(Chosen::Kind(ExporterKind::Zipkin));
        self
    }

    /// The Zipkin endpoint, the full URL (`http://host:9411/api/v2/spans`).
    /// Implies [`zipkin`](Self::zipkin) if no exporter is chosen.
    pub fn zipkin_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.zipkin_endpoint = Some(endpoint.into());
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

    /// How error text is cut and redacted before export (by default cut at
    /// [`DEFAULT_MAX_ERROR_TEXT`](crate::DEFAULT_MAX_ERROR_TEXT) bytes);
    /// overrides the one in [`pipeline_config`](Self::pipeline_config).
    ///
    /// ```no_run
    /// let _telemetry = workflow_otel::setup()
    ///     .error_text(workflow_otel::ErrorText::default().redact(|text| {
    ///         text.split("password=").next().unwrap_or_default().to_owned()
    ///     }))
    ///     .install();
    /// ```
    pub fn error_text(mut self, rule: ErrorText) -> Self {
        self.error_text = Some(rule);
        self
    }

    /// Serves metrics for Prometheus to scrape at `/metrics`, on
    /// `OTEL_EXPORTER_PROMETHEUS_HOST`:`OTEL_EXPORTER_PROMETHEUS_PORT`
    /// (default `localhost:9464`). See [`metrics`](crate::metrics) for what
    /// is measured.
    pub fn prometheus(mut self) -> Self {
        self.metrics.exporters.push(MetricExporterKind::Prometheus);
        self
    }

    /// Serves the Prometheus endpoint on `address` (`host:port`); port 0
    /// picks a free one, which [`TelemetryGuard::prometheus_address`] tells.
    ///
    /// ```
    /// let telemetry = workflow_otel::setup()
    ///     .prometheus_address("127.0.0.1:0")
    ///     .try_install()?;
    /// let address = telemetry.prometheus_address().expect("listening");
    /// assert!(address.ip().is_loopback());
    /// # Ok::<(), workflow_otel::SetupError>(())
    /// ```
    pub fn prometheus_address(mut self, address: impl Into<String>) -> Self {
        self.metrics.prometheus_address = Some(address.into());
        self
    }

    /// Pushes metrics over OTLP every export interval (the `otlp` feature),
    /// to the `OTEL_EXPORTER_OTLP_METRICS_*` settings (else the general
    /// `OTEL_EXPORTER_OTLP_*` ones, with the path `/v1/metrics` for HTTP).
    pub fn otlp_metrics(mut self) -> Self {
        self.metrics.exporters.push(MetricExporterKind::Otlp);
        self
    }

    /// Histogram bounds in seconds, increasing (else
    /// [`DEFAULT_BUCKETS`](crate::metrics::DEFAULT_BUCKETS)). The first setup
    /// of a process that turns metrics on fixes them.
    pub fn metric_buckets(mut self, bounds: impl Into<Vec<f64>>) -> Self {
        self.metrics.buckets = Some(bounds.into());
        self
    }

    /// How often metrics are pushed (else `OTEL_METRIC_EXPORT_INTERVAL`, else
    /// 60 s).
    pub fn metric_export_interval(mut self, interval: Duration) -> Self {
        self.metrics.interval = Some(interval);
        self
    }

    /// The most attribute sets an instrument of the service's keeps (default
    /// [`DEFAULT_CARDINALITY_LIMIT`](crate::metrics::DEFAULT_CARDINALITY_LIMIT),
    /// at least 1), for instruments made after this setup. Past it, further
    /// sets are counted in one series with `otel.metric.overflow = true`,
    /// reported once on stderr: a label taken from user input cannot grow
    /// memory without bound.
    pub fn metric_cardinality_limit(mut self, limit: usize) -> Self {
        self.metrics.cardinality_limit = Some(limit);
        self
    }

    /// Whether `setup()` makes [`metrics::meter_provider`](crate::metrics::meter_provider)
    /// the global OpenTelemetry meter provider, so that instruments made with
    /// `opentelemetry::global::meter(..)` are exported with the workflow
    /// metrics. By default it does when metrics are on; `false` leaves the
    /// global provider alone (for a service that runs an SDK
    /// `MeterProvider` of its own), `true` installs it even with metrics off.
    pub fn global_meter_provider(mut self, install: bool) -> Self {
        self.metrics.global_provider = Some(install);
        self
    }

    /// Installs a global `tracing` subscriber that writes every event (and
    /// `log` record) as a line in `format` on stdout, with the trace id, span
    /// id, workflow id, name and correlation id of where it was emitted (see
    /// [`logs`](crate::logs)); filtered by `RUST_LOG` (`info` by default).
    #[cfg(feature = "logs")]
    #[cfg_attr(docsrs, doc(cfg(feature = "logs")))]
    pub fn logs(mut self, format: crate::logs::LogFormat) -> Self {
        self.logs.format = Some(format);
        self
    }

    /// Also records `tracing` events emitted inside a step as span events of
    /// that step ([`logs::SpanEvents`](crate::logs::SpanEvents)).
    #[cfg(feature = "logs")]
    #[cfg_attr(docsrs, doc(cfg(feature = "logs")))]
    pub fn log_span_events(mut self) -> Self {
        self.logs.span_events = true;
        self
    }

    /// Exports `tracing` events (and `log` records) as OpenTelemetry log
    /// records over OTLP, with their trace context, to the
    /// `OTEL_EXPORTER_OTLP_LOGS_*` settings (else the general ones, with the
    /// path `/v1/logs` for HTTP). Features `logs` and `otlp`.
    #[cfg(feature = "logs")]
    #[cfg_attr(docsrs, doc(cfg(feature = "logs")))]
    pub fn otlp_logs(mut self) -> Self {
        self.logs.exporters.push(env::LogExporterKind::Otlp);
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

    /// Installs, or says which setting is wrong: every value in the
    /// environment must be valid. Nothing is installed on error.
    pub fn try_install(self) -> Result<TelemetryGuard, SetupError> {
        self.build(true)
    }

    /// Installs. A variable whose value cannot be used is reported on stderr
    /// (naming the variable, never showing secrets) and that one setting keeps
    /// its default; the others still count. If an exporter cannot be set up at
    /// all (a file that cannot be opened, say), the console exporter is
    /// installed instead, so a typo never stops the program.
    pub fn install(self) -> TelemetryGuard {
        let service_name = self.service_name.clone();
        let default_service_name = self.default_service_name.clone();
        match self.build(false) {
            Ok(guard) => guard,
            Err(error) => {
                eprintln!("workflow-otel: {error}; exporting to the console instead");
                let mut fallback = setup().console().environment_from(|_| None);
                fallback.service_name = service_name;
                fallback.default_service_name = default_service_name;
                // The console alone reads no variable and opens no file.
                fallback.try_install().unwrap_or_else(|_| console_guard())
            }
        }
    }

    fn build(self, strict: bool) -> Result<TelemetryGuard, SetupError> {
        // `tls` builds reqwest without a crypto provider: without a process
        // default, any reqwest client of the program's would panic when made.
        #[cfg(feature = "tls")]
        crate::export::tls::install_provider();
        let (env, problems) = env::from_env(&self.environment);
        if let Some(problem) = problems.first()
            && strict
        {
            return Err(problem.clone());
        }
        for problem in &problems {
            eprintln!("workflow-otel: {problem}; that setting keeps its default");
        }
        let mut resource = Resource::builder_empty()
            .with_attributes(env.resource_attributes.clone())
            .with_attribute(KeyValue::new("telemetry.sdk.name", "workflow-otel"))
            .with_attribute(KeyValue::new("telemetry.sdk.language", "rust"))
            .with_attribute(KeyValue::new(
                "telemetry.sdk.version",
                env!("CARGO_PKG_VERSION"),
            ));
        let named_by_attributes = env
            .resource_attributes
            .iter()
            .find(|attribute| attribute.key.as_str() == "service.name")
            .map(|attribute| attribute.value.as_str().into_owned());
        let service_name = self
            .service_name
            .or(env.service_name.clone())
            .or(named_by_attributes)
            .or(self.default_service_name)
            .unwrap_or_else(|| "unknown_service".to_owned());
        resource = resource
            .with_service_name(service_name)
            .with_attributes(self.resource_attributes);
        let resource = resource.build();
        let shutdown_timeout = self
            .pipeline
            .as_ref()
            .unwrap_or(&env.pipeline)
            .shutdown_timeout;
        let (metrics, metric_problems) =
            metrics::start(self.metrics, &env, &resource, shutdown_timeout);
        if let Some(problem) = metric_problems.first()
            && strict
        {
            return Err(problem.clone());
        }
        for problem in &metric_problems {
            eprintln!("workflow-otel: {problem}; metrics go on without it");
        }
        // JSON log lines on stdout stay a stream a tool can read line by
        // line: the console trees go to stderr then.
        #[cfg(feature = "logs")]
        let trees_to_stderr = self.logs.format == Some(crate::logs::LogFormat::Json);
        #[cfg(not(feature = "logs"))]
        let trees_to_stderr = false;
        #[cfg(feature = "logs")]
        let logs = match logs::start(self.logs, &env, &resource) {
            Ok(running) => running,
            Err(problem) if strict => return Err(problem),
            Err(problem) => {
                eprintln!("workflow-otel: {problem}; logs are not installed");
                logs::RunningLogs::default()
            }
        };

        let kinds_from_env = env.exporters.clone().unwrap_or_default();
        let mut chosen = self.exporters;
        if chosen.is_empty() {
            chosen = if self.otlp_endpoint.is_some() && kinds_from_env.is_empty() {
                vec![Chosen::Kind(ExporterKind::Otlp)]
            } else if self.zipkin_endpoint.is_some() && kinds_from_env.is_empty() {
                vec![Chosen::Kind(ExporterKind::Zipkin)]
            } else if kinds_from_env.is_empty() {
                vec![Chosen::Kind(ExporterKind::Console)]
            } else {
                kinds_from_env.into_iter().map(Chosen::Kind).collect()
            };
        }
        let console_only = matches!(chosen.as_slice(), [Chosen::Kind(ExporterKind::Console)]);
        let exporters = exporters::build(
            chosen,
            &env,
            exporters::Overrides {
                otlp_endpoint: self.otlp_endpoint.clone(),
                otlp_protocol: self.otlp_protocol,
                zipkin_endpoint: self.zipkin_endpoint.clone(),
            },
            trees_to_stderr,
        )?;
        let explicit_pipeline = self.pipeline.is_some();
        let mut pipeline_config = self.pipeline.unwrap_or(env.pipeline);
        if let Some(tail) = self.tail_sampling {
            pipeline_config.tail_sampling = Some(tail);
        }
        if let Some(limits) = self.span_limits {
            pipeline_config.span_limits = limits;
        }
        let span_limits = pipeline_config.span_limits;
        if let Some(rule) = self.error_text {
            pipeline_config.error_text = rule;
        }
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
        let mut provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(root_sampler))
            .with_span_limits(span_limits.to_sdk());
        if self.workflow_processors {
            provider = provider
                .with_span_processor(WorkflowIdentityProcessor)
                .with_span_processor(RelationshipProcessor);
        }
        let provider = provider
            .with_span_processor(pipeline.span_processor())
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        let mut instrumentation = Instrumentation::new(&pipeline)
            .sampler(sampler)
            .success_status(self.success_status)
            .openinference(self.openinference);
        if let Some(prices) = self.prices {
            instrumentation = instrumentation.prices(prices);
        }
        if let Some(max_bytes) = self.genai_content {
            instrumentation = instrumentation.record_genai_content(max_bytes);
        }
        instrumentation.install();
        lifecycle::installed();
        Ok(TelemetryGuard {
            pipeline,
            provider,
            metrics,
            #[cfg(feature = "logs")]
            logs,
            shutdown_timeout,
        })
    }
}

fn console_guard() -> TelemetryGuard {
    let pipeline = Pipeline::new(ConsoleExporter::new());
    let provider = SdkTracerProvider::builder()
        .with_span_processor(pipeline.span_processor())
        .build();
    TelemetryGuard {
        pipeline,
        provider,
        metrics: metrics::RunningMetrics::default(),
        #[cfg(feature = "logs")]
        logs: logs::RunningLogs::default(),
        shutdown_timeout: PipelineConfig::default().shutdown_timeout,
    }
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
