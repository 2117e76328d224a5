//! The Zipkin exporter: Zipkin v2 JSON by the OpenTelemetry mapping, from
//! our records and from other libraries' spans, plain or gzip; and over a
//! refused or hung endpoint, bounded and counted.

mod support;
#[path = "support/zipkin.rs"]
mod zipkin_receiver;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{Value, json};
use support::checkout;
use workflow_otel::{
    Instrumentation, Pipeline, PipelineConfig, SetupError, ZipkinExporter, ZipkinSettings,
};
use zipkin_receiver::{spans_posted_to, start};

fn settings(address: SocketAddr, gzip: bool) -> ZipkinSettings {
    ZipkinSettings {
        endpoint: format!("http://{address}/api/v2/spans"),
        timeout: Duration::from_millis(500),
        gzip,
    }
}

/// One `checkout` (3 spans of ours) and a client span of another library
/// with peer attributes and times of its own, through a Zipkin exporter to
/// `address`; returns the other library's span's ids.
fn export(address: SocketAddr, gzip: bool) -> (String, String) {
    let exporter = ZipkinExporter::new(&settings(address, gzip)).unwrap();
    let pipeline = Pipeline::with_config(
        exporter,
        PipelineConfig::default(),
        Some(support::resource("zipkin-test")),
    );
    Instrumentation::new(&pipeline).run(|| checkout().unwrap_err());
    let provider = SdkTracerProvider::builder()
        .with_span_processor(pipeline.span_processor())
        .build();
    let tracer = provider.tracer("http-client");
    let start = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
    let mut span = tracer
        .span_builder("GET")
        .with_kind(SpanKind::Client)
        .with_start_time(start)
        .with_attributes([
            KeyValue::new("server.address", "stock.internal"),
            KeyValue::new("network.peer.address", "10.0.0.7"),
            KeyValue::new("network.peer.port", 8080),
            KeyValue::new("http.response.status_code", 503),
            KeyValue::new("retry.ratio", 1.0),
            KeyValue::new("cache.hit", false),
            KeyValue::new(
                "tags",
                opentelemetry::Value::Array(opentelemetry::Array::String(vec![
                    "a\"b".into(),
                    "ü".into(),
                ])),
            ),
            KeyValue::new("error", "true"),
        ])
        .start(&tracer);
    span.add_event_with_timestamp(
        "retry",
        start + Duration::from_micros(10),
        vec![KeyValue::new("attempt", 2)],
    );
    span.set_status(Status::error("503 from stock"));
    let ids = (
        span.span_context().trace_id().to_string(),
        span.span_context().span_id().to_string(),
    );
    span.end_with_timestamp(start + Duration::from_nanos(2_499));
    provider.shutdown().unwrap();
    pipeline.shutdown().unwrap();
    assert_eq!(pipeline.exported_spans(), 4);
    ids
}

fn by_name<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|span| span["name"] == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:?}"))
}

