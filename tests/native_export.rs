//! The JSON-lines file exporter encodes our spans straight from the records
//! the callers hand over, without making the SDK's `SpanData` of them. Its
//! lines must be byte for byte what the same exporter writes when it is
//! given `SpanData` (as an exporter of the user's is): both run here, behind
//! one pipeline, on the same spans.

mod support;

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use workflow_otel::genai::{ModelCall, Usage};
use workflow_otel::{
    ErrorText, JsonLinesExporter, checkpoint, child_workflow, set_attribute,
    set_workflow_attribute, step, workflow,
};

#[workflow(fields(order.id = 42, priority = 0.5, note = "rush"))]
fn checkout(customer: &str) -> Result<(), String> {
    checkpoint("cart_loaded");
    set_workflow_attribute(KeyValue::new("customer", customer.to_owned()));
    reserve("north\n\"quoted\"");
    advise();
    let _ = std::panic::catch_unwind(explode);
    call_inventory();
    pay()
}

#[step(args(warehouse), ret)]
fn reserve(warehouse: &str) -> usize {
    set_attribute(KeyValue::new("reserved", true));
    warehouse.len()
}

#[step]
fn advise() {
    ModelCall::chat("openai", "gpt-4o")
        .start()
        .finish(Usage::tokens(1_000, 100).cached_input(200));
}

#[step]
fn explode() {
    panic!("the warehouse robot fell over and took the password hunter2 with it");
}

/// A span of another library, of another kind and scope, inside a step.
#[step]
fn call_inventory() {
    support::failed_client_span(
        "GET /inventory",
        503,
        "upstream said: the secret token is hunter2, retry later",
    );
}

#[child_workflow]
fn pay() -> Result<(), String> {
    charge(1250)
}

#[step(args(cents))]
fn charge(cents: u64) -> Result<(), String> {
    Err(format!(
        "card declined for {cents} cents, a very long message"
    ))
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(bytes)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An exporter of the user's: it gets `SpanData`, and hands it to a file
/// exporter.
#[derive(Debug)]
struct Users(JsonLinesExporter);

impl SpanExporter for Users {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.0.export(batch)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

#[test]
fn records_encode_to_the_same_bytes_as_their_span_data() {
    let native = Buffer::default();
    let through_span_data = Buffer::default();
    let guard = workflow_otel::setup()
        .service_name("shop")
        .exporter(JsonLinesExporter::with_writer(native.clone()))
        .exporter(Users(JsonLinesExporter::with_writer(
            through_span_data.clone(),
        )))
        .error_text(ErrorText::default().max_len(40))
        .install();
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for customer in ["ada", "grace \"g\" hopper"] {
        checkout(customer).unwrap_err();
    }
    std::panic::set_hook(previous_hook);
    drop(guard);

    let native = native.text();
    let through_span_data = through_span_data.text();
    assert_eq!(native, through_span_data);
    // What the comparison covered: every kind of content our spans carry.
    for expected in [
        r#""name":"checkout""#,
        r#""name":"pay","kind":1"#,
        r#"{"key":"link.type","value":{"stringValue":"parent_workflow"}}"#,
        r#"{"key":"order.id","value":{"intValue":"42"}}"#,
        r#"{"key":"priority","value":{"doubleValue":0.5}}"#,
        r#"{"key":"arg.warehouse","value":{"stringValue":"north\n\"quoted\""}}"#,
        r#"{"key":"reserved","value":{"boolValue":true}}"#,
        r#"{"key":"customer","value":{"stringValue":"grace \"g\" hopper"}}"#,
        r#""name":"cart_loaded""#,
        r#"{"key":"return.value","value":{"stringValue":"14"}}"#,
        r#""name":"GET /inventory","kind":3"#,
        r#""scope":{"name":"http-client"}"#,
        r#"{"key":"error.type","value":{"stringValue":"panic"}}"#,
        r#""status":{"message":"card declined for 1250 cents, a very …","code":2}"#,
        r#"{"key":"exception.message","value":{"stringValue":"upstream said: the secret token is hu…"}}"#,
        r#"{"key":"workflow.gen_ai.usage.input_tokens","value":{"intValue":"1000"}}"#,
        r#"{"key":"service.name","value":{"stringValue":"shop"}}"#,
    ] {
        assert!(native.contains(expected), "{expected} is not in the output");
    }
    // The model call, the foreign span and 7 spans of ours per order.
    assert_eq!(native.matches(r#""spanId""#).count(), 2 * 9 + 2);
}
