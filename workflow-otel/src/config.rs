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
    /// Where the endpoint comes from, for error messages.
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    pub(crate) fn endpoint_source(&self) -> &'static str {
        if self.traces_endpoint.is_some() {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        } else if self.base_endpoint.is_some() {
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        } else {
            "the default OTLP endpoint"
        }
    }

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
        let (kinds, problem) = exporters("OTEL_TRACES_EXPORTER", &value, &file);
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
    let otlp = &mut settings.otlp;
    for (name, target) in [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &mut otlp.base_endpoint),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            &mut otlp.traces_endpoint,
        ),
    ] {
        if let Some(value) = get(name) {
            read(name, url(name, &value).map(|url| *target = Some(url)));
        }
    }
    for name in [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    ] {
        if let Some(value) = get(name) {
            read(
                name,
                protocol(name, &value).map(|p| otlp.protocol = Some(p)),
            );
        }
    }
    for name in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        if let Some(value) = get(name) {
            // Signal-specific headers add to, and override, the general ones.
            let parsed = key_value_list(name, &value, true).and_then(|pairs| {
                for (key, header) in &pairs {
                    check_header(name, key, header)?;
                }
                Ok(pairs)
            });
            read(
                name,
                parsed.map(|pairs| {
                    for (key, header) in pairs {
                        otlp.headers
                            .retain(|(existing, _)| !existing.eq_ignore_ascii_case(&key));
                        otlp.headers.push((key, header));
                    }
                }),
            );
        }
    }
    for name in [
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    ] {
        if let Some(value) = get(name) {
            read(
                name,
                millis(name, &value, 1).map(|t| otlp.timeout = Some(t)),
            );
        }
    }
    for name in [
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    ] {
        if let Some(value) = get(name) {
            let gzip = match value.trim().to_ascii_lowercase().as_str() {
                "gzip" => Ok(true),
                "none" => Ok(false),
                _ => Err(SetupError::new(name, &value, "expected `gzip` or `none`")),
            };
            read(name, gzip.map(|gzip| otlp.gzip = Some(gzip)));
        }
    }
    (settings, problems)
}

