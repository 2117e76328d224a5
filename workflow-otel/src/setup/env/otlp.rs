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
    fn upper(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
            Signal::Logs => "LOGS",
        }
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
/// Reads the OTLP variables of `scope` into `otlp`: the general ones
/// (`OTEL_EXPORTER_OTLP_*`) for `None`, a signal's own for `Some`, read
/// after the general ones so that they override them (and add headers).
pub(super) fn read_otlp(
    get: &impl Fn(&str) -> Option<String>,
    scope: Option<Signal>,
    otlp: &mut OtlpEnv,
    problems: &mut Vec<SetupError>,
) {
    let variable = |setting: &str| match scope {
        None => format!("OTEL_EXPORTER_OTLP_{setting}"),
        Some(signal) => format!("OTEL_EXPORTER_OTLP_{}_{setting}", signal.upper()),
    };
    let mut read = |setting: &str, apply: &mut dyn FnMut(&str, &str) -> Result<(), SetupError>| {
        let name = variable(setting);
        if let Some(value) = get(&name)
            && let Err(problem) = apply(&name, &value)
        {
            problems.push(problem);
        }
    };
    read("ENDPOINT", &mut |name, value| {
        let url = url(name, value)?;
        match scope {
            None => otlp.base_endpoint = Some(url),
            Some(_) => otlp.signal_endpoint = Some(url),
        }
        Ok(())
    });
    read("PROTOCOL", &mut |name, value| {
        otlp.protocol = Some(protocol(name, value)?);
        Ok(())
    });
    read("HEADERS", &mut |name, value| {
        let pairs = key_value_list(name, value, true)?;
        for (key, header) in &pairs {
            check_header(name, key, header)?;
        }
        for (key, header) in pairs {
            otlp.headers
                .retain(|(existing, _)| !existing.eq_ignore_ascii_case(&key));
            otlp.headers.push((key, header));
        }
        Ok(())
    });
    read("TIMEOUT", &mut |name, value| {
        otlp.timeout = Some(millis(name, value, 1)?);
        Ok(())
    });
    read("CERTIFICATE", &mut |_, value| {
        otlp.tls.certificate = Some(PathBuf::from(value.trim()));
        Ok(())
    });
    read("CLIENT_CERTIFICATE", &mut |_, value| {
        otlp.tls.client_certificate = Some(PathBuf::from(value.trim()));
        Ok(())
    });
    read("CLIENT_KEY", &mut |_, value| {
        otlp.tls.client_key = Some(PathBuf::from(value.trim()));
        Ok(())
    });
    read("INSECURE", &mut |name, value| {
        otlp.insecure = Some(match value.trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(SetupError::new(name, value, "expected `true` or `false`")),
        });
        Ok(())
    });
    read("COMPRESSION", &mut |name, value| {
        otlp.gzip = Some(match value.trim().to_ascii_lowercase().as_str() {
            "gzip" => true,
            "none" => false,
            _ => return Err(SetupError::new(name, value, "expected `gzip` or `none`")),
        });
        Ok(())
    });
}
