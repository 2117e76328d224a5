//! The `OTEL_EXPORTER_OTLP_*` variables, general and per signal (traces,
//! metrics, logs): the endpoint, protocol, headers, timeout, compression and
//! certificates each signal's exporter uses.

use std::path::PathBuf;
use std::time::Duration;

use super::{check_header, key_value_list, millis, protocol, url};
use crate::error::SetupError;
use crate::export::{OtlpProtocol, OtlpSettings};

/// The OTLP variables; turned into [`OtlpSettings`] once the protocol (which
/// decides default ports and paths) is known.
#[derive(Debug, Clone, Default)]
pub(crate) struct OtlpEnv {
    pub(crate) signal: Signal,
    pub(crate) base_endpoint: Option<String>,
    pub(crate) signal_endpoint: Option<String>,
    pub(crate) protocol: Option<OtlpProtocol>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) gzip: Option<bool>,
    pub(crate) tls: crate::export::OtlpTls,
    /// `OTEL_EXPORTER_OTLP_INSECURE`: read and checked; with the scheme every
    /// endpoint here must have, it changes nothing (as the specification says).
    pub(crate) insecure: Option<bool>,
}

impl OtlpEnv {
    /// Where the endpoint comes from, for error messages.
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    pub(crate) fn endpoint_source(&self) -> &'static str {
        if self.signal_endpoint.is_some() {
            self.signal.endpoint_variable()
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
        let path = self.signal.path();
        let endpoint = match (&self.signal_endpoint, &self.base_endpoint, protocol) {
            // The signal-specific variable is used as is.
            (Some(endpoint), _, _) => endpoint.clone(),
            (None, Some(base), OtlpProtocol::Grpc) => base.clone(),
            (None, Some(base), _) => format!("{}/{path}", base.trim_end_matches('/')),
            (None, None, OtlpProtocol::Grpc) => "http://localhost:4317".to_owned(),
            (None, None, _) => format!("http://localhost:4318/{path}"),
        };
        OtlpSettings {
            endpoint,
            protocol,
            headers: self.headers.clone(),
            timeout: self.timeout.unwrap_or(Duration::from_secs(10)),
            gzip: self.gzip.unwrap_or(false),
            tls: self.tls.clone(),
        }
    }
}

/// The signal an OTLP exporter sends: it picks the signal-specific variables
/// and the default HTTP path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Signal {
    #[default]
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    /// The general variable and this signal's, for one setting, in the order
    /// they apply (the signal's overrides).
    fn variables(self, setting: &str) -> [String; 2] {
        let signal = match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
            Signal::Logs => "LOGS",
        };
        [
            format!("OTEL_EXPORTER_OTLP_{setting}"),
            format!("OTEL_EXPORTER_OTLP_{signal}_{setting}"),
        ]
    }

    fn endpoint_variable(self) -> &'static str {
        match self {
            Signal::Traces => "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            Signal::Metrics => "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            Signal::Logs => "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Signal::Traces => "v1/traces",
            Signal::Metrics => "v1/metrics",
            Signal::Logs => "v1/logs",
        }
    }
}

/// The `OTEL_EXPORTER_OTLP_*` variables for `signal`.
pub(super) fn otlp_env(
    get: &impl Fn(&str) -> Option<String>,
    signal: Signal,
    problems: &mut Vec<SetupError>,
) -> OtlpEnv {
    let mut otlp = OtlpEnv {
        signal,
        ..OtlpEnv::default()
    };
    let mut read = |outcome: Result<(), SetupError>| {
        if let Err(problem) = outcome {
            problems.push(problem);
        }
    };
    let [general, specific] = signal.variables("ENDPOINT");
    for (name, target) in [
        (general, &mut otlp.base_endpoint),
        (specific, &mut otlp.signal_endpoint),
    ] {
        if let Some(value) = get(&name) {
            read(url(&name, &value).map(|url| *target = Some(url)));
        }
    }
    for name in signal.variables("PROTOCOL") {
        if let Some(value) = get(&name) {
            read(protocol(&name, &value).map(|p| otlp.protocol = Some(p)));
        }
    }
    for name in signal.variables("HEADERS") {
        if let Some(value) = get(&name) {
            // Signal-specific headers add to, and override, the general ones.
            let parsed = key_value_list(&name, &value, true).and_then(|pairs| {
                for (key, header) in &pairs {
                    check_header(&name, key, header)?;
                }
                Ok(pairs)
            });
            read(parsed.map(|pairs| {
                for (key, header) in pairs {
                    otlp.headers
                        .retain(|(existing, _)| !existing.eq_ignore_ascii_case(&key));
                    otlp.headers.push((key, header));
                }
            }));
        }
    }
    for name in signal.variables("TIMEOUT") {
        if let Some(value) = get(&name) {
            read(millis(&name, &value, 1).map(|t| otlp.timeout = Some(t)));
        }
    }
    for (setting, target) in [
        ("CERTIFICATE", 0),
        ("CLIENT_CERTIFICATE", 1),
        ("CLIENT_KEY", 2),
    ] {
        for name in signal.variables(setting) {
            if let Some(value) = get(&name) {
                let path = Some(PathBuf::from(value.trim()));
                match target {
                    0 => otlp.tls.certificate = path,
                    1 => otlp.tls.client_certificate = path,
                    _ => otlp.tls.client_key = path,
                }
            }
        }
    }
    for name in signal.variables("INSECURE") {
        if let Some(value) = get(&name) {
            match value.trim().to_ascii_lowercase().as_str() {
                "true" => otlp.insecure = Some(true),
                "false" => otlp.insecure = Some(false),
                _ => read(Err(SetupError::new(
                    &name,
                    &value,
                    "expected `true` or `false`",
                ))),
            }
        }
    }
    for name in signal.variables("COMPRESSION") {
        if let Some(value) = get(&name) {
            let gzip = match value.trim().to_ascii_lowercase().as_str() {
                "gzip" => Ok(true),
                "none" => Ok(false),
                _ => Err(SetupError::new(&name, &value, "expected `gzip` or `none`")),
            };
            read(gzip.map(|gzip| otlp.gzip = Some(gzip)));
        }
    }
    otlp
}
