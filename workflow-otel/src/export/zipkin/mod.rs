//! Zipkin export: spans as Zipkin v2 JSON, posted to a Zipkin server's
//! `/api/v2/spans` (or anything that reads it: Jaeger's and the
//! OpenTelemetry Collector's Zipkin receivers).
//!
//! The OpenTelemetry project has deprecated its own Zipkin exporters in
//! favour of OTLP (Zipkin servers read OTLP through the collector or the
//! `zipkin-otel` module); this one is for a Zipkin server with no collector
//! in front of it, and follows the specification's mapping (see
//! [`encode`]).

mod encode;
mod remote;
mod text;

use std::fmt;
use std::future::{Future, ready};
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::error::SetupError;
use crate::pipeline::{ExportFuture, NativeExport, Records};

/// `OTEL_EXPORTER_ZIPKIN_ENDPOINT`'s default.
pub const DEFAULT_ZIPKIN_ENDPOINT: &str = "http://localhost:9411/api/v2/spans";

/// How to reach a Zipkin server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipkinSettings {
    /// The full URL spans are posted to (`OTEL_EXPORTER_ZIPKIN_ENDPOINT`,
    /// default [`DEFAULT_ZIPKIN_ENDPOINT`]). `https://` needs the `tls`
    /// feature.
    pub endpoint: String,
    /// How long one export may take (`OTEL_EXPORTER_ZIPKIN_TIMEOUT`, in
    /// milliseconds; 10 s).
    pub timeout: Duration,
    /// Whether requests are gzip-compressed (off: Zipkin servers, Jaeger
    /// and the Collector's receiver accept it, not every proxy does).
    pub gzip: bool,
}

impl Default for ZipkinSettings {
    fn default() -> Self {
        ZipkinSettings {
            endpoint: DEFAULT_ZIPKIN_ENDPOINT.to_owned(),
            timeout: Duration::from_secs(10),
            gzip: false,
        }
    }
}

/// The setting an exporter error names until `setup()` replaces it.
pub(crate) const ENDPOINT_SETTING: &str = "ZipkinSettings::endpoint";

/// Sends spans to a Zipkin server as Zipkin v2 JSON over HTTP POST.
///
/// Like [`OtlpExporter`](crate::OtlpExporter), it brings a one-thread
/// runtime of its own, and every export is bounded by the settings' timeout
/// (and the pipeline's): a hung or refused server costs the export thread,
/// never the program, and what is lost is counted by the pipeline.
///
/// ```no_run
/// use workflow_otel::{ZipkinExporter, ZipkinSettings};
/// # fn main() -> Result<(), workflow_otel::SetupError> {
/// let exporter = ZipkinExporter::new(&ZipkinSettings::default())?;
/// let _telemetry = workflow_otel::setup().exporter(exporter).install();
/// # Ok(()) }
/// ```
pub struct ZipkinExporter {
    runtime: Option<tokio::runtime::Runtime>,
    client: reqwest::Client,
    settings: ZipkinSettings,
    shared: encode::Shared,
}

impl ZipkinExporter {
    /// An exporter for `settings`. Fails on an endpoint that is not an
    /// `http://` URL (or `https://` with the `tls` feature); the server is
    /// only reached when spans are sent.
    pub fn new(settings: &ZipkinSettings) -> Result<ZipkinExporter, SetupError> {
        let endpoint = crate::setup::env::without_credentials(&settings.endpoint);
        let fail = |reason: String| SetupError::new(ENDPOINT_SETTING, &endpoint, reason);
        let url = reqwest::Url::parse(&settings.endpoint)
            .map_err(|error| fail(format!("not a URL: {error}")))?;
        match url.scheme() {
            "http" => {}
            "https" if cfg!(feature = "tls") => {}
            "https" => {
                return Err(fail(
                    "https:// needs the `tls` feature of workflow-otel".to_owned(),
                ));
            }
            other => return Err(fail(format!("`{other}` is not http or https"))),
        }
        #[cfg(feature = "tls")]
        crate::export::tls::install_provider();
        let runtime = crate::export::exporter_runtime("workflow-otel-zipkin")
            .map_err(|error| fail(format!("cannot start the exporter's runtime: {error}")))?;
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|error| fail(format!("cannot build the HTTP client: {error}")))?;
        Ok(ZipkinExporter {
            runtime: Some(runtime),
            client,
            settings: settings.clone(),
            shared: encode::Shared::new(&Resource::builder_empty().build()),
        })
    }

    /// Where this exporter sends to, and how.
    pub fn settings(&self) -> &ZipkinSettings {
        &self.settings
    }

    /// Posts one JSON array of spans and waits for the answer, within the
    /// timeout.
    fn send(&self, body: Vec<u8>) -> OTelSdkResult {
        let Some(runtime) = &self.runtime else {
            return Err(OTelSdkError::InternalFailure(
                "the exporter is shut down".to_owned(),
            ));
        };
        let timeout = self.settings.timeout;
        let result = runtime.block_on(async {
            match tokio::time::timeout(timeout, self.post(body)).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            }
        });
        result.map_err(OTelSdkError::InternalFailure)
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), String> {
        let mut post = self
            .client
            .post(&self.settings.endpoint)
            .header("content-type", "application/json");
        let body = if self.settings.gzip {
            post = post.header("content-encoding", "gzip");
            crate::export::gzip(&body).map_err(|error| error.to_string())?
        } else {
            body
        };
        crate::export::send_post(post.body(body)).await
    }
}

impl SpanExporter for ZipkinExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let result = if batch.is_empty() {
            Ok(())
        } else {
            let mut body = Vec::new();
            encode::encode_spans(&mut body, &self.shared, &batch);
            self.send(body)
        };
        ready(result)
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        // Every export waits for its answer: nothing is left to send.
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.shared = encode::Shared::new(resource);
    }
}

impl NativeExport for ZipkinExporter {
    /// Encodes our records as they are: the same JSON their `SpanData`
    /// would make.
    fn export_records<'a>(&'a self, records: &'a Records<'a>) -> ExportFuture<'a> {
        let result = if records.items.is_empty() {
            Ok(())
        } else {
            let mut body = Vec::new();
            encode::encode_records(&mut body, &self.shared, records);
            self.send(body)
        };
        Box::pin(ready(result))
    }
}

impl fmt::Debug for ZipkinExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZipkinExporter")
            .field(
                "endpoint",
                &crate::setup::env::without_credentials(&self.settings.endpoint),
            )
            .field("timeout", &self.settings.timeout)
            .field("gzip", &self.settings.gzip)
            .finish_non_exhaustive()
    }
}

impl Drop for ZipkinExporter {
    fn drop(&mut self) {
        // Never blocks and never panics, even when dropped inside another
        // runtime; pending connections are abandoned.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
