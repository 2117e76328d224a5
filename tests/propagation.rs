//! Crossing process boundaries: a remote child workflow continues its
//! parent's trace and lineage; detached children start their own trace; the
//! headers we write are read by the OpenTelemetry SDK's propagators and vice
//! versa, in the exact byte forms of the specifications; and no input,
//! however malformed, makes a parser panic.

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
use workflow_otel::w3c::{self, TraceParent};
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

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Inputs(u64);

impl Inputs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Arbitrary bytes, as text the way a server would see them.
    fn bytes(&mut self) -> String {
        let length = self.below(80);
        let bytes: Vec<u8> = (0..length).map(|_| self.next() as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// A valid header with a few edits: where parsers have most branches.
    fn mutated(&mut self, valid: &str) -> String {
        const ALPHABET: &[u8] = b"0123456789abcdefABCDEF-=,;%@*/_ \t\x00\xff~";
        let mut bytes = valid.as_bytes().to_vec();
        for _ in 0..=self.below(3) {
            let position = self.below(bytes.len() + 1);
            let byte = ALPHABET[self.below(ALPHABET.len())];
            match self.below(3) {
                0 if position < bytes.len() => bytes[position] = byte,
                1 => bytes.insert(position, byte),
                _ if position < bytes.len() => {
                    bytes.remove(position);
                }
                _ => {}
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn input(&mut self, valid: &str) -> String {
        if self.below(2) == 0 {
            self.bytes()
        } else {
            self.mutated(valid)
        }
    }
}

/// A million inputs in all, half arbitrary bytes, half edited valid headers:
/// no parser panics, and whatever is accepted is written back the same.
#[test]
fn no_input_makes_a_parser_panic_and_accepted_input_round_trips() {
    const EACH: usize = 200_000;
    let mut inputs = Inputs(0x9e37_79b9_7f4a_7c15);
    let mut accepted = [0_usize; 5];

    for _ in 0..EACH {
        let header = inputs.input("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        if let Ok(parent) = TraceParent::parse(&header) {
            accepted[0] += 1;
            let trimmed = header.trim_matches([' ', '\t']);
            if trimmed.starts_with("00-") {
                assert_eq!(parent.to_header(), trimmed, "{header:?}");
            }
            assert_eq!(TraceParent::parse(&parent.to_header()), Ok(parent));
        }
    }
    for _ in 0..EACH {
        let header = inputs.input("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,t@v=x");
        if let Ok(state) = w3c::parse_tracestate(&header) {
            accepted[1] += 1;
            let written = state.header();
            assert_eq!(
                w3c::parse_tracestate(&written).map(|again| again.header()),
                Ok(written.clone()),
                "{header:?}"
            );
        }
    }
    for _ in 0..EACH {
        let header = inputs.input("userId=alice,serverNode=DF%2028,isProduction=false;ttl=60");
        let (entries, _) = w3c::parse_baggage(&header);
        if !entries.is_empty() {
            accepted[2] += 1;
        }
        let written = w3c::format_baggage(&entries);
        assert_eq!(w3c::parse_baggage(&written).0, entries, "{header:?}");
    }
    let lineage = "name=import;id=01923e4f-5a6b-7c8d-9eaf-b0c1d2e3f405;depth=2;path=a/import;correlation=c;root=00f067aa0ba902b7;span=b7ad6b7169203331";
    for _ in 0..EACH {
        let header = inputs.input(lineage);
        if let Some(parsed) = WorkflowLineage::from_header(&header) {
            accepted[3] += 1;
            assert_eq!(
                WorkflowLineage::from_header(&parsed.to_header()),
                Some(parsed)
            );
        }
    }
    let json = r#"{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","baggage":"a=1","workflow":{"name":"n","id":"i","depth":1,"hierarchy_path":"p","correlation_id":"c","root_span_id":"r","span_id":"s"}}"#;
    for _ in 0..EACH {
        let text = inputs.input(json);
        if let Ok(carrier) = serde_json::from_str::<TraceCarrier>(&text) {
            accepted[4] += 1;
            // Whatever a message holds, reading it as a parent never panics.
            let _ = propagation::extract(&carrier);
            assert_eq!(
                serde_json::from_str::<TraceCarrier>(&serde_json::to_string(&carrier).unwrap())
                    .unwrap(),
                carrier
            );
        }
    }
    // The edits keep a share of inputs valid, so the round trips were exercised.
    for (parser, count) in ["traceparent", "tracestate", "baggage", "lineage", "carrier"]
        .iter()
        .zip(accepted)
    {
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
