//! A workflow that calls two child workflows, each with its own steps. Plain
//! synchronous code: the attributes work the same without async.
//!
//! Run with `cargo run --example parent_child`.

use workflow_otel::{child_workflow, current_workflow, step, workflow};

struct Report {
    customers: usize,
    invoices: usize,
}

#[workflow(name = "monthly_report")]
fn monthly_report(month: u32) -> Report {
    let customers = load_customers(month);
    let invoices = load_invoices(month);
    Report {
        customers: customers.len(),
        invoices: invoices.len(),
    }
}

#[child_workflow(args(month))]
fn load_customers(month: u32) -> Vec<String> {
    // None only when the attributes are switched off at compile time.
    if let Some(lineage) = current_workflow() {
        println!(
            "  {} runs at depth {} under {:?}",
            lineage.hierarchy_path(),
            lineage.depth(),
            lineage.parent().map(|parent| parent.name())
        );
    }
    let rows = fetch_rows("customers", month);
    rows.into_iter()
        .map(|row| format!("customer-{row}"))
        .collect()
}

#[child_workflow(args(month))]
fn load_invoices(month: u32) -> Vec<u64> {
    let rows = fetch_rows("invoices", month);
    rows.into_iter().filter(|row| row % 2 == 0).collect()
}

#[step(args(table))]
fn fetch_rows(table: &str, month: u32) -> Vec<u64> {
    (0..u64::from(month) * table.len() as u64).collect()
}

fn main() {
    let telemetry = workflow_otel::setup()
        .default_service_name("parent_child")
        .install();
    let report = monthly_report(3);
    telemetry.flush();
    println!(
        "=> {} customers, {} invoices",
        report.customers, report.invoices
    );
}
