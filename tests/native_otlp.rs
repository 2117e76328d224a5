//! The OTLP exporter sends our spans made straight from the records the
//! callers hand over, without the SDK's `SpanData`. Over every protocol, what
//! arrives must equal the official conversion (opentelemetry-proto) of the
//! same spans as `SpanData`, which an exporter of the user's receives from
//! the same pipeline.

mod support;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use support::{
    GrpcReceiver, Received, checkout, http_receiver, normalized, serve_grpc, take_received,
};
use workflow_otel::{ErrorText, OtlpExporter, OtlpProtocol, OtlpSettings, SpanLimits, step};

/// An exporter of the user's: it keeps the `SpanData` it gets, and the
/// resource.
#[derive(Debug, Default, Clone)]
struct Copy {
    spans: Arc<Mutex<Vec<SpanData>>>,
    resource: Arc<Mutex<Option<Resource>>>,
}

impl SpanExporter for Copy {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.spans.lock().unwrap().extend(batch);
        std::future::ready(Ok(()))
    }

    fn set_resource(&mut self, resource: &Resource) {
        *self.resource.lock().unwrap() = Some(resource.clone());
    }
}

/// A span of another library inside a step, with an exception event whose
/// message the error-text rule cuts.
#[step]
fn call_stock() {
    support::failed_client_span(
        "GET /stock",
        503,
        "the stock service said: token hunter2 expired",
    );
}

fn otlp(protocol: OtlpProtocol, endpoint: String) -> OtlpExporter {
    OtlpExporter::new(&OtlpSettings {
        endpoint,
        protocol,
        headers: vec![("x-api-key".to_owned(), "secret".to_owned())],
        timeout: Duration::from_secs(5),
        gzip: protocol == OtlpProtocol::HttpProtobuf,
        tls: Default::default(),
    })
    .unwrap()
}

#[test]
fn every_protocol_sends_records_as_their_span_data_would_be_sent() {
    // What the comparison covered: a link, an error cut by the rule, the
    // other library's span with its exception event cut too.
    let debug = compare_protocols(SpanLimits::default());
    for covered in [
        "link.type",
        "card declined",
        "http-client",
        "the stock service…",
    ] {
        assert!(debug.contains(covered), "{covered} is not in the spans");
    }
    // Again past every limit: the dropped counts, and the cut strings, are
    // written the same way too.
    let debug = compare_protocols(SpanLimits {
        attribute_count: 16,
        attribute_value_length: Some(6),
        event_count: 0,
        link_attribute_count: 0,
        event_attribute_count: 0,
        ..SpanLimits::default()
    });
    for covered in [
        "dropped_attributes_count: 1",
        "dropped_events_count: 1",
        "\"checko\"",
    ] {
        assert!(debug.contains(covered), "{covered} is not in the spans");
    }
    assert!(!debug.contains("link.type"), "the link kept its type");
}

/// Sends the workload through every protocol and an exporter of the user's
/// within `limits`, checks that what arrived is the same, and returns it as
/// text.
fn compare_protocols(limits: SpanLimits) -> String {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let received: [Received; 3] = Default::default();
    let service = TraceServiceServer::new(GrpcReceiver(received[0].clone()));
    let grpc = serve_grpc(
        &runtime,
        tonic::transport::Server::builder().add_service(service),
    );
    let [proto, json] = [&received[1], &received[2]].map(|received| {
        let received = received.clone();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            tokio::spawn(http_receiver(listener, received));
            address
        })
    });

    let copy = Copy::default();
    let guard = workflow_otel::setup()
        .service_name("native-otlp")
        .exporter(otlp(OtlpProtocol::Grpc, format!("http://{grpc}")))
        .exporter(otlp(
            OtlpProtocol::HttpProtobuf,
            format!("http://{proto}/v1/traces"),
        ))
        .exporter(otlp(
            OtlpProtocol::HttpJson,
            format!("http://{json}/v1/traces"),
        ))
        .exporter(copy.clone())
        .error_text(ErrorText::default().max_len(20))
        .span_limits(limits)
        .install();
    for _ in 0..3 {
        checkout().unwrap_err();
        call_stock();
    }
    drop(guard);

    let spans = copy.spans.lock().unwrap().clone();
    // Per round: checkout, reserve, pay; call_stock and its client span.
    assert_eq!(spans.len(), 3 * 5);
    let resource = copy.resource.lock().unwrap().clone().unwrap();
    let expected = normalized(group_spans_by_resource_and_scope(
        spans,
        &ResourceAttributesWithSchema::from(&resource),
    ));
    for (protocol, received) in ["grpc", "http/protobuf", "http/json"].iter().zip(&received) {
        let arrived = normalized(take_received(received));
        assert_eq!(arrived, expected, "{protocol}");
    }
    format!("{expected:?}")
}
