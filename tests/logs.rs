//! Log lines against the spans they belong to: every JSON line emitted
//! inside a workflow (nested, parallel, in spawned tasks and threads) must
//! name the span it was emitted in, that span's trace, its workflow and the
//! run's correlation id; lines outside workflows carry none of these. With
//! `SpanEvents`, the same events appear on the step's span.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use opentelemetry::Value;
use opentelemetry_sdk::trace::SpanData;
use serde_json::Value as Json;
use tracing_subscriber::layer::SubscriberExt as _;
use workflow_otel::attributes::{CORRELATION_ID, WORKFLOW_ID, WORKFLOW_NAME};
use workflow_otel::logs::{SpanEvents, json_layer};
use workflow_otel::testing::Capture;
use workflow_otel::{child_workflow, step, workflow};

/// Everything the JSON layer wrote, shared by every thread.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process-wide subscriber (spawned threads and tasks must see it too).
fn lines() -> &'static Lines {
    static LINES: OnceLock<Lines> = OnceLock::new();
    LINES.get_or_init(|| {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry()
            .with(json_layer(move || writer.clone()))
            .with(SpanEvents::default());
        tracing::subscriber::set_global_default(subscriber).unwrap();
        tracing_log::LogTracer::init().unwrap();
        lines
    })
}

/// The JSON lines written so far that carry `test = name`.
fn lines_of(test: &str) -> Vec<serde_json::Map<String, Json>> {
    let bytes = lines().0.lock().unwrap().clone();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<Json>(line).unwrap_or_else(|error| panic!("{error}: {line}"))
        })
        .filter_map(|line| match line {
            Json::Object(map) if map.get("test") == Some(&Json::from(test)) => Some(map),
            _ => None,
        })
        .collect()
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|attribute| attribute.key.as_str() == key)
        .map(|attribute| match &attribute.value {
            Value::String(text) => text.as_str().to_owned(),
            other => other.to_string(),
        })
}

#[step]
async fn log_validate(order: u64) {
    tracing::info!(test = "nested", order, "validating");
}

#[step]
async fn log_reserve(warehouse: &'static str) {
    tracing::info!(test = "nested", warehouse, "reserving");
}

#[step]
fn log_pack() {
    // Through the `log` crate, bridged.
    log::warn!(target: "packing", "packing by hand");
    tracing::info!(test = "nested", "packed");
}

#[child_workflow]
async fn log_bill(order: u64) {
    tracing::info!(test = "nested", order, "billing");
}

#[workflow]
async fn log_orders(order: u64) {
    tracing::info!(test = "nested", "order received");
    log_validate(order).await;
    let north = workflow_otel::spawn(log_reserve("north"));
    let south = workflow_otel::spawn(log_reserve("south"));
    north.await.unwrap();
    south.await.unwrap();
    workflow_otel::spawn_thread(log_pack).join().unwrap();
    log_bill(order).await;
}

#[test]
fn every_line_names_its_span_workflow_and_run() {
    lines();
    let capture = Capture::new();
    tracing::info!(test = "nested", "before any workflow");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(capture.scope(async {
        log_orders(7).await;
        log_orders(8).await;
    }));
    tracing::info!(test = "nested", "after every workflow");
    let spans = capture.spans();
    let by_id: HashMap<String, &SpanData> = spans
        .iter()
        .map(|span| (span.span_context.span_id().to_string(), span))
        .collect();
    let nested = lines_of("nested");
    // Two runs of 6 lines inside workflows, and two outside.
    assert_eq!(nested.len(), 2 * 6 + 2, "{nested:#?}");
    let expected_span = HashMap::from([
        ("order received", ("log_orders", "log_orders")),
        ("validating", ("log_validate", "log_orders")),
        ("reserving", ("log_reserve", "log_orders")),
        ("packed", ("log_pack", "log_orders")),
        ("billing", ("log_bill", "log_bill")),
    ]);
    let mut per_run: HashMap<String, usize> = HashMap::new();
    for line in &nested {
        let message = line["message"].as_str().unwrap();
        if message.ends_with("workflow") {
            for key in [
                "trace_id",
                "span_id",
                "workflow_id",
                "workflow_name",
                "correlation_id",
            ] {
                assert!(!line.contains_key(key), "{key} outside workflows: {line:?}");
            }
            continue;
        }
        let (span_name, workflow_name) = expected_span[message];
        let span = by_id
            .get(line["span_id"].as_str().unwrap())
            .unwrap_or_else(|| panic!("`{message}` names a span that was not exported: {line:?}"));
        assert_eq!(span.name, span_name, "{line:?}");
        assert_eq!(line["trace_id"], span.span_context.trace_id().to_string());
        assert_eq!(line["workflow_name"], workflow_name);
        assert_eq!(
            Some(line["workflow_name"].as_str().unwrap().to_owned()),
            attribute(span, WORKFLOW_NAME)
        );
        assert_eq!(
            Some(line["workflow_id"].as_str().unwrap().to_owned()),
            attribute(span, WORKFLOW_ID)
        );
        // The run's correlation id is on its root workflow's span.
        let root = spans
            .iter()
            .find(|root| {
                root.name == "log_orders"
                    && root.span_context.trace_id() == span.span_context.trace_id()
            })
            .expect("the run's root workflow");
        assert_eq!(
            Some(line["correlation_id"].as_str().unwrap().to_owned()),
            attribute(root, CORRELATION_ID),
            "{line:?}"
        );
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], "logs");
        assert_eq!(line["service.name"], workflow_otel::logs::service_name());
        *per_run
            .entry(line["correlation_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    // Two runs, each with its own correlation id shared by all six lines
    // (the child workflow's too).
    assert_eq!(per_run.len(), 2, "{per_run:?}");
    assert!(per_run.values().all(|count| *count == 6), "{per_run:?}");
    // The `log` record came through the bridge, from the packing step.
    let bytes = lines().0.lock().unwrap().clone();
    let text = String::from_utf8(bytes).unwrap();
    let packing: Vec<Json> = text
        .lines()
        .filter(|line| line.contains("packing by hand"))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(packing.len(), 2);
    for line in packing {
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["target"], "packing");
        assert_eq!(by_id[line["span_id"].as_str().unwrap()].name, "log_pack");
        assert!(line.get("log.target").is_none(), "{line}");
    }
    // The same events are span events of their step.
    for span in spans.iter().filter(|span| span.name == "log_validate") {
        let events: Vec<_> = span.events.iter().collect();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].name, "validating");
        let attributes: HashMap<&str, String> = events[0]
            .attributes
            .iter()
            .map(|attribute| (attribute.key.as_str(), attribute.value.to_string()))
            .collect();
        assert_eq!(attributes["level"], "INFO");
        assert_eq!(attributes["test"], "nested");
        assert!(attributes["order"] == "7" || attributes["order"] == "8");
    }
}

