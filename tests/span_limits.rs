//! Span limits on our spans and other libraries' alike: counts (the later
//! ones dropped, counted), strings cut at character boundaries (each string
//! of an array on its own), events, links, and the counts an exporter gets.

use std::future::Future;
use std::sync::{Arc, Mutex};

use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use workflow_otel::{
    Instrumentation, Pipeline, PipelineConfig, SpanLimits, add_event, child_workflow,
    set_attribute, step, workflow,
};

/// Keeps the `SpanData` it is given.
#[derive(Debug, Default, Clone)]
struct Copy(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Copy {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.0.lock().unwrap().extend(batch);
        std::future::ready(Ok(()))
    }
}

/// Runs `body` with a pipeline of `limits` and returns every span, in the
/// order they ended.
fn spans_of(limits: SpanLimits, body: impl FnOnce(&Pipeline)) -> Vec<SpanData> {
    let copy = Copy::default();
    let config = PipelineConfig {
        span_limits: limits,
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::with_config(copy.clone(), config, None);
    body(&pipeline);
    pipeline.shutdown().unwrap();
    copy.0.lock().unwrap().clone()
}

fn value<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|attribute| attribute.key.as_str() == key)
        .map(|attribute| &attribute.value)
}

#[step]
fn two_hundred_attributes() {
    for index in 0..200 {
        set_attribute(KeyValue::new(format!("attr.{index}"), index));
    }
}

#[test]
fn a_step_with_200_attributes_keeps_128_the_first_ones_and_counts_the_rest() {
    let spans = spans_of(SpanLimits::default(), |pipeline| {
        Instrumentation::new(pipeline).run(two_hundred_attributes);
    });
    let [span] = spans.as_slice() else {
        panic!("{spans:?}")
    };
    assert_eq!(span.attributes.len(), 128);
    // Ours are kept: code location (3), step name, status, duration.
    for key in [
        "code.function.name",
        "code.file.path",
        "code.line.number",
        "step.name",
        "step.status",
        "step.duration",
    ] {
        assert!(value(span, key).is_some(), "{key} was dropped");
    }
    let users: Vec<&str> = span
        .attributes
        .iter()
        .map(|attribute| attribute.key.as_str())
        .filter(|key| key.starts_with("attr."))
        .collect();
    assert_eq!(users.len(), 122);
    assert_eq!(users.first(), Some(&"attr.0"));
    assert_eq!(users.last(), Some(&"attr.121"));
    assert_eq!(span.dropped_attributes_count, 200 - 122);
}

#[step(args(note))]
fn long_values(note: &str) {
    set_attribute(KeyValue::new("accented", "héllo wörld"));
    set_attribute(KeyValue::new("emoji", "😀😀😀😀😀😀"));
    set_attribute(KeyValue::new("cjk", "日本語のテキスト"));
    set_attribute(KeyValue::new(
        "list",
        Value::Array(Array::String(vec!["abcdefg".into(), "xy".into()])),
    ));
    set_attribute(KeyValue::new("number", 1_234_567_890_i64));
    let _ = note;
}

#[test]
fn strings_are_cut_to_the_length_limit_at_character_boundaries() {
    let limits = SpanLimits {
        attribute_value_length: Some(5),
        ..SpanLimits::default()
    };
    let spans = spans_of(limits, |pipeline| {
        Instrumentation::new(pipeline).run(|| long_values("a long note"));
    });
    let span = &spans[0];
    assert_eq!(value(span, "accented"), Some(&Value::from("héllo")));
    assert_eq!(value(span, "emoji"), Some(&Value::from("😀😀😀😀😀")));
    assert_eq!(value(span, "cjk"), Some(&Value::from("日本語のテ")));
    assert_eq!(
        value(span, "list"),
        Some(&Value::Array(Array::String(vec![
            "abcde".into(),
            "xy".into()
        ])))
    );
    assert_eq!(value(span, "number"), Some(&Value::I64(1_234_567_890)));
    // `args(..)` text, recorded as the call started, and our own text too.
    assert_eq!(value(span, "arg.note"), Some(&Value::from("a lon")));
    assert_eq!(value(span, "code.file.path"), Some(&Value::from("tests")));
    assert_eq!(value(span, "step.status"), Some(&Value::from("compl")));
    for attribute in &span.attributes {
        if let Value::String(text) = &attribute.value {
            assert!(text.as_str().chars().count() <= 5, "{attribute:?}");
        }
    }
    // Cutting drops nothing.
    assert_eq!(span.dropped_attributes_count, 0);
}

