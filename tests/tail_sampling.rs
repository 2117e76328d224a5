//! Tail sampling: whole local traces kept or dropped when their root ends.
//! Every failure kept in full at a 0% background rate (sync, async, spawned
//! tasks, threads, a panic, a cancelled future), fast successful ones
//! dropped, slow ones kept, the rule, the budget's early decisions with
//! exact counts, and the hold time, after which later spans follow.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use workflow_otel::{
    Instrumentation, Pipeline, PipelineConfig, SpanTree, TailSampling, step, workflow,
};

/// Keeps what it is given, to look at after a flush.
#[derive(Clone, Debug, Default)]
struct Kept(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Kept {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.0.lock().unwrap().extend(batch);
        std::future::ready(Ok(()))
    }
}

struct Harness {
    kept: Kept,
    pipeline: Pipeline,
    instrumentation: Instrumentation,
}

impl Harness {
    fn new(tail: TailSampling) -> Harness {
        let kept = Kept::default();
        let config = PipelineConfig {
            tail_sampling: Some(tail),
            scheduled_delay: Duration::ZERO,
            ..PipelineConfig::default()
        };
        let pipeline = Pipeline::with_config(kept.clone(), config, None);
        let instrumentation = Instrumentation::new(&pipeline);
        Harness {
            kept,
            pipeline,
            instrumentation,
        }
    }

    /// The trees of what was kept, one per trace (in name order: traces
    /// exported in different batches may differ in their clocks by a few
    /// microseconds), with the keys that tell the story.
    fn tree(&self) -> String {
        self.pipeline.force_flush().expect("flush");
        let spans = self.kept.0.lock().unwrap().clone();
        let mut traces: Vec<Vec<SpanData>> = Vec::new();
        for span in spans {
            let trace_id = span.span_context.trace_id();
            match traces
                .iter_mut()
                .find(|trace| trace[0].span_context.trace_id() == trace_id)
            {
                Some(trace) => trace.push(span),
                None => traces.push(vec![span]),
            }
        }
        let mut trees: Vec<String> = traces
            .into_iter()
            .map(|trace| {
                SpanTree::from_spans(trace).render_with(|key| {
                    matches!(key, "sampling.reason" | "error.type" | "order.priority")
                })
            })
            .collect();
        trees.sort();
        trees.concat()
    }

    /// (exported, dropped, tail-dropped) once everything is settled.
    fn counts(&self) -> (u64, u64, u64) {
        self.pipeline.force_flush().expect("flush");
        (
            self.pipeline.exported_spans(),
            self.pipeline.dropped_spans(),
            self.pipeline.tail_dropped_spans(),
        )
    }
}

#[step]
fn check(fail: bool) -> Result<(), String> {
    if fail {
        Err("out of stock".into())
    } else {
        Ok(())
    }
}

#[workflow]
fn order(fail: bool) -> Result<(), String> {
    check(false)?;
    check(fail)
}

#[step]
async fn reserve(fail: bool) -> Result<(), String> {
    if fail { Err("no stock".into()) } else { Ok(()) }
}

#[workflow]
async fn async_order(fail: bool) -> Result<(), String> {
    workflow_otel::spawn(reserve(fail)).await.unwrap()
}

#[workflow]
fn threaded_order(fail: bool) -> Result<(), String> {
    workflow_otel::spawn_thread(move || check(fail))
        .join()
        .unwrap()
}

#[step]
fn explode() {
    panic!("bug");
}

#[workflow]
fn panicking_order() {
    let _ = std::panic::catch_unwind(explode);
}

#[step]
async fn forever() {
    std::future::pending::<()>().await;
}

