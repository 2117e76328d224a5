//! Metrics from the same attributes: a workload of orders (some invalid, some
//! declined, some timing out) served on a Prometheus endpoint.
//!
//! `cargo run --example metrics` runs 100 orders with one trace in ten
//! sampled (a few trees on the console), then reads its own `/metrics` and
//! prints the workflow lines: every order is counted, sampled or not.
//!
//! `cargo run --example metrics -- --serve` keeps taking orders, a few a
//! second, and serves `/metrics` on `localhost:9464` (or
//! `OTEL_EXPORTER_PROMETHEUS_HOST`/`_PORT`) until stopped: point Prometheus
//! (or the Grafana dashboard in `dashboards/`) at it. It also runs the
//! `nightly_report` workflow exactly five times at start, two of them failing.

use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use opentelemetry_sdk::trace::Sampler;
use workflow_otel::{child_workflow, step, workflow};

#[derive(Debug)]
struct Order {
    id: u64,
    cents: u64,
}

#[derive(Debug)]
enum OrderError {
    Empty,
    Declined,
    TimedOut,
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderError::Empty => write!(f, "the order has no items"),
            OrderError::Declined => write!(f, "the card was declined"),
            OrderError::TimedOut => write!(f, "the warehouse did not answer in time"),
        }
    }
}

impl std::error::Error for OrderError {}

#[workflow]
async fn handle_order(order: Order) -> Result<u64, OrderError> {
    validate(&order).await?;
    // A warehouse that does not answer within 20 ms is given up on: its step
    // ends as cancelled.
    tokio::time::timeout(Duration::from_millis(20), reserve(&order))
        .await
        .map_err(|_| OrderError::TimedOut)?;
    bill(&order).await
}

#[step]
async fn validate(order: &Order) -> Result<(), OrderError> {
    if order.cents == 0 {
        return Err(OrderError::Empty);
    }
    Ok(())
}

#[step]
async fn reserve(order: &Order) {
    let millis = if order.id.is_multiple_of(17) {
        40
    } else {
        1 + order.id % 5
    };
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

#[child_workflow]
async fn bill(order: &Order) -> Result<u64, OrderError> {
    charge_card(order).await
}

#[step]
async fn charge_card(order: &Order) -> Result<u64, OrderError> {
    tokio::time::sleep(Duration::from_millis(2 + order.id % 3)).await;
    if order.id % 10 == 3 {
        return Err(OrderError::Declined);
    }
    Ok(order.id * 1000)
}

#[derive(Debug)]
struct ReportError;

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the report's source was unavailable")
    }
}

impl std::error::Error for ReportError {}

#[workflow]
fn nightly_report(day: u32) -> Result<u32, ReportError> {
    std::thread::sleep(Duration::from_millis(30));
    if day % 2 == 1 {
        Err(ReportError)
    } else {
        Ok(day)
    }
}

fn order(id: u64) -> Order {
    // Every 25th order is empty.
    let cents = if id.is_multiple_of(25) { 0 } else { 100 + id };
    Order { id, cents }
}

/// `GET /metrics`, with a plain socket: what a scraper sees.
fn scrape(address: std::net::SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(address)?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {address}\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serve = std::env::args().any(|argument| argument == "--serve");
    let telemetry = if serve {
        workflow_otel::setup()
            .default_service_name("shop")
            .prometheus()
            .try_install()?
    } else {
        workflow_otel::setup()
            .default_service_name("shop")
            .console()
            .sampler(Sampler::TraceIdRatioBased(0.1))
            .prometheus_address("127.0.0.1:0")
            .try_install()?
    };
    let address = telemetry
        .prometheus_address()
        .ok_or("the endpoint did not start")?;
    if serve {
        println!("metrics at http://{address}/metrics");
        for day in 0..5 {
            let _ = nightly_report(day);
        }
        for id in 1.. {
            let _ = handle_order(order(id)).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        return Ok(());
    }
    let mut failed = 0;
    for id in 1..=100 {
        if handle_order(order(id)).await.is_err() {
            failed += 1;
        }
    }
    telemetry.flush();
    println!("100 orders, {failed} failed; one trace in ten was sampled, every order is counted:");
    let answer = scrape(address)?;
    for line in answer
        .lines()
        .filter(|line| line.starts_with("workflow_") && !line.contains("_bucket{"))
    {
        println!("  {line}");
    }
    Ok(())
}
