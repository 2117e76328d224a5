//! Per-span overhead of workflow-otel against its peers, side by side.
//!
//! `cargo bench --bench overhead` runs every case in one process, interleaved
//! (round 1 of every case, then round 2, ...), so that drifts of the machine hit
//! all cases alike; it prints ns per span (median and min over rounds), heap
//! allocations per span on the calling thread, the spans each case delivered
//! to its exporter, and ratios to each peer; and writes `target/overhead.json`.
//!
//! `overhead --callgrind CASE ITERATIONS` runs one case once, for
//! `scripts/callgrind-overhead`, which counts instructions per span.
//!
//! Every recorded case ends in a counting exporter (or reporter): a case whose
//! spans do not all arrive reports the difference as dropped.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
};
use tracing_subscriber::layer::SubscriberExt as _;
use workflow_otel::genai::{ModelCall, Price, PriceTable, Usage};
use workflow_otel::{Instrumentation, JsonLinesExporter, Pipeline, PipelineConfig};

// ------------------------------------------------------------------ allocations

/// Counts heap allocations per thread, so the table can show what the calling
/// thread pays, apart from the exporter's threads.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with`: allocation during thread teardown must not panic.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations_on_this_thread() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// ------------------------------------------------------------------ sinks

/// An OpenTelemetry exporter that only counts what reaches it.
#[derive(Debug, Clone, Default)]
struct CountingExporter {
    spans: Arc<AtomicU64>,
}

impl SpanExporter for CountingExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.spans.fetch_add(batch.len() as u64, Ordering::Relaxed);
        std::future::ready(Ok(()))
    }
}

/// A provider whose batch queue holds a whole round, so that nothing is dropped
/// for lack of room and every case is measured doing all its work.
fn provider(sampler: Sampler, exporter: CountingExporter) -> SdkTracerProvider {
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(1 << 17)
        .with_max_export_batch_size(4096)
        .with_scheduled_delay(background_interval())
        .build();
    SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_span_processor(
            BatchSpanProcessor::builder(exporter)
                .with_batch_config(config)
                .build(),
        )
        .build()
}

/// fastrace's reporter is process-wide: one counter shared by its cases.
#[derive(Clone, Default)]
struct CountingReporter {
    spans: Arc<AtomicU64>,
}

impl fastrace::collector::Reporter for CountingReporter {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        self.spans.fetch_add(spans.len() as u64, Ordering::Relaxed);
    }
}

/// Under callgrind, background threads wake only when flushed, so that what they
/// do is the export work and not timer ticks that grow with the (slowed) run.
static UNDER_CALLGRIND: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn background_interval() -> Duration {
    if UNDER_CALLGRIND.load(Ordering::Relaxed) {
        Duration::from_secs(3600)
    } else {
        Duration::from_millis(50)
    }
}

#[path = "overhead_cases.rs"]
mod cases;

use cases::{Case, factories};

// ------------------------------------------------------------------ measurement

#[derive(Default)]
struct Samples {
    ns_per_span: Vec<f64>,
    allocations_per_span: Vec<f64>,
    runs: u64,
    iterations: u64,
    delivered: u64,
    expected: u64,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fastrace_spans = Arc::new(AtomicU64::new(0));
    let install_fastrace = |fastrace_spans: &Arc<AtomicU64>| {
        fastrace::set_reporter(
            CountingReporter {
                spans: fastrace_spans.clone(),
            },
            fastrace::collector::Config::default().report_interval(background_interval()),
        );
    };
    if let Some(position) = args.iter().position(|arg| arg == "--callgrind") {
        UNDER_CALLGRIND.store(true, Ordering::Relaxed);
        let name = args.get(position + 1).expect("--callgrind CASE ITERATIONS");
        let iterations: u64 = args
            .get(position + 2)
            .and_then(|n| n.parse().ok())
            .expect("--callgrind CASE ITERATIONS");
        install_fastrace(&fastrace_spans);
        let factory = factories(&fastrace_spans)
            .into_iter()
            .find(|(case, _)| slug(case) == *name)
            .map(|(_, factory)| factory)
            .unwrap_or_else(|| panic!("no case {name}; cases: {:?}", all_slugs()));
        let mut case = factory();
        callgrind_measured(&mut case, iterations);
        let delivered = (case.delivered)();
        let expected = case.expected(iterations);
        eprintln!("{name}: {delivered} spans delivered, {expected} expected");
        if delivered != expected {
            eprintln!("{name} lost spans: its count would not compare like with like");
            std::process::exit(1);
        }
        return;
    }
    if args.iter().any(|arg| arg == "--list") {
        for slug in all_slugs() {
            println!("{slug}");
        }
        return;
    }

