//! Keep what matters at a 1% background rate: 1,000 orders, every 20th one
//! failing and every 250th one slow, with tail sampling keeping every
//! failure and every slow order in full, and 1% of the rest. The kept traces
//! go to a JSON-lines file; the workflow metrics count every order,
//! sampled or not, so the file's failures can be checked against them.
//!
//! Run with `cargo run --example sampling`; the file is
//! `WORKFLOW_OTEL_FILE`, or `workflow-otel-sampling.jsonl` in the temporary
//! directory.

use std::collections::BTreeMap;
use std::time::Duration;

use workflow_otel::{TailSampling, step, workflow};
use workflow_otel_examples::scrape;

#[derive(Debug)]
struct Declined;

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("card declined")
    }
}

impl workflow_otel::ErrorType for Declined {
    fn error_type(&self) -> &'static str {
        "payment.declined"
    }
}

#[step]
fn validate(id: u64) -> u64 {
    id
}

#[step]
fn charge(id: u64) -> Result<(), Declined> {
    if id % 20 == 7 { Err(Declined) } else { Ok(()) }
}

#[step]
fn ship(id: u64) {
    if id % 250 == 100 {
        // A slow courier: longer than the 100 ms threshold.
        std::thread::sleep(Duration::from_millis(120));
    }
}

#[workflow(fields(order.id = id))]
fn place_order(id: u64) -> Result<(), Declined> {
    validate(id);
    charge(id)?;
    ship(id);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = std::env::var_os("WORKFLOW_OTEL_FILE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("workflow-otel-sampling.jsonl"));
    let _ = std::fs::remove_file(&file);
    let telemetry = workflow_otel::setup()
        .default_service_name("sampling")
        .file(&file)
        .tail_sampling(
            TailSampling::new()
                .slower_than(Duration::from_millis(100))
                .ratio(0.01),
        )
        .prometheus_address("127.0.0.1:0")
        .try_install()?;
    let address = telemetry
        .prometheus_address()
        .ok_or("the endpoint did not start")?;
    let mut failed = 0;
    for id in 1..=1_000 {
        if place_order(id).is_err() {
            failed += 1;
        }
    }
    telemetry.flush();

    // What the file kept, by the reason on each root (with the attributes
    // compiled out there is no file: nothing was recorded).
    let spans = match std::fs::File::open(&file) {
        Ok(opened) => workflow_otel::read_json_lines(std::io::BufReader::new(opened))?,
        Err(_) => Vec::new(),
    };
    let mut kept: BTreeMap<String, usize> = BTreeMap::new();
    for span in spans.iter().filter(|span| span.name == "place_order") {
        let reason = span
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == workflow_otel::SAMPLING_REASON)
            .map_or_else(|| "?".to_owned(), |kv| kv.value.to_string());
        *kept.entry(reason).or_default() += 1;
    }
    println!(
        "1000 orders, {failed} failed; {} spans kept in {}:",
        spans.len(),
        file.display()
    );
    for (reason, traces) in &kept {
        println!("  {traces} traces kept for `{reason}`");
    }
    // The first failed order and the first slow one, as the console shows them.
    for id in [7, 100] {
        let order_id = workflow_otel::opentelemetry::Value::I64(id);
        let Some(root) = spans.iter().find(|span| {
            span.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "order.id" && kv.value == order_id)
        }) else {
            continue;
        };
        let trace_id = root.span_context.trace_id();
        let trace = spans
            .iter()
            .filter(|span| span.span_context.trace_id() == trace_id)
            .cloned();
        println!("trace {trace_id}");
        print!(
            "{}",
            workflow_otel::SpanTree::from_spans(trace).render_console()
        );
    }
    println!("and every order counted on /metrics, kept or not:");
    let answer = scrape(address)?;
    for line in answer.lines().filter(|line| {
        (line.starts_with("workflow_calls_total{") || line.starts_with("workflow_failures_total{"))
            && line.contains("workflow_name=\"place_order\"")
            || line.starts_with("workflow_tail_sampling_traces_total{")
    }) {
        println!("  {line}");
    }
    Ok(())
}
