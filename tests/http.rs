//! The HTTP layers with a real axum server and a real reqwest client on
//! loopback: the exact span tree across the hop (names, kinds, parents,
//! attributes, status) for 200, 404, 500, a panic and a client timeout,
//! route templates rather than paths, `url.full` redacted; and propagation
//! against the OpenTelemetry SDK's own propagator on both sides.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SpanData;
use reqwest_middleware::ClientWithMiddleware;
use workflow_otel::http::{ReqwestMiddleware, ServerLayer};
use workflow_otel::testing::Capture;

#[path = "support/ended.rs"]
mod ended;
use ended::spans_when;
use workflow_otel::{step, workflow};

/// The keys the trees show: the conventions' and the lineage's.
const KEYS: &[&str] = &[
    "http.request.method",
    "http.route",
    "url.path",
    "url.query",
    "url.scheme",
    "url.full",
    "http.response.status_code",
    "server.address",
    "network.protocol.version",
    "user_agent.original",
    "error.type",
    "http.request.resend_count",
    "observability.workflow_name",
    "observability.workflow_depth",
    "relationship.hierarchy_path",
];

struct Shop {
    client: ClientWithMiddleware,
    base: String,
}

#[workflow]
async fn show_order(shop: &Shop, id: u32) -> Result<String, String> {
    let invoice = fetch_invoice(shop, id).await?;
    Ok(format!("order {id}: {invoice}"))
}

#[step]
async fn fetch_invoice(shop: &Shop, id: u32) -> Result<String, String> {
    let response = shop
        .client
        .get(format!("{}/invoices/{id}?sig=secret&day=3", shop.base))
        .send()
        .await
        .map_err(|error| error.to_string())?;
    response.text().await.map_err(|error| error.to_string())
}

#[workflow]
async fn invoice(id: u32) -> String {
    format!("invoice {id}")
}

async fn order_route(
    State(shop): State<std::sync::Arc<Shop>>,
    Path(id): Path<u32>,
) -> Result<String, StatusCode> {
    show_order(&shop, id)
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)
}

/// Answers with what the OpenTelemetry SDK's own extractor reads from the
/// request: `trace_id span_id`.
async fn sdk_extract(headers: HeaderMap) -> String {
    let cx = TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(&headers));
    let span = cx.span();
    let parent = span.span_context();
    format!("{} {}", parent.trace_id(), parent.span_id())
}

/// A handler written before the layer, continuing from the headers itself.
#[workflow(parent = headers)]
async fn legacy(headers: HeaderMap) -> &'static str {
    let _ = &headers;
    "legacy"
}

async fn panics() -> &'static str {
    panic!("handler bug")
}

async fn pending() -> &'static str {
    std::future::pending::<()>().await;
    "never"
}

async fn serve(capture: &Capture) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let shop = std::sync::Arc::new(Shop {
        client: client(capture),
        base: format!("http://{address}"),
    });
    let app = Router::new()
        .route("/orders/{id}", get(order_route))
        .route("/invoices/{id}", get(|Path(id): Path<u32>| invoice(id)))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "broken") }),
        )
        .route("/panic", get(panics))
        .route("/pending", get(pending))
        .route("/sdk", get(sdk_extract))
        .route("/legacy", get(legacy))
        .layer(ServerLayer::new().tracer_provider(capture.provider()))
        .with_state(shop);
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    (address, server)
}

fn client(capture: &Capture) -> ClientWithMiddleware {
    // The `tls` feature (on in these tests) leaves reqwest's crypto to us.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .user_agent("shop-test/1")
        .build()
        .expect("client");
    reqwest_middleware::ClientBuilder::new(client)
        .with(ReqwestMiddleware::new().tracer_provider(capture.provider()))
        .build()
}

