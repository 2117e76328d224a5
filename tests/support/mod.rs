//! Shared by the OTLP tests: receivers built on the official protobuf
//! definitions, and a tee that keeps what an exporter was given.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt as _;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::LogsService;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsService;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use workflow_otel::{
    Instrumentation, OtlpExporter, Pipeline, PipelineConfig, checkpoint, child_workflow, step,
    workflow,
};

/// The workload every OTLP test sends: a workflow with a checkpoint event, a
/// step with an argument, a child workflow (a link) that fails (status,
/// exception event).
#[workflow(fields(order.id = 7))]
pub fn checkout() -> Result<(), String> {
    checkpoint("cart_loaded");
    reserve("north");
    pay()
}

#[step(args(warehouse))]
pub fn reserve(warehouse: &str) -> usize {
    warehouse.len()
}

#[child_workflow]
fn pay() -> Result<(), String> {
    Err("card declined".to_owned())
}

/// A resource with a service name and version.
pub fn resource(service: &str) -> Resource {
    Resource::builder_empty()
        .with_attributes([
            opentelemetry::KeyValue::new("service.name", service.to_owned()),
            opentelemetry::KeyValue::new("service.version", "1.0.0"),
        ])
        .build()
}

/// Exports one `checkout` (3 spans) and one client span of another library
/// (4 in all) through `exporter`, and shuts the pipeline down: every span was
/// handed to the exporter, none dropped.
pub fn export_checkout<E: SpanExporter + 'static>(exporter: E, resource: Resource) {
    let pipeline = Pipeline::with_config(exporter, PipelineConfig::default(), Some(resource));
    let provider = SdkTracerProvider::builder()
        .with_span_processor(pipeline.span_processor())
        .build();
    Instrumentation::new(&pipeline).run(|| {
        checkout().unwrap_err();
        let tracer = provider.tracer("http-client");
        let mut span = tracer
            .span_builder("GET /stock")
            .with_kind(SpanKind::Client)
            .start(&tracer);
        span.set_attribute(opentelemetry::KeyValue::new(
            "http.response.status_code",
            200,
        ));
        span.end();
    });
    pipeline.shutdown().unwrap();
    assert_eq!(pipeline.dropped_spans(), 0);
}

/// Requests as they arrived, each with how it was encoded.
pub type Requests<T> = Arc<Mutex<Vec<(String, T)>>>;

pub type Received = Requests<ExportTraceServiceRequest>;
pub type MetricsReceived = Requests<ExportMetricsServiceRequest>;
pub type LogsReceived = Requests<ExportLogsServiceRequest>;

/// Keeps `request` with its `grpc-encoding`.
fn keep<T>(requests: &Requests<T>, request: tonic::Request<T>) {
    let encoding = request
        .metadata()
        .get("grpc-encoding")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("identity")
        .to_owned();
    requests
        .lock()
        .unwrap()
        .push((encoding, request.into_inner()));
}

/// An OTLP/gRPC receiver of spans (and, below, of metrics and of logs).
pub struct GrpcReceiver(pub Received);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        keep(&self.0, request);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

pub struct MetricsReceiver(pub MetricsReceived);

#[tonic::async_trait]
impl MetricsService for MetricsReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        keep(&self.0, request);
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

pub struct LogsReceiver(pub LogsReceived);

#[tonic::async_trait]
impl LogsService for LogsReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        keep(&self.0, request);
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// Serves `router` (gRPC receivers) on a free loopback port, on `runtime`.
pub fn serve_grpc(
    runtime: &tokio::runtime::Runtime,
    router: tonic::transport::server::Router,
) -> std::net::SocketAddr {
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(
            router.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        address
    })
}

/// Answers `POST /v1/traces` as an OTLP/HTTP collector does, decoding the body
/// by its content type: protobuf or OTLP/JSON, gzip or not.
pub async fn http_receiver(listener: tokio::net::TcpListener, received: Received) {
    http_receiver_of(listener, received, "/v1/traces").await;
}

