//! OTLP export over gRPC, HTTP/protobuf or HTTP/JSON, with gzip: the
//! opentelemetry-otlp exporters, driven by a runtime of their own.

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, ready};
use std::time::Duration;

use opentelemetry_otlp::{
    Compression, Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::error::SetupError;
use crate::export::tls::LoadedTls;
use crate::export::{OtlpProtocol, OtlpSettings};

/// The setting an exporter error names until `setup()` replaces it with the
/// variable the endpoint came from.
pub(crate) const ENDPOINT_SETTING: &str = "OtlpSettings::endpoint";

/// Sends spans to an OTLP endpoint: a collector, Jaeger, Tempo, the Datadog
/// agent, any OTLP backend.
///
/// It brings a small tokio runtime of its own (one thread), so it works the
/// same in sync programs and inside any async runtime, and the network I/O of
/// tonic and reqwest never depends on the application's executor. Each export
/// is bounded by the settings' timeout. Meant for a [`Pipeline`](crate::Pipeline),
/// which calls it from its worker thread.
///
/// ```no_run
/// use workflow_otel::{OtlpExporter, OtlpProtocol, OtlpSettings};
/// # fn main() -> Result<(), workflow_otel::SetupError> {
/// let exporter = OtlpExporter::new(&OtlpSettings {
///     endpoint: "http://localhost:4317".into(),
///     protocol: OtlpProtocol::Grpc,
///     headers: vec![],
///     timeout: std::time::Duration::from_secs(10),
///     gzip: true,
///     tls: Default::default(),
/// })?;
/// let _telemetry = workflow_otel::setup().exporter(exporter).install();
/// # Ok(()) }
/// ```
pub struct OtlpExporter {
    runtime: Option<tokio::runtime::Runtime>,
    inner: opentelemetry_otlp::SpanExporter,
    settings: OtlpSettings,
}

impl OtlpExporter {
    /// An exporter for `settings`. Fails on a header that is not a valid HTTP
    /// header, or if the exporter cannot be built; the endpoint itself is only
    /// reached when spans are sent.
    pub fn new(settings: &OtlpSettings) -> Result<OtlpExporter, SetupError> {
        let runtime = exporter_runtime("workflow-otel-otlp", settings)?;
        let headers = header_map(settings)?;
        let tls = tls_for(settings)?;
        // tonic and reqwest create their connections on the current runtime.
        let _entered = runtime.enter();
        let built = match settings.protocol {
            OtlpProtocol::Grpc => with_tonic(
                opentelemetry_otlp::SpanExporter::builder().with_tonic(),
                settings,
                headers,
                tls.as_ref(),
            )
            .build(),
            OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => with_http(
                opentelemetry_otlp::SpanExporter::builder().with_http(),
                settings,
                tls.as_ref(),
            )?
            .build(),
        };
        let inner = built.map_err(|error| {
            SetupError::new(
                ENDPOINT_SETTING,
                &settings.endpoint,
                format!("cannot build the OTLP exporter: {error}"),
            )
        })?;
        drop(_entered);
        Ok(OtlpExporter {
            runtime: Some(runtime),
            inner,
            settings: settings.clone(),
        })
    }

    /// What this exporter sends to, and how.
    pub fn settings(&self) -> &OtlpSettings {
        &self.settings
    }

    fn run<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        self.runtime.as_ref().map(|runtime| runtime.block_on(work))
    }
}

/// The certificates `settings` need, read and checked; `None` for plain HTTP.
pub(crate) fn tls_for(settings: &OtlpSettings) -> Result<Option<LoadedTls>, SetupError> {
    if crate::export::tls::wanted(settings) {
        crate::export::tls::load(settings).map(Some)
    } else {
        Ok(None)
    }
}

/// `builder` set up for `settings` over gRPC (spans and logs alike).
pub(crate) fn with_tonic<B: WithExportConfig + WithTonicConfig>(
    builder: B,
    settings: &OtlpSettings,
    headers: http::HeaderMap,
    tls: Option<&LoadedTls>,
) -> B {
    #[cfg(feature = "tls")]
    let builder = match tls {
        Some(tls) => builder.with_tls_config(crate::export::tls::tonic_config(tls)),
        None => builder,
    };
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    let mut builder = builder
        .with_endpoint(settings.endpoint.clone())
        .with_timeout(settings.timeout)
        .with_metadata(
            opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers),
        );
    if settings.gzip {
        builder = builder.with_compression(Compression::Gzip);
    }
    builder
}

/// `builder` set up for `settings` over HTTP, protobuf or JSON.
pub(crate) fn with_http<B: WithExportConfig + WithHttpConfig>(
    builder: B,
    settings: &OtlpSettings,
    tls: Option<&LoadedTls>,
) -> Result<B, SetupError> {
    #[cfg(feature = "tls")]
    let builder = match tls {
        Some(tls) => builder.with_http_client(crate::export::tls::reqwest_client(tls, settings)?),
        None => builder,
    };
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    let protocol = if settings.protocol == OtlpProtocol::HttpJson {
        Protocol::HttpJson
    } else {
        Protocol::HttpBinary
    };
    let headers: HashMap<String, String> = settings.headers.iter().cloned().collect();
    let mut builder = builder
        .with_protocol(protocol)
        .with_endpoint(settings.endpoint.clone())
        .with_timeout(settings.timeout)
        .with_headers(headers);
    if settings.gzip {
        builder = builder.with_compression(Compression::Gzip);
    }
    Ok(builder)
}

/// The settings' headers as an HTTP header map; a bad name or value is a
/// setup error that never shows the value.
pub(crate) fn header_map(settings: &OtlpSettings) -> Result<http::HeaderMap, SetupError> {
    let mut headers = http::HeaderMap::new();
    for (name, value) in &settings.headers {
        let header_name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            SetupError::new(
                "OtlpSettings::headers",
                "<not shown>",
                format!("`{name}` is not a valid HTTP header name"),
            )
        })?;
        let header_value = http::HeaderValue::from_str(value).map_err(|_| {
            SetupError::new(
                "OtlpSettings::headers",
                "<not shown>",
                format!("the value of header `{name}` is not a valid HTTP header value"),
            )
        })?;
        headers.append(header_name, header_value);
    }
    Ok(headers)
}

/// A one-thread runtime for an exporter's network I/O.
pub(crate) fn exporter_runtime(
    name: &str,
    settings: &OtlpSettings,
) -> Result<tokio::runtime::Runtime, SetupError> {
    // Every exporter starts here, before any HTTP client is built.
    #[cfg(feature = "tls")]
    crate::export::tls::install_provider();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|error| {
            SetupError::new(
                ENDPOINT_SETTING,
                &settings.endpoint,
                format!("cannot start the exporter's runtime: {error}"),
            )
        })
}

impl SpanExporter for OtlpExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let timeout = self.settings.timeout;
        let result = self
            .run(async {
                match tokio::time::timeout(timeout, self.inner.export(batch)).await {
                    Ok(result) => result,
                    Err(_) => Err(OTelSdkError::Timeout(timeout)),
                }
            })
            .unwrap_or(Err(OTelSdkError::AlreadyShutdown));
        ready(result)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _entered = self.runtime.as_ref().map(|runtime| runtime.enter());
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _entered = self.runtime.as_ref().map(|runtime| runtime.enter());
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl Drop for OtlpExporter {
    fn drop(&mut self) {
        // Never blocks and never panics, even when dropped inside another
        // runtime; pending connections are abandoned.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("endpoint", &self.settings.endpoint)
            .field("protocol", &self.settings.protocol)
            .field("gzip", &self.settings.gzip)
            .finish_non_exhaustive()
    }
}
