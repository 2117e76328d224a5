//! Export throughput to the JSON-lines file encoding: how many spans per
//! second one export thread turns into OTLP/JSON lines, for workflow-otel's
//! pipeline and for the SDK's `BatchSpanProcessor` with the same exporter,
//! side by side in one run, as a ratio.
//!
//! Each run first fills the queue with N finished spans while the export
//! thread is held: the sink it writes to blocks its first write until the
//! queue is full (a full batch would wake the thread otherwise). Then the
//! sink is opened and the flush that drains the queue is timed: the export
//! thread's work alone, conversion and encoding included (less the first
//! batch's encoding, done before the hold: 512 of the 200,000 spans). The
//! SDK's spans carry the attributes a step of ours does, so both write as
//! much; every span must arrive (the run fails otherwise).
//!
//! `cargo bench --bench export_throughput`

use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use workflow_otel::{Instrumentation, JsonLinesExporter, Pipeline, PipelineConfig};

const SPANS: u64 = 200_000;
const ROUNDS: usize = 5;

/// Counts the bytes written and keeps nothing; holds every write until
/// opened.
#[derive(Clone, Default)]
struct Counting {
    bytes: Arc<AtomicU64>,
    open: Arc<(Mutex<bool>, Condvar)>,
}

impl Counting {
    fn open(&self) {
        let (open, changed) = &*self.open;
        *open.lock().unwrap() = true;
        changed.notify_all();
    }
}

impl Write for Counting {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let (open, changed) = &*self.open;
        let _open = changed
            .wait_while(open.lock().unwrap(), |open| !*open)
            .unwrap();
        self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[workflow_otel::step]
fn step(x: u64) -> u64 {
    black_box(x + 1)
}

#[workflow_otel::workflow]
fn parent(spans: u64) {
    for i in 0..spans - 1 {
        step(i);
    }
}

fn idle_config() -> PipelineConfig {
    PipelineConfig {
        max_queue_size: (SPANS * 2) as usize,
        max_export_batch_size: 512,
        scheduled_delay: Duration::from_secs(3600),
        ..PipelineConfig::default()
    }
}

/// Seconds to export `SPANS` spans of ours, and the bytes written.
fn ours() -> (f64, u64) {
    let sink = Counting::default();
    let pipeline = Pipeline::with_config(
        JsonLinesExporter::with_writer(sink.clone()),
        idle_config(),
        None,
    );
    Instrumentation::new(&pipeline).run(|| parent(SPANS));
    let started = Instant::now();
    sink.open();
    pipeline.force_flush().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(pipeline.exported_spans(), SPANS, "every span exported");
    let _ = pipeline.shutdown();
    (elapsed, sink.bytes.load(Ordering::Relaxed))
}

/// The same with the SDK's batch processor and the same exporter.
fn sdk() -> (f64, u64) {
    let sink = Counting::default();
    let processor = BatchSpanProcessor::builder(JsonLinesExporter::with_writer(sink.clone()))
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size((SPANS * 2) as usize)
                .with_max_export_batch_size(512)
                .with_scheduled_delay(Duration::from_secs(3600))
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    let tracer = provider.tracer("bench");
    // The attributes a step of ours carries, so both write as much.
    let attributes = || {
        vec![
            KeyValue::new("code.function.name", "export_throughput::step"),
            KeyValue::new("code.file.path", "benches/export_throughput.rs"),
            KeyValue::new("code.line.number", 45_i64),
            KeyValue::new("step.name", "step"),
            KeyValue::new("observability.workflow_name", "parent"),
            KeyValue::new(
                "observability.workflow_id",
                "01a202ac-23d9-7d7c-afe1-674e92640b88",
            ),
            KeyValue::new("step.status", "completed"),
            KeyValue::new("step.duration", 1.5e-7),
        ]
    };
    tracer.in_span("parent", |_| {
        for i in 0..SPANS - 1 {
            let span = tracer
                .span_builder("step")
                .with_attributes(attributes())
                .start(&tracer);
            black_box(i + 1);
            drop(span);
        }
    });
    let started = Instant::now();
    sink.open();
    provider.force_flush().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let bytes = sink.bytes.load(Ordering::Relaxed);
    let _ = provider.shutdown();
    assert!(bytes > SPANS * 400, "every span exported ({bytes} bytes)");
    (elapsed, bytes)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut ours_rates = Vec::new();
    let mut sdk_rates = Vec::new();
    let (mut ours_bytes, mut sdk_bytes) = (0, 0);
    for _ in 0..ROUNDS {
        let (seconds, bytes) = ours();
        ours_rates.push(SPANS as f64 / seconds);
        ours_bytes = bytes;
        let (seconds, bytes) = sdk();
        sdk_rates.push(SPANS as f64 / seconds);
        sdk_bytes = bytes;
    }
    let (ours_rate, sdk_rate) = (median(ours_rates), median(sdk_rates));
    println!("export to the JSON-lines encoding, {SPANS} spans, median of {ROUNDS} rounds:");
    println!(
        "  workflow-otel pipeline          {:>10.0} spans/s  ({} bytes per span)",
        ours_rate,
        ours_bytes / SPANS
    );
    println!(
        "  SDK BatchSpanProcessor          {:>10.0} spans/s  ({} bytes per span)",
        sdk_rate,
        sdk_bytes / SPANS
    );
    println!(
        "  ratio                           {:>10.2}x",
        ours_rate / sdk_rate
    );
}
