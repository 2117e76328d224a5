//! A sequential chain: validation, then transformation, then storage, each a
//! child workflow fed by the previous one's output. A failure stops the chain
//! and shows on the failing workflow and on every ancestor.
//!
//! Run with `cargo run --example sequential_chain`.

use std::time::Duration;

use workflow_otel::{child_workflow, step, workflow};

#[derive(Debug, Clone)]
struct Record {
    id: u32,
    amount_cents: i64,
}

#[derive(Debug)]
struct ChainError(String);

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ChainError {}

#[workflow(fields(batch.size = records.len()))]
async fn ingest_batch(records: Vec<Record>) -> Result<usize, ChainError> {
    let valid = validation(records).await?;
    let rows = transformation(valid).await?;
    storage(rows).await
}

#[child_workflow]
async fn validation(records: Vec<Record>) -> Result<Vec<Record>, ChainError> {
    for record in &records {
        check_amount(record).await?;
    }
    Ok(records)
}

#[step(args(record))]
async fn check_amount(record: &Record) -> Result<(), ChainError> {
    if record.amount_cents < 0 {
        return Err(ChainError(format!(
            "record {} has a negative amount",
            record.id
        )));
    }
    Ok(())
}

#[child_workflow]
async fn transformation(records: Vec<Record>) -> Result<Vec<String>, ChainError> {
    Ok(records.iter().map(to_csv_row).collect())
}

#[step]
fn to_csv_row(record: &Record) -> String {
    format!("{},{:.2}", record.id, record.amount_cents as f64 / 100.0)
}

#[child_workflow]
async fn storage(rows: Vec<String>) -> Result<usize, ChainError> {
    write_rows(&rows).await
}

#[step(ret)]
async fn write_rows(rows: &[String]) -> Result<usize, ChainError> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    Ok(rows.len())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let telemetry = workflow_otel::setup()
        .default_service_name("sequential_chain")
        .install();

    let good = vec![
        Record {
            id: 1,
            amount_cents: 1250,
        },
        Record {
            id: 2,
            amount_cents: 99,
        },
    ];
    let stored = ingest_batch(good).await;
    telemetry.flush();
    println!("=> stored {stored:?} rows\n");

    let bad = vec![
        Record {
            id: 3,
            amount_cents: 500,
        },
        Record {
            id: 4,
            amount_cents: -20,
        },
    ];
    let failed = ingest_batch(bad).await;
    telemetry.flush();
    println!("=> {failed:?}");
}