/// The tree with the server's port masked, each span's kind after its name.
fn render(spans: Vec<SpanData>, address: SocketAddr) -> String {
    let tree = workflow_otel::SpanTree::from_spans(spans);
    let kinds: Vec<String> = tree
        .nodes()
        .iter()
        .map(|node| format!("{:?}", node.span.span_kind))
        .collect();
    let mut out = String::new();
    for line in tree.render_with(|key| KEYS.contains(&key)).lines() {
        let line = line.replace(&address.port().to_string(), "PORT");
        let numbered = line
            .split_once(" #")
            .filter(|_| !line.trim_start().starts_with('|'));
        match numbered {
            Some((head, tail)) => {
                let number: usize = tail
                    .split(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("span number");
                out.push_str(&format!("{head} ({}) #{tail}\n", kinds[number - 1]));
            }
            None => out.push_str(&format!("{line}\n")),
        }
    }
    out
}

const ORDER_TREE: &str = "\
GET (Client) #1 [span scope=workflow-otel] Unset
  | http.request.method: \"GET\"
  | http.response.status_code: 200
  | server.address: \"127.0.0.1\"
  | url.full: \"http://127.0.0.1:PORT/orders/7\"
  GET /orders/{id} (Server) #2 [span scope=workflow-otel] Unset
    | http.request.method: \"GET\"
    | http.response.status_code: 200
    | http.route: \"/orders/{id}\"
    | network.protocol.version: \"1.1\"
    | server.address: \"127.0.0.1\"
    | url.path: \"/orders/7\"
    | url.scheme: \"http\"
    | user_agent.original: \"shop-test/1\"
    show_order (Internal) #3 [workflow] Unset
      | observability.workflow_depth: 0
      | observability.workflow_name: \"show_order\"
      | relationship.hierarchy_path: \"show_order\"
      fetch_invoice (Internal) #4 [step] Unset
        | observability.workflow_name: \"show_order\"
        GET (Client) #5 [span scope=workflow-otel] Unset
          | http.request.method: \"GET\"
          | http.response.status_code: 200
          | observability.workflow_depth: 0
          | observability.workflow_name: \"show_order\"
          | relationship.hierarchy_path: \"show_order\"
          | server.address: \"127.0.0.1\"
          | url.full: \"http://127.0.0.1:PORT/invoices/7?sig=REDACTED&day=3\"
          GET /invoices/{id} (Server) #6 [span scope=workflow-otel] Unset
            | http.request.method: \"GET\"
            | http.response.status_code: 200
            | http.route: \"/invoices/{id}\"
            | network.protocol.version: \"1.1\"
            | server.address: \"127.0.0.1\"
            | url.path: \"/invoices/7\"
            | url.query: \"sig=REDACTED&day=3\"
            | url.scheme: \"http\"
            | user_agent.original: \"shop-test/1\"
            invoice (Internal) #7 [workflow] Unset
              | observability.workflow_depth: 1
              | observability.workflow_name: \"invoice\"
              | relationship.hierarchy_path: \"show_order/invoice\"
";

const FAILURES: &str = "\
GET (Client) #1 [span scope=workflow-otel] Error(\"404 Not Found\")
  | error.type: \"404\"
  | http.request.method: \"GET\"
  | http.response.status_code: 404
  | server.address: \"127.0.0.1\"
  | url.full: \"http://127.0.0.1:PORT/nowhere/42\"
  GET (Server) #2 [span scope=workflow-otel] Unset
    | http.request.method: \"GET\"
    | http.response.status_code: 404
    | network.protocol.version: \"1.1\"
    | server.address: \"127.0.0.1\"
    | url.path: \"/nowhere/42\"
    | url.scheme: \"http\"
    | user_agent.original: \"shop-test/1\"
GET (Client) #3 [span scope=workflow-otel] Error(\"500 Internal Server Error\")
  | error.type: \"500\"
  | http.request.method: \"GET\"
  | http.response.status_code: 500
  | server.address: \"127.0.0.1\"
  | url.full: \"http://127.0.0.1:PORT/fail\"
  GET /fail (Server) #4 [span scope=workflow-otel] Error(\"500 Internal Server Error\")
    | error.type: \"500\"
    | http.request.method: \"GET\"
    | http.response.status_code: 500
    | http.route: \"/fail\"
    | network.protocol.version: \"1.1\"
    | server.address: \"127.0.0.1\"
    | url.path: \"/fail\"
    | url.scheme: \"http\"
    | user_agent.original: \"shop-test/1\"
GET (Client) #5 [span scope=workflow-otel] Error(\"error sending request for url (http://127.0.0.1:PORT/panic)\")
  | error.type: \"request\"
  | http.request.method: \"GET\"
  | server.address: \"127.0.0.1\"
  | url.full: \"http://127.0.0.1:PORT/panic\"
  GET /panic (Server) #6 [span scope=workflow-otel] Error(\"the handler panicked\")
    | error.type: \"panic\"
    | http.request.method: \"GET\"
    | http.route: \"/panic\"
    | network.protocol.version: \"1.1\"
    | server.address: \"127.0.0.1\"
    | url.path: \"/panic\"
    | url.scheme: \"http\"
    | user_agent.original: \"shop-test/1\"
GET (Client) #7 [span scope=workflow-otel] Error(\"error sending request for url (http://127.0.0.1:PORT/pending)\")
  | error.type: \"timeout\"
  | http.request.method: \"GET\"
  | server.address: \"127.0.0.1\"
  | url.full: \"http://127.0.0.1:PORT/pending\"
  GET /pending (Server) #8 [span scope=workflow-otel] Unset
    | http.request.method: \"GET\"
    | http.route: \"/pending\"
    | network.protocol.version: \"1.1\"
    | server.address: \"127.0.0.1\"
    | url.path: \"/pending\"
    | url.scheme: \"http\"
    | user_agent.original: \"shop-test/1\"
";

#[test]
fn one_tree_across_the_hop_with_the_http_conventions() {
    let capture = Capture::new();
    capture.instrumentation().clone().install();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (address, server) = serve(&capture).await;
        let base = format!("http://{address}");
        let client = client(&capture);

        // 200 across two hops: client -> /orders/{id} -> /invoices/{id}.
        let answer = client
            .get(format!("{base}/orders/7"))
            .send()
            .await
            .expect("order");
        assert_eq!(answer.text().await.expect("body"), "order 7: invoice 7");
        let tree = render(spans_when(&capture, 7), address);
        assert_eq!(tree, ORDER_TREE, "{tree}");
        capture.clear();

        // 404 (no route: named by the method), 500, a panic, a timeout.
        let missing = client
            .get(format!("{base}/nowhere/42"))
            .send()
            .await
            .expect("404");
        assert_eq!(missing.status(), 404);
        let failed = client
            .get(format!("{base}/fail"))
            .send()
            .await
            .expect("500");
        assert_eq!(failed.status(), 500);
        let panicked = client.get(format!("{base}/panic")).send().await;
        assert!(panicked.is_err(), "{panicked:?}");
        let timed_out = client.get(format!("{base}/pending")).send().await;
        assert!(
            timed_out
                .as_ref()
                .is_err_and(reqwest_middleware::Error::is_timeout),
            "{timed_out:?}"
        );
        let tree = render(spans_when(&capture, 8), address);
        assert_eq!(tree, FAILURES, "{tree}");
        capture.clear();

        // A plain OpenTelemetry SDK client: its span is the server span's parent.
        let sdk = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let sdk_span = sdk.tracer("plain-sdk").start("sdk-client");
        let sdk_cx = opentelemetry::Context::new().with_span(sdk_span);
        let mut headers = HeaderMap::new();
        TraceContextPropagator::new().inject_context(
            &sdk_cx,
            &mut opentelemetry_http::HeaderInjector(&mut headers),
        );
        let plain = reqwest::Client::new();
        let answer = plain
            .get(format!("{base}/invoices/9"))
            .headers(headers)
            .send()
            .await
            .expect("sdk call");
        assert_eq!(answer.text().await.expect("body"), "invoice 9");
        let spans = spans_when(&capture, 2);
        let server_span = spans
            .iter()
            .find(|span| span.name == "GET /invoices/{id}")
            .expect("server span");
        let sent = sdk_cx.span().span_context().clone();
        assert_eq!(server_span.span_context.trace_id(), sent.trace_id());
        assert_eq!(server_span.parent_span_id, sent.span_id());
        assert!(server_span.parent_span_is_remote);
        let workflow = spans
            .iter()
            .find(|span| span.name == "invoice")
            .expect("workflow");
        assert_eq!(workflow.parent_span_id, server_span.span_context.span_id());
        capture.clear();

        // Our client's headers, read by the SDK's extractor on the far side.
        let read = client
            .get(format!("{base}/sdk"))
            .send()
            .await
            .expect("sdk extract");
        let read = read.text().await.expect("body");
        let spans = spans_when(&capture, 2);
        let client_span = spans
            .iter()
            .find(|span| span.span_kind == opentelemetry::trace::SpanKind::Client)
            .expect("client span");
        assert_eq!(
            read,
            format!(
                "{} {}",
                client_span.span_context.trace_id(),
                client_span.span_context.span_id()
            )
        );

        capture.clear();

        // `parent = headers` under the layer nests under its span, not beside it.
        let legacy = client
            .get(format!("{base}/legacy"))
            .send()
            .await
            .expect("legacy");
        assert_eq!(legacy.text().await.expect("body"), "legacy");
        let spans = spans_when(&capture, 3);
        let server_span = spans
            .iter()
            .find(|span| span.name == "GET /legacy")
            .expect("server span");
        let workflow = spans
            .iter()
            .find(|span| span.name == "legacy")
            .expect("workflow");
        assert_eq!(workflow.parent_span_id, server_span.span_context.span_id());

        server.abort();
    });
}