#[workflow]
async fn cancelling_order() {
    // Polled once, then dropped: the step ends cancelled.
    let mut step = Box::pin(forever());
    let waker = std::task::Waker::noop();
    let _ = step
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker));
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn every_failure_is_kept_whole_at_a_zero_rate_and_the_rest_dropped() {
    let harness = Harness::new(TailSampling::new().keep_cancelled(true));
    harness.instrumentation.run(|| {
        for _ in 0..3 {
            let _ = order(false);
        }
        let _ = order(true);
        let _ = threaded_order(false);
        let _ = threaded_order(true);
        panicking_order();
    });
    harness.instrumentation.run(|| {
        block_on(harness.instrumentation.scope(async {
            let _ = async_order(false).await;
            let _ = async_order(true).await;
            cancelling_order().await;
        }))
    });
    assert_eq!(
        harness.tree(),
        "\
async_order #1 [workflow] Error(\"no stock\")
  | error.type: \"_OTHER\"
  | sampling.reason: \"error\"
  | event exception {exception.message: \"no stock\", exception.type: \"_OTHER\"}
  reserve #2 [step] Error(\"no stock\")
    | error.type: \"_OTHER\"
    | event exception {exception.message: \"no stock\", exception.type: \"_OTHER\"}
cancelling_order #1 [workflow] Unset
  | sampling.reason: \"cancelled\"
  forever #2 [step] Unset
order #1 [workflow] Error(\"out of stock\")
  | error.type: \"_OTHER\"
  | sampling.reason: \"error\"
  | event exception {exception.message: \"out of stock\", exception.type: \"_OTHER\"}
  check #2 [step] Unset
  check #3 [step] Error(\"out of stock\")
    | error.type: \"_OTHER\"
    | event exception {exception.message: \"out of stock\", exception.type: \"_OTHER\"}
panicking_order #1 [workflow] Unset
  | sampling.reason: \"error\"
  explode #2 [step] Error(\"bug\")
    | error.type: \"panic\"
    | event exception {exception.message: \"bug\", exception.type: \"panic\"}
threaded_order #1 [workflow] Error(\"out of stock\")
  | error.type: \"_OTHER\"
  | sampling.reason: \"error\"
  | event exception {exception.message: \"out of stock\", exception.type: \"_OTHER\"}
  check #2 [step] Error(\"out of stock\")
    | error.type: \"_OTHER\"
    | event exception {exception.message: \"out of stock\", exception.type: \"_OTHER\"}
"
    );
    // Kept: 3 + 2 + 2 + 2 + 2 spans; dropped by the tail: 3 orders of 3
    // spans, a threaded one of 2, an async one of 2.
    assert_eq!(harness.counts(), (11, 0, 9 + 2 + 2));
}

#[workflow(fields(order.priority = priority))]
fn prioritized(priority: &str, pause: Duration) {
    std::thread::sleep(pause);
}

#[test]
fn slow_traces_and_the_rule_keep_theirs() {
    let tail = TailSampling::new()
        .slower_than(Duration::from_millis(200))
        .rule(|spans| {
            spans.iter().any(|span| {
                span.attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "order.priority" && kv.value.as_str() == "high")
            })
        });
    let harness = Harness::new(tail);
    harness.instrumentation.run(|| {
        prioritized("low", Duration::ZERO);
        prioritized("high", Duration::ZERO);
        // Longer than the threshold whatever the machine does: a sleep
        // only ever lasts at least as long as asked.
        prioritized("low", Duration::from_millis(250));
    });
    assert_eq!(
        harness.tree(),
        "\
prioritized #1 [workflow] Unset
  | order.priority: \"high\"
  | sampling.reason: \"rule\"
prioritized #1 [workflow] Unset
  | order.priority: \"low\"
  | sampling.reason: \"slow\"
"
    );
    assert_eq!(harness.counts(), (2, 0, 1));
}

#[workflow]
fn bulk(fail_at: Option<usize>) {
    for i in 0..200 {
        let _ = check(fail_at == Some(i));
    }
}

#[test]
fn a_trace_past_its_bound_is_decided_early_and_its_later_spans_follow() {
    // 201 spans, more than the 50 a trace may hold: the first 64 reach the
    // worker while the root runs (a thread's buffer goes at 64), and the
    // 50th decides the trace. Nothing failed by then: dropped, and every
    // later span with it, the failure at the 100th included.
    let harness = Harness::new(TailSampling::new().max_trace_spans(50));
    harness.instrumentation.run(|| bulk(Some(100)));
    assert_eq!(harness.counts(), (0, 0, 201));
    // A failure before the bound keeps the trace, every span of it.
    harness.instrumentation.run(|| bulk(Some(10)));
    assert_eq!(harness.counts(), (201, 0, 201));
    let kept = harness.kept.0.lock().unwrap().clone();
    let root = kept.iter().find(|span| span.name == "bulk").unwrap();
    assert!(
        root.attributes
            .iter()
            .any(|kv| kv.key.as_str() == "sampling.reason" && kv.value.as_str() == "error")
    );
    // The same with the budget in all: the oldest trace is decided.
    let harness = Harness::new(TailSampling::new().max_held_spans(50).ratio(1.0));
    harness.instrumentation.run(|| bulk(None));
    assert_eq!(harness.counts(), (201, 0, 0));
}

#[workflow]
fn long_running(sdk: &SdkTracerProvider) {
    // A thread's spans reach the worker when its outermost span ends, while
    // this root still runs.
    workflow_otel::spawn_thread(|| check(true))
        .join()
        .unwrap()
        .unwrap_err();
    // Other libraries' spans are held with ours.
    sdk.tracer("library").in_span("query", |_| {});
}

#[test]
fn a_root_held_past_the_hold_time_is_decided_and_later_spans_follow() {
    let harness = Harness::new(TailSampling::new().max_hold(Duration::ZERO));
    let sdk = SdkTracerProvider::builder()
        .with_span_processor(harness.pipeline.span_processor())
        .build();
    harness.instrumentation.run(|| {
        long_running(&sdk);
    });
    // Decided at once (the hold time is zero) on the failed step: kept; the
    // root and the library's span, arriving later, follow. The root
    // carries the reason.
    let tree = harness.tree();
    assert_eq!(
        tree,
        "\
long_running #1 [workflow] Unset
  | sampling.reason: \"error\"
  check #2 [step] Error(\"out of stock\")
    | error.type: \"_OTHER\"
    | event exception {exception.message: \"out of stock\", exception.type: \"_OTHER\"}
  query #3 [span scope=library] Unset
",
        "{tree}"
    );
    assert_eq!(harness.counts(), (3, 0, 0));
}

#[test]
fn the_environment_sets_it_and_a_mistake_is_a_clear_error() {
    let error = workflow_otel::setup()
        .environment_from(|name| match name {
            "WORKFLOW_OTEL_TAIL_SAMPLING" => Some("errors,ratio=5".into()),
            "OTEL_TRACES_EXPORTER" => Some("none".into()),
            _ => None,
        })
        .try_install()
        .expect_err("a ratio above 1");
    assert_eq!(
        error.to_string(),
        "WORKFLOW_OTEL_TAIL_SAMPLING=\"errors,ratio=5\": `ratio=5`: expected `ratio=` a number from 0 to 1"
    );
}

/// The attributes of one root, as its sampler saw them.
type Seen = Vec<(String, String)>;

/// Keeps roots whose `order.priority` is `high`, and says so on them.
#[derive(Clone, Debug, Default)]
struct ByPriority(Arc<Mutex<Vec<Seen>>>);

impl opentelemetry_sdk::trace::ShouldSample for ByPriority {
    fn should_sample(
        &self,
        _parent: Option<&opentelemetry::Context>,
        _trace_id: opentelemetry::trace::TraceId,
        _name: &str,
        _kind: &opentelemetry::trace::SpanKind,
        attributes: &[opentelemetry::KeyValue],
        _links: &[opentelemetry::trace::Link],
    ) -> opentelemetry_sdk::trace::SamplingResult {
        self.0.lock().unwrap().push(
            attributes
                .iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect(),
        );
        let high = attributes
            .iter()
            .any(|kv| kv.key.as_str() == "order.priority" && kv.value.as_str() == "high");
        opentelemetry_sdk::trace::SamplingResult {
            decision: if high {
                opentelemetry_sdk::trace::SamplingDecision::RecordAndSample
            } else {
                opentelemetry_sdk::trace::SamplingDecision::Drop
            },
            attributes: if high {
                vec![opentelemetry::KeyValue::new("sampling.rule", "priority")]
            } else {
                Vec::new()
            },
            trace_state: Default::default(),
        }
    }
}

#[workflow(args(id), fields(order.priority = priority, channel = "web"))]
fn placed(id: u64, priority: &str) {
    check(false).unwrap();
}

#[test]
fn a_head_sampler_sees_the_roots_attributes_and_its_own_go_on_the_span() {
    let seen = ByPriority::default();
    let kept = Kept::default();
    let pipeline = Pipeline::new(kept.clone());
    let instrumentation = Instrumentation::new(&pipeline).sampler(seen.clone());
    instrumentation.run(|| {
        placed(1, "low");
        placed(2, "high");
    });
    pipeline.force_flush().unwrap();
    // The sampler saw `args(..)`, `fields(..)` and the literal ones, once
    // per root (the step follows its root's decision).
    let pair = |key: &str, value: &str| (key.to_owned(), value.to_owned());
    assert_eq!(
        *seen.0.lock().unwrap(),
        [
            vec![
                pair("arg.id", "1"),
                pair("order.priority", "low"),
                pair("channel", "web")
            ],
            vec![
                pair("arg.id", "2"),
                pair("order.priority", "high"),
                pair("channel", "web")
            ],
        ]
    );
    let tree = SpanTree::from_spans(kept.0.lock().unwrap().clone()).render_with(|key| {
        matches!(
            key,
            "arg.id" | "order.priority" | "channel" | "sampling.rule"
        )
    });
    assert_eq!(
        tree,
        "\
placed #1 [workflow] Unset
  | arg.id: 2
  | channel: \"web\"
  | order.priority: \"high\"
  | sampling.rule: \"priority\"
  check #2 [step] Unset
"
    );
}
