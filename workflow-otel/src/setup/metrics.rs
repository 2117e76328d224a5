//! The metrics part of `setup()`: which exporters, the histogram bounds, and
//! the running endpoint and push thread the guard owns.

use std::net::SocketAddr;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

use crate::error::SetupError;
use crate::metrics::periodic::{PeriodicExport, PushTarget};
use crate::metrics::prometheus::PrometheusServer;
use crate::metrics::{DEFAULT_BUCKETS, DEFAULT_EXPORT_INTERVAL};
use crate::setup::env::{EnvSettings, MetricExporterKind};

/// `OTEL_METRIC_EXPORT_TIMEOUT`'s default in the specification.
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// Most histogram bounds accepted.
pub(crate) const MAX_BUCKETS: usize = 64;

/// What code asked for; the environment fills in the rest.
#[derive(Debug, Default)]
pub(crate) struct MetricsChoice {
    pub(crate) exporters: Vec<MetricExporterKind>,
    pub(crate) prometheus_address: Option<String>,
    pub(crate) buckets: Option<Vec<f64>>,
    pub(crate) interval: Option<Duration>,
    pub(crate) cardinality_limit: Option<usize>,
    /// Whether to make [`crate::metrics::meter_provider`] the global one:
    /// unset, when metrics are on.
    pub(crate) global_provider: Option<bool>,
}

/// What is running for metrics; stopped when the guard drops.
#[derive(Debug, Default)]
pub(crate) struct RunningMetrics {
    pub(crate) prometheus: Option<PrometheusServer>,
    pub(crate) push: Option<PeriodicExport>,
}

impl RunningMetrics {
    pub(crate) fn prometheus_address(&self) -> Option<SocketAddr> {
        self.prometheus.as_ref().map(PrometheusServer::address)
    }
}

/// Checks histogram bounds: finite, positive, strictly increasing.
pub(crate) fn check_buckets(bounds: &[f64]) -> Result<(), SetupError> {
    let text = format!("{bounds:?}");
    if bounds.is_empty() || bounds.len() > MAX_BUCKETS {
        return Err(SetupError::new(
            "Setup::metric_buckets",
            &text,
            format!("expected from 1 to {MAX_BUCKETS} bounds"),
        ));
    }
    let valid = bounds.iter().all(|bound| bound.is_finite() && *bound > 0.0)
        && bounds.windows(2).all(|pair| pair[0] < pair[1]);
    if !valid {
        return Err(SetupError::new(
            "Setup::metric_buckets",
            &text,
            "expected positive, finite bounds in seconds, in increasing order",
        ));
    }
    Ok(())
}

/// Starts what `choice` and the environment ask for. Each failure is
/// returned with what could be started; `strict` callers give up on any.
pub(crate) fn start(
    choice: MetricsChoice,
    env: &EnvSettings,
    resource: &Resource,
    shutdown_timeout: Duration,
) -> (RunningMetrics, Vec<SetupError>) {
    let mut running = RunningMetrics::default();
    let mut problems = Vec::new();
    let mut kinds = choice.exporters;
    if choice.prometheus_address.is_some() && !kinds.contains(&MetricExporterKind::Prometheus) {
        kinds.push(MetricExporterKind::Prometheus);
    }
    if kinds.is_empty() {
        kinds = env.metrics.exporters.clone().unwrap_or_default();
    }
    kinds.retain(|kind| *kind != MetricExporterKind::None);
    if let Some(limit) = choice.cardinality_limit {
        crate::metrics::instruments::set_cardinality_limit(limit);
    }
    if choice.global_provider.unwrap_or(!kinds.is_empty()) {
        // Made with this provider, the service's instruments (and those of
        // the libraries it uses) reach the same endpoint and push as ours.
        opentelemetry::global::set_meter_provider(crate::metrics::meter_provider());
    }
    if kinds.is_empty() {
        return (running, problems);
    }
    let bounds = choice.buckets.unwrap_or_else(|| DEFAULT_BUCKETS.to_vec());
    if let Err(problem) = check_buckets(&bounds) {
        return (running, vec![problem]);
    }
    if let Err(kept) = crate::metrics::series::enable(&bounds) {
        eprintln!(
            "workflow-otel: metrics were enabled earlier in this process with the bounds \
             {kept:?}; they stay (bounds are fixed once per process)"
        );
    }
    let attributes: Vec<KeyValue> = resource
        .iter()
        .map(|(key, value)| KeyValue::new(key.clone(), value.clone()))
        .collect();
    let mut targets = Vec::new();
    for kind in kinds {
        match kind {
            MetricExporterKind::Prometheus => {
                let (address, setting) = match &choice.prometheus_address {
                    Some(address) => (address.clone(), "Setup::prometheus_address"),
                    None => env.metrics.prometheus_address(),
                };
                match PrometheusServer::start(&address, setting, attributes.clone()) {
                    Ok(server) => running.prometheus = Some(server),
                    Err(problem) => problems.push(problem),
                }
            }
            MetricExporterKind::Console => targets.push(PushTarget::Console(attributes.clone())),
            MetricExporterKind::Otlp => match otlp_target(env, resource) {
                Ok(target) => targets.push(target),
                Err(problem) => problems.push(problem),
            },
            MetricExporterKind::None => {}
        }
    }
    if !targets.is_empty() {
        let interval = choice
            .interval
            .or(env.metrics.interval)
            .unwrap_or(DEFAULT_EXPORT_INTERVAL);
        let timeout = env.metrics.timeout.unwrap_or(DEFAULT_EXPORT_TIMEOUT);
        match PeriodicExport::start(targets, interval, timeout, shutdown_timeout) {
            Ok(push) => running.push = Some(push),
            Err(error) => problems.push(SetupError::new(
                "OTEL_METRICS_EXPORTER",
                "otlp",
                format!("cannot start the metrics thread: {error}"),
            )),
        }
    }
    (running, problems)
}

#[cfg(feature = "otlp")]
fn otlp_target(env: &EnvSettings, resource: &Resource) -> Result<PushTarget, SetupError> {
    let settings = env.otlp_metrics.settings(None);
    let exporter = crate::metrics::otlp::OtlpMetricsExporter::new(
        &settings,
        resource,
        env.otlp_metrics.endpoint_source(),
    )?;
    Ok(PushTarget::Otlp(Box::new(exporter)))
}

#[cfg(not(feature = "otlp"))]
fn otlp_target(_: &EnvSettings, _: &Resource) -> Result<PushTarget, SetupError> {
    Err(SetupError::new(
        "OTEL_METRICS_EXPORTER",
        "otlp",
        "OTLP metrics need the `otlp` feature of workflow-otel",
    ))
}
