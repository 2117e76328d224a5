//! The standard OpenTelemetry environment variables, read strictly: a value
//! that does not parse is an error naming the variable and the value, never a
//! silent default and never a panic.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::Sampler;

use crate::pipeline::PipelineConfig;

/// A setting that could not be used, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError {
    /// The environment variable, or the builder method, that held the value.
    pub setting: String,
    /// The value as given.
    pub value: String,
    /// What is wrong with it, and what would be accepted.
    pub reason: String,
}

impl SetupError {
    pub(crate) fn new(setting: &str, value: &str, reason: impl Into<String>) -> SetupError {
        SetupError {
            setting: setting.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: {}", self.setting, self.value, self.reason)
    }
}

impl std::error::Error for SetupError {}

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
    /// `none`: spans are not exported (workflow lineage still works).
    None,
}

/// The OTLP wire format, as `OTEL_EXPORTER_OTLP_PROTOCOL` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `grpc` (default port 4317).
    Grpc,
    /// `http/protobuf` (default port 4318, path `/v1/traces`).
    HttpProtobuf,
    /// `http/json` (default port 4318, path `/v1/traces`).
    HttpJson,
}

/// How to reach an OTLP endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSettings {
    /// The URL spans are sent to: for HTTP, the full `/v1/traces` URL.
    pub endpoint: String,
    /// The wire format.
    pub protocol: OtlpProtocol,
    /// Extra headers (gRPC metadata), e.g. an API key.
    pub headers: Vec<(String, String)>,
    /// How long one export may take.
    pub timeout: Duration,
    /// Whether requests are gzip-compressed.
    pub gzip: bool,
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
}

/// The OTLP variables; turned into [`OtlpSettings`] once the protocol (which
/// decides default ports and paths) is known.
#[derive(Debug, Clone, Default)]
pub(crate) struct OtlpEnv {
    pub(crate) base_endpoint: Option<String>,
    pub(crate) traces_endpoint: Option<String>,
    pub(crate) protocol: Option<OtlpProtocol>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) gzip: Option<bool>,
}

impl OtlpEnv {
    /// Settings for `protocol` (explicit) or the environment's, with the
    /// OpenTelemetry defaults for what neither gives.
    #[cfg_attr(not(any(feature = "otlp", test)), allow(dead_code))]
    pub(crate) fn settings(&self, protocol: Option<OtlpProtocol>) -> OtlpSettings {
        let protocol = protocol
            .or(self.protocol)
            .unwrap_or(OtlpProtocol::HttpProtobuf);
        let endpoint = match (&self.traces_endpoint, &self.base_endpoint, protocol) {
            // The signal-specific variable is used as is.
            (Some(endpoint), _, _) => endpoint.clone(),
            (None, Some(base), OtlpProtocol::Grpc) => base.clone(),
            (None, Some(base), _) => format!("{}/v1/traces", base.trim_end_matches('/')),
            (None, None, OtlpProtocol::Grpc) => "http://localhost:4317".to_owned(),
            (None, None, _) => "http://localhost:4318/v1/traces".to_owned(),
        };
        OtlpSettings {
            endpoint,
            protocol,
            headers: self.headers.clone(),
            timeout: self.timeout.unwrap_or(Duration::from_secs(10)),
            gzip: self.gzip.unwrap_or(false),
        }
    }
}