#[test]
fn fields_named_like_ours_do_not_overwrite_the_ids() {
    lines();
    let capture = Capture::new();
    capture.run(shadowing);
    let lines = lines_of("shadow");
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert_eq!(line["fields.trace_id"], "forged");
    assert_eq!(
        line["trace_id"],
        capture.spans()[0].span_context.trace_id().to_string()
    );
}

#[workflow]
fn shadowing() {
    tracing::info!(
        test = "shadow",
        trace_id = "forged",
        "a field named like ours"
    );
}

#[test]
fn any_text_stays_one_valid_json_line() {
    lines();
    let nasty = "quote \" backslash \\ newline \n tab \t bell \u{7} nul \u{0} é 🦀";
    tracing::info!(test = "escaping", text = nasty, debugged = ?nasty, number = f64::NAN, "{nasty}");
    let lines = lines_of("escaping");
    assert_eq!(lines.len(), 1, "one line, whatever the text");
    let line = &lines[0];
    assert_eq!(line["message"], nasty);
    assert_eq!(line["text"], nasty);
    assert_eq!(line["debugged"], format!("{nasty:?}"));
    assert_eq!(line["number"], "NaN");
}

#[test]
fn a_second_global_subscriber_is_a_setup_error() {
    lines();
    let error = workflow_otel::setup()
        .environment_from(|_| None)
        .logs(workflow_otel::logs::LogFormat::Json)
        .try_install()
        .expect_err("the test's subscriber is already the global one");
    assert_eq!(error.setting, "Setup::logs");
    assert!(error.reason.contains("already set"), "{error}");
    assert!(
        error.reason.contains("json_layer"),
        "says what to do instead: {error}"
    );
}

#[workflow]
fn readable_and_correlated() -> Option<workflow_otel::logs::Correlation> {
    tracing::info!(order = 7, "charged");
    workflow_otel::logs::Correlation::current()
}

#[test]
fn readable_lines_and_the_correlation_api_name_the_same_ids() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::registry()
        .with(workflow_otel::logs::readable_layer(move || writer.clone()));
    let capture = Capture::new();
    let correlation = tracing::subscriber::with_default(subscriber, || {
        tracing::info!("outside");
        capture.run(readable_and_correlated)
    })
    .expect("inside a workflow");
    assert!(
        workflow_otel::logs::Correlation::current().is_none(),
        "none outside"
    );
    let span = &capture.spans()[0];
    assert_eq!(
        correlation.trace_id,
        span.span_context.trace_id().to_string()
    );
    assert_eq!(correlation.span_id, span.span_context.span_id().to_string());
    assert!(correlation.sampled);
    let workflow = correlation.workflow.expect("a workflow");
    assert_eq!(workflow.name, "readable_and_correlated");
    assert_eq!(Some(workflow.id.clone()), attribute(span, WORKFLOW_ID));
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let written: Vec<&str> = text.lines().collect();
    assert_eq!(written.len(), 2, "{text}");
    // No setup() in this process: the service is named as the SDK would
    // name it from the environment.
    let service = workflow_otel::logs::service_name();
    assert!(service.starts_with("unknown_service"), "{service}");
    assert!(
        written[0].ends_with(&format!(" INFO logs: outside service={service}")),
        "{}",
        written[0]
    );
    assert!(
        written[1].ends_with(&format!(
            " INFO logs: charged order=7 service={service} trace_id={} span_id={} workflow=readable_and_correlated workflow_id={}",
            correlation.trace_id, correlation.span_id, workflow.id
        )),
        "{}",
        written[1]
    );
}

#[test]
fn readable_lines_show_control_characters_instead_of_obeying_them() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::registry()
        .with(workflow_otel::logs::readable_layer(move || writer.clone()));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(
            peer = "\u{1b}]0;owned\u{7}",
            "declined \u{1b}[2J\rover\u{202e}txt"
        );
    });
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let line = text.strip_suffix('\n').expect("one line");
    assert!(
        !line
            .chars()
            .any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
        "{line:?}"
    );
    // tracing-subscriber's field formatter shows ESC as `\x1b` itself; the
    // carriage return and the override are shown by ours.
    assert!(
        line.contains(r"declined \x1b[2J\u{d}over\u{202e}txt"),
        "{line}"
    );
    assert!(line.contains(r#"peer="\u{1b}]0;owned\u{7}""#), "{line}");
}
