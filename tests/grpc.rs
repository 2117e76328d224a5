//! The same layers on a real tonic server and client: gRPC spans named
//! `{package.Service}/{Method}` with the RPC conventions' attributes and
//! status, the trace continued across the call, and a method the server does
//! not have named `grpc` with `rpc.method = _OTHER`.
//!
//! The service is OTLP's own trace service (generated from the official
//! protobuf definitions), so no code generation is needed here.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_sdk::trace::SpanData;
use workflow_otel::http::{ClientLayer, ServerLayer};
use workflow_otel::testing::Capture;

#[path = "support/ended.rs"]
mod ended;
use ended::spans_when;
use workflow_otel::workflow;

/// Accepts a request with no spans in it, refuses one with any.
struct Collector;

#[workflow]
async fn accept(spans: usize) -> Result<(), String> {
    if spans == 0 {
        Ok(())
    } else {
        Err("full".into())
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        match accept(request.into_inner().resource_spans.len()).await {
            Ok(()) => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
            Err(message) => Err(tonic::Status::unavailable(message)),
        }
    }
}

const KEYS: &[&str] = &[
    "rpc.system.name",
    "rpc.method",
    "rpc.method_original",
    "rpc.status_code",
    "server.address",
    "error.type",
    "observability.workflow_name",
];

fn render(spans: Vec<SpanData>) -> String {
    let tree = workflow_otel::SpanTree::from_spans(spans);
    let kinds: Vec<_> = tree
        .nodes()
        .iter()
        .map(|node| node.span.span_kind.clone())
        .collect();
    let text = tree.render_with(|key| KEYS.contains(&key));
    let mut out = String::new();
    for (line, kind) in text
        .lines()
        .filter(|line| !line.trim_start().starts_with('|'))
        .zip(&kinds)
    {
        out.push_str(&format!("{} {kind:?}\n", line.trim_end()));
    }
    out.push_str("--\n");
    out.push_str(&text);
    out
}

const TREES: &str = "\
opentelemetry.proto.collector.trace.v1.TraceService/Export #1 [span scope=workflow-otel] Unset Client
  opentelemetry.proto.collector.trace.v1.TraceService/Export #2 [span scope=workflow-otel] Unset Server
    accept #3 [workflow] Unset Internal
opentelemetry.proto.collector.trace.v1.TraceService/Export #4 [span scope=workflow-otel] Error(\"full\") Client
  opentelemetry.proto.collector.trace.v1.TraceService/Export #5 [span scope=workflow-otel] Error(\"full\") Server
    accept #6 [workflow] Error(\"full\") Internal
shop.Nothing/Here #7 [span scope=workflow-otel] Error(\"\") Client
  grpc #8 [span scope=workflow-otel] Error(\"\") Server
--
opentelemetry.proto.collector.trace.v1.TraceService/Export #1 [span scope=workflow-otel] Unset
  | rpc.method: \"opentelemetry.proto.collector.trace.v1.TraceService/Export\"
  | rpc.status_code: \"OK\"
  | rpc.system.name: \"grpc\"
  | server.address: \"127.0.0.1\"
  opentelemetry.proto.collector.trace.v1.TraceService/Export #2 [span scope=workflow-otel] Unset
    | rpc.method: \"opentelemetry.proto.collector.trace.v1.TraceService/Export\"
    | rpc.status_code: \"OK\"
    | rpc.system.name: \"grpc\"
    | server.address: \"127.0.0.1\"
    accept #3 [workflow] Unset
      | observability.workflow_name: \"accept\"
opentelemetry.proto.collector.trace.v1.TraceService/Export #4 [span scope=workflow-otel] Error(\"full\")
  | error.type: \"UNAVAILABLE\"
  | rpc.method: \"opentelemetry.proto.collector.trace.v1.TraceService/Export\"
  | rpc.status_code: \"UNAVAILABLE\"
  | rpc.system.name: \"grpc\"
  | server.address: \"127.0.0.1\"
  opentelemetry.proto.collector.trace.v1.TraceService/Export #5 [span scope=workflow-otel] Error(\"full\")
    | error.type: \"UNAVAILABLE\"
    | rpc.method: \"opentelemetry.proto.collector.trace.v1.TraceService/Export\"
    | rpc.status_code: \"UNAVAILABLE\"
    | rpc.system.name: \"grpc\"
    | server.address: \"127.0.0.1\"
    accept #6 [workflow] Error(\"full\")
      | error.type: \"_OTHER\"
      | observability.workflow_name: \"accept\"
      | event exception {exception.message: \"full\", exception.type: \"_OTHER\"}
shop.Nothing/Here #7 [span scope=workflow-otel] Error(\"\")
  | error.type: \"UNIMPLEMENTED\"
  | rpc.method: \"shop.Nothing/Here\"
  | rpc.status_code: \"UNIMPLEMENTED\"
  | rpc.system.name: \"grpc\"
  | server.address: \"127.0.0.1\"
  grpc #8 [span scope=workflow-otel] Error(\"\")
    | error.type: \"UNIMPLEMENTED\"
    | rpc.method: \"_OTHER\"
    | rpc.method_original: \"shop.Nothing/Here\"
    | rpc.status_code: \"UNIMPLEMENTED\"
    | rpc.system.name: \"grpc\"
    | server.address: \"127.0.0.1\"
";

#[test]
fn grpc_calls_follow_the_rpc_conventions() {
    let capture = Capture::new();
    capture.instrumentation().clone().install();
    // Metrics on (without an endpoint), so the calls' durations are counted.
    workflow_otel::__private::set_metrics(true);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let router = tonic::transport::Server::builder()
        .layer(ServerLayer::new().tracer_provider(capture.provider()))
        .add_service(TraceServiceServer::new(Collector));
    let address = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(
            router.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        address
    });
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let traced = tower::ServiceBuilder::new()
            .layer(
                ClientLayer::new()
                    .tracer_provider(capture.provider())
                    .server_address("127.0.0.1", Some(address.port())),
            )
            .service(channel.clone());
        let mut client = TraceServiceClient::new(traced);
        client
            .export(ExportTraceServiceRequest::default())
            .await
            .expect("accepted");
        let refused = client
            .export(ExportTraceServiceRequest {
                resource_spans: vec![Default::default()],
            })
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        // A method the server does not have, through a raw gRPC call.
        let mut raw = tonic::client::Grpc::new(
            tower::ServiceBuilder::new()
                .layer(
                    ClientLayer::new()
                        .tracer_provider(capture.provider())
                        .server_address("127.0.0.1", Some(address.port())),
                )
                .service(channel),
        );
        raw.ready().await.expect("ready");
        let missing = raw
            .unary::<ExportTraceServiceRequest, ExportTraceServiceResponse, _>(
                tonic::Request::new(ExportTraceServiceRequest::default()),
                http::uri::PathAndQuery::from_static("/shop.Nothing/Here"),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .expect_err("unimplemented");
        assert_eq!(missing.code(), tonic::Code::Unimplemented);
    });
    let tree = render(spans_when(&capture, 8));
    assert_eq!(
        tree.replace(&address.port().to_string(), "PORT"),
        TREES,
        "{tree}"
    );
    // One duration per call on each side.
    assert_eq!(
        workflow_otel::__private::instrument_total("rpc.server.call.duration"),
        Some(3.0)
    );
    assert_eq!(
        workflow_otel::__private::instrument_total("rpc.client.call.duration"),
        Some(3.0)
    );
}