/// Answers `POST {path}` with requests of type `T` (traces or metrics).
pub async fn http_receiver_of<T>(
    listener: tokio::net::TcpListener,
    received: Arc<Mutex<Vec<(String, T)>>>,
    path: &'static str,
) where
    T: prost::Message + Default + serde::de::DeserializeOwned + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let received = received.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let received = received.clone();
                    async move {
                        let header = |name: &str| {
                            request
                                .headers()
                                .get(name)
                                .and_then(|value| value.to_str().ok())
                                .unwrap_or_default()
                                .to_owned()
                        };
                        let (content_type, encoding, request_path) = (
                            header("content-type"),
                            header("content-encoding"),
                            request.uri().path().to_owned(),
                        );
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|body| body.to_bytes().to_vec())
                            .unwrap_or_default();
                        let body = if encoding == "gzip" {
                            let mut plain = Vec::new();
                            std::io::Read::read_to_end(
                                &mut flate2::read::GzDecoder::new(&body[..]),
                                &mut plain,
                            )
                            .unwrap();
                            plain
                        } else {
                            body
                        };
                        let decoded = if content_type == "application/json" {
                            serde_json::from_slice::<T>(&body).expect("valid OTLP/JSON")
                        } else {
                            T::decode(&body[..]).expect("valid OTLP protobuf")
                        };
                        assert_eq!(request_path, path);
                        received
                            .lock()
                            .unwrap()
                            .push((format!("{content_type} {encoding}"), decoded));
                        let mut response = hyper::Response::new(http_body_util::Full::new(
                            hyper::body::Bytes::new(),
                        ));
                        response
                            .headers_mut()
                            .insert("content-type", content_type.parse().unwrap());
                        Ok::<_, std::convert::Infallible>(response)
                    }
                },
            );
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// Keeps a copy of every batch, then sends it on: what the receiver gets must
/// be exactly these spans.
#[derive(Debug)]
pub struct Tee {
    pub otlp: OtlpExporter,
    pub copy: Arc<Mutex<Vec<SpanData>>>,
}

impl SpanExporter for Tee {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.copy.lock().unwrap().extend(batch.iter().cloned());
        self.otlp.export(batch)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.otlp.set_resource(resource);
    }
}

pub fn sorted(mut resource_spans: Vec<ResourceSpans>) -> Vec<ResourceSpans> {
    for resource in resource_spans
        .iter_mut()
        .filter_map(|spans| spans.resource.as_mut())
    {
        resource.attributes.sort_by(|a, b| a.key.cmp(&b.key));
    }
    resource_spans
}

/// Spans grouped by resource and scope, each group sorted by span id: equal
/// for the same spans however a collector batched them on the way.
pub fn normalized(
    resource_spans: Vec<ResourceSpans>,
) -> Vec<(Vec<KeyValue>, Option<InstrumentationScope>, Vec<Span>)> {
    let mut groups: Vec<(Vec<KeyValue>, Option<InstrumentationScope>, Vec<Span>)> = Vec::new();
    for resource_spans in resource_spans {
        let mut attributes = resource_spans
            .resource
            .map(|resource| resource.attributes)
            .unwrap_or_default();
        attributes.sort_by(|a, b| a.key.cmp(&b.key));
        for scope_spans in resource_spans.scope_spans {
            match groups
                .iter_mut()
                .find(|(a, s, _)| *a == attributes && *s == scope_spans.scope)
            {
                Some((_, _, spans)) => spans.extend(scope_spans.spans),
                None => groups.push((attributes.clone(), scope_spans.scope, scope_spans.spans)),
            }
        }
    }
    for (_, _, spans) in &mut groups {
        spans.sort_by(|a, b| a.span_id.cmp(&b.span_id));
    }
    groups.sort_by(|a, b| format!("{:?}", a.1).cmp(&format!("{:?}", b.1)));
    groups
}

/// The spans in everything received so far.
pub fn span_count(received: &Received) -> usize {
    received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, request)| &request.resource_spans)
        .flat_map(|resource| &resource.scope_spans)
        .map(|scope| scope.spans.len())
        .sum()
}

/// Everything received so far, as one list, leaving the receiver empty.
pub fn take_received(received: &Received) -> Vec<ResourceSpans> {
    std::mem::take(&mut *received.lock().unwrap())
        .into_iter()
        .flat_map(|(_, request)| request.resource_spans)
        .collect()
}

/// Opens and ends a client span of another library ("http-client", through
/// the global tracer provider) that failed with `status_code`, with an
/// exception event whose message is `message`.
pub fn failed_client_span(name: &'static str, status_code: i64, message: &'static str) {
    let tracer = opentelemetry::global::tracer_provider().tracer("http-client");
    let mut span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Client)
        .start(&tracer);
    span.set_attribute(opentelemetry::KeyValue::new(
        "http.response.status_code",
        status_code,
    ));
    span.add_event(
        "exception",
        vec![opentelemetry::KeyValue::new("exception.message", message)],
    );
    span.end();
}

/// An environment of exactly `settings`, for `Setup::environment_from`.
pub fn environment<const N: usize>(
    settings: [(&'static str, String); N],
) -> impl Fn(&str) -> Option<String> + 'static {
    move |name| {
        settings
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    }
}

/// A loopback address nothing listens on: connections to it are refused.
pub fn refused_address() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A loopback address that accepts every connection and keeps it open
/// without a byte in reply: a hung backend.
pub fn silent_address() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    address
}
