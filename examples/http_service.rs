//! An HTTP service that continues incoming traces and calls onward with the
//! context injected: `POST /orders` runs a workflow that continues the
//! caller's trace from the request headers, and asks `GET /stock` (another
//! route, reached over HTTP too) with `traceparent`, `baggage` and the
//! workflow lineage in its headers. A client workflow calls the service, so
//! the whole trace crosses HTTP twice and prints as one tree.
//!
//! Run with `cargo run --example http_service`. The server binds loopback only.

use std::convert::Infallible;

use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{HeaderMap, Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use workflow_otel::propagation::inject_current;
use workflow_otel::{step, workflow};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Sends a request with the current context in its headers: the client side,
/// a CLIENT span.
#[step(args(path), kind = client)]
async fn call(base: &str, path: &str) -> Result<String, Error> {
    let mut request = Request::get(format!("{base}{path}")).body(Empty::<Bytes>::new())?;
    inject_current(request.headers_mut());
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await?;
    let status = response.status();
    let body = String::from_utf8(response.into_body().collect().await?.to_bytes().to_vec())?;
    if !status.is_success() {
        return Err(format!("{path} answered {status}: {body}").into());
    }
    Ok(body)
}

/// The client: a workflow that places an order through the service.
#[workflow]
async fn place_order(base: &str) -> Result<String, Error> {
    call(base, "/orders").await
}

/// The service's handler, a SERVER span: continues the incoming trace. (The
/// underscore: the headers are used by the attribute alone, which may be
/// compiled out.)
#[workflow(parent = _headers, kind = server)]
async fn handle_order(_headers: &HeaderMap, base: &str) -> Result<String, Error> {
    let stock = reserve(base).await?;
    Ok(format!("order accepted ({stock})"))
}

#[step]
async fn reserve(base: &str) -> Result<String, Error> {
    call(base, "/stock").await
}

/// A second service behind the first, continuing the same trace.
#[workflow(parent = _headers, kind = server)]
async fn stock_service(_headers: &HeaderMap) -> String {
    "12 in stock".to_owned()
}

async fn route(
    request: Request<Incoming>,
    base: String,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let answer = match request.uri().path() {
        "/orders" => handle_order(request.headers(), &base)
            .await
            .map_err(|error| error.to_string()),
        "/stock" => Ok(stock_service(request.headers()).await),
        other => Err(format!("no route {other}")),
    };
    Ok(match answer {
        Ok(body) => Response::new(Full::new(Bytes::from(body))),
        Err(error) => {
            let mut response = Response::new(Full::new(Bytes::from(error)));
            *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = workflow_otel::setup()
        .default_service_name("http_service")
        .install();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server_base = base.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let base = server_base.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request| route(request, base.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let answer = place_order(&base).await?;
    telemetry.flush();
    println!("=> {answer}");
    server.abort();
    Ok(())
}
