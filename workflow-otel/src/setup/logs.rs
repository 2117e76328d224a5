//! The logs part of `setup()`: a global `tracing` subscriber with the
//! chosen formats, span events, the OpenTelemetry log bridge, and the `log`
//! crate bridged into it.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::error::SetupError;
use crate::logs::export::LogAccounts;
use crate::logs::{LogFormat, SpanEvents, json_layer, readable_layer};
use crate::setup::env::{EnvSettings, LogExporterKind};

/// The logger provider `setup()` installed, for [`crate::flush`] and the
/// exit handler; cleared when its guard shuts it down.
static CURRENT: std::sync::Mutex<Option<SdkLoggerProvider>> = std::sync::Mutex::new(None);

/// Exports the log records emitted so far, if OTLP logs are installed.
pub(crate) fn flush_current() {
    let provider = CURRENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    if let Some(provider) = provider
        && let Err(error) = provider.force_flush()
    {
        eprintln!("workflow-otel: flushing log records failed: {error}");
    }
}

/// What code asked for; the environment fills in the rest.
#[derive(Debug, Default)]
pub(crate) struct LogsChoice {
    pub(crate) format: Option<LogFormat>,
    pub(crate) span_events: bool,
    pub(crate) exporters: Vec<LogExporterKind>,
}

/// The OpenTelemetry logger provider, if log records are exported.
#[derive(Debug, Default)]
pub(crate) struct RunningLogs {
    provider: Option<SdkLoggerProvider>,
    accounts: Option<Arc<LogAccounts>>,
}

impl RunningLogs {
    pub(crate) fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(error) = provider.force_flush()
        {
            eprintln!("workflow-otel: flushing log records failed: {error}");
        }
    }

    /// Exports what is left within `timeout`, then says how many records
    /// never reached the backend.
    pub(crate) fn shutdown(&mut self, timeout: Duration) {
        *CURRENT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown_with_timeout(timeout);
        }
        if let Some(accounts) = self.accounts.take() {
            let lost = accounts.lost();
            if lost > 0 {
                eprintln!(
                    "workflow-otel: {lost} of {} log records were not exported \
                     (queue full, export failed, or shutdown's deadline passed)",
                    accounts.emitted.load(std::sync::atomic::Ordering::Relaxed)
                );
            }
        }
    }

    /// Log records emitted and not exported so far.
    pub(crate) fn lost(&self) -> u64 {
        self.accounts.as_ref().map_or(0, |accounts| accounts.lost())
    }
}

/// What is logged without `RUST_LOG`: `info` and above, but for the
/// OpenTelemetry crates' own notes ("Global tracer provider is set", targets
/// `opentelemetry`, `opentelemetry_sdk`, ...), which are not the service's
/// lines: of those, warnings and errors.
fn default_filter() -> Targets {
    // `Targets` matches by prefix: `opentelemetry` covers every such crate.
    Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target("opentelemetry", tracing::Level::WARN)
}

/// Installs the subscriber `choice` and the environment ask for, if any.
pub(crate) fn start(
    choice: LogsChoice,
    env: &EnvSettings,
    resource: &Resource,
) -> Result<RunningLogs, SetupError> {
    if let Some(name) = resource.get(&opentelemetry::Key::from_static_str("service.name")) {
        crate::logs::format::set_service_name(&name.as_str());
    }
    let kinds = if choice.exporters.is_empty() {
        env.log_exporters.clone().unwrap_or_default()
    } else {
        choice.exporters
    };
    let format = choice.format.or_else(|| {
        kinds
            .contains(&LogExporterKind::Console)
            .then_some(LogFormat::Readable)
    });
    let otlp = kinds.contains(&LogExporterKind::Otlp);
    if format.is_none() && !otlp && !choice.span_events {
        return Ok(RunningLogs::default());
    }
    let filter = match &env.rust_log {
        Some(directives) => Targets::from_str(directives).map_err(|error| {
            SetupError::new(
                "RUST_LOG",
                directives,
                format!("expected `level` or `target=level` directives, comma-separated: {error}"),
            )
        })?,
        None => default_filter(),
    };
    let mut running = RunningLogs::default();
    let bridge = if otlp {
        let (provider, accounts) = otlp_provider(env, resource)?;
        *CURRENT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(provider.clone());
        let bridge =
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&provider);
        running.provider = Some(provider);
        running.accounts = Some(accounts);
        Some(bridge)
    } else {
        None
    };
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with((format == Some(LogFormat::Json)).then(|| json_layer(std::io::stdout)))
        .with((format == Some(LogFormat::Readable)).then(|| readable_layer(std::io::stdout)))
        .with(choice.span_events.then(SpanEvents::default))
        .with(bridge);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        return Err(SetupError::new(
            "Setup::logs",
            &format!("{format:?}"),
            "a global tracing subscriber is already set: add workflow_otel::logs::json_layer(..) \
             (or readable_layer, SpanEvents) to it instead",
        ));
    }
    // `log` records become `tracing` events; a program with a logger of its
    // own keeps it.
    let _ = tracing_log::LogTracer::init();
    Ok(running)
}

#[cfg(feature = "otlp")]
fn otlp_provider(
    env: &EnvSettings,
    resource: &Resource,
) -> Result<(SdkLoggerProvider, Arc<LogAccounts>), SetupError> {
    use crate::logs::export::{CountingExporter, CountingProcessor, OtlpLogExporter};
    use opentelemetry_sdk::logs::BatchLogProcessor;
    let settings = env.otlp_logs.settings(None);
    let exporter = OtlpLogExporter::new(&settings).map_err(|mut error| {
        if error.setting == crate::export::otlp::ENDPOINT_SETTING {
            error.setting = env.otlp_logs.endpoint_source().to_owned();
        }
        error
    })?;
    let accounts = Arc::new(LogAccounts::default());
    let processor = CountingProcessor {
        inner: BatchLogProcessor::builder(CountingExporter {
            inner: exporter,
            accounts: accounts.clone(),
        })
        .build(),
        accounts: accounts.clone(),
    };
    let provider = SdkLoggerProvider::builder()
        .with_resource(resource.clone())
        .with_log_processor(processor)
        .build();
    Ok((provider, accounts))
}

#[cfg(not(feature = "otlp"))]
fn otlp_provider(
    _: &EnvSettings,
    _: &Resource,
) -> Result<(SdkLoggerProvider, Arc<LogAccounts>), SetupError> {
    Err(SetupError::new(
        "OTEL_LOGS_EXPORTER",
        "otlp",
        "OTLP log records need the `otlp` feature of workflow-otel",
    ))
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    #[test]
    fn the_default_filter_keeps_the_services_lines_and_the_sdks_warnings() {
        let filter = super::default_filter();
        assert!(filter.would_enable("shop", &Level::INFO));
        assert!(!filter.would_enable("shop", &Level::DEBUG));
        for crate_name in ["opentelemetry", "opentelemetry_sdk", "opentelemetry_otlp"] {
            assert!(
                !filter.would_enable(crate_name, &Level::INFO),
                "{crate_name}"
            );
            assert!(
                filter.would_enable(crate_name, &Level::WARN),
                "{crate_name}"
            );
        }
    }
}