#[workflow]
fn chatty() -> Result<(), String> {
    for index in 0..3 {
        add_event(
            format!("event {index}"),
            vec![
                KeyValue::new("detail", "ünïcode detail"),
                KeyValue::new("index", index),
            ],
        );
    }
    linked()
}

#[child_workflow]
fn linked() -> Result<(), String> {
    Err("declined by the bank".to_owned())
}

#[test]
fn events_links_and_their_attributes_have_limits_of_their_own() {
    let limits = SpanLimits {
        event_count: 2,
        event_attribute_count: 1,
        event_and_link_value_length: Some(4),
        link_count: 0,
        ..SpanLimits::default()
    };
    let spans = spans_of(limits, |pipeline| {
        Instrumentation::new(pipeline).run(chatty).unwrap_err();
    });
    let [child, root] = spans.as_slice() else {
        panic!("{spans:?}")
    };
    let names: Vec<&str> = root
        .events
        .iter()
        .map(|event| event.name.as_ref())
        .collect();
    // Two of the body's events, then the exception event, which is ours.
    assert_eq!(names, ["event 0", "event 1", "exception"]);
    assert_eq!(root.events.dropped_count, 1);
    let first = &root.events.events[0];
    assert_eq!(first.attributes, [KeyValue::new("detail", "ünïc")]);
    assert_eq!(first.dropped_attributes_count, 1);
    let exception = &root.events.events[2];
    assert_eq!(
        exception.attributes[1],
        KeyValue::new("exception.message", "decl")
    );
    // The child's link to its parent workflow is past a link limit of 0.
    assert!(child.links.is_empty());
    assert_eq!(child.links.dropped_count, 1);
    // The span attribute limits are not the event ones.
    assert_eq!(
        value(child, "observability.workflow_name"),
        Some(&Value::from("linked"))
    );
}

#[test]
fn other_libraries_spans_get_the_same_limits() {
    let limits = SpanLimits {
        attribute_count: 3,
        attribute_value_length: Some(3),
        event_count: 1,
        ..SpanLimits::default()
    };
    let spans = spans_of(limits, |pipeline| {
        // A provider of the user's, with the SDK's default limits: the
        // pipeline applies its own.
        let provider = SdkTracerProvider::builder()
            .with_span_processor(pipeline.span_processor())
            .build();
        let tracer = provider.tracer("other-library");
        let mut span = tracer.start("query");
        for (key, text) in [
            ("a", "ábcdef"),
            ("b", "bbbb"),
            ("c", "c"),
            ("d", "d"),
            ("e", "e"),
        ] {
            span.set_attribute(KeyValue::new(key, text));
        }
        span.add_event("first", vec![]);
        span.add_event("second", vec![]);
        span.end();
        provider.shutdown().unwrap();
    });
    let span = &spans[0];
    assert_eq!(
        span.attributes,
        [
            KeyValue::new("a", "ábc"),
            KeyValue::new("b", "bbb"),
            KeyValue::new("c", "c"),
        ]
    );
    assert_eq!(span.dropped_attributes_count, 2);
    assert_eq!(span.events.len(), 1);
    assert_eq!(span.events.dropped_count, 1);
}

#[step]
fn counted_at_the_caller() {
    for index in 0..10_000 {
        set_attribute(KeyValue::new("same.key", index));
    }
}

#[test]
fn a_loop_of_set_attribute_cannot_grow_a_span_past_the_limit() {
    let limits = SpanLimits {
        attribute_count: 10,
        ..SpanLimits::default()
    };
    let spans = spans_of(limits, |pipeline| {
        Instrumentation::new(pipeline).run(counted_at_the_caller);
    });
    let span = &spans[0];
    assert_eq!(span.attributes.len(), 10);
    // 6 of ours, 4 of the body's.
    assert_eq!(span.dropped_attributes_count, 10_000 - 4);
}
