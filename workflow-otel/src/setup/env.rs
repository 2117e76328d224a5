//! The standard OpenTelemetry environment variables, read strictly: a value
//! that does not parse is an error naming the variable and the value, never a
//! silent default and never a panic.

use std::path::PathBuf;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::Sampler;

use crate::error::SetupError;
use crate::export::OtlpProtocol;
use crate::pipeline::PipelineConfig;

mod limits;
mod otlp;
mod zipkin;
use otlp::read_otlp;
pub(crate) use otlp::{OtlpEnv, Signal};
pub(crate) use zipkin::ZipkinEnv;

/// Where `OTEL_TRACES_EXPORTER` may send spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExporterKind {
    /// `otlp`: an OTLP endpoint (needs the `otlp` feature).
    Otlp,
    /// `console`: the console tree.
    Console,
    /// `jsonl`: OTLP/JSON lines appended to `WORKFLOW_OTEL_FILE` (default
    /// `traces.jsonl`).
    File(PathBuf),
    /// `zipkin`: Zipkin v2 JSON to `OTEL_EXPORTER_ZIPKIN_ENDPOINT` (needs
    /// the `zipkin` feature).
    Zipkin,
    /// `none`: spans are not exported (workflow lineage still works).
    None,
}

/// Where `OTEL_METRICS_EXPORTER` may send metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricExporterKind {
    /// `prometheus`: a `/metrics` endpoint for Prometheus to scrape.
    Prometheus,
    /// `otlp`: pushed to an OTLP endpoint every export interval (needs the
    /// `otlp` feature).
    Otlp,
    /// `console`: the Prometheus text printed to stdout every export
    /// interval and at shutdown.
    Console,
    /// `none`: no metrics (the default when nothing asks for them).
    None,
}

/// Where `OTEL_LOGS_EXPORTER` may send log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogExporterKind {
    /// `otlp`: OpenTelemetry log records over OTLP, with their trace context
    /// (needs the `logs` and `otlp` features).
    Otlp,
    /// `console`: readable log lines on stdout.
    Console,
    /// `none`: no log records (the default when nothing asks for them).
    None,
}

/// The metrics variables.
#[derive(Debug, Clone, Default)]
pub(crate) struct MetricsEnv {
    pub(crate) exporters: Option<Vec<MetricExporterKind>>,
    pub(crate) interval: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) prometheus_host: Option<String>,
    pub(crate) prometheus_port: Option<u16>,
}

impl MetricsEnv {
    /// Where the Prometheus endpoint listens, and the variable that said so.
    pub(crate) fn prometheus_address(&self) -> (String, &'static str) {
        let host = self.prometheus_host.as_deref().unwrap_or("localhost");
        let port = self.prometheus_port.unwrap_or(9464);
        // An IPv6 literal needs brackets before the port.
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let setting = if self.prometheus_port.is_some() {
            "OTEL_EXPORTER_PROMETHEUS_PORT"
        } else if self.prometheus_host.is_some() {
            "OTEL_EXPORTER_PROMETHEUS_HOST"
        } else {
            "the default Prometheus address"
        };
        (format!("{host}:{port}"), setting)
    }
}

/// The settings the environment gives, before explicit ones override them.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvSettings {
    pub(crate) service_name: Option<String>,
    pub(crate) resource_attributes: Vec<KeyValue>,
    pub(crate) exporters: Option<Vec<ExporterKind>>,
    pub(crate) sampler: Option<Sampler>,
    pub(crate) pipeline: PipelineConfig,
    pub(crate) otlp: OtlpEnv,
    pub(crate) zipkin: ZipkinEnv,
    pub(crate) otlp_metrics: OtlpEnv,
    pub(crate) metrics: MetricsEnv,
    pub(crate) otlp_logs: OtlpEnv,
    pub(crate) log_exporters: Option<Vec<LogExporterKind>>,
    /// The `tracing` filter for `Setup::logs` (`info` when unset).
    pub(crate) rust_log: Option<String>,
}

