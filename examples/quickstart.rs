//! The quickstart: an order workflow with steps, parallel steps and a child
//! workflow, printed as a tree on the console when each order is done.
//!
//! Run with `cargo run --example quickstart`. No collector is needed.

use std::fmt;
use std::time::Duration;

use workflow_otel::{checkpoint, child_workflow, step, workflow};

#[derive(Debug)]
struct Order {
    id: u64,
    cents: u64,
    card: &'static str,
}

#[derive(Debug)]
struct Receipt {
    invoice: u64,
}

#[derive(Debug)]
enum OrderError {
    Empty,
    CardDeclined(&'static str),
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderError::Empty => write!(f, "the order has no items"),
            OrderError::CardDeclined(card) => write!(f, "card {card} was declined"),
        }
    }
}

impl std::error::Error for OrderError {}

#[workflow(fields(order.id = order.id))]
async fn handle_order(order: Order) -> Result<Receipt, OrderError> {
    validate(&order).await?;
    // Both warehouses are asked at once; each step nests under this workflow.
    let (north, south) = tokio::join!(reserve(&order, "north"), reserve(&order, "south"));
    checkpoint("stock_reserved");
    let invoice = bill(&order).await?;
    notify(order.id, north + south).await;
    Ok(Receipt { invoice })
}

#[step]
async fn validate(order: &Order) -> Result<(), OrderError> {
    if order.cents == 0 {
        return Err(OrderError::Empty);
    }
    Ok(())
}

#[step(args(warehouse))]
async fn reserve(order: &Order, warehouse: &str) -> u64 {
    tokio::time::sleep(Duration::from_millis(5 + order.id % 3)).await;
    if warehouse == "north" { 2 } else { 1 }
}

#[child_workflow]
async fn bill(order: &Order) -> Result<u64, OrderError> {
    let invoice = charge(order.card, order.cents).await?;
    Ok(invoice)
}

#[step(args(cents))]
async fn charge(card: &'static str, cents: u64) -> Result<u64, OrderError> {
    tokio::time::sleep(Duration::from_millis(3)).await;
    if card.ends_with("0002") {
        return Err(OrderError::CardDeclined(card));
    }
    Ok(cents * 7)
}

#[step(args(order_id, items))]
async fn notify(order_id: u64, items: u64) {
    let message = format!("order {order_id}: {items} items reserved");
    tokio::time::sleep(Duration::from_millis(1)).await;
    drop(message);
}

#[tokio::main]
async fn main() {
    let telemetry = workflow_otel::setup()
        .default_service_name("quickstart")
        .install();

    let orders = [
        Order {
            id: 1,
            cents: 1250,
            card: "4242-4242-4242-4242",
        },
        Order {
            id: 2,
            cents: 990,
            card: "4000-0000-0000-0002",
        },
    ];
    for order in orders {
        let outcome = handle_order(order).await;
        // Trees print from a background thread; flush to see this one now.
        telemetry.flush();
        match outcome {
            Ok(receipt) => println!("=> order done, invoice {}\n", receipt.invoice),
            Err(error) => println!("=> order failed: {error}\n"),
        }
    }
}
