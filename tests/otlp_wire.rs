//! OTLP on the wire, without Python: in-test receivers built on the official
//! protobuf definitions (opentelemetry-proto's generated gRPC server; prost and
//! the OTLP/JSON mapping behind a plain HTTP server) take what the OTLP
//! exporter sends over each protocol, and every request must equal the official
//! conversion of the spans the pipeline exported.

mod support;

use support::{
    GrpcReceiver, Received, Tee, checkout, export_checkout, http_receiver, reserve, resource,
    sorted, span_count, take_received,
};

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::trace::SpanData;
use workflow_otel::{
    Instrumentation, OtlpExporter, OtlpProtocol, OtlpSettings, Pipeline, PipelineConfig,
};

fn send_through(
    protocol: OtlpProtocol,
    endpoint: String,
    gzip: bool,
    received: &Received,
) -> Vec<SpanData> {
    let otlp = OtlpExporter::new(&OtlpSettings {
        endpoint,
        protocol,
        headers: vec![("x-api-key".to_owned(), "secret".to_owned())],
        timeout: Duration::from_secs(5),
        gzip,
        tls: Default::default(),
    })
    .unwrap();
    let copy = Arc::new(Mutex::new(Vec::new()));
    let resource = resource("wire-test");
    export_checkout(
        Tee {
            otlp,
            copy: copy.clone(),
        },
        resource.clone(),
    );
    let spans = copy.lock().unwrap().clone();
    assert_eq!(spans.len(), 4);
    let expected = group_spans_by_resource_and_scope(
        spans.clone(),
        &ResourceAttributesWithSchema::from(&resource),
    );
    let arrived = take_received(received);
    assert_eq!(sorted(arrived), sorted(expected), "{protocol:?}");
    spans
}

#[test]
fn every_protocol_delivers_exactly_the_exported_spans() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let grpc_received = Received::default();
    let http_received = Received::default();
    let (grpc_address, http_address): (SocketAddr, SocketAddr) = runtime.block_on(async {
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addresses = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
        let service = TraceServiceServer::new(GrpcReceiver(grpc_received.clone()))
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(grpc)),
        );
        tokio::spawn(http_receiver(http, http_received.clone()));
        addresses
    });

    for gzip in [false, true] {
        let spans = send_through(
            OtlpProtocol::Grpc,
            format!("http://{grpc_address}"),
            gzip,
            &grpc_received,
        );
        assert!(spans.iter().any(|span| span.name == "checkout"));
        send_through(
            OtlpProtocol::HttpProtobuf,
            format!("http://{http_address}/v1/traces"),
            gzip,
            &http_received,
        );
        send_through(
            OtlpProtocol::HttpJson,
            format!("http://{http_address}/v1/traces"),
            gzip,
            &http_received,
        );
    }
}

#[test]
fn the_content_type_and_compression_on_the_wire_are_the_ones_chosen() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let received = Received::default();
    let address = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(http_receiver(listener, received.clone()));
        address
    });
    let cases = [
        (OtlpProtocol::HttpProtobuf, false, "application/x-protobuf "),
        (
            OtlpProtocol::HttpProtobuf,
            true,
            "application/x-protobuf gzip",
        ),
        (OtlpProtocol::HttpJson, false, "application/json "),
        (OtlpProtocol::HttpJson, true, "application/json gzip"),
    ];
    for (protocol, gzip, wire) in cases {
        let before = received.lock().unwrap().len();
        let otlp = OtlpExporter::new(&OtlpSettings {
            endpoint: format!("http://{address}/v1/traces"),
            protocol,
            headers: vec![],
            timeout: Duration::from_secs(5),
            gzip,
            tls: Default::default(),
        })
        .unwrap();
        let pipeline = Pipeline::new(otlp);
        Instrumentation::new(&pipeline).run(|| reserve("south"));
        pipeline.shutdown().unwrap();
        let requests = received.lock().unwrap();
        assert_eq!(requests.len(), before + 1);
        assert_eq!(requests[before].0, wire, "{protocol:?} gzip={gzip}");
    }
}

// ---------------------------------------------------------------- failing backends

fn grpc_settings(address: SocketAddr) -> OtlpSettings {
    OtlpSettings {
        endpoint: format!("http://{address}"),
        protocol: OtlpProtocol::Grpc,
        headers: vec![],
        timeout: Duration::from_millis(300),
        gzip: false,
        tls: Default::default(),
    }
}

fn failing_config(report: fn(&workflow_otel::DropReport)) -> PipelineConfig {
    PipelineConfig {
        max_queue_size: 10_000,
        max_export_batch_size: 16,
        scheduled_delay: Duration::from_millis(20),
        export_timeout: Duration::from_secs(1),
        drop_report_interval: Duration::ZERO,
        drop_report: report,
        ..PipelineConfig::default()
    }
}

/// 20 workflows of 1 + 2 spans each.
fn workload(pipeline: &Pipeline) -> u64 {
    Instrumentation::new(pipeline).run(|| {
        for _ in 0..20 {
            checkout().unwrap_err();
        }
    });
    20 * 3
}

static ABSENT_REPORTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn absent_report(report: &workflow_otel::DropReport) {
    ABSENT_REPORTED.store(report.dropped_total, std::sync::atomic::Ordering::SeqCst);
}

#[test]
fn a_backend_absent_from_the_start_loses_every_span_and_says_so() {
    let address = support::refused_address();
    let pipeline = Pipeline::with_config(
        OtlpExporter::new(&grpc_settings(address)).unwrap(),
        failing_config(absent_report),
        None,
    );
    let produced = workload(&pipeline);
    let started = std::time::Instant::now();
    let _ = pipeline.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "shutdown is bounded: {:?}",
        started.elapsed()
    );
    assert_eq!(pipeline.exported_spans(), 0);
    assert_eq!(pipeline.dropped_spans(), produced);
    assert_eq!(
        ABSENT_REPORTED.load(std::sync::atomic::Ordering::SeqCst),
        produced,
        "the loss was reported"
    );
}

#[test]
fn a_backend_that_accepts_and_never_answers_costs_only_the_export_timeout() {
    let address = support::silent_address();
    let pipeline = Pipeline::with_config(
        OtlpExporter::new(&grpc_settings(address)).unwrap(),
        failing_config(|_| {}),
        None,
    );
    let produced = workload(&pipeline);
    let _ = pipeline.shutdown();
    assert_eq!(pipeline.exported_spans(), 0);
    assert_eq!(pipeline.dropped_spans(), produced);
}

#[test]
fn a_backend_that_dies_mid_run_loses_exactly_what_was_sent_after() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let received = Received::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (address, server) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(GrpcReceiver(received.clone())))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                ),
        );
        (address, server)
    });
    let pipeline = Pipeline::with_config(
        OtlpExporter::new(&grpc_settings(address)).unwrap(),
        failing_config(|_| {}),
        None,
    );
    let before = workload(&pipeline);
    pipeline.force_flush().unwrap();
    assert_eq!(span_count(&received) as u64, before);

    // The collector goes away: the server stops and its connections close.
    stop.send(()).unwrap();
    runtime.block_on(server).unwrap().unwrap();
    drop(runtime);
    let after = workload(&pipeline);
    let _ = pipeline.shutdown();
    assert_eq!(span_count(&received) as u64, before);
    assert_eq!(pipeline.exported_spans(), before);
    assert_eq!(
        pipeline.dropped_spans(),
        after,
        "dropped = produced - received"
    );
}