/// Reads every variable through `lookup` (the process environment, or a map
/// in tests). Empty values count as unset, as the specification says.
pub(crate) fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<EnvSettings, SetupError> {
    let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
    let mut settings = EnvSettings {
        service_name: get("OTEL_SERVICE_NAME"),
        ..EnvSettings::default()
    };
    if let Some(value) = get("OTEL_RESOURCE_ATTRIBUTES") {
        settings.resource_attributes = key_value_list("OTEL_RESOURCE_ATTRIBUTES", &value)?
            .into_iter()
            .map(|(key, value)| KeyValue::new(key, value))
            .collect();
    }
    if let Some(value) = get("OTEL_TRACES_EXPORTER") {
        let file = get("WORKFLOW_OTEL_FILE").unwrap_or_else(|| "traces.jsonl".to_owned());
        settings.exporters = Some(exporters("OTEL_TRACES_EXPORTER", &value, &file)?);
    }
    if let Some(value) = get("OTEL_TRACES_SAMPLER") {
        let argument = get("OTEL_TRACES_SAMPLER_ARG");
        settings.sampler = Some(sampler(&value, argument.as_deref())?);
    }
    let pipeline = &mut settings.pipeline;
    if let Some(value) = get("OTEL_BSP_SCHEDULE_DELAY") {
        pipeline.scheduled_delay = millis("OTEL_BSP_SCHEDULE_DELAY", &value)?;
    }
    if let Some(value) = get("OTEL_BSP_EXPORT_TIMEOUT") {
        pipeline.export_timeout = millis("OTEL_BSP_EXPORT_TIMEOUT", &value)?;
    }
    if let Some(value) = get("OTEL_BSP_MAX_QUEUE_SIZE") {
        pipeline.max_queue_size = positive("OTEL_BSP_MAX_QUEUE_SIZE", &value)?;
    }
    if let Some(value) = get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
        let batch = positive("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &value)?;
        if batch > pipeline.max_queue_size {
            return Err(SetupError::new(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                &value,
                format!(
                    "a batch cannot be larger than the queue ({} spans)",
                    pipeline.max_queue_size
                ),
            ));
        }
        pipeline.max_export_batch_size = batch;
    }
    let otlp = &mut settings.otlp;
    if let Some(value) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
        otlp.base_endpoint = Some(url("OTEL_EXPORTER_OTLP_ENDPOINT", &value)?);
    }
    if let Some(value) = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        otlp.traces_endpoint = Some(url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &value)?);
    }
    for name in [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    ] {
        if let Some(value) = get(name) {
            otlp.protocol = Some(protocol(name, &value)?);
        }
    }
    for name in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        if let Some(value) = get(name) {
            // Signal-specific headers add to, and override, the general ones.
            for (key, header) in key_value_list(name, &value)? {
                otlp.headers
                    .retain(|(existing, _)| !existing.eq_ignore_ascii_case(&key));
                otlp.headers.push((key, header));
            }
        }
    }
    for name in [
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    ] {
        if let Some(value) = get(name) {
            otlp.timeout = Some(millis(name, &value)?);
        }
    }
    for name in [
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    ] {
        if let Some(value) = get(name) {
            otlp.gzip = Some(match value.trim() {
                "gzip" => true,
                "none" => false,
                _ => return Err(SetupError::new(name, &value, "expected `gzip` or `none`")),
            });
        }
    }
    Ok(settings)
}

