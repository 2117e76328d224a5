//! The cases of the overhead benchmark: the instrumented functions, and for
//! each library a case that runs them into a counting sink.

use super::*;

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

/// A step with a literal field, as `fields(k = "literal")` writes one.
#[workflow_otel::step(fields(region = "eu-west"))]
fn wo_step_with_field(x: u64) -> u64 {
    black_box(x + 1)
}

#[workflow_otel::workflow]
fn wo_parent_of_fields(iterations: u64) {
    for i in 0..iterations {
        wo_step_with_field(i);
    }
}

/// A step that records an integer argument.
#[workflow_otel::step(args(x))]
fn wo_step_with_arg(x: u64) -> u64 {
    black_box(x + 1)
}

#[workflow_otel::workflow]
fn wo_parent_of_args(iterations: u64) {
    for i in 0..iterations {
        wo_step_with_arg(i);
    }
}

#[workflow_otel::child_workflow]
fn wo_child(x: u64) -> u64 {
    black_box(x + 1)
}

#[workflow_otel::workflow]
fn wo_parent_of_children(iterations: u64) {
    for i in 0..iterations {
        wo_child(i);
    }
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

pub(crate) struct Case {
    pub(crate) name: &'static str,
    /// Spans one iteration opens.
    pub(crate) spans_per_iteration: u64,
    /// Spans one run opens besides the iterations (an enclosing parent).
    pub(crate) spans_per_run: u64,
    pub(crate) run: Box<dyn FnMut(u64)>,
    /// Waits until everything produced so far reached the sink; returns the
    /// number of spans delivered in total.
    pub(crate) delivered: Box<dyn Fn() -> u64>,
    /// Whether spans should reach the sink (false for unsampled cases).
    pub(crate) records: bool,
    /// A run opens a new root every this many iterations (0: never): fastrace
    /// keeps at most 10,240 spans under one root, so its child case starts a
    /// new root every 1,000 calls to have every span delivered.
    pub(crate) roots_every: u64,
}

impl Case {
    /// The spans one run of `iterations` must deliver to the sink.
    pub(crate) fn expected(&self, iterations: u64) -> u64 {
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

type Factory = Box<dyn FnOnce() -> Case>;

#[path = "overhead_signals.rs"]
mod signals;
use signals::with_metrics;

#[path = "overhead_export.rs"]
mod export;

#[path = "overhead_http.rs"]
mod http_layers;

#[path = "overhead_limits.rs"]
mod limits;
use export::{
    json_lines_case, json_lines_case_with, span_data_case, tail_factories, workflow_otel_case,
    workflow_otel_case_with,
};

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
pub(crate) fn factories(fastrace_spans: &Arc<AtomicU64>) -> Vec<(&'static str, Factory)> {
    let fastrace = fastrace_spans.clone();
    let (fastrace_2, fastrace_3) = (fastrace.clone(), fastrace.clone());
    let mut factories: Vec<(&'static str, Factory)> = vec![
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
            "wo #[step] + metrics",
            Box::new(|| {
                with_metrics(workflow_otel_case(
                    "wo #[step] + metrics",
                    Sampler::AlwaysOn,
                    1,
                    1,
                    wo_parent,
                ))
            }),
        ),
        (
            "wo #[step] unsampled + metrics",
            Box::new(|| {
                with_metrics(workflow_otel_case(
                    "wo #[step] unsampled + metrics",
                    Sampler::AlwaysOff,
                    1,
                    1,
                    wo_parent,
                ))
            }),
        ),
        (
            "log line in a #[step], workflow-otel JSON lines",
            Box::new(signals::log_line_in_a_step),
        ),
        (
            "log line, tracing-subscriber JSON alone",
            Box::new(signals::log_line_through_the_subscriber_alone),
        ),
        (
            "otel SDK histogram record, 2 attributes (reference)",
            Box::new(signals::sdk_histogram_record),
        ),
        (
            "user Counter::add + Histogram::record, workflow-otel",
            Box::new(signals::user_metrics_workflow_otel),
        ),
        (
            "user Counter::add + Histogram::record, otel SDK",
            Box::new(signals::user_metrics_sdk),
        ),
        (
            "user counter + histogram, metrics crate (cached handles)",
            Box::new(signals::user_metrics_metrics_crate),
        ),
        (
            "bound counter + histogram, workflow-otel",
            Box::new(signals::bound_metrics_workflow_otel),
        ),
        (
            "bound counter + histogram, otel SDK",
            Box::new(signals::bound_metrics_sdk),
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
            "wo #[step], an exporter of SpanData",
            Box::new(|| span_data_case("wo #[step], an exporter of SpanData", wo_parent)),
        ),
        (
            "wo #[step], JSON-lines file exporter",
            Box::new(|| json_lines_case("wo #[step], JSON-lines file exporter", wo_parent)),
        ),
        (
            "wo #[child_workflow]",
            Box::new(|| {
                workflow_otel_case(
                    "wo #[child_workflow]",
                    Sampler::AlwaysOn,
                    1,
                    1,
                    wo_parent_of_children,
                )
            }),
        ),
        (
            "wo #[step] + fields(k = \"literal\")",
            Box::new(|| {
                workflow_otel_case(
                    "wo #[step] + fields(k = \"literal\")",
                    Sampler::AlwaysOn,
                    1,
                    1,
                    wo_parent_of_fields,
                )
            }),
        ),
        (
            "wo #[step] + args(integer)",
            Box::new(|| {
                workflow_otel_case(
                    "wo #[step] + args(integer)",
                    Sampler::AlwaysOn,
                    1,
                    1,
                    wo_parent_of_args,
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
    ];
    factories.extend(tail_factories());
    factories.extend(http_layers::factories());
    factories.extend(limits::factories());
    factories
}