/// Reads every variable through `lookup` (the process environment, or a map
/// in tests). Empty values count as unset, as the specification says. A value
/// that cannot be used leaves that one setting at its default and is
/// returned as a problem; every other setting still counts.
pub(crate) fn from_env(lookup: impl Fn(&str) -> Option<String>) -> (EnvSettings, Vec<SetupError>) {
    let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
    let mut problems = Vec::new();
    let mut read = |_variable: &str, outcome: Result<(), SetupError>| {
        if let Err(problem) = outcome {
            problems.push(problem);
        }
    };
    let mut settings = EnvSettings {
        service_name: get("OTEL_SERVICE_NAME"),
        ..EnvSettings::default()
    };
    if let Some(value) = get("WORKFLOW_OTEL_TAIL_SAMPLING") {
        let name = "WORKFLOW_OTEL_TAIL_SAMPLING";
        read(
            name,
            crate::pipeline::TailSampling::parse(&value)
                .map(|tail| settings.pipeline.tail_sampling = Some(tail))
                .map_err(|reason| SetupError::new(name, &value, reason)),
        );
    }
    if let Some(value) = get("OTEL_RESOURCE_ATTRIBUTES") {
        let name = "OTEL_RESOURCE_ATTRIBUTES";
        read(
            name,
            key_value_list(name, &value, false).map(|pairs| {
                settings.resource_attributes = pairs
                    .into_iter()
                    .map(|(key, value)| KeyValue::new(key, value))
                    .collect();
            }),
        );
    }
    if let Some(value) = get("OTEL_TRACES_EXPORTER") {
        let file = get("WORKFLOW_OTEL_FILE").unwrap_or_else(|| "traces.jsonl".to_owned());
        let table = [
            ("otlp", ExporterKind::Otlp),
            ("console", ExporterKind::Console),
            ("jsonl", ExporterKind::File(PathBuf::from(file))),
            ("zipkin", ExporterKind::Zipkin),
            ("none", ExporterKind::None),
        ];
        let (kinds, problem) =
            exporter_list("OTEL_TRACES_EXPORTER", &value, &table, &ExporterKind::None);
        settings.exporters = (!kinds.is_empty()).then_some(kinds);
        read("OTEL_TRACES_EXPORTER", problem);
    }
    if let Some(value) = get("OTEL_TRACES_SAMPLER") {
        let argument = get("OTEL_TRACES_SAMPLER_ARG");
        let (sampler, problem) = sampler(&value, argument.as_deref());
        settings.sampler = sampler;
        read("OTEL_TRACES_SAMPLER", problem);
    }
    let pipeline = &mut settings.pipeline;
    if let Some(value) = get("OTEL_BSP_SCHEDULE_DELAY") {
        let name = "OTEL_BSP_SCHEDULE_DELAY";
        read(
            name,
            millis(name, &value, 0).map(|delay| pipeline.scheduled_delay = delay),
        );
    }
    if let Some(value) = get("OTEL_BSP_EXPORT_TIMEOUT") {
        let name = "OTEL_BSP_EXPORT_TIMEOUT";
        read(
            name,
            millis(name, &value, 1).map(|timeout| pipeline.export_timeout = timeout),
        );
    }
    if let Some(value) = get("OTEL_BSP_MAX_QUEUE_SIZE") {
        let name = "OTEL_BSP_MAX_QUEUE_SIZE";
        read(
            name,
            positive(name, &value).map(|size| pipeline.max_queue_size = size),
        );
    }
    if let Some(value) = get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
        let name = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE";
        let batch = positive(name, &value).and_then(|batch| {
            if batch > pipeline.max_queue_size {
                Err(SetupError::new(
                    name,
                    &value,
                    format!(
                        "a batch cannot be larger than the queue ({} spans)",
                        pipeline.max_queue_size
                    ),
                ))
            } else {
                Ok(batch)
            }
        });
        read(
            name,
            batch.map(|batch| pipeline.max_export_batch_size = batch),
        );
    }
    let mut general = OtlpEnv::default();
    read_otlp(&get, None, &mut general, &mut problems);
    for (signal, target) in [
        (Signal::Traces, &mut settings.otlp),
        (Signal::Metrics, &mut settings.otlp_metrics),
        (Signal::Logs, &mut settings.otlp_logs),
    ] {
        let mut otlp = OtlpEnv {
            signal,
            ..general.clone()
        };
        read_otlp(&get, Some(signal), &mut otlp, &mut problems);
        *target = otlp;
    }
    settings.pipeline.span_limits = limits::read_limits(&get, &mut problems);
    settings.zipkin = zipkin::read_zipkin(&get, &mut problems);
    settings.metrics = metrics_env(&get, &mut problems);
    if let Some(value) = get("OTEL_LOGS_EXPORTER") {
        let table = [
            ("otlp", LogExporterKind::Otlp),
            ("console", LogExporterKind::Console),
            ("none", LogExporterKind::None),
        ];
        let (kinds, problem) =
            exporter_list("OTEL_LOGS_EXPORTER", &value, &table, &LogExporterKind::None);
        settings.log_exporters = (!kinds.is_empty()).then_some(kinds);
        if let Err(problem) = problem {
            problems.push(problem);
        }
    }
    settings.rust_log = get("RUST_LOG");
    (settings, problems)
}