fn exporters(name: &str, value: &str, file: &str) -> Result<Vec<ExporterKind>, SetupError> {
    let mut kinds = Vec::new();
    for item in value.split(',').map(str::trim) {
        let kind = match item {
            "otlp" => ExporterKind::Otlp,
            "console" => ExporterKind::Console,
            "jsonl" => ExporterKind::File(PathBuf::from(file)),
            "none" => ExporterKind::None,
            _ => {
                return Err(SetupError::new(
                    name,
                    value,
                    format!(
                        "unknown exporter `{item}`; expected a list of `otlp`, `console`, `jsonl`, `none`"
                    ),
                ));
            }
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.len() > 1 && kinds.contains(&ExporterKind::None) {
        return Err(SetupError::new(
            name,
            value,
            "`none` cannot be combined with other exporters",
        ));
    }
    Ok(kinds)
}

/// The samplers of the specification's `OTEL_TRACES_SAMPLER`. Spans of ours
/// with a parent always follow it; the sampler decides for new traces.
pub(crate) fn sampler(value: &str, argument: Option<&str>) -> Result<Sampler, SetupError> {
    let ratio = || -> Result<f64, SetupError> {
        match argument {
            None => Ok(1.0),
            Some(text) => match text.trim().parse::<f64>() {
                Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
                _ => Err(SetupError::new(
                    "OTEL_TRACES_SAMPLER_ARG",
                    text,
                    "expected a probability from 0 to 1, e.g. 0.25",
                )),
            },
        }
    };
    let parent_based = |root: Sampler| Sampler::ParentBased(Box::new(root));
    Ok(match value.trim() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        "parentbased_always_on" => parent_based(Sampler::AlwaysOn),
        "parentbased_always_off" => parent_based(Sampler::AlwaysOff),
        "parentbased_traceidratio" => parent_based(Sampler::TraceIdRatioBased(ratio()?)),
        _ => {
            return Err(SetupError::new(
                "OTEL_TRACES_SAMPLER",
                value,
                "expected one of always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off, parentbased_traceidratio",
            ));
        }
    })
}

fn protocol(name: &str, value: &str) -> Result<OtlpProtocol, SetupError> {
    match value.trim() {
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

fn millis(name: &str, value: &str) -> Result<Duration, SetupError> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| SetupError::new(name, value, "expected a whole number of milliseconds"))
}

fn positive(name: &str, value: &str) -> Result<usize, SetupError> {
    match value.trim().parse::<usize>() {
        Ok(number) if number > 0 => Ok(number),
        _ => Err(SetupError::new(
            name,
            value,
            "expected a whole number greater than 0",
        )),
    }
}

fn url(name: &str, value: &str) -> Result<String, SetupError> {
    let trimmed = value.trim();
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"));
    match rest {
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && !rest.contains(char::is_whitespace) =>
        {
            Ok(trimmed.to_owned())
        }
        _ => Err(SetupError::new(
            name,
            value,
            "expected an http:// or https:// URL with a host, e.g. http://localhost:4318",
        )),
    }
}

/// `key1=value1,key2=value2`, values percent-encoded: the format of
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`.
pub(crate) fn key_value_list(name: &str, value: &str) -> Result<Vec<(String, String)>, SetupError> {
    let mut pairs = Vec::new();
    for member in value.split(',') {
        if member.trim().is_empty() {
            continue;
        }
        let Some((key, raw)) = member.split_once('=') else {
            return Err(SetupError::new(
                name,
                value,
                format!(
                    "`{}` has no `=`: expected key=value pairs separated by commas",
                    member.trim()
                ),
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(SetupError::new(
                name,
                value,
                format!("`{}` has an empty key", member.trim()),
            ));
        }
        let decoded = crate::w3c::percent_decode(raw.trim()).ok_or_else(|| {
            SetupError::new(
                name,
                value,
                format!("the value of `{key}` has a malformed %-escape or is not UTF-8"),
            )
        })?;
        pairs.push((key.to_owned(), decoded));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<EnvSettings, SetupError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_env(|name| map.get(name).cloned())
    }

    #[test]
    fn every_malformed_setting_names_its_variable_and_value() {
        let cases = [
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "team=payments,broken",
                "has no `=`",
            ),
            ("OTEL_RESOURCE_ATTRIBUTES", "=x", "empty key"),
            ("OTEL_RESOURCE_ATTRIBUTES", "k=%zz", "malformed %-escape"),
            ("OTEL_RESOURCE_ATTRIBUTES", "k=%ff", "not UTF-8"),
            (
                "OTEL_TRACES_EXPORTER",
                "otlp,zipkin",
                "unknown exporter `zipkin`",
            ),
            ("OTEL_TRACES_EXPORTER", "none,console", "cannot be combined"),
            ("OTEL_TRACES_SAMPLER", "sometimes", "expected one of"),
            ("OTEL_BSP_SCHEDULE_DELAY", "5s", "milliseconds"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "-1", "milliseconds"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0", "greater than 0"),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "localhost:4317",
                "http:// or https://",
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://",
                "http:// or https://",
            ),
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "http/xml",
                "`grpc`, `http/protobuf` or `http/json`",
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key", "has no `=`"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "ten", "milliseconds"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "`gzip` or `none`"),
        ];
        for (name, value, reason) in cases {
            let error = env(&[(name, value)]).expect_err(name);
            assert_eq!(error.setting, name);
            assert_eq!(error.value, value);
            assert!(
                error.reason.contains(reason),
                "{name}={value}: {}",
                error.reason
            );
            assert!(
                error.to_string().starts_with(&format!("{name}=")),
                "{error}"
            );
        }
        let error = env(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ])
        .unwrap_err();
        assert_eq!(
            (error.setting.as_str(), error.value.as_str()),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5")
        );
        let error = env(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20"),
        ])
        .unwrap_err();
        assert_eq!(error.setting, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE");
    }

    #[test]
    fn well_formed_settings_are_read() {
        let settings = env(&[
            ("OTEL_SERVICE_NAME", "checkout"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "team=pay%20ments, region = eu-west-1 ,",
            ),
            ("OTEL_TRACES_EXPORTER", "otlp, jsonl"),
            ("WORKFLOW_OTEL_FILE", "/tmp/t.jsonl"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "50"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret,x-team=a"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "X-Team=b"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1500"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_BSP_EXPORT_TIMEOUT", ""),
        ])
        .unwrap();
        assert_eq!(settings.service_name.as_deref(), Some("checkout"));
        assert_eq!(
            settings.resource_attributes,
            [
                KeyValue::new("team", "pay ments"),
                KeyValue::new("region", "eu-west-1")
            ]
        );
        assert_eq!(
            settings.exporters,
            Some(vec![
                ExporterKind::Otlp,
                ExporterKind::File("/tmp/t.jsonl".into())
            ])
        );
        assert_eq!(
            format!("{:?}", settings.sampler.unwrap()),
            format!(
                "{:?}",
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.25)))
            )
        );
        assert_eq!(
            settings.pipeline.scheduled_delay,
            Duration::from_millis(250)
        );
        assert_eq!(
            settings.pipeline.export_timeout,
            PipelineConfig::default().export_timeout
        );
        assert_eq!(
            (
                settings.pipeline.max_queue_size,
                settings.pipeline.max_export_batch_size
            ),
            (100, 50)
        );
        let otlp = settings.otlp.settings(None);
        assert_eq!(otlp.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(otlp.protocol, OtlpProtocol::HttpJson);
        assert_eq!(
            otlp.headers,
            [
                ("api-key".to_owned(), "s=cret".to_owned()),
                ("X-Team".to_owned(), "b".to_owned())
            ]
        );
        assert_eq!(otlp.timeout, Duration::from_millis(1500));
        assert!(otlp.gzip);
    }

    #[test]
    fn otlp_defaults_follow_the_protocol() {
        let otlp = OtlpEnv::default();
        assert_eq!(
            otlp.settings(None).endpoint,
            "http://localhost:4318/v1/traces"
        );
        assert_eq!(
            otlp.settings(Some(OtlpProtocol::Grpc)).endpoint,
            "http://localhost:4317"
        );
        let with_base = OtlpEnv {
            base_endpoint: Some("http://collector:4317".into()),
            ..OtlpEnv::default()
        };
        assert_eq!(
            with_base.settings(Some(OtlpProtocol::Grpc)).endpoint,
            "http://collector:4317"
        );
        let with_traces = OtlpEnv {
            base_endpoint: Some("http://ignored:1".into()),
            traces_endpoint: Some("http://tempo:4318/custom".into()),
            ..OtlpEnv::default()
        };
        assert_eq!(
            with_traces.settings(None).endpoint,
            "http://tempo:4318/custom"
        );
    }
}
