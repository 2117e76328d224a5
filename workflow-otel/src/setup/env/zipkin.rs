//! The Zipkin exporter's variables (`OTEL_EXPORTER_ZIPKIN_*`), as the SDK
//! environment specification names them.

use std::time::Duration;

use crate::error::SetupError;

/// `OTEL_EXPORTER_ZIPKIN_ENDPOINT` and `OTEL_EXPORTER_ZIPKIN_TIMEOUT`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ZipkinEnv {
    pub(crate) endpoint: Option<String>,
    pub(crate) timeout: Option<Duration>,
}

pub(crate) fn read_zipkin(
    get: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<SetupError>,
) -> ZipkinEnv {
    let mut zipkin = ZipkinEnv::default();
    if let Some(value) = get("OTEL_EXPORTER_ZIPKIN_ENDPOINT") {
        match super::url("OTEL_EXPORTER_ZIPKIN_ENDPOINT", &value) {
            Ok(endpoint) => zipkin.endpoint = Some(endpoint),
            Err(problem) => problems.push(problem),
        }
    }
    if let Some(value) = get("OTEL_EXPORTER_ZIPKIN_TIMEOUT") {
        // Milliseconds, as for every exporter timeout of the specification.
        match super::millis("OTEL_EXPORTER_ZIPKIN_TIMEOUT", &value, 1) {
            Ok(timeout) => zipkin.timeout = Some(timeout),
            Err(problem) => problems.push(problem),
        }
    }
    zipkin
}
