//! Memory held by tail sampling under its default budget: 10,000 root
//! workflows open at once, each with 100 finished steps (1,000,000 spans
//! reaching the export thread while their roots still run). Prints the
//! peak resident set and the pipeline's counts; run with
//! `cargo bench --bench tail_memory`, with `-- off` for the same load
//! without tail sampling, and
//! `-- workflows=20000` to see that twice the load does not hold more.

use std::sync::Arc;

use workflow_otel::{Instrumentation, Pipeline, PipelineConfig, TailSampling, step, workflow};

/// Workflows open at once, unless `workflows=N` says otherwise.
const WORKFLOWS: usize = 10_000;
const STEPS: usize = 100;

#[step]
fn work(i: usize) -> usize {
    std::hint::black_box(i + 1)
}

#[workflow]
async fn open(gate: Arc<tokio::sync::Barrier>) {
    for i in 0..STEPS {
        work(i);
    }
    // Every root stays open until all have done their steps.
    gate.wait().await;
}

/// The peak resident set of this process, from `/proc/self/status`.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let tail = !std::env::args().any(|arg| arg == "off");
    let workflows = std::env::args()
        .find_map(|arg| arg.strip_prefix("workflows=")?.parse().ok())
        .unwrap_or(WORKFLOWS);
    let counter = workflow_otel::testing::CountingExporter::new();
    // The default queue too: what is bounded here is what tail sampling
    // holds, apart from what waits in the queue (2,048 spans by default;
    // spans that find it full are dropped and counted, as always).
    let config = PipelineConfig {
        tail_sampling: tail.then(TailSampling::new),
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::with_config(counter.clone(), config, None);
    let instrumentation = Instrumentation::new(&pipeline);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let before = peak_rss_kib();
    runtime.block_on(instrumentation.scope(async {
        let gate = Arc::new(tokio::sync::Barrier::new(workflows));
        let tasks: Vec<_> = (0..workflows)
            .map(|_| workflow_otel::spawn(open(gate.clone())))
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    }));
    // The shutdown decides what is still held (traces whose root the full
    // queue dropped), so every span is counted once.
    pipeline.shutdown().expect("shutdown");
    let spans = (workflows * (STEPS + 1)) as u64;
    let settled =
        pipeline.exported_spans() + pipeline.dropped_spans() + pipeline.tail_dropped_spans();
    println!(
        "tail sampling {}: {workflows} workflows x {STEPS} steps open at once; peak RSS {} KiB (at start {} KiB); \
         exported {}, dropped {}, tail-dropped {} of {spans}",
        if tail { "on (default budget)" } else { "off" },
        peak_rss_kib().unwrap_or(0),
        before.unwrap_or(0),
        pipeline.exported_spans(),
        pipeline.dropped_spans(),
        pipeline.tail_dropped_spans(),
    );
    assert_eq!(
        settled, spans,
        "every span is accounted for ({settled} of {spans})"
    );
}