#[test]
fn spans_arrive_as_zipkin_v2_json_by_the_mapping() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (address, posts) = start(&runtime);
    let (trace_id, span_id) = export(address, false);
    let posted = posts.lock().unwrap().clone();
    for (path, content_type, encoding, _) in &posted {
        assert_eq!(
            (path.as_str(), content_type.as_str(), encoding.as_str()),
            ("/api/v2/spans", "application/json", "")
        );
    }
    let bodies: Vec<String> = posted
        .into_iter()
        .map(|(.., body)| String::from_utf8(body).unwrap())
        .collect();
    // The other library's span, byte for byte: times in rounded
    // microseconds (a 2.499 µs span lasts 2), the kind, the remote endpoint
    // from the peer attributes, tags as text (a double keeps its point, an
    // array is a JSON list), the attribute named `error` left to the status.
    let expected = format!(
        concat!(
            r#"{{"traceId":"{trace}","id":"{span}","kind":"CLIENT","name":"GET","#,
            r#""timestamp":1700000000123457,"duration":2,"#,
            r#""localEndpoint":{{"serviceName":"zipkin-test"}},"#,
            r#""annotations":[{{"timestamp":1700000000123467,"value":"{{\"retry\":{{\"attempt\":2}}}}"}}],"#,
            r#""tags":{{"server.address":"stock.internal","network.peer.address":"10.0.0.7","#,
            r#""network.peer.port":"8080","http.response.status_code":"503","retry.ratio":"1.0","#,
            r#""cache.hit":"false","tags":"[\"a\\\"b\",\"ü\"]","service.version":"1.0.0","#,
            r#""otel.scope.name":"http-client","otel.library.name":"http-client","#,
            r#""otel.status_code":"ERROR","error":"503 from stock"}},"#,
            r#""remoteEndpoint":{{"serviceName":"stock.internal","ipv4":"10.0.0.7","port":8080}}}}"#
        ),
        trace = trace_id,
        span = span_id,
    );
    assert!(
        bodies.iter().any(|body| body.contains(&expected)),
        "{expected}\nis not in\n{bodies:?}"
    );

    let spans = spans_posted_to(&posts, "/api/v2/spans");
    let root = by_name(&spans, "checkout");
    let pay = by_name(&spans, "pay");
    let reserve = by_name(&spans, "reserve");
    assert!(root.get("parentId").is_none());
    assert_eq!(pay["parentId"], root["id"]);
    assert_eq!(reserve["parentId"], root["id"]);
    for span in [root, pay, reserve] {
        // INTERNAL has no Zipkin kind: left out.
        assert!(span.get("kind").is_none(), "{span}");
        assert_eq!(span["traceId"], root["traceId"]);
        assert_eq!(span["localEndpoint"], json!({"serviceName": "zipkin-test"}));
        assert!(span["duration"].as_u64().unwrap() >= 1);
        assert_eq!(span["tags"]["otel.scope.name"], "workflow-otel");
        assert_eq!(span["tags"]["otel.library.name"], "workflow-otel");
        assert_eq!(span["tags"]["service.version"], "1.0.0");
        assert!(span["tags"].get("service.name").is_none());
    }
    assert_eq!(root["tags"]["order.id"], "7");
    assert_eq!(root["tags"]["otel.status_code"], "ERROR");
    assert_eq!(root["tags"]["error"], "card declined");
    // Unset (the default success status) is not reported.
    assert!(reserve["tags"].get("otel.status_code").is_none());
    assert!(reserve["tags"].get("error").is_none());
    assert_eq!(reserve["tags"]["arg.warehouse"], "north");
    // Events: the checkpoint, then the exception.
    let annotations: Vec<Value> = root["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|annotation| serde_json::from_str(annotation["value"].as_str().unwrap()).unwrap())
        .collect();
    assert!(annotations[0]["cart_loaded"]["checkpoint.elapsed"].is_f64());
    assert_eq!(
        annotations.last().unwrap()["exception"]["exception.message"],
        "card declined"
    );
    assert!(pay.get("annotations").is_some());
}

#[test]
fn gzip_sends_the_same_json_compressed() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (address, posts) = start(&runtime);
    export(address, true);
    let posted = posts.lock().unwrap().clone();
    assert!(posted.iter().all(|(_, _, encoding, _)| encoding == "gzip"));
    assert_eq!(spans_posted_to(&posts, "/api/v2/spans").len(), 4);
}

fn failing_config() -> PipelineConfig {
    PipelineConfig {
        max_export_batch_size: 16,
        scheduled_delay: Duration::from_millis(20),
        export_timeout: Duration::from_secs(1),
        shutdown_timeout: Duration::from_secs(3),
        drop_report: |_| {},
        ..PipelineConfig::default()
    }
}

/// 20 workflows of 3 spans through a Zipkin exporter to `address`; every
/// span must be counted as dropped, within the shutdown bound.
fn all_lost_within_the_bound(address: SocketAddr) {
    let exporter = ZipkinExporter::new(&settings(address, false)).unwrap();
    let pipeline = Pipeline::with_config(exporter, failing_config(), None);
    Instrumentation::new(&pipeline).run(|| {
        for _ in 0..20 {
            checkout().unwrap_err();
        }
    });
    let started = std::time::Instant::now();
    let _ = pipeline.shutdown();
    // The shutdown bound (3 s) and the time to stop the worker.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(pipeline.exported_spans(), 0);
    assert_eq!(pipeline.dropped_spans(), 60);
}

#[test]
fn a_refused_endpoint_loses_every_span_and_counts_it() {
    all_lost_within_the_bound(support::refused_address());
}

#[test]
fn an_endpoint_that_never_answers_costs_only_the_timeout() {
    all_lost_within_the_bound(support::silent_address());
}

#[test]
fn a_bad_endpoint_is_a_setup_error_that_never_shows_its_credentials() {
    let error: SetupError = ZipkinExporter::new(&ZipkinSettings {
        endpoint: "ftp://user:hunter2@zipkin.internal/api/v2/spans".to_owned(),
        ..ZipkinSettings::default()
    })
    .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("not http or https"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
