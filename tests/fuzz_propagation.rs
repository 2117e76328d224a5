//! Ten million generated inputs through every parser of what a peer sends:
//! traceparent, tracestate, baggage, the workflow lineage and the message
//! carrier's JSON. No panic, accepted input round-trips within the limits,
//! and memory stays bounded.
//!
//! ```text
//! cargo run --release -p workflow-otel-tests --example fuzz_propagation -- 10000000
//! ```
//!
//! The count is the total over the five parsers; a seed may follow it. The
//! test suite runs a one-million slice of the same generator on every run.

#[path = "support/fuzz.rs"]
mod fuzz;

use std::time::Instant;

/// Peak memory allowed: the parsers keep nothing between inputs, so it is
/// the generator's largest input and the runtime, far below this.
const MEMORY_LIMIT_KIB: u64 = 256 * 1024;

fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args
        .next()
        .map_or(Ok(10_000_000), |count| count.parse())
        .expect("the first argument is the number of inputs");
    let seed: u64 = args
        .next()
        .map_or(Ok(0x9e37_79b9_7f4a_7c15), |seed| seed.parse())
        .expect("the second argument is a seed");
    let each = total.div_ceil(fuzz::PARSERS.len());
    let started = Instant::now();
    let accepted = fuzz::run(each, seed);
    for (parser, count) in fuzz::PARSERS.iter().zip(accepted) {
        println!("{parser:>12}: {each} inputs, {count} accepted");
    }
    let peak = fuzz::peak_memory_kib();
    println!(
        "{} inputs in {:.1}s, no panic; peak memory {}",
        each * fuzz::PARSERS.len(),
        started.elapsed().as_secs_f64(),
        peak.map_or("unknown".to_owned(), |kib| format!("{} MiB", kib / 1024)),
    );
    if let Some(peak) = peak {
        assert!(
            peak <= MEMORY_LIMIT_KIB,
            "peak memory {peak} KiB is over {MEMORY_LIMIT_KIB} KiB"
        );
    }
}
