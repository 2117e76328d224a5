//! Where spans go: the console tree, the JSON-lines file (OTLP/JSON), OTLP
//! over gRPC and HTTP (feature `otlp`), and a fan-out to several of them.
//! The file and OTLP encode the pipeline's records as they are (see
//! `pipeline::NativeExport`); every exporter is also an
//! `opentelemetry_sdk::trace::SpanExporter` of `SpanData`. To add an
//! exporter, implement that trait: `Setup::exporter` takes it as it is.

use std::path::PathBuf;
use std::time::Duration;

pub(crate) mod console;
pub(crate) mod fanout;
pub(crate) mod file;
pub(crate) mod fragments;
#[cfg(feature = "otlp")]
pub(crate) mod otlp;
pub(crate) mod otlp_json;
#[cfg(feature = "otlp")]
pub(crate) mod otlp_proto;
#[cfg(feature = "otlp")]
pub(crate) mod otlp_transport;
#[cfg(feature = "otlp")]
pub(crate) mod tls;
#[cfg(feature = "zipkin")]
pub(crate) mod zipkin;

pub use console::{ConsoleExporter, DEFAULT_MAX_PENDING_SPANS};
pub use file::JsonLinesExporter;
#[cfg(feature = "zipkin")]
pub use zipkin::{DEFAULT_ZIPKIN_ENDPOINT, ZipkinExporter, ZipkinSettings};

/// A one-thread runtime for an exporter's network I/O: sending works the
/// same from sync code and from inside any async runtime.
#[cfg(any(feature = "otlp", feature = "zipkin"))]
pub(crate) fn exporter_runtime(name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
}

/// An error and its sources, `: ` between them: the cause of a failed
/// connection (a refused certificate, say) is in the sources.
#[cfg(any(feature = "otlp", feature = "zipkin"))]
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    use std::fmt::Write as _;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// Sends a request and waits for a 2xx answer; the error never names the
/// URL (reqwest's text would, credentials and all).
#[cfg(any(feature = "otlp", feature = "zipkin"))]
pub(crate) async fn send_post(request: reqwest::RequestBuilder) -> Result<(), String> {
    let response = request
        .send()
        .await
        .map_err(|error| format!("request failed: {}", error_chain(&error.without_url())))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP status {}", response.status()))
    }
}

/// gzip at flate2's fastest level: for spans, a 26th of the bytes for 1.4×
/// the export thread's time (`cargo bench --bench export_throughput`, Zipkin
/// JSON); the default level took 3.1× for a 38th.
#[cfg(any(feature = "otlp", feature = "zipkin"))]
pub(crate) fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes)?;
    encoder.finish()
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
    /// Certificates for `https://` endpoints (feature `tls`).
    pub tls: OtlpTls,
}

/// Certificates for an OTLP endpoint over TLS, as the
/// `OTEL_EXPORTER_OTLP_CERTIFICATE`, `_CLIENT_CERTIFICATE` and `_CLIENT_KEY`
/// variables give them: PEM files, read and checked when the exporter is
/// built. With none, an `https://` endpoint is verified against the system's
/// root certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtlpTls {
    /// A CA certificate to trust besides the system's (a private CA).
    pub certificate: Option<PathBuf>,
    /// This client's certificate, for mutual TLS.
    pub client_certificate: Option<PathBuf>,
    /// This client's private key, for mutual TLS.
    pub client_key: Option<PathBuf>,
}
