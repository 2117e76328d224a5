//! A differential test of the Zipkin exporter against the OpenTelemetry
//! Python SDK's (`opentelemetry-exporter-zipkin-json`, in the venv that
//! `./scripts/test` makes; `WORKFLOW_OTEL_PYTHON` names its python). The same
//! spans go to an in-test receiver twice: from our exporter, and from the
//! Python exporter, which reads them back from the JSON-lines file our file
//! exporter wrote in the same export. Both are compared field by field;
//! every difference allowed is one the mapping explains, named below.

mod support;
#[path = "support/zipkin.rs"]
mod zipkin_receiver;

use std::collections::BTreeMap;

use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue};
use serde_json::Value;
use workflow_otel::{set_attribute, step};
use zipkin_receiver::{spans_posted_to, start};

/// A step past the default attribute limit: a dropped count to compare.
#[step]
fn wide() {
    for index in 0..200 {
        set_attribute(KeyValue::new(format!("attr.{index}"), index));
    }
    set_attribute(KeyValue::new("ratio", 0.25));
}

/// Other libraries' spans: a client with peer attributes, arrays, doubles
/// and booleans, under a scope with a version; and one with none.
fn other_libraries_spans() {
    let provider = opentelemetry::global::tracer_provider();
    let tracer = provider.tracer_with_scope(
        InstrumentationScope::builder("http-client")
            .with_version("1.2.3")
            .build(),
    );
    let mut span = tracer
        .span_builder("GET /stock")
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("server.address", "stock.internal"),
            KeyValue::new("server.port", 8443),
            KeyValue::new("network.peer.address", "10.1.2.3"),
            KeyValue::new("network.peer.port", 8443),
            KeyValue::new("http.response.status_code", 200),
            KeyValue::new("weight", 1.0),
            KeyValue::new("tiny", 1.5e-7),
            KeyValue::new("cached", true),
            KeyValue::new(
                "names",
                opentelemetry::Value::Array(opentelemetry::Array::String(vec![
                    "plain".into(),
                    "ünïcode \"quoted\"".into(),
                ])),
            ),
            KeyValue::new(
                "sizes",
                opentelemetry::Value::Array(opentelemetry::Array::I64(vec![1, 22, 333])),
            ),
        ])
        .start(&tracer);
    span.add_event("sent", vec![KeyValue::new("bytes", 512)]);
    span.add_event("no attributes", vec![]);
    span.set_status(Status::Ok);
    span.end();
    support::failed_client_span("GET /price", 503, "the price service is down");
}

/// The spans posted to `path`, by id.
fn by_id(posts: &zipkin_receiver::Posts, path: &str) -> BTreeMap<String, Value> {
    spans_posted_to(posts, path)
        .into_iter()
        .map(|span| (span["id"].as_str().unwrap().to_owned(), span))
        .collect()
}

/// A tag's text; a JSON list is parsed and each member made text. Python
/// writes non-ASCII characters in lists as `\u` escapes, we write UTF-8;
/// and Python makes every member of a list a string (`["1","22"]`), where
/// we write the members' JSON (`[1,22]`), as the collector's Zipkin
/// exporter does: "a JSON list", the mapping says, of the values.
fn tag_value(text: &Value) -> Value {
    match text.as_str() {
        Some(list) if list.starts_with('[') => {
            let members: Vec<Value> = serde_json::from_str(list).unwrap();
            members
                .into_iter()
                .map(|member| match member {
                    Value::String(text) => Value::String(text),
                    other => Value::String(other.to_string()),
                })
                .collect()
        }
        _ => text.clone(),
    }
}

