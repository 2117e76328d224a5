//! Two HTTP services in one trace: a client workflow calls `orders`, whose
//! handler (a `#[workflow]`) calls `billing` over HTTP, and both services
//! answer a few calls with a 404 and a 500 too. axum serves, reqwest sends;
//! `ServerLayer` and `ReqwestMiddleware` open the SERVER and CLIENT spans by
//! the HTTP conventions (`POST /orders/{id}`, `http.route`,
//! `http.response.status_code`, ...) and carry the trace and the workflow
//! lineage across, so the console shows one tree per request.
//!
//! Run with `cargo run --example http_service`. The servers bind loopback only.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use reqwest_middleware::ClientWithMiddleware;
use workflow_otel::http::{ReqwestMiddleware, ServerLayer};
use workflow_otel::{step, workflow};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What the `orders` service needs to reach `billing`.
struct Orders {
    client: ClientWithMiddleware,
    billing: String,
}

/// `orders`' handler: the request's workflow, nested under its SERVER span.
#[workflow(args(id))]
async fn place_order(orders: &Orders, id: u32) -> Result<String, String> {
    let invoice = bill(orders, id).await?;
    Ok(format!("order {id} placed, {invoice}"))
}

#[step(args(id))]
async fn bill(orders: &Orders, id: u32) -> Result<String, String> {
    let response = orders
        .client
        .post(format!("{}/invoices/{id}", orders.billing))
        .send()
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|error| error.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("billing answered {status}: {body}"))
    }
}

async fn order_route(
    State(orders): State<Arc<Orders>>,
    Path(id): Path<u32>,
) -> Result<String, (StatusCode, String)> {
    place_order(&orders, id)
        .await
        .map_err(|error| (StatusCode::BAD_GATEWAY, error))
}

/// `billing`'s handler: a workflow that continues the caller's lineage.
#[workflow(args(id))]
async fn issue_invoice(id: u32) -> Result<String, String> {
    if id == 13 {
        Err("the card was declined".into())
    } else {
        Ok(format!("invoice {id}"))
    }
}

async fn invoice_route(Path(id): Path<u32>) -> Result<String, (StatusCode, String)> {
    issue_invoice(id)
        .await
        .map_err(|error| (StatusCode::INTERNAL_SERVER_ERROR, error))
}

async fn serve(app: Router) -> Result<String, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(base)
}

fn client() -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ReqwestMiddleware::new())
        .build()
}

/// The customer's side: one request, under a workflow of its own.
#[workflow(args(path))]
async fn customer(client: &ClientWithMiddleware, base: &str, path: &str) -> Result<String, Error> {
    let response = client.post(format!("{base}{path}")).send().await?;
    Ok(format!(
        "{} {}",
        response.status().as_u16(),
        response.text().await?
    ))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = workflow_otel::setup()
        .default_service_name("http_service")
        .install();

    // `Router::layer`: inside the router, so spans are named by the route.
    let billing = serve(
        Router::new()
            .route("/invoices/{id}", post(invoice_route))
            .layer(ServerLayer::new()),
    )
    .await?;
    let orders = Arc::new(Orders {
        client: client(),
        billing,
    });
    let orders = serve(
        Router::new()
            .route("/orders/{id}", post(order_route))
            .route("/health", get(|| async { "ok" }))
            .layer(ServerLayer::new())
            .with_state(orders),
    )
    .await?;

    let client = client();
    // Two hops; a card declined (billing's 500, orders' 502); no such route (404).
    for path in ["/orders/7", "/orders/13", "/nowhere"] {
        println!(
            "=> POST {path}: {}",
            customer(&client, &orders, path).await?
        );
    }
    telemetry.flush();
    Ok(())
}