/// The exporters named in `value` (case-insensitive, comma-separated). An
/// unknown name is left out and reported; the others still count.
fn exporters(name: &str, value: &str, file: &str) -> (Vec<ExporterKind>, Result<(), SetupError>) {
    let mut kinds = Vec::new();
    let mut unknown = Vec::new();
    for item in value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let kind = match item.to_ascii_lowercase().as_str() {
            "otlp" => ExporterKind::Otlp,
            "console" => ExporterKind::Console,
            "jsonl" => ExporterKind::File(PathBuf::from(file)),
            "none" => ExporterKind::None,
            _ => {
                unknown.push(item);
                continue;
            }
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if !unknown.is_empty() {
        let problem = SetupError::new(
            name,
            value,
            format!(
                "unknown exporter `{}`; expected a list of `otlp`, `console`, `jsonl`, `none`",
                unknown.join("`, `")
            ),
        );
        return (kinds, Err(problem));
    }
    if kinds.len() > 1 && kinds.contains(&ExporterKind::None) {
        kinds.retain(|kind| *kind != ExporterKind::None);
        let problem = SetupError::new(
            name,
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
fn without_credentials(value: &str) -> String {
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
    let mut pairs = Vec::new();
    for member in value.split(',') {
        if member.trim().is_empty() {
            continue;
        }
        let Some((key, raw)) = member.split_once('=') else {
            let what = if secret {
                "a member".to_owned()
            } else {
                format!("`{}`", member.trim())
            };
            return Err(SetupError::new(
                name,
                &shown,
                format!("{what} has no `=`: expected key=value pairs separated by commas"),
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            let what = if secret {
                "a member".to_owned()
            } else {
                format!("`{}`", member.trim())
            };
            return Err(SetupError::new(
                name,
                &shown,
                format!("{what} has an empty key"),
            ));
        }
        let decoded = crate::w3c::percent_decode(raw.trim()).ok_or_else(|| {
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
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> (EnvSettings, Vec<SetupError>) {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_env(|name| map.get(name).cloned())
    }

    /// The one problem `pairs` give.
    fn problem(pairs: &[(&str, &str)]) -> SetupError {
        let (_, problems) = env(pairs);
        assert_eq!(problems.len(), 1, "{pairs:?}: {problems:?}");
        problems[0].clone()
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
            ("OTEL_BSP_EXPORT_TIMEOUT", "0", "from 1 to"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0", "from 1 to"),
            (
                "OTEL_BSP_MAX_QUEUE_SIZE",
                "100000000000",
                "from 1 to 2147483647",
            ),
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
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://collector:99999",
                "optional port",
            ),
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "http/xml",
                "`grpc`, `http/protobuf` or `http/json`",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "ten", "milliseconds"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0", "from 1 to"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "`gzip` or `none`"),
        ];
        for (name, value, reason) in cases {
            let error = problem(&[(name, value)]);
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
        let error = problem(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ]);
        assert_eq!(
            (error.setting.as_str(), error.value.as_str()),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5")
        );
        let error = problem(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20"),
        ]);
        assert_eq!(error.setting, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE");
    }

    #[test]
    fn a_bad_value_keeps_that_setting_at_its_default_and_the_others_apply() {
        let (settings, problems) = env(&[
            ("OTEL_TRACES_EXPORTER", "jsonl,zipkin"),
            ("WORKFLOW_OTEL_FILE", "/tmp/t.jsonl"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "0"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
        ]);
        let named: Vec<&str> = problems.iter().map(|p| p.setting.as_str()).collect();
        assert_eq!(
            named,
            [
                "OTEL_TRACES_EXPORTER",
                "OTEL_TRACES_SAMPLER",
                "OTEL_BSP_EXPORT_TIMEOUT"
            ]
        );
        // The exporter asked for still counts; the rest keep their defaults.
        assert_eq!(
            settings.exporters,
            Some(vec![ExporterKind::File("/tmp/t.jsonl".into())])
        );
        assert!(settings.sampler.is_none());
        assert_eq!(
            settings.pipeline.export_timeout,
            PipelineConfig::default().export_timeout
        );
        assert_eq!(
            settings.pipeline.scheduled_delay,
            Duration::from_millis(250)
        );
        // A traceidratio with a bad ratio is still a traceidratio, at 1.
        let (settings, _) = env(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "lots"),
        ]);
        assert_eq!(
            format!("{:?}", settings.sampler.unwrap()),
            format!("{:?}", Sampler::TraceIdRatioBased(1.0))
        );
    }

    #[test]
    fn enumerated_values_are_case_insensitive() {
        let (settings, problems) = env(&[
            ("OTEL_TRACES_EXPORTER", "CONSOLE,Otlp"),
            ("OTEL_TRACES_SAMPLER", "ParentBased_TraceIdRatio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "HTTP/JSON"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP"),
        ]);
        assert_eq!(problems, []);
        assert_eq!(
            settings.exporters,
            Some(vec![ExporterKind::Console, ExporterKind::Otlp])
        );
        assert_eq!(
            format!("{:?}", settings.sampler.unwrap()),
            format!(
                "{:?}",
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.5)))
            )
        );
        assert_eq!(settings.otlp.protocol, Some(OtlpProtocol::HttpJson));
        assert_eq!(settings.otlp.gzip, Some(true));
    }

    #[test]
    fn secrets_never_reach_an_error_message() {
        let secret = "sk-live-0123456789";
        for (name, value) in [
            ("OTEL_EXPORTER_OTLP_HEADERS", format!("api-key {secret}")),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", format!("x=1,{secret}")),
            ("OTEL_EXPORTER_OTLP_HEADERS", format!("=%zz{secret}")),
            ("OTEL_EXPORTER_OTLP_HEADERS", format!("api-key=%zz{secret}")),
            ("OTEL_EXPORTER_OTLP_HEADERS", format!("api-key={secret}%0A")),
            ("OTEL_EXPORTER_OTLP_HEADERS", format!("bad key={secret}")),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://user:{secret}@collector:99999"),
            ),
        ] {
            let error = problem(&[(name, &value)]);
            assert_eq!(error.setting, name, "the variable actually set is named");
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains(secret), "{shown}");
        }
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
        ]);
        assert_eq!(settings.1, []);
        let settings = settings.0;
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
