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
use workflow_otel::{Instrumentation, Pipeline, PipelineConfig};

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

// ------------------------------------------------------------------ the instrumented functions

fn plain(x: u64) -> u64 {
    black_box(x + 1)
}

#[workflow_otel::step]
fn wo_step(x: u64) -> u64 {
    black_box(x + 1)
}

/// A step recording one model call (a second span, with GenAI attributes,
/// a cost from the price table, and the workflow's totals).
#[workflow_otel::step]
fn wo_model_step(x: u64) -> u64 {
    ModelCall::chat("openai", "gpt-4o")
        .start()
        .finish(Usage::tokens(1_000, 100).cached_input(200));
    black_box(x + 1)
}

#[workflow_otel::workflow]
fn wo_model_parent(iterations: u64) {
    for i in 0..iterations {
        wo_model_step(i);
    }
}

#[workflow_otel::workflow]
fn wo_workflow(x: u64) -> u64 {
    black_box(x + 1)
}

#[workflow_otel::workflow]
fn wo_parent(iterations: u64) {
    for i in 0..iterations {
        wo_step(i);
    }
}

#[workflow_otel::workflow]
fn wo_nested(x: u64) -> u64 {
    wo_mid(x) + wo_mid(x) + wo_mid(x)
}

#[workflow_otel::step]
fn wo_mid(x: u64) -> u64 {
    wo_step(x) + wo_step(x)
}

#[workflow_otel::step]
async fn wo_async_step(x: u64) -> u64 {
    black_box(x + 1)
}

#[workflow_otel::workflow]
async fn wo_async_parent(iterations: u64) {
    for i in 0..iterations {
        wo_async_step(i).await;
    }
}

#[workflow_otel::workflow]
async fn wo_async_workflow(x: u64) -> u64 {
    black_box(x + 1)
}

#[fastrace::trace]
fn fastrace_traced(x: u64) -> u64 {
    black_box(x + 1)
}

#[tracing::instrument(skip_all)]
fn tracing_instrumented(x: u64) -> u64 {
    black_box(x + 1)
}

/// What any instrumentation pays that makes its span the current one in the
/// OpenTelemetry `Context` (so that spans opened through the OpenTelemetry API
/// nest under it): a new context with the span, attached around the body, then
/// detached and dropped. No ids, no clock, no recording.
fn context_floor(iterations: u64) {
    use opentelemetry::trace::{
        SpanContext, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    let span = SpanContext::new(
        TraceId::from(1_u128),
        opentelemetry::trace::SpanId::from(1_u64),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    for i in 0..iterations {
        let cx =
            opentelemetry::Context::map_current(|cx| cx.with_remote_span_context(span.clone()));
        let _attached = cx.attach();
        plain(i);
    }
}

/// Drives a future that never waits (ours here only yield by completing).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut task = TaskContext::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut task) {
            return output;
        }
    }
}

// ------------------------------------------------------------------ cases

/// Calls of the fastrace child case under one root.
const FASTRACE_ROOT_EVERY: u64 = 1_000;

struct Case {
    name: &'static str,
    /// Spans one iteration opens.
    spans_per_iteration: u64,
    /// Spans one run opens besides the iterations (an enclosing parent).
    spans_per_run: u64,
    run: Box<dyn FnMut(u64)>,
    /// Waits until everything produced so far reached the sink; returns the
    /// number of spans delivered in total.
    delivered: Box<dyn Fn() -> u64>,
    /// Whether spans should reach the sink (false for unsampled cases).
    records: bool,
    /// A run opens a new root every this many iterations (0: never): fastrace
    /// keeps at most 10,240 spans under one root, so its child case starts a
    /// new root every 1,000 calls to have every span delivered.
    roots_every: u64,
}

impl Case {
    /// The spans one run of `iterations` must deliver to the sink.
    fn expected(&self, iterations: u64) -> u64 {
        if !self.records {
            return 0;
        }
        let roots = match self.roots_every {
            0 => 0,
            every => iterations.div_ceil(every),
        };
        iterations * self.spans_per_iteration + self.spans_per_run + roots
    }
}

fn sdk_delivered(
    provider: &SdkTracerProvider,
    exporter: &CountingExporter,
) -> Box<dyn Fn() -> u64> {
    let provider = provider.clone();
    let spans = exporter.spans.clone();
    Box::new(move || {
        let _ = provider.force_flush();
        spans.load(Ordering::Relaxed)
    })
}

