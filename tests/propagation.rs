//! Crossing process boundaries: a remote child workflow continues its
//! parent's trace and lineage; detached children start their own trace; the
//! headers we write are read by the OpenTelemetry SDK's propagators and vice
//! versa, in the exact byte forms of the specifications; and no input,
//! however malformed, makes a parser panic.

#[path = "support/fuzz.rs"]
mod fuzz;

use std::collections::HashMap;

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use serde::{Deserialize, Serialize};
use workflow_otel::propagation::{self, Carrier, TraceCarrier, WorkflowLineage};
use workflow_otel::testing::Capture;
use workflow_otel::{Carried, SpanTree, child_workflow, step, workflow};

#[derive(Carried, Serialize, Deserialize, Default)]
struct Job {
    order: u32,
    #[trace_context]
    context: TraceCarrier,
}

#[workflow]
fn coordinator() -> String {
    send_job(7)
}

/// Sends from inside a step, so the remote parent span is the step while the
/// lineage names the workflow.
#[step(args(order))]
fn send_job(order: u32) -> String {
    let mut job = Job {
        order,
        ..Job::default()
    };
    job.inject_current_context();
    serde_json::to_string(&job).unwrap()
}

#[child_workflow(parent = job, fields(order = job.order))]
fn work(job: &Job) -> u32 {
    crunch(job.order)
}

#[step]
fn crunch(order: u32) -> u32 {
    order * 2
}

fn lineage_keys(key: &str) -> bool {
    key.starts_with("relationship.")
        || key.starts_with("workflow.")
        || matches!(
            key,
            "observability.workflow_id"
                | "observability.workflow_depth"
                | "observability.root_span_id"
                | "observability.trace_id"
        )
}

#[test]
fn a_remote_child_workflow_continues_the_trace_and_the_lineage() {
    let coordinator_process = Capture::new();
    let message = coordinator_process.run(coordinator);
    // The message crosses as JSON; the worker has its own pipeline.
    let worker_process = Capture::new();
    let job: Job = serde_json::from_str(&message).unwrap();
    assert_eq!(worker_process.run(|| work(&job)), 14);

    let mut spans = coordinator_process.spans();
    spans.extend(worker_process.spans());
    let tree = SpanTree::from_spans(spans);
    assert_eq!(tree.roots().len(), 1, "one trace, one root");
    assert_eq!(
        tree.render_with(|key| lineage_keys(key) || key == "order"),
        "\
coordinator #1 [workflow] Unset
  | observability.root_span_id: #1
  | observability.trace_id: trace#1
  | observability.workflow_depth: 0
  | observability.workflow_id: wf#1
  | relationship.hierarchy_path: \"coordinator\"
  | relationship.nesting_level: 0
  | relationship.type: \"root_workflow\"
  | workflow.correlation_id: wf#1
  send_job #2 [step] Unset
    | observability.workflow_id: wf#1
    work #3 [workflow] Unset
      | observability.root_span_id: #1
      | observability.trace_id: trace#1
      | observability.workflow_depth: 1
      | observability.workflow_id: wf#2
      | order: 7
      | relationship.hierarchy_path: \"coordinator/work\"
      | relationship.nesting_level: 1
      | relationship.parent_workflow_id: wf#1
      | relationship.parent_workflow_name: \"coordinator\"
      | relationship.type: \"child_workflow\"
      | workflow.causation_id: wf#1
      | workflow.correlation_id: wf#1
      | link #1 {link.type: \"parent_workflow\"}
      crunch #4 [step] Unset
        | observability.workflow_id: wf#2
"
    );
    let remote = tree.find("work").unwrap();
    assert!(remote.span.parent_span_is_remote);
}

#[child_workflow(detached)]
fn background_cleanup() -> u32 {
    workflow_otel::current_workflow().map_or(0, |workflow| workflow.depth())
}

#[workflow]
fn nightly() -> u32 {
    background_cleanup()
}

