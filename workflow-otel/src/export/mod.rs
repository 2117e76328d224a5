//! Where spans go: exporters that take the SDK's `SpanData` batches from the
//! pipeline's worker. The console tree, the JSON-lines file (OTLP/JSON), OTLP
//! over gRPC and HTTP (feature `otlp`), and a fan-out to several of them.
//! To add an exporter, implement `opentelemetry_sdk::trace::SpanExporter`:
//! `Setup::exporter` takes it as it is.

use std::time::Duration;

pub(crate) mod console;
pub(crate) mod fanout;
pub(crate) mod file;
#[cfg(feature = "otlp")]
pub(crate) mod otlp;
pub(crate) mod otlp_json;

pub use console::{ConsoleExporter, DEFAULT_MAX_PENDING_SPANS};
pub use file::JsonLinesExporter;

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
