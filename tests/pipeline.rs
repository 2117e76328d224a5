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

/// Keeps what arrives.
#[derive(Debug, Default)]
struct Keep {
    spans: Arc<std::sync::Mutex<Vec<SpanData>>>,
}

impl SpanExporter for Keep {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.spans.lock().unwrap().extend(batch);
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

/// A backend whose export blocks its thread and never returns: the worst
/// exporter a user can hand us (no future to cancel).
#[derive(Debug)]
struct Blocks(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

impl SpanExporter for Blocks {
    fn export(&self, _batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let _ = self.0.lock().unwrap().recv();
        std::future::ready(Ok(()))
    }
}

/// Settings with a short shutdown bound and the spec's long export timeout,
/// so only the bound can end a hung export in time.
fn bounded(queue: usize) -> PipelineConfig {
    PipelineConfig {
        max_queue_size: queue,
        max_export_batch_size: 512,
        scheduled_delay: Duration::from_millis(5),
        shutdown_timeout: Duration::from_millis(300),
        ..PipelineConfig::default()
    }
}

/// Far more than the 300 ms bound, far less than the 30 s export timeout:
/// a wide margin, so a slow machine does not fail the test, while an
/// unbounded shutdown does.
const MARGIN: Duration = Duration::from_secs(10);

#[test]
fn shutdown_with_a_hung_backend_ends_within_its_bound_and_accounts_for_every_span() {
    let pipeline = Pipeline::with_config(Hangs, bounded(200_000), None);
    let instrumentation = Instrumentation::new(&pipeline);
    for _ in 0..2_000 {
        instrumentation.run(|| batch_job(49));
    }
    let recorded = 2_000 * 50;
    let started = std::time::Instant::now();
    let flushed = pipeline.force_flush();
    assert!(
        matches!(flushed, Err(OTelSdkError::Timeout(_))),
        "{flushed:?}"
    );
    let result = pipeline.shutdown();
    assert!(started.elapsed() < MARGIN, "took {:?}", started.elapsed());
    assert!(result.is_err(), "the backend never answered: {result:?}");
    assert_eq!(pipeline.exported_spans(), 0);
    assert_eq!(
        pipeline.dropped_spans(),
        recorded,
        "exported + dropped = recorded"
    );
}

#[test]
fn an_exporter_that_blocks_its_thread_is_abandoned_at_the_bound_with_exact_accounts() {
    let (_never, blocked) = std::sync::mpsc::channel();
    let pipeline = Pipeline::with_config(
        Blocks(std::sync::Mutex::new(blocked)),
        bounded(50_000),
        None,
    );
    let instrumentation = Instrumentation::new(&pipeline);
    for _ in 0..1_000 {
        instrumentation.run(|| batch_job(19));
    }
    let recorded = 1_000 * 20;
    let started = std::time::Instant::now();
    let result = pipeline.shutdown();
    assert!(started.elapsed() < MARGIN, "took {:?}", started.elapsed());
    assert!(
        matches!(result, Err(OTelSdkError::Timeout(_))),
        "{result:?}"
    );
    // Settled before shutdown returned: the stuck batch and the queue.
    assert_eq!(
        pipeline.exported_spans() + pipeline.dropped_spans(),
        recorded
    );
    assert_eq!(pipeline.exported_spans(), 0);
    // Spans that end afterwards are counted too.
    instrumentation.run(|| batch_job(1));
    assert_eq!(pipeline.dropped_spans(), recorded + 2);
}

#[test]
fn an_otlp_collector_that_accepts_and_never_answers_costs_only_the_bound() {
    // A real socket that accepts connections and never reads or answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(4).flatten() {
            held.push(stream);
        }
        held
    });
    for protocol in [
        workflow_otel::OtlpProtocol::Grpc,
        workflow_otel::OtlpProtocol::HttpProtobuf,
    ] {
        let endpoint = match protocol {
            workflow_otel::OtlpProtocol::Grpc => format!("http://{address}"),
            _ => format!("http://{address}/v1/traces"),
        };
        let exporter = workflow_otel::OtlpExporter::new(&workflow_otel::OtlpSettings {
            endpoint,
            protocol,
            headers: vec![],
            timeout: Duration::from_secs(10),
            gzip: false,
            tls: Default::default(),
        })
        .unwrap();
        let pipeline = Pipeline::with_config(exporter, bounded(100_000), None);
        let instrumentation = Instrumentation::new(&pipeline);
        for _ in 0..200 {
            instrumentation.run(|| batch_job(49));
        }
        let started = std::time::Instant::now();
        let _ = pipeline.shutdown();
        assert!(
            started.elapsed() < MARGIN,
            "{protocol:?} took {:?}",
            started.elapsed()
        );
        assert_eq!(pipeline.exported_spans(), 0);
        assert_eq!(pipeline.dropped_spans(), 200 * 50, "{protocol:?}");
    }
    drop(accepted);
}

#[test]
fn a_queue_and_batch_of_a_hundred_million_cost_memory_only_as_spans_arrive() {
    let exporter = Counts::default();
    let received = exporter.spans.clone();
    let pipeline = Pipeline::with_config(
        exporter,
        PipelineConfig {
            max_queue_size: 100_000_000,
            max_export_batch_size: 100_000_000,
            scheduled_delay: Duration::from_millis(5),
            ..PipelineConfig::default()
        },
        None,
    );
    Instrumentation::new(&pipeline).run(|| batch_job(99));
    pipeline.shutdown().unwrap();
    assert_eq!(received.load(Ordering::Relaxed), 100);
    assert_eq!(pipeline.exported_spans(), 100);
}

#[step]
fn connect(url: &str) -> Result<(), String> {
    Err(format!(
        "cannot connect to {url}: password authentication failed\n{}",
        "x".repeat(5_000)
    ))
}

#[test]
fn error_text_is_redacted_and_cut_before_it_leaves_the_process() {
    let exporter = Keep::default();
    let kept = exporter.spans.clone();
    let pipeline = Pipeline::with_config(
        exporter,
        PipelineConfig {
            error_text: workflow_otel::ErrorText::default()
                .max_len(200)
                .redact(|text| text.replace("hunter2", "***")),
            ..PipelineConfig::default()
        },
        None,
    );
    let provider = SdkTracerProvider::builder()
        .with_span_processor(pipeline.span_processor())
        .build();
    Instrumentation::new(&pipeline).run(|| {
        let _ = connect("postgres://app:hunter2@db");
        // Another library's error goes through the same rule.
        let mut span = provider.tracer("driver").start("query");
        span.set_status(opentelemetry::trace::Status::error(
            "login app:hunter2 refused",
        ));
        span.end();
    });
    pipeline.shutdown().unwrap();
    let spans = kept.lock().unwrap().clone();
    assert_eq!(spans.len(), 2);
    let step = spans.iter().find(|span| span.name == "connect").unwrap();
    let opentelemetry::trace::Status::Error { description } = &step.status else {
        panic!("{:?}", step.status);
    };
    assert_eq!(description.len(), 200);
    assert!(description.starts_with("cannot connect to postgres://app:***@db: password"));
    assert!(description.ends_with('…'));
    let message = step.events.events[0]
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "exception.message")
        .unwrap();
    assert_eq!(message.value.as_str(), description.as_ref());
    let query = spans.iter().find(|span| span.name == "query").unwrap();
    assert_eq!(
        query.status,
        opentelemetry::trace::Status::error("login app:*** refused")
    );
}
