//! The JSON-lines file exporter writes what the OTLP/JSON specification says:
//! each line, read back with the official protobuf definitions' JSON mapping
//! (opentelemetry-proto), equals the official conversion of the same spans.

use std::future::Future;
use std::io::Write;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanExporter;
use workflow_otel::testing::Capture;
use workflow_otel::{JsonLinesExporter, checkpoint, child_workflow, step, workflow};

#[workflow(fields(order.id = 42, priority = 0.5))]
fn checkout() -> Result<(), String> {
    checkpoint("cart_loaded");
    reserve("north\n\"quoted\"");
    pay()
}

#[step(args(warehouse))]
fn reserve(warehouse: &str) -> usize {
    warehouse.len()
}

#[child_workflow]
fn pay() -> Result<(), String> {
    charge(1250)
}

#[step(args(cents))]
fn charge(cents: u64) -> Result<(), String> {
    Err(format!("card declined for {cents} cents"))
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(bytes)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the file exporter finishes an export in one poll"),
    }
}

fn sorted(mut resource_spans: Vec<ResourceSpans>) -> Vec<ResourceSpans> {
    // A resource is a set of attributes: compare it in one order.
    for resource in resource_spans
        .iter_mut()
        .filter_map(|spans| spans.resource.as_mut())
    {
        resource.attributes.sort_by(|a, b| a.key.cmp(&b.key));
    }
    resource_spans
}

#[test]
fn every_line_reads_back_as_the_official_conversion_of_the_same_spans() {
    let capture = Capture::new();
    capture.run(|| {
        checkout().unwrap_err();
        // A span of another library, of another kind and scope.
        let tracer = capture.provider().tracer("http-client");
        let mut span = tracer
            .span_builder("GET /inventory")
            .with_kind(SpanKind::Client)
            .start(&tracer);
        span.set_attribute(KeyValue::new("http.response.status_code", 200));
        span.end();
    });
    let spans = capture.spans();
    assert_eq!(spans.len(), 5);

    let resource = Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", "shop"),
            KeyValue::new("service.version", "1.2.3"),
        ])
        .build();
    let output = Buffer::default();
    let mut exporter = JsonLinesExporter::with_writer(output.clone());
    exporter.set_resource(&resource);
    ready(exporter.export(spans[..3].to_vec())).unwrap();
    ready(exporter.export(spans[3..].to_vec())).unwrap();

    let text = String::from_utf8(output.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "one line per export call");
    assert!(text.ends_with('\n'));
    let official_resource = ResourceAttributesWithSchema::from(&resource);
    for (line, batch) in lines.iter().zip([&spans[..3], &spans[3..]]) {
        let decoded: ExportTraceServiceRequest =
            serde_json::from_str(line).expect("valid OTLP/JSON");
        let official = group_spans_by_resource_and_scope(batch.to_vec(), &official_resource);
        assert_eq!(sorted(decoded.resource_spans), sorted(official));
    }
    // The hex ids the specification asks for, not protobuf JSON's base64.
    let first = &spans[0];
    assert!(lines[0].contains(&format!(
        "\"traceId\":\"{}\"",
        first.span_context.trace_id()
    )));
}

#[test]
fn a_file_keeps_earlier_lines_when_reopened() {
    let path = std::env::temp_dir().join(format!("workflow-otel-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let capture = Capture::new();
    capture.run(|| checkout().unwrap_err());
    let spans = capture.spans();
    for _ in 0..2 {
        let exporter = JsonLinesExporter::create(&path).unwrap();
        ready(exporter.export(spans.clone())).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(text.lines().count(), 2);
    for line in text.lines() {
        let request: ExportTraceServiceRequest = serde_json::from_str(line).unwrap();
        assert_eq!(request.resource_spans[0].scope_spans[0].spans.len(), 4);
    }
}
