//! Per-request cost of the HTTP server layer on an axum route, against
//! tower-http's `TraceLayer` with tracing-opentelemetry recording the same
//! attributes on the same route, and the route with no tracing at all. Each
//! iteration sends one request through the router (no socket: the router
//! is called as the server would call it) and reads the body to its end.
//! Both traced cases export through the same SDK provider into a counting
//! exporter, so every request's span is checked to arrive.

use axum::Router;
use axum::body::Body;
use axum::extract::MatchedPath;
use axum::routing::get;
use tower::ServiceExt as _;

use super::*;

/// `GET /orders/{id}`, as a client sends it.
fn request(id: u64) -> http::Request<Body> {
    http::Request::get(format!("/orders/{id}"))
        .header(http::header::HOST, "shop.example:8080")
        .header(http::header::USER_AGENT, "bench/1")
        .body(Body::empty())
        .expect("request")
}

fn route() -> Router {
    Router::new().route("/orders/{id}", get(|| async { "order" }))
}

/// One request through `router`, body read to its end.
fn call<S, B>(router: &mut S, id: u64)
where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let response = block_on(async {
        let ready = router.ready().await.expect("ready");
        ready.call(request(id)).await.expect("response")
    });
    let mut body = pin!(response.into_body());
    let mut task = TaskContext::from_waker(Waker::noop());
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut task) {
        black_box(frame.expect("frame"));
    }
}

fn untraced() -> Case {
    let mut router = route();
    Case {
        name: "axum route alone (no tracing)",
        spans_per_iteration: 1,
        spans_per_run: 0,
        run: Box::new(move |iterations| {
            for i in 0..iterations {
                call(&mut router, i);
            }
        }),
        delivered: Box::new(|| 0),
        records: false,
        roots_every: 0,
    }
}

fn workflow_otel_layer() -> Case {
    let exporter = CountingExporter::default();
    let provider = provider(Sampler::AlwaysOn, exporter.clone());
    let mut router =
        route().layer(workflow_otel::http::ServerLayer::new().tracer_provider(&provider));
    Case {
        name: "axum route + wo ServerLayer",
        spans_per_iteration: 1,
        spans_per_run: 0,
        run: Box::new(move |iterations| {
            for i in 0..iterations {
                call(&mut router, i);
            }
        }),
        delivered: sdk_delivered(&provider, &exporter),
        records: true,
        roots_every: 0,
    }
}

/// tower-http's layer as a tracing-opentelemetry user configures it for the
/// same span: the conventions' name, kind and attributes, the status code
/// recorded on the response, and no log events (which would become span
/// events and cost more).
fn tower_http_layer() -> Case {
    use tower_http::trace::TraceLayer;
    let exporter = CountingExporter::default();
    let provider = provider(Sampler::AlwaysOn, exporter.clone());
    let tracer = provider.tracer("bench");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    let dispatch = tracing::Dispatch::new(subscriber);
    let layer = TraceLayer::new_for_http()
        .make_span_with(|request: &http::Request<Body>| {
            let route = request
                .extensions()
                .get::<MatchedPath>()
                .map_or("", MatchedPath::as_str);
            let agent = request
                .headers()
                .get(http::header::USER_AGENT)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!(
                "request",
                otel.name = format!("{} {route}", request.method()),
                otel.kind = "server",
                http.request.method = %request.method(),
                http.route = route,
                url.path = request.uri().path(),
                url.scheme = "http",
                server.address = "shop.example",
                server.port = 8080,
                network.protocol.version = "1.1",
                user_agent.original = agent,
                http.response.status_code = tracing::field::Empty,
            )
        })
        .on_request(())
        .on_response(
            |response: &http::Response<_>, _: Duration, span: &tracing::Span| {
                span.record("http.response.status_code", response.status().as_u16());
            },
        )
        .on_body_chunk(())
        .on_eos(())
        .on_failure(());
    let mut router = route().layer(layer);
    Case {
        name: "axum route + tower-http TraceLayer + tracing-opentelemetry",
        spans_per_iteration: 1,
        spans_per_run: 0,
        run: Box::new(move |iterations| {
            tracing::dispatcher::with_default(&dispatch, || {
                for i in 0..iterations {
                    call(&mut router, i);
                }
            });
        }),
        delivered: sdk_delivered(&provider, &exporter),
        records: true,
        roots_every: 0,
    }
}

pub(super) fn factories() -> Vec<(&'static str, Factory)> {
    vec![
        ("axum route alone (no tracing)", Box::new(untraced)),
        ("axum route + wo ServerLayer", Box::new(workflow_otel_layer)),
        (
            "axum route + tower-http TraceLayer + tracing-opentelemetry",
            Box::new(tower_http_layer),
        ),
    ]
}
