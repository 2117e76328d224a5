//! Export throughput: how many spans per second one export thread sends to
//! the JSON-lines file encoding, and over OTLP/HTTP (protobuf) and Zipkin
//! (plain and gzip) to a loopback receiver that counts and discards, for
//! workflow-otel's pipeline and for
//! the SDK's `BatchSpanProcessor` with the same exporter, side by side in one
//! run, as ratios.
//!
//! Each run first fills the queue with N finished spans while the export
//! thread is held: the sink it writes to (the file's writer, the receiver's
//! answer) blocks its first write until the queue is full (a full batch
//! would wake the thread otherwise). Then the
//! sink is opened and the flush that drains the queue is timed: the export
//! thread's work alone, conversion and encoding included (less the first
//! batch's encoding, done before the hold: 512 of the 200,000 spans). The
//! SDK's spans carry the attributes a step of ours does, so both write as
//! much; every span must arrive (the run fails otherwise).
//!
//! `cargo bench --bench export_throughput`

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::SpanExporter;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use workflow_otel::{
    Instrumentation, JsonLinesExporter, OtlpExporter, OtlpProtocol, OtlpSettings, Pipeline,
    PipelineConfig, ZipkinExporter, ZipkinSettings,
};

const SPANS: u64 = 200_000;
const ROUNDS: usize = 5;

/// Where the exported bytes end: counted, kept nowhere, every write held
/// until opened.
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

    fn take(&self, bytes: usize) {
        let (open, changed) = &*self.open;
        let _open = changed
            .wait_while(open.lock().unwrap(), |open| !*open)
            .unwrap();
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// An OTLP/HTTP receiver on loopback that answers every request with
    /// 200 once it counted its body; returns its `/v1/traces` URL.
    fn serve(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let sink = self.clone();
        std::thread::spawn(move || {
            for connection in listener.incoming().flatten() {
                let sink = sink.clone();
                std::thread::spawn(move || sink.answer(connection));
            }
        });
        url
    }

    fn answer(&self, connection: TcpStream) {
        let mut reader = BufReader::new(connection.try_clone().unwrap());
        let mut writer = connection;
        loop {
            let mut length = 0;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            self.take(length);
            let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
            writer.write_all(answer.as_bytes()).unwrap();
        }
    }
}

impl Write for Counting {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.take(bytes.len());
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where the spans go.
#[derive(Clone, Copy)]
enum Target {
    JsonLines,
    OtlpHttp,
    Zipkin,
    ZipkinGzip,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::JsonLines => "the JSON-lines file encoding",
            Target::OtlpHttp => "OTLP/HTTP protobuf to a loopback receiver",
            Target::Zipkin => "Zipkin v2 JSON to a loopback receiver",
            Target::ZipkinGzip => "Zipkin v2 JSON, gzip, to a loopback receiver",
        }
    }
}

/// Runs `with` on a fresh exporter for `target` and the sink behind it.
fn exporter<T>(target: Target, with: impl FnOnce(Exporter, &Counting) -> T) -> T {
    let sink = Counting::default();
    let exporter = match target {
        Target::JsonLines => Exporter::File(JsonLinesExporter::with_writer(sink.clone())),
        Target::OtlpHttp => Exporter::Otlp(Box::new(
            OtlpExporter::new(&OtlpSettings {
                endpoint: sink.serve(),
                protocol: OtlpProtocol::HttpProtobuf,
                headers: Vec::new(),
                timeout: Duration::from_secs(60),
                gzip: false,
                tls: Default::default(),
            })
            .unwrap(),
        )),
        Target::Zipkin | Target::ZipkinGzip => Exporter::Zipkin(Box::new(
            ZipkinExporter::new(&ZipkinSettings {
                endpoint: sink.serve(),
                timeout: Duration::from_secs(60),
                gzip: matches!(target, Target::ZipkinGzip),
            })
            .unwrap(),
        )),
    };
    with(exporter, &sink)
}

enum Exporter {
    File(JsonLinesExporter),
    Otlp(Box<OtlpExporter>),
    Zipkin(Box<ZipkinExporter>),
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
fn ours(target: Target) -> (f64, u64) {
    exporter(target, |exporter, sink| match exporter {
        Exporter::File(exporter) => ours_into(exporter, sink),
        Exporter::Otlp(exporter) => ours_into(*exporter, sink),
        Exporter::Zipkin(exporter) => ours_into(*exporter, sink),
    })
}

fn ours_into<E: SpanExporter + 'static>(exporter: E, sink: &Counting) -> (f64, u64) {
    let pipeline = Pipeline::with_config(exporter, idle_config(), None);
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
fn sdk(target: Target) -> (f64, u64) {
    exporter(target, |exporter, sink| match exporter {
        Exporter::File(exporter) => sdk_into(exporter, sink, 200),
        Exporter::Otlp(exporter) => sdk_into(*exporter, sink, 200),
        // gzip makes a span of these a dozen bytes or so.
        Exporter::Zipkin(exporter) => sdk_into(*exporter, sink, 5),
    })
}

/// `min_bytes` per span must arrive: the SDK path counts no spans.
fn sdk_into<E: SpanExporter + 'static>(exporter: E, sink: &Counting, min_bytes: u64) -> (f64, u64) {
    let processor = BatchSpanProcessor::builder(exporter)
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
    assert!(
        bytes > SPANS * min_bytes,
        "every span exported ({bytes} bytes)"
    );
    (elapsed, bytes)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    for target in [
        Target::JsonLines,
        Target::OtlpHttp,
        Target::Zipkin,
        Target::ZipkinGzip,
    ] {
        let mut ours_rates = Vec::new();
        let mut sdk_rates = Vec::new();
        let (mut ours_bytes, mut sdk_bytes) = (0, 0);
        for _ in 0..ROUNDS {
            let (seconds, bytes) = ours(target);
            ours_rates.push(SPANS as f64 / seconds);
            ours_bytes = bytes;
            let (seconds, bytes) = sdk(target);
            sdk_rates.push(SPANS as f64 / seconds);
            sdk_bytes = bytes;
        }
        let (ours_rate, sdk_rate) = (median(ours_rates), median(sdk_rates));
        println!(
            "export to {}, {SPANS} spans, median of {ROUNDS} rounds:",
            target.name()
        );
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
}
