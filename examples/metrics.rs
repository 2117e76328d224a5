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
//!
//! Next to the workflow metrics, the shop keeps business metrics of its own
//! with the OpenTelemetry metrics API (`opentelemetry::global::meter`), as
//! its docs teach: `setup()` made the global meter provider workflow-otel's,
//! so they are served on the same endpoint, with exemplars from the spans
//! they were measured in. `import_catalog` runs once at start and measures
//! exact values: 3 items in `eu`, 2 in `us`, priced 0.5, 5, 50, 500 and 5 USD.

use std::fmt;
use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use opentelemetry_sdk::trace::Sampler;
use workflow_otel::opentelemetry::KeyValue;
use workflow_otel::opentelemetry::metrics::{Counter, Gauge, Histogram};
use workflow_otel::{child_workflow, step, workflow};
use workflow_otel_examples::scrape;

/// The shop's own instruments, made once after `setup()`.
struct ShopMetrics {
    orders_placed: Counter<u64>,
    order_amount: Histogram<f64>,
    last_order_amount: Gauge<f64>,
    catalog_items: Counter<u64>,
    item_price: Histogram<f64>,
}

impl ShopMetrics {
    fn new(stock: Arc<AtomicI64>) -> ShopMetrics {
        let meter = workflow_otel::opentelemetry::global::meter("shop");
        // An observable gauge: read when metrics are collected.
        let _stock = meter
            .i64_observable_gauge("warehouse.stock")
            .with_description("Items in the warehouse.")
            .with_unit("{item}")
            .with_callback(move |observer| {
                observer.observe(
                    stock.load(Ordering::Relaxed),
                    &[KeyValue::new("warehouse", "north")],
                )
            })
            .build();
        ShopMetrics {
            orders_placed: meter
                .u64_counter("orders.placed")
                .with_description("Orders billed.")
                .build(),
            order_amount: meter
                .f64_histogram("order.amount")
                .with_description("Amount of billed orders.")
                .with_unit("USD")
                .with_boundaries(vec![1.0, 2.0, 5.0, 10.0])
                .build(),
            last_order_amount: meter
                .f64_gauge("order.last_amount")
                .with_unit("USD")
                .build(),
            catalog_items: meter
                .u64_counter("catalog.items")
                .with_description("Items imported into the catalog.")
                .build(),
            item_price: meter
                .f64_histogram("catalog.item.price")
                .with_description("Prices of imported items.")
                .with_unit("USD")
                .with_boundaries(vec![1.0, 10.0, 100.0])
                .build(),
        }
    }
}

/// Imports five items, measured exactly (the Prometheus test checks them).
#[workflow]
fn import_catalog(metrics: &ShopMetrics) {
    for (region, price) in [
        ("eu", 0.5),
        ("eu", 5.0),
        ("us", 50.0),
        ("eu", 500.0),
        ("us", 5.0),
    ] {
        let region = [KeyValue::new("region", region)];
        metrics.catalog_items.add(1, &region);
        metrics.item_price.record(price, &region);
    }
}

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
async fn handle_order(order: Order, metrics: &ShopMetrics) -> Result<u64, OrderError> {
    validate(&order).await?;
    // A warehouse that does not answer within 20 ms is given up on: its step
    // ends as cancelled.
    tokio::time::timeout(Duration::from_millis(20), reserve(&order))
        .await
        .map_err(|_| OrderError::TimedOut)?;
    let billed = bill(&order).await?;
    let region = [KeyValue::new(
        "region",
        if order.id.is_multiple_of(3) {
            "us"
        } else {
            "eu"
        },
    )];
    let amount = order.cents as f64 / 100.0;
    metrics.orders_placed.add(1, &region);
    metrics.order_amount.record(amount, &region);
    metrics.last_order_amount.record(amount, &[]);
    Ok(billed)
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
    let stock = Arc::new(AtomicI64::new(1_000));
    let metrics = ShopMetrics::new(stock.clone());
    if serve {
        println!("metrics at http://{address}/metrics");
        for day in 0..5 {
            let _ = nightly_report(day);
        }
        import_catalog(&metrics);
        for id in 1.. {
            if handle_order(order(id), &metrics).await.is_ok() {
                stock.fetch_sub(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        return Ok(());
    }
    let mut failed = 0;
    for id in 1..=100 {
        match handle_order(order(id), &metrics).await {
            Ok(_) => {
                stock.fetch_sub(1, Ordering::Relaxed);
            }
            Err(_) => failed += 1,
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
    println!("and the shop's own instruments, on the same endpoint:");
    for line in answer.lines().filter(|line| {
        [
            "orders_placed",
            "order_amount",
            "order_last",
            "warehouse_stock",
        ]
        .iter()
        .any(|name| line.starts_with(name))
            && !line.contains("_bucket{")
    }) {
        println!("  {line}");
    }
    Ok(())
}
