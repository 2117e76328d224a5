//! The export pipeline under a failing backend: the caller never blocks,
//! shutdown is bounded, and every span is either exported or counted as
//! dropped — never lost silently.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use workflow_otel::{Instrumentation, Pipeline, PipelineConfig, step, workflow};

#[step]
fn unit_of_work(n: u64) -> u64 {
    n + 1
}

#[workflow]
fn batch_job(count: u64) {
    for n in 0..count {
        unit_of_work(n);
    }
}

/// A backend that accepts the connection and never answers.
#[derive(Debug)]
struct Hangs;

impl SpanExporter for Hangs {
    fn export(&self, _batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        std::future::pending()
    }
}

/// A backend that answers every export with an error.
#[derive(Debug, Default)]
struct Fails {
    attempts: Arc<AtomicU64>,
}

impl SpanExporter for Fails {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.attempts
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        std::future::ready(Err(OTelSdkError::InternalFailure("backend down".into())))
    }
}

/// Counts what arrives.
#[derive(Debug, Default)]
struct Counts {
    spans: Arc<AtomicU64>,
}

impl SpanExporter for Counts {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.spans.fetch_add(batch.len() as u64, Ordering::Relaxed);
        std::future::ready(Ok(()))
    }
}

fn small_queue() -> PipelineConfig {
    PipelineConfig {
        max_queue_size: 16,
        max_export_batch_size: 8,
        scheduled_delay: Duration::from_millis(10),
        export_timeout: Duration::from_millis(50),
        ..PipelineConfig::default()
    }
}

#[test]
fn a_backend_that_never_answers_costs_spans_not_time() {
    let pipeline = Pipeline::with_config(Hangs, small_queue(), None);
    let instrumentation = Instrumentation::new(&pipeline);
    // 50 workflows of 1 + 20 spans: far more than the queue holds.
    for _ in 0..50 {
        instrumentation.run(|| batch_job(20));
    }
    let produced = 50 * 21;
    // Flushing waits for one export at most: bounded by the export timeout.
    let _ = pipeline.force_flush();
    assert_eq!(pipeline.exported_spans(), 0);
    assert!(
        pipeline.shutdown().is_ok(),
        "shutdown is bounded by the export timeout"
    );
    assert_eq!(
        pipeline.dropped_spans(),
        produced,
        "every span is accounted for"
    );
}

#[test]
fn a_backend_that_fails_every_export_has_every_span_counted_as_dropped() {
    let exporter = Fails::default();
    let attempts = exporter.attempts.clone();
    let pipeline = Pipeline::with_config(exporter, small_queue(), None);
    let instrumentation = Instrumentation::new(&pipeline);
    for _ in 0..10 {
        instrumentation.run(|| batch_job(5));
    }
    pipeline.shutdown().unwrap();
    let produced = 10 * 6;
    assert_eq!(pipeline.exported_spans(), 0);
    assert_eq!(pipeline.dropped_spans(), produced);
    let offered = attempts.load(Ordering::Relaxed);
    assert!(
        offered > 0 && offered <= produced,
        "{offered} spans reached the backend"
    );
}

#[test]
fn a_healthy_backend_receives_every_span_including_other_libraries() {
    let exporter = Counts::default();
    let received = exporter.spans.clone();
    let pipeline = Pipeline::with_config(
        exporter,
        PipelineConfig {
            max_queue_size: 100_000,
            ..PipelineConfig::default()
        },
        None,
    );
    let provider = SdkTracerProvider::builder()
        .with_span_processor(pipeline.span_processor())
        .build();
    let instrumentation = Instrumentation::new(&pipeline);
    for _ in 0..100 {
        instrumentation.run(|| {
            batch_job(10);
            provider.tracer("other-library").start("query").end();
        });
    }
    pipeline.shutdown().unwrap();
    let produced = 100 * (11 + 1);
    assert_eq!(received.load(Ordering::Relaxed), produced);
    assert_eq!(pipeline.exported_spans(), produced);
    assert_eq!(pipeline.dropped_spans(), 0);
}

#[test]
fn spans_ended_after_shutdown_are_counted_not_lost() {
    let pipeline = Pipeline::new(Counts::default());
    let instrumentation = Instrumentation::new(&pipeline);
    pipeline.shutdown().unwrap();
    assert!(matches!(
        pipeline.shutdown(),
        Err(OTelSdkError::AlreadyShutdown)
    ));
    instrumentation.run(|| batch_job(3));
    assert_eq!(pipeline.dropped_spans(), 4);
}