fn metrics_env(
    get: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<SetupError>,
) -> MetricsEnv {
    let mut metrics = MetricsEnv::default();
    let mut read = |outcome: Result<(), SetupError>| {
        if let Err(problem) = outcome {
            problems.push(problem);
        }
    };
    if let Some(value) = get("OTEL_METRICS_EXPORTER") {
        let table = [
            ("otlp", MetricExporterKind::Otlp),
            ("prometheus", MetricExporterKind::Prometheus),
            ("console", MetricExporterKind::Console),
            ("none", MetricExporterKind::None),
        ];
        let (kinds, problem) = exporter_list(
            "OTEL_METRICS_EXPORTER",
            &value,
            &table,
            &MetricExporterKind::None,
        );
        metrics.exporters = (!kinds.is_empty()).then_some(kinds);
        read(problem);
    }
    if let Some(value) = get("OTEL_METRIC_EXPORT_INTERVAL") {
        let name = "OTEL_METRIC_EXPORT_INTERVAL";
        read(millis(name, &value, 1).map(|interval| metrics.interval = Some(interval)));
    }
    if let Some(value) = get("OTEL_METRIC_EXPORT_TIMEOUT") {
        let name = "OTEL_METRIC_EXPORT_TIMEOUT";
        read(millis(name, &value, 1).map(|timeout| metrics.timeout = Some(timeout)));
    }
    if let Some(value) = get("OTEL_EXPORTER_PROMETHEUS_HOST") {
        let host = value.trim();
        if host.contains(char::is_whitespace) || host.contains('/') {
            read(Err(SetupError::new(
                "OTEL_EXPORTER_PROMETHEUS_HOST",
                &value,
                "expected a host name or an IP address, e.g. localhost or 0.0.0.0",
            )));
        } else {
            metrics.prometheus_host = Some(host.to_owned());
        }
    }
    if let Some(value) = get("OTEL_EXPORTER_PROMETHEUS_PORT") {
        match value.trim().parse::<u16>() {
            Ok(port) => metrics.prometheus_port = Some(port),
            Err(_) => read(Err(SetupError::new(
                "OTEL_EXPORTER_PROMETHEUS_PORT",
                &value,
                "expected a port number from 0 (any free port) to 65535",
            ))),
        }
    }
    if let Some(value) = get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE")
        && !value.trim().eq_ignore_ascii_case("cumulative")
    {
        read(Err(SetupError::new(
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
            &value,
            "only `cumulative` is supported; metrics are sent cumulative",
        )));
    }
    metrics
}