/// Compares one span of ours with Python's, field by field.
fn compare(ours: &Value, python: &Value) {
    let name = &ours["name"];
    let fields: std::collections::BTreeSet<&String> = ours
        .as_object()
        .unwrap()
        .keys()
        .chain(python.as_object().unwrap().keys())
        .collect();
    for field in fields {
        let (mine, theirs) = (&ours[field.as_str()], &python[field.as_str()]);
        match field.as_str() {
            // INTERNAL: the mapping says leave `kind` out; Python writes null.
            "kind" if theirs.is_null() => assert!(mine.is_null(), "{name}: kind {mine}"),
            // Python marks every sampled span `debug` (Zipkin's "force
            // sampling" flag); the mapping leaves `debug` out.
            "debug" => assert_eq!((mine, theirs), (&Value::Null, &Value::Bool(true))),
            // Python writes no remote endpoint; the mapping asks for one on
            // CLIENT and PRODUCER spans with peer attributes.
            "remoteEndpoint" => {
                assert!(theirs.is_null());
                assert_eq!(ours["kind"], "CLIENT", "{name}");
                let tags = &ours["tags"];
                assert_eq!(mine["serviceName"], tags["server.address"], "{name}");
                if tags.get("network.peer.address").is_some() {
                    assert_eq!(mine["ipv4"], tags["network.peer.address"]);
                    assert_eq!(
                        mine["port"].to_string(),
                        tags["network.peer.port"].as_str().unwrap()
                    );
                }
            }
            // The API's minimum duration is 1 µs; Python writes 0 for less.
            "duration" => assert_eq!(
                mine.as_u64().unwrap(),
                theirs.as_u64().unwrap().max(1),
                "{name}"
            ),
            "annotations" => {
                let (mine, theirs) = (mine.as_array().unwrap(), theirs.as_array().unwrap());
                assert_eq!(mine.len(), theirs.len(), "{name}");
                for (mine, theirs) in mine.iter().zip(theirs) {
                    assert_eq!(mine["timestamp"], theirs["timestamp"], "{name}");
                    let parse = |value: &Value| -> Value {
                        serde_json::from_str(value.as_str().unwrap()).unwrap()
                    };
                    assert_eq!(parse(&mine["value"]), parse(&theirs["value"]), "{name}");
                }
            }
            "tags" => compare_tags(name, ours, mine, theirs),
            _ => assert_eq!(mine, theirs, "{name}: {field}"),
        }
    }
}

fn compare_tags(name: &Value, ours: &Value, mine: &Value, theirs: &Value) {
    let (mine, theirs) = (mine.as_object().unwrap(), theirs.as_object().unwrap());
    for key in mine.keys().chain(theirs.keys()) {
        let (my_tag, their_tag) = (mine.get(key), theirs.get(key));
        match key.as_str() {
            // Python also copies `service.name` into the tags; we leave it
            // as the local endpoint's name only, as the collector does.
            "service.name" => {
                assert_eq!(my_tag, None);
                assert_eq!(their_tag, Some(&ours["localEndpoint"]["serviceName"]));
            }
            // A scope with no version: Python writes null, we leave it out.
            "otel.scope.version" | "otel.library.version" if their_tag == Some(&Value::Null) => {
                assert_eq!(my_tag, None, "{name}: {key}");
            }
            _ => assert_eq!(
                my_tag.map(tag_value),
                their_tag.map(tag_value),
                "{name}: tag {key}"
            ),
        }
    }
}

#[test]
fn our_zipkin_json_is_the_python_sdks_but_for_what_the_mapping_explains() {
    let python = std::env::var("WORKFLOW_OTEL_PYTHON").unwrap_or_else(|_| {
        panic!("WORKFLOW_OTEL_PYTHON must name a python with opentelemetry-exporter-zipkin-json: run ./scripts/test")
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (address, posts) = start(&runtime);
    let directory = std::env::temp_dir().join(format!("zipkin-diff-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let file = directory.join("spans.jsonl");
    let _ = std::fs::remove_file(&file);

    let guard = workflow_otel::setup()
        .environment_from(|_| None)
        .service_name("zipkin-diff")
        .service_version("2.0.0")
        .file(&file)
        .zipkin()
        .zipkin_endpoint(format!("http://{address}/ours"))
        .install();
    support::checkout().unwrap_err();
    wide();
    other_libraries_spans();
    drop(guard);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/support/zipkin_reference.py");
    let output = std::process::Command::new(&python)
        .arg(script)
        .arg(&file)
        .arg(format!("http://{address}/python"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let ours = by_id(&posts, "/ours");
    let theirs = by_id(&posts, "/python");
    // checkout, reserve, pay; wide; two client spans.
    assert_eq!(ours.len(), 6);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (id, span) in &ours {
        compare(span, &theirs[id]);
    }
    // What the comparison covered.
    let all = format!("{ours:?}");
    for covered in [
        "otel.dropped_attributes_count",
        "remoteEndpoint",
        "\"error\": String(\"card declined\")",
        "CLIENT",
        "1.5e-07",
        "no attributes",
    ] {
        assert!(all.contains(covered), "{covered} is not in the spans");
    }
    let _ = std::fs::remove_dir_all(&directory);
}