fn workflow_otel_case(
    name: &'static str,
    sampler: Sampler,
    spans_per_iteration: u64,
    spans_per_run: u64,
    body: impl FnMut(u64) + 'static,
) -> Case {
    workflow_otel_case_with(
        name,
        sampler,
        spans_per_iteration,
        spans_per_run,
        body,
        |i| i,
    )
}

fn workflow_otel_case_with(
    name: &'static str,
    sampler: Sampler,
    spans_per_iteration: u64,
    spans_per_run: u64,
    mut body: impl FnMut(u64) + 'static,
    configure: fn(Instrumentation) -> Instrumentation,
) -> Case {
    let records = !matches!(sampler, Sampler::AlwaysOff);
    let exporter = CountingExporter::default();
    let spans = exporter.spans.clone();
    let config = PipelineConfig {
        // Room for every span of the largest callgrind run (22,000 × 10),
        // where the worker runs slowly: a dropped span is a failed case.
        max_queue_size: 1 << 20,
        max_export_batch_size: 4096,
        scheduled_delay: background_interval(),
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::with_config(exporter, config, None);
    let instrumentation = configure(Instrumentation::new(&pipeline).sampler(sampler));
    Case {
        name,
        spans_per_iteration,
        spans_per_run,
        delivered: Box::new(move || {
            let _ = pipeline.force_flush();
            spans.load(Ordering::Relaxed)
        }),
        run: Box::new(move |iterations| instrumentation.run(|| body(iterations))),
        records,
        roots_every: 0,
    }
}

type Factory = Box<dyn FnOnce() -> Case>;

fn fastrace_case(
    name: &'static str,
    spans: &Arc<AtomicU64>,
    records: bool,
    spans_per_run: u64,
    run: fn(u64),
) -> Case {
    let spans = spans.clone();
    Case {
        name,
        spans_per_iteration: 1,
        spans_per_run,
        run: Box::new(run),
        delivered: Box::new(move || {
            fastrace::flush();
            spans.load(Ordering::Relaxed)
        }),
        records,
        roots_every: 0,
    }
}

fn sdk_case(name: &'static str, sampler: Sampler) -> Case {
    let records = !matches!(sampler, Sampler::AlwaysOff);
    let exporter = CountingExporter::default();
    let provider = provider(sampler, exporter.clone());
    let tracer = provider.tracer("bench");
    Case {
        name,
        spans_per_iteration: 1,
        spans_per_run: 1,
        delivered: sdk_delivered(&provider, &exporter),
        run: Box::new(move |iterations| {
            tracer.in_span("parent", |_| {
                for i in 0..iterations {
                    tracer.in_span("raw", |_| black_box(i + 1));
                }
            });
        }),
        records,
        roots_every: 0,
    }
}

fn tracing_case(name: &'static str) -> Case {
    let exporter = CountingExporter::default();
    let provider = provider(Sampler::AlwaysOn, exporter.clone());
    let tracer = provider.tracer("bench");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    let dispatch = tracing::Dispatch::new(subscriber);
    Case {
        name,
        spans_per_iteration: 1,
        spans_per_run: 1,
        run: Box::new(move |iterations| {
            tracing::dispatcher::with_default(&dispatch, || {
                let parent = tracing::info_span!("parent");
                let _entered = parent.enter();
                for i in 0..iterations {
                    tracing_instrumented(i);
                }
            });
        }),
        delivered: sdk_delivered(&provider, &exporter),
        records: true,
        roots_every: 0,
    }
}

/// Every case, by name, as a factory: a case sets up its own provider and
/// threads when built, so a callgrind run builds and pays for only its own.
fn factories(fastrace_spans: &Arc<AtomicU64>) -> Vec<(&'static str, Factory)> {
    let fastrace = fastrace_spans.clone();
    let (fastrace_2, fastrace_3) = (fastrace.clone(), fastrace.clone());
    vec![
        (
            "baseline (no instrumentation)",
            Box::new(|| Case {
                name: "baseline (no instrumentation)",
                spans_per_iteration: 1,
                spans_per_run: 0,
                run: Box::new(|iterations| {
                    for i in 0..iterations {
                        plain(i);
                    }
                }),
                delivered: Box::new(|| 0),
                records: false,
                roots_every: 0,
            }),
        ),
        (
            "wo #[step]",
            Box::new(|| workflow_otel_case("wo #[step]", Sampler::AlwaysOn, 1, 1, wo_parent)),
        ),
        (
            "otel Context per span (floor)",
            Box::new(|| Case {
                name: "otel Context per span (floor)",
                spans_per_iteration: 1,
                spans_per_run: 0,
                run: Box::new(context_floor),
                delivered: Box::new(|| 0),
                records: false,
                roots_every: 0,
            }),
        ),
        (
            "wo #[step] + one model call",
            Box::new(|| {
                workflow_otel_case_with(
                    "wo #[step] + one model call",
                    Sampler::AlwaysOn,
                    2,
                    1,
                    wo_model_parent,
                    |instrumentation| {
                        instrumentation.prices(
                            PriceTable::new("USD").model("gpt-4o", Price::per_million(2.5, 10.0)),
                        )
                    },
                )
            }),
        ),
        (
            "wo #[step] unsampled",
            Box::new(|| {
                workflow_otel_case("wo #[step] unsampled", Sampler::AlwaysOff, 1, 1, wo_parent)
            }),
        ),
        (
            "wo #[workflow] root per call",
            Box::new(|| {
                workflow_otel_case(
                    "wo #[workflow] root per call",
                    Sampler::AlwaysOn,
                    1,
                    0,
                    |iterations| {
                        for i in 0..iterations {
                            wo_workflow(i);
                        }
                    },
                )
            }),
        ),
        (
            "wo nested 1+3+6 (per span)",
            Box::new(|| {
                workflow_otel_case(
                    "wo nested 1+3+6 (per span)",
                    Sampler::AlwaysOn,
                    10,
                    0,
                    |iterations| {
                        for i in 0..iterations {
                            wo_nested(i);
                        }
                    },
                )
            }),
        ),
        (
            "wo async #[step]",
            Box::new(|| {
                workflow_otel_case("wo async #[step]", Sampler::AlwaysOn, 1, 1, |iterations| {
                    block_on(wo_async_parent(iterations));
                })
            }),
        ),
        (
            "wo async #[workflow] root per call",
            Box::new(|| {
                workflow_otel_case(
                    "wo async #[workflow] root per call",
                    Sampler::AlwaysOn,
                    1,
                    0,
                    |iterations| {
                        for i in 0..iterations {
                            block_on(wo_async_workflow(i));
                        }
                    },
                )
            }),
        ),
        (
            "fastrace #[trace] child span",
            Box::new(move || {
                let mut case = fastrace_case(
                    "fastrace #[trace] child span",
                    &fastrace,
                    true,
                    0,
                    |iterations| {
                        // fastrace keeps at most 10,240 spans under one root:
                        // a root per 1,000 calls has every call recorded.
                        let mut start = 0;
                        while start < iterations {
                            let root = fastrace::Span::root(
                                "root",
                                fastrace::collector::SpanContext::random(),
                            );
                            let _guard = root.set_local_parent();
                            let end = (start + FASTRACE_ROOT_EVERY).min(iterations);
                            for i in start..end {
                                fastrace_traced(i);
                            }
                            start = end;
                        }
                    },
                );
                case.roots_every = FASTRACE_ROOT_EVERY;
                case
            }),
        ),
        (
            "fastrace #[trace] not recording",
            Box::new(move || {
                fastrace_case(
                    "fastrace #[trace] not recording",
                    &fastrace_2,
                    false,
                    0,
                    |iterations| {
                        for i in 0..iterations {
                            fastrace_traced(i);
                        }
                    },
                )
            }),
        ),
        (
            "fastrace root span per call",
            Box::new(move || {
                fastrace_case(
                    "fastrace root span per call",
                    &fastrace_3,
                    true,
                    0,
                    |iterations| {
                        for i in 0..iterations {
                            let root = fastrace::Span::root(
                                "root",
                                fastrace::collector::SpanContext::random(),
                            );
                            let _guard = root.set_local_parent();
                            black_box(i + 1);
                        }
                    },
                )
            }),
        ),
        (
            "tracing #[instrument] + tracing-opentelemetry",
            Box::new(|| tracing_case("tracing #[instrument] + tracing-opentelemetry")),
        ),
        (
            "raw opentelemetry_sdk span",
            Box::new(|| sdk_case("raw opentelemetry_sdk span", Sampler::AlwaysOn)),
        ),
        (
            "raw opentelemetry_sdk, AlwaysOff",
            Box::new(|| sdk_case("raw opentelemetry_sdk, AlwaysOff", Sampler::AlwaysOff)),
        ),
    ]
}

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
        "fastrace #[trace] child span",
        "fastrace root span per call",
        "tracing #[instrument] + tracing-opentelemetry",
        "raw opentelemetry_sdk span",
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