/// The exporters of `table` named in `value` (case-insensitive,
/// comma-separated). An unknown name is left out and reported, and so is
/// `none` next to others; the rest still count.
fn exporter_list<K: Clone + PartialEq>(
    variable: &str,
    value: &str,
    table: &[(&str, K)],
    none: &K,
) -> (Vec<K>, Result<(), SetupError>) {
    let mut kinds = Vec::new();
    let mut unknown = Vec::new();
    for item in value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let lowercase = item.to_ascii_lowercase();
        match table.iter().find(|(name, _)| *name == lowercase) {
            Some((_, kind)) if !kinds.contains(kind) => kinds.push(kind.clone()),
            Some(_) => {}
            None => unknown.push(item),
        }
    }
    if !unknown.is_empty() {
        let names: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
        let problem = SetupError::new(
            variable,
            value,
            format!(
                "unknown exporter `{}`; expected a list of `{}`",
                unknown.join("`, `"),
                names.join("`, `")
            ),
        );
        return (kinds, Err(problem));
    }
    if kinds.len() > 1 && kinds.contains(none) {
        kinds.retain(|kind| kind != none);
        let problem = SetupError::new(
            variable,
            value,
            "`none` cannot be combined with other exporters; it is ignored",
        );
        return (kinds, Err(problem));
    }
    (kinds, Ok(()))
}

/// The samplers of the specification's `OTEL_TRACES_SAMPLER` (names
/// case-insensitive). Spans of ours with a parent always follow it; the
/// sampler decides for new traces. An unknown name leaves the default
/// sampler; a bad ratio leaves the named sampler with ratio 1.
pub(crate) fn sampler(
    value: &str,
    argument: Option<&str>,
) -> (Option<Sampler>, Result<(), SetupError>) {
    let mut problem = Ok(());
    let mut ratio = || -> f64 {
        match argument {
            None => 1.0,
            Some(text) => match text.trim().parse::<f64>() {
                Ok(ratio) if (0.0..=1.0).contains(&ratio) => ratio,
                _ => {
                    problem = Err(SetupError::new(
                        "OTEL_TRACES_SAMPLER_ARG",
                        text,
                        "expected a probability from 0 to 1, e.g. 0.25; using 1",
                    ));
                    1.0
                }
            },
        }
    };
    let parent_based = |root: Sampler| Sampler::ParentBased(Box::new(root));
    let sampler = match value.trim().to_ascii_lowercase().as_str() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()),
        "parentbased_always_on" => parent_based(Sampler::AlwaysOn),
        "parentbased_always_off" => parent_based(Sampler::AlwaysOff),
        "parentbased_traceidratio" => parent_based(Sampler::TraceIdRatioBased(ratio())),
        _ => {
            return (
                None,
                Err(SetupError::new(
                    "OTEL_TRACES_SAMPLER",
                    value,
                    "expected one of always_on, always_off, traceidratio, parentbased_always_on, \
                     parentbased_always_off, parentbased_traceidratio",
                )),
            );
        }
    };
    (Some(sampler), problem)
}

fn protocol(name: &str, value: &str) -> Result<OtlpProtocol, SetupError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "grpc" => Ok(OtlpProtocol::Grpc),
        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        "http/json" => Ok(OtlpProtocol::HttpJson),
        _ => Err(SetupError::new(
            name,
            value,
            "expected `grpc`, `http/protobuf` or `http/json`",
        )),
    }
}

/// A whole number of milliseconds, at least `minimum`, at most 2^31 - 1 (the
/// range the specification asks SDKs to support).
fn millis(name: &str, value: &str, minimum: u64) -> Result<Duration, SetupError> {
    match value.trim().parse::<u64>() {
        Ok(number) if (minimum..=MAX_SPEC_INTEGER).contains(&number) => {
            Ok(Duration::from_millis(number))
        }
        _ => Err(SetupError::new(
            name,
            value,
            format!("expected a whole number of milliseconds from {minimum} to {MAX_SPEC_INTEGER}"),
        )),
    }
}