    install_fastrace(&fastrace_spans);
    let mut cases: Vec<Case> = factories(&fastrace_spans)
        .into_iter()
        .map(|(_, factory)| factory())
        .collect();
    // `cargo bench` passes `--bench`; a number alone sets the rounds.
    let rounds: usize = args.iter().find_map(|arg| arg.parse().ok()).unwrap_or(40);
    let iterations: u64 = 2_000;
    let mut samples: Vec<Samples> = cases.iter().map(|_| Samples::default()).collect();
    // One warm-up round, not recorded, so lazy initialisation is not measured.
    for case in &mut cases {
        (case.run)(iterations);
    }
    for _ in 0..rounds {
        for (case, samples) in cases.iter_mut().zip(&mut samples) {
            // Flushing before and after each run (outside the timing) attributes
            // deliveries to the case even where sinks are shared (fastrace's).
            let delivered_before = (case.delivered)();
            let allocations = allocations_on_this_thread();
            let started = Instant::now();
            (case.run)(iterations);
            let elapsed = started.elapsed();
            let spans = (iterations * case.spans_per_iteration) as f64;
            samples.ns_per_span.push(elapsed.as_nanos() as f64 / spans);
            samples
                .allocations_per_span
                .push((allocations_on_this_thread() - allocations) as f64 / spans);
            samples.runs += 1;
            samples.iterations += iterations;
            samples.delivered += (case.delivered)() - delivered_before;
            samples.expected += case.expected(iterations);
        }
    }
    report(&cases, &samples);
}

fn slug(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').to_owned()
}

fn all_slugs() -> Vec<String> {
    factories(&Arc::new(AtomicU64::new(0)))
        .iter()
        .map(|(name, _)| slug(name))
        .collect()
}

/// The part of a callgrind run that is the caller's work: the script reads
/// this function's inclusive cost on the calling thread.
#[inline(never)]
fn callgrind_measured(case: &mut Case, iterations: u64) {
    (case.run)(iterations);
}

fn report(cases: &[Case], samples: &[Samples]) {
    let peers = [
        "log line, tracing-subscriber JSON alone",
        "fastrace #[trace] child span",
        "fastrace root span per call",
        "tracing #[instrument] + tracing-opentelemetry",
        "raw opentelemetry_sdk span",
        "axum route + tower-http TraceLayer + tracing-opentelemetry",
    ];
    let median_of = |name: &str| {
        cases
            .iter()
            .zip(samples)
            .find(|(case, _)| case.name == name)
            .map(|(_, s)| median(&s.ns_per_span))
    };
    println!(
        "{:<46} {:>9} {:>9} {:>8} {:>12} {:>8}   ratios (median / peer median)",
        "case", "ns/span", "min", "alloc/sp", "delivered", "dropped"
    );
    let mut json = BTreeMap::new();
    // A case that lost spans did less work than the others: no fair comparison.
    let mut unfair = Vec::new();
    for (case, samples) in cases.iter().zip(samples) {
        let ns_median = median(&samples.ns_per_span);
        let ns_min = min(&samples.ns_per_span);
        let allocations = median(&samples.allocations_per_span);
        let expected = samples.expected;
        if samples.delivered != expected {
            unfair.push(format!(
                "{}: {} spans delivered, {expected} expected",
                case.name, samples.delivered
            ));
        }
        let delivered = samples.delivered;
        let ratios: Vec<String> = peers
            .iter()
            .filter(|peer| **peer != case.name)
            .filter_map(|peer| {
                median_of(peer)
                    .map(|peer_ns| format!("{:.2}x {}", ns_median / peer_ns, short(peer)))
            })
            .collect();
        println!(
            "{:<46} {:>9.1} {:>9.1} {:>8.2} {:>12} {:>8}   {}",
            case.name,
            ns_median,
            ns_min,
            allocations,
            delivered,
            expected.saturating_sub(delivered),
            if case.name.starts_with("baseline") {
                String::new()
            } else {
                ratios.join(", ")
            }
        );
        json.insert(
            slug(case.name),
            format!(
                "{{\"ns_median\": {ns_median:.2}, \"ns_min\": {ns_min:.2}, \"allocations_per_span\": {allocations:.2}, \"spans_delivered\": {delivered}, \"spans_dropped\": {}}}",
                expected.saturating_sub(delivered)
            ),
        );
    }
    let body: Vec<String> = json
        .iter()
        .map(|(k, v)| format!("  \"{k}\": {v}"))
        .collect();
    let path = target_dir().join("overhead.json");
    match std::fs::write(&path, format!("{{\n{}\n}}\n", body.join(",\n"))) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(error) => eprintln!("could not write {}: {error}", path.display()),
    }
    if !unfair.is_empty() {
        eprintln!("every case must deliver every span; these did not:");
        for line in &unfair {
            eprintln!("  {line}");
        }
        std::process::exit(1);
    }
}

fn short(peer: &str) -> &str {
    match peer {
        "fastrace #[trace] child span" => "fastrace",
        "fastrace root span per call" => "fastrace-root",
        "tracing #[instrument] + tracing-opentelemetry" => "tracing-otel",
        "raw opentelemetry_sdk span" => "raw-sdk",
        "log line, tracing-subscriber JSON alone" => "subscriber-json",
        "axum route + tower-http TraceLayer + tracing-opentelemetry" => "tower-http",
        other => other,
    }
}

fn target_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return dir.into();
    }
    // The bench binary lives in target/release/deps/.
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| "target".into())
}