#[test]
fn a_detached_child_starts_its_own_trace_linked_to_its_parent() {
    let capture = Capture::new();
    assert_eq!(capture.run(nightly), 1, "the lineage continues");
    let tree = capture.tree();
    assert_eq!(tree.roots().len(), 2, "two traces");
    let parent = tree.find("nightly").unwrap();
    let child = tree.find("background_cleanup").unwrap();
    assert_ne!(
        child.span.span_context.trace_id(),
        parent.span.span_context.trace_id()
    );
    assert_eq!(child.span.parent_span_id, SpanId::INVALID);
    assert_eq!(child.span.links.len(), 1);
    assert_eq!(
        child.span.links[0].span_context.span_id(),
        parent.span.span_context.span_id()
    );
    assert_eq!(
        child
            .attribute("relationship.parent_workflow_name")
            .map(|v| v.as_str().into_owned()),
        Some("nightly".to_owned())
    );
}

fn remote_context() -> Context {
    let span = SpanContext::new(
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
        SpanId::from_hex("b7ad6b7169203331").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_key_value([("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")])
            .unwrap(),
    );
    Context::new().with_remote_span_context(span).with_baggage([
        KeyValue::new("userId", "alice"),
        KeyValue::new("city", "Zürich"),
    ])
}

#[test]
fn headers_we_write_have_the_specification_byte_forms() {
    let mut headers = HashMap::new();
    propagation::inject(&remote_context(), &mut headers);
    assert_eq!(
        headers["traceparent"],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
    assert_eq!(
        headers["tracestate"],
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    );
    let mut baggage: Vec<&str> = headers["baggage"].split(',').collect();
    baggage.sort_unstable();
    assert_eq!(baggage, ["city=Z%C3%BCrich", "userId=alice"]);
    assert!(
        !headers.contains_key("workflow-lineage"),
        "no workflow, no lineage"
    );
}

#[test]
fn the_sdk_reads_what_we_write_and_we_read_what_the_sdk_writes() {
    let ours = remote_context();
    // We write, the SDK reads.
    let mut written = HashMap::new();
    propagation::inject(&ours, &mut written);
    let read_by_sdk = BaggagePropagator::new()
        .extract_with_context(&TraceContextPropagator::new().extract(&written), &written);
    assert_eq!(
        read_by_sdk.span().span_context(),
        ours.span().span_context()
    );
    assert_eq!(
        read_by_sdk
            .baggage()
            .get("city")
            .map(|v| v.as_str().to_owned()),
        Some("Zürich".to_owned())
    );

    // The SDK writes, we read.
    let mut sdk_written = HashMap::new();
    TraceContextPropagator::new().inject_context(&ours, &mut sdk_written);
    BaggagePropagator::new().inject_context(&ours, &mut sdk_written);
    let read_by_us = propagation::extract(&sdk_written);
    assert_eq!(read_by_us.span().span_context(), ours.span().span_context());
    assert_eq!(
        read_by_us
            .baggage()
            .get("userId")
            .map(|v| v.as_str().to_owned()),
        Some("alice".to_owned())
    );
    assert_eq!(
        read_by_us
            .baggage()
            .get("city")
            .map(|v| v.as_str().to_owned()),
        Some("Zürich".to_owned())
    );
}

#[test]
fn http_headers_carry_the_trace_baggage_and_lineage() {
    let capture = Capture::new();
    #[workflow]
    fn client() -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        let cx = Context::current_with_baggage([KeyValue::new("tenant", "acme")]);
        let _attached = cx.attach();
        propagation::inject_current(&mut headers);
        headers
    }
    #[workflow(parent = headers)]
    fn server(headers: &http::HeaderMap) -> (u32, String, Option<String>) {
        let workflow = workflow_otel::current_workflow().unwrap();
        let tenant = Context::current()
            .baggage()
            .get("tenant")
            .map(|v| v.as_str().to_owned());
        (
            workflow.depth(),
            workflow.hierarchy_path().to_owned(),
            tenant,
        )
    }
    let headers = capture.run(client);
    for name in ["traceparent", "baggage", "workflow-lineage"] {
        assert!(headers.contains_key(name), "{name} is written");
    }
    let (depth, path, tenant) = capture.run(|| server(&headers));
    assert_eq!(
        (depth, path.as_str(), tenant.as_deref()),
        (1, "client/server", Some("acme"))
    );
}