/// The largest integer the specification asks SDKs to accept.
const MAX_SPEC_INTEGER: u64 = (1 << 31) - 1;

fn positive(name: &str, value: &str) -> Result<usize, SetupError> {
    match value.trim().parse::<u64>() {
        Ok(number) if (1..=MAX_SPEC_INTEGER).contains(&number) => Ok(number as usize),
        _ => Err(SetupError::new(
            name,
            value,
            format!("expected a whole number from 1 to {MAX_SPEC_INTEGER}"),
        )),
    }
}

/// An `http://` or `https://` URL with a host and, if given, a port from 1
/// to 65535. Credentials in it never reach an error message.
fn url(name: &str, value: &str) -> Result<String, SetupError> {
    let trimmed = value.trim();
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"));
    let authority = rest.map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
    let host_port = authority.map(|authority| authority.rsplit('@').next().unwrap_or_default());
    let port_ok = |host_port: &str| match host_port.rsplit_once(':') {
        // An IPv6 literal's colons are inside brackets.
        Some((host, port)) if !port.contains(']') => {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port > 0)
        }
        _ => true,
    };
    match host_port {
        Some(host_port)
            if !host_port.is_empty()
                && !trimmed.contains(char::is_whitespace)
                && port_ok(host_port) =>
        {
            Ok(trimmed.to_owned())
        }
        _ => Err(SetupError::new(
            name,
            &without_credentials(value),
            "expected an http:// or https:// URL with a host and an optional port, e.g. \
             http://localhost:4318",
        )),
    }
}

/// `value` with any `user:password@` part of a URL replaced by `***@`.
pub(crate) fn without_credentials(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_owned();
    };
    let after = &value[scheme_end + 3..];
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    match after[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &value[..scheme_end + 3], &after[at..]),
        None => value.to_owned(),
    }
}

/// What an error shows of a value that may hold secrets: its size only.
fn redacted(value: &str) -> String {
    format!("<{} bytes, not shown>", value.len())
}

/// A header must be a valid HTTP field: a token name, a value of visible
/// characters, spaces and tabs.
fn check_header(name: &str, key: &str, value: &str) -> Result<(), SetupError> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !key.bytes().all(token) {
        return Err(SetupError::new(
            name,
            &redacted(value),
            format!("`{key}` is not a valid HTTP header name"),
        ));
    }
    if !value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80)
    {
        return Err(SetupError::new(
            name,
            &redacted(value),
            format!("the value of header `{key}` has a control character"),
        ));
    }
    Ok(())
}

/// `key1=value1,key2=value2`, values percent-encoded: the format of
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`. With `secret`,
/// errors name keys but never show values.
pub(crate) fn key_value_list(
    name: &str,
    value: &str,
    secret: bool,
) -> Result<Vec<(String, String)>, SetupError> {
    let shown = if secret {
        redacted(value)
    } else {
        value.to_owned()
    };
    // A member, as errors name it: by its text, unless that may be a secret.
    let described = |member: &str| {
        if secret {
            "a member".to_owned()
        } else {
            format!("`{}`", member.trim())
        }
    };
    let mut pairs = Vec::new();
    for member in value.split(',') {
        if member.trim().is_empty() {
            continue;
        }
        let Some((key, raw)) = member.split_once('=') else {
            let what = described(member);
            return Err(SetupError::new(
                name,
                &shown,
                format!("{what} has no `=`: expected key=value pairs separated by commas"),
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            let what = described(member);
            return Err(SetupError::new(
                name,
                &shown,
                format!("{what} has an empty key"),
            ));
        }
        let decoded = crate::propagation::w3c::percent_decode(raw.trim()).ok_or_else(|| {
            SetupError::new(
                name,
                &shown,
                format!("the value of `{key}` has a malformed %-escape or is not UTF-8"),
            )
        })?;
        pairs.push((key.to_owned(), decoded));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests;
