//! The HTTP duration metrics on the Prometheus endpoint: a real axum server
//! and a real reqwest client through the layers, then a scrape. Each
//! request adds one measurement with the conventions' attributes, route
//! templates rather than paths, and `error.type` for failures.

use std::net::SocketAddr;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use workflow_otel::http::{ReqwestMiddleware, ServerLayer};

/// The `_count` lines of `family`, without their values' timing parts.
fn counts(body: &str, family: &str) -> Vec<String> {
    let prefix = format!("{family}_count{{");
    let mut lines: Vec<String> = body
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn requests_are_counted_by_route_method_and_status() {
    let file = std::env::temp_dir().join(format!("wo-http-metrics-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let file_setting = file.to_string_lossy().into_owned();
    let telemetry = workflow_otel::setup()
        .environment_from(move |name| match name {
            "OTEL_TRACES_EXPORTER" => Some("jsonl".into()),
            "WORKFLOW_OTEL_FILE" => Some(file_setting.clone()),
            _ => None,
        })
        .prometheus_address("127.0.0.1:0")
        .try_install()
        .expect("setup");
    let endpoint = telemetry.prometheus_address().expect("listening");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let body = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address: SocketAddr = listener.local_addr().expect("address");
        let app = Router::new()
            .route("/orders/{id}", get(|| async { "order" }))
            .route(
                "/fail",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "broken") }),
            )
            .layer(ServerLayer::new());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(ReqwestMiddleware::new())
            .build();
        for path in ["/orders/7", "/orders/8", "/nowhere", "/fail"] {
            let response = client
                .get(format!("http://{address}{path}"))
                .send()
                .await
                .expect("answer");
            // Read to the end: the server's measurement is taken when its body ends.
            response.text().await.expect("body");
        }
        // The server's last body may end just after the client has read it:
        // scrape until its four requests are in (the assertion says if not).
        let mut body = String::new();
        for _ in 0..200 {
            body = reqwest::get(format!("http://{endpoint}/metrics"))
                .await
                .expect("scrape")
                .text()
                .await
                .expect("metrics");
            let served: usize = counts(&body, "http_server_request_duration_seconds")
                .iter()
                .filter_map(|line| line.rsplit(' ').next()?.parse::<usize>().ok())
                .sum();
            if served >= 4 {
                break;
            }
            tokio::task::yield_now().await;
        }
        let open_metrics = reqwest::Client::new()
            .get(format!("http://{endpoint}/metrics"))
            .header("accept", "application/openmetrics-text;version=1.0.0")
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("metrics");
        server.abort();
        (body, open_metrics, address.port())
    });
    let (body, open_metrics, port) = body;
    let scope = "otel_scope_name=\"workflow-otel\",otel_scope_version=\"0.1.0\"";
    assert_eq!(
        counts(&body, "http_server_request_duration_seconds"),
        [
            format!(
                "http_server_request_duration_seconds_count{{{scope},error_type=\"500\",http_request_method=\"GET\",http_response_status_code=\"500\",http_route=\"/fail\",network_protocol_version=\"1.1\",url_scheme=\"http\"}} 1"
            ),
            format!(
                "http_server_request_duration_seconds_count{{{scope},http_request_method=\"GET\",http_response_status_code=\"200\",http_route=\"/orders/{{id}}\",network_protocol_version=\"1.1\",url_scheme=\"http\"}} 2"
            ),
            format!(
                "http_server_request_duration_seconds_count{{{scope},http_request_method=\"GET\",http_response_status_code=\"404\",network_protocol_version=\"1.1\",url_scheme=\"http\"}} 1"
            ),
        ],
        "{body}"
    );
    assert_eq!(
        counts(&body, "http_client_request_duration_seconds"),
        [
            format!(
                "http_client_request_duration_seconds_count{{{scope},error_type=\"404\",http_request_method=\"GET\",http_response_status_code=\"404\",server_address=\"127.0.0.1\",server_port=\"{port}\"}} 1"
            ),
            format!(
                "http_client_request_duration_seconds_count{{{scope},error_type=\"500\",http_request_method=\"GET\",http_response_status_code=\"500\",server_address=\"127.0.0.1\",server_port=\"{port}\"}} 1"
            ),
            format!(
                "http_client_request_duration_seconds_count{{{scope},http_request_method=\"GET\",http_response_status_code=\"200\",server_address=\"127.0.0.1\",server_port=\"{port}\"}} 2"
            ),
        ],
        "{body}"
    );

    // Exemplars point at the request's own span: a SERVER span for the
    // server's histogram, a CLIENT span for the client's.
    telemetry.flush();
    let spans = workflow_otel::read_json_lines(std::io::BufReader::new(
        std::fs::File::open(&file).expect("the span file"),
    ))
    .expect("spans");
    let _ = std::fs::remove_file(&file);
    for (family, kind) in [
        (
            "http_server_request_duration_seconds",
            opentelemetry::trace::SpanKind::Server,
        ),
        (
            "http_client_request_duration_seconds",
            opentelemetry::trace::SpanKind::Client,
        ),
    ] {
        let prefix = format!("{family}_bucket{{");
        let exemplars: Vec<&str> = open_metrics
            .lines()
            .filter(|line| line.starts_with(&prefix))
            .filter_map(|line| line.split_once(" # ").map(|(_, exemplar)| exemplar))
            .collect();
        assert!(
            !exemplars.is_empty(),
            "no exemplar on {family}: {open_metrics}"
        );
        for exemplar in exemplars {
            let span_id = exemplar
                .split("span_id=\"")
                .nth(1)
                .and_then(|rest| rest.get(..16))
                .expect("span id");
            let span = spans
                .iter()
                .find(|span| span.span_context.span_id().to_string() == span_id)
                .unwrap_or_else(|| panic!("exemplar span {span_id} was not exported"));
            assert_eq!(span.span_kind, kind, "{exemplar}");
        }
    }
    drop(telemetry);
}