#[test]
fn the_message_carrier_round_trips_every_field_through_json() {
    let carrier = TraceCarrier {
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        tracestate: Some("rojo=00f067aa0ba902b7".into()),
        baggage: Some("userId=alice".into()),
        workflow: Some(WorkflowLineage {
            name: "import".into(),
            id: "01923e4f-5a6b-7c8d-9eaf-b0c1d2e3f405".into(),
            depth: 2,
            hierarchy_path: "nightly/import".into(),
            correlation_id: "01923e4f-0000-7000-8000-000000000001".into(),
            root_span_id: "00f067aa0ba902b7".into(),
            span_id: "b7ad6b7169203331".into(),
        }),
    };
    let json = serde_json::to_string(&carrier).unwrap();
    assert_eq!(
        json,
        concat!(
            r#"{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","#,
            r#""tracestate":"rojo=00f067aa0ba902b7","baggage":"userId=alice","#,
            r#""workflow":{"name":"import","id":"01923e4f-5a6b-7c8d-9eaf-b0c1d2e3f405","depth":2,"#,
            r#""hierarchy_path":"nightly/import","correlation_id":"01923e4f-0000-7000-8000-000000000001","#,
            r#""root_span_id":"00f067aa0ba902b7","span_id":"b7ad6b7169203331"}}"#
        )
    );
    assert_eq!(
        serde_json::from_str::<TraceCarrier>(&json).unwrap(),
        carrier
    );
    assert_eq!(
        serde_json::from_str::<TraceCarrier>("{}").unwrap(),
        TraceCarrier::default()
    );
    // Through the header form too, as string-map carriers hold it.
    let lineage = carrier.workflow.clone().unwrap();
    assert_eq!(
        WorkflowLineage::from_header(&lineage.to_header()),
        Some(lineage)
    );
}

#[test]
fn an_invalid_traceparent_starts_a_new_trace_and_keeps_the_baggage() {
    let mut headers = HashMap::new();
    headers.insert(
        "traceparent".to_owned(),
        "00-00000000000000000000000000000000-b7ad6b7169203331-01".to_owned(),
    );
    headers.insert("tracestate".to_owned(), "rojo=00f067aa0ba902b7".to_owned());
    headers.insert("baggage".to_owned(), "ok=1,broken".to_owned());
    let cx = propagation::extract(&headers);
    assert!(!cx.span().span_context().is_valid());
    assert_eq!(cx.baggage().len(), 1);
    // An invalid tracestate is dropped, the traceparent still counts.
    headers.insert(
        "traceparent".to_owned(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
    );
    headers.insert("tracestate".to_owned(), "Bad=1".to_owned());
    let cx = propagation::extract(&headers);
    assert!(cx.span().span_context().is_valid());
    assert_eq!(cx.span().span_context().trace_state().header(), "");
}

/// A million inputs in all, half arbitrary bytes, half edited valid headers
/// (the same generator as `examples/fuzz_propagation.rs`, which runs ten
/// million in release mode): no parser panics, and whatever is accepted is
/// written back the same and within the documented limits.
#[test]
fn no_input_makes_a_parser_panic_and_accepted_input_round_trips() {
    let accepted = fuzz::run(200_000, 0x9e37_79b9_7f4a_7c15);
    for (parser, count) in fuzz::PARSERS.iter().zip(accepted) {
        assert!(count > 1_000, "{parser}: only {count} inputs accepted");
    }
}

#[test]
fn a_string_map_reads_header_names_case_insensitively() {
    let mut map = HashMap::new();
    map.insert(
        "TraceParent".to_owned(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
    );
    assert_eq!(
        Carrier::get(&map, "traceparent").as_deref(),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    let mut headers = http::HeaderMap::new();
    headers.append("tracestate", "a=1".parse().unwrap());
    headers.append("tracestate", "b=2".parse().unwrap());
    assert_eq!(
        Carrier::get(&headers, "tracestate").as_deref(),
        Some("a=1,b=2"),
        "repeated headers combine"
    );
}
