//! OTLP export of spans over gRPC, HTTP/protobuf or HTTP/JSON, with gzip,
//! on the transport metrics use too; and what every OTLP exporter checks of
//! its settings.

use std::fmt;
use std::future::{Future, ready};
use std::sync::Mutex;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::error::SetupError;
use crate::export::OtlpSettings;
use crate::export::otlp_json::{Fragments, encode_records, encode_request_into};
use crate::export::otlp_transport::{OtlpTransport, Payload, TRACE_EXPORT};
use crate::export::tls::LoadedTls;
use crate::pipeline::{ExportFuture, NativeExport, Records};

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
    transport: OtlpTransport,
    resource: Resource,
    proto_resource: ResourceAttributesWithSchema,
    /// What the encoder of records keeps between batches (in the format
    /// of the protocol).
    fragments: Mutex<Fragments>,
}

impl OtlpExporter {
    /// An exporter for `settings`. Fails on a header that is not a valid HTTP
    /// header, or if the exporter cannot be built; the endpoint itself is only
    /// reached when spans are sent.
    pub fn new(settings: &OtlpSettings) -> Result<OtlpExporter, SetupError> {
        let transport = OtlpTransport::new(settings, "workflow-otel-otlp", ENDPOINT_SETTING)?;
        let resource = Resource::builder_empty().build();
        Ok(OtlpExporter {
            transport,
            proto_resource: ResourceAttributesWithSchema::from(&resource),
            resource,
            fragments: Mutex::default(),
        })
    }

    /// What this exporter sends to, and how.
    pub fn settings(&self) -> &OtlpSettings {
        self.transport.settings()
    }

    fn send(&self, payload: Payload<ExportTraceServiceRequest>) -> OTelSdkResult {
        self.transport
            .send::<_, ExportTraceServiceResponse>(payload, TRACE_EXPORT, self.settings().timeout)
            .map_err(OTelSdkError::InternalFailure)
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
    crate::export::exporter_runtime(name).map_err(|error| {
        SetupError::new(
            ENDPOINT_SETTING,
            &settings.endpoint,
            format!("cannot start the exporter's runtime: {error}"),
        )
    })
}

impl SpanExporter for OtlpExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let result = if batch.is_empty() {
            Ok(())
        } else if self.transport.sends_json() {
            let mut body = Vec::new();
            encode_request_into(&mut body, &self.resource, &batch);
            self.send(Payload::Json(body))
        } else {
            self.send(Payload::Message(ExportTraceServiceRequest {
                resource_spans: group_spans_by_resource_and_scope(batch, &self.proto_resource),
            }))
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
        self.resource = resource.clone();
        self.proto_resource = ResourceAttributesWithSchema::from(resource);
    }
}

impl NativeExport for OtlpExporter {
    /// Encodes our records as they are, for every protocol: the request
    /// equals the one their `SpanData` would make.
    fn export_records<'a>(&'a self, records: &'a Records<'a>) -> ExportFuture<'a> {
        let result = if records.items.is_empty() {
            Ok(())
        } else if self.transport.sends_json() {
            let mut body = Vec::new();
            let mut fragments = self.fragments.lock().unwrap_or_else(|p| p.into_inner());
            encode_records(&mut body, &self.resource, records, &mut fragments);
            drop(fragments);
            self.send(Payload::Json(body))
        } else {
            let mut body = Vec::new();
            let mut fragments = self.fragments.lock().unwrap_or_else(|p| p.into_inner());
            crate::export::otlp_proto::encode_request(
                &mut body,
                &self.proto_resource,
                records,
                &mut fragments,
            );
            drop(fragments);
            self.send(Payload::Encoded(body))
        };
        Box::pin(ready(result))
    }
}

impl fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("endpoint", &self.settings().endpoint)
            .field("protocol", &self.settings().protocol)
            .field("gzip", &self.settings().gzip)
            .finish_non_exhaustive()
    }
}
