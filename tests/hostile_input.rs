//! What a peer sends is bounded: lineage fields, the hierarchy path across
//! any number of hops, the depth; and the W3C headers follow Trace Context
//! Level 2 and Baggage where the specifications say MUST: the `random` flag,
//! the Level 2 key grammar, repeated keys, U+FFFD, member order and limits.

use std::collections::HashMap;

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::trace::TraceContextExt as _;
use workflow_otel::attributes as attr;
use workflow_otel::propagation::{
    self, MAX_LINEAGE_HEADER_BYTES, MAX_PATH_SEGMENTS, MAX_WORKFLOW_DEPTH, WORKFLOW_LINEAGE,
    WorkflowLineage,
};
use workflow_otel::testing::Capture;
use workflow_otel::w3c::{MAX_BAGGAGE_MEMBERS, TraceParent};
use workflow_otel::{SpanNode, child_workflow, current_workflow, workflow};

type Headers = HashMap<String, String>;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn lineage(name: &str, depth: u32, path: &str) -> WorkflowLineage {
    WorkflowLineage {
        name: name.to_owned(),
        id: "01923e4f-5a6b-7c8d-9eaf-b0c1d2e3f405".to_owned(),
        depth,
        hierarchy_path: path.to_owned(),
        correlation_id: "01923e4f-5a6b-7c8d-9eaf-b0c1d2e3f400".to_owned(),
        root_span_id: "00f067aa0ba902b7".to_owned(),
        span_id: "b7ad6b7169203331".to_owned(),
    }
}

fn headers(traceparent: &str, lineage_header: Option<String>) -> Headers {
    let mut headers = Headers::new();
    headers.insert("traceparent".to_owned(), traceparent.to_owned());
    if let Some(header) = lineage_header {
        headers.insert(WORKFLOW_LINEAGE.to_owned(), header);
    }
    headers
}

/// What a worker reports of its lineage, and the headers it sends on.
#[derive(Debug)]
struct Seen {
    depth: u32,
    path: String,
    parent: Option<String>,
    outgoing: Headers,
}

#[workflow(parent = incoming)]
fn worker(incoming: &Headers) -> Seen {
    nested()
}

#[child_workflow]
fn nested() -> Seen {
    let workflow = current_workflow().unwrap();
    let mut outgoing = Headers::new();
    propagation::inject_current(&mut outgoing);
    Seen {
        depth: workflow.depth(),
        path: workflow.hierarchy_path().to_owned(),
        parent: workflow.parent().map(|parent| parent.name().to_owned()),
        outgoing,
    }
}

fn text(node: &SpanNode, key: &str) -> String {
    node.attribute(key).unwrap().as_str().into_owned()
}

#[test]
fn a_lineage_header_of_a_mebibyte_is_ignored_and_never_forwarded() {
    let huge = lineage("upstream", 3, &format!("a/{}", "b".repeat(1 << 20)));
    let capture = Capture::new();
    let seen = capture.run(|| worker(&headers(TRACEPARENT, Some(huge.to_header()))));
    // The trace continues; the lineage starts afresh at this process.
    assert_eq!((seen.depth, seen.path.as_str()), (1, "worker/nested"));
    assert_eq!(seen.parent.as_deref(), Some("worker"));
    let forwarded = &seen.outgoing[WORKFLOW_LINEAGE];
    assert!(
        forwarded.len() < 1024,
        "{} bytes forwarded",
        forwarded.len()
    );
    let tree = capture.tree();
    let span = tree.find("worker").unwrap();
    assert_eq!(
        span.span.span_context.trace_id().to_string(),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert_eq!(text(span, attr::HIERARCHY_PATH), "worker");
}

#[test]
fn each_lineage_field_is_cut_or_dropped_by_its_documented_rule() {
    let read = |lineage: &WorkflowLineage| WorkflowLineage::from_header(&lineage.to_header());
    // A name longer than 128 is cut to 128, in the name and in the path.
    let long = "n".repeat(300);
    let parsed = read(&lineage(&long, 1, &format!("root/{long}"))).unwrap();
    assert_eq!(parsed.name, "n".repeat(128));
    assert_eq!(parsed.hierarchy_path, format!("root/{}", "n".repeat(128)));
    // Characters a workflow name cannot have, an id that is no UUID, a
    // correlation id past 128 or with a space: the lineage is dropped.
    assert_eq!(read(&lineage("has space", 1, "a")), None);
    assert_eq!(read(&lineage("a/b", 1, "a")), None);
    assert_eq!(read(&lineage("ok", 1, "a//b")), None);
    assert_eq!(
        read(&WorkflowLineage {
            id: "42".into(),
            ..lineage("ok", 1, "a")
        }),
        None
    );
    for correlation in ["c".repeat(129), "a b".to_owned(), String::new()] {
        let bad = WorkflowLineage {
            correlation_id: correlation,
            ..lineage("ok", 1, "a")
        };
        assert_eq!(read(&bad), None);
    }
    assert!(
        read(&WorkflowLineage {
            correlation_id: "c".repeat(128),
            ..lineage("ok", 1, "a")
        })
        .is_some()
    );
    // Span ids: 16 lowercase hex digits, not all zero.
    for span_id in ["B7AD6B7169203331", "0000000000000000", "b7ad"] {
        let bad = WorkflowLineage {
            span_id: span_id.to_owned(),
            ..lineage("ok", 1, "a")
        };
        assert_eq!(read(&bad), None, "{span_id}");
    }
    // A header over the limit is not even read.
    let header = lineage("ok", 1, "a").to_header();
    let padded = format!("{header};{}", "x".repeat(MAX_LINEAGE_HEADER_BYTES));
    assert_eq!(WorkflowLineage::from_header(&padded), None);
}

#[test]
fn a_long_path_keeps_its_first_and_last_names_around_an_elision() {
    let names: Vec<String> = (0..30).map(|i| format!("s{i}")).collect();
    let received = lineage("s29", 29, &names.join("/"));
    let capture = Capture::new();
    let seen = capture.run(|| worker(&headers(TRACEPARENT, Some(received.to_header()))));
    // s0..s3, "…", then the last 11 names: s20..s29, worker; then nested.
    let expected_worker = "s0/s1/s2/s3/…/s20/s21/s22/s23/s24/s25/s26/s27/s28/s29/worker";
    assert_eq!(
        text(capture.tree().find("worker").unwrap(), attr::HIERARCHY_PATH),
        expected_worker
    );
    assert_eq!(
        seen.path,
        "s0/s1/s2/s3/…/s21/s22/s23/s24/s25/s26/s27/s28/s29/worker/nested"
    );
    assert_eq!(seen.path.split('/').count(), MAX_PATH_SEGMENTS);
    assert_eq!(seen.depth, 31);
}

#[child_workflow(parent = job)]
fn requeue(job: &Headers) -> Headers {
    let mut next = Headers::new();
    propagation::inject_current(&mut next);
    next
}

#[test]
fn a_job_that_requeues_itself_two_thousand_times_carries_a_bounded_path() {
    let capture = Capture::new();
    let mut job = headers(TRACEPARENT, Some(lineage("start", 0, "start").to_header()));
    for _ in 0..2_000 {
        job = capture.run(|| requeue(&job));
    }
    let last = WorkflowLineage::from_header(&job[WORKFLOW_LINEAGE]).unwrap();
    assert_eq!(last.depth, 2_000);
    assert_eq!(last.hierarchy_path.split('/').count(), MAX_PATH_SEGMENTS);
    assert!(
        last.hierarchy_path
            .starts_with("start/requeue/requeue/requeue/…/requeue")
    );
    assert!(
        job[WORKFLOW_LINEAGE].len() < 600,
        "{}",
        job[WORKFLOW_LINEAGE]
    );
}

#[test]
fn a_depth_near_the_integer_limit_is_rejected_and_the_maximum_saturates() {
    let capture = Capture::new();
    // 4294967294 is past the maximum: ignored, the lineage starts here.
    let overflow = lineage("upstream", u32::MAX - 1, "upstream");
    let seen = capture.run(|| worker(&headers(TRACEPARENT, Some(overflow.to_header()))));
    assert_eq!((seen.depth, seen.path.as_str()), (1, "worker/nested"));
    // At the maximum, children keep the maximum (no overflow, no wrap).
    let deepest = lineage("upstream", MAX_WORKFLOW_DEPTH, "upstream");
    let seen = capture.run(|| worker(&headers(TRACEPARENT, Some(deepest.to_header()))));
    assert_eq!(seen.depth, MAX_WORKFLOW_DEPTH);
    assert_eq!(seen.parent.as_deref(), Some("worker"));
    let forwarded = WorkflowLineage::from_header(&seen.outgoing[WORKFLOW_LINEAGE]).unwrap();
    assert_eq!(forwarded.depth, MAX_WORKFLOW_DEPTH);
}

fn flags_of(header: &str) -> &str {
    &header[53..55]
}

#[test]
fn the_random_flag_is_kept_from_the_caller_and_set_on_new_traces() {
    let capture = Capture::new();
    for (incoming, outgoing) in [
        ("01", "01"),
        ("03", "03"),
        ("02", "02"),
        ("ff", "03"),
        ("00", "00"),
    ] {
        let traceparent = format!("{}{incoming}", &TRACEPARENT[..53]);
        let seen = capture.run(|| worker(&headers(&traceparent, None)));
        assert_eq!(
            flags_of(&seen.outgoing["traceparent"]),
            outgoing,
            "incoming {incoming}"
        );
    }
    // The spans carry the same flags as what they send on.
    capture.clear();
    let traceparent = format!("{}03", &TRACEPARENT[..53]);
    capture.run(|| worker(&headers(&traceparent, None)));
    for span in capture.spans() {
        assert_eq!(
            span.span_context.trace_flags().to_u8(),
            0x03,
            "{}",
            span.name
        );
    }
    // A trace we start: its ids are random, sampled and random are set.
    #[workflow]
    fn fresh() -> String {
        let mut outgoing = Headers::new();
        propagation::inject_current(&mut outgoing);
        outgoing.remove("traceparent").unwrap()
    }
    let header = capture.run(fresh);
    assert_eq!(flags_of(&header), "03");
    assert!(TraceParent::parse(&header).is_ok());
}

/// Extracts `incoming` and injects the result at once: a pass-through hop.
fn hop(incoming: &Headers) -> Headers {
    let cx = propagation::extract(incoming);
    let mut outgoing = Headers::new();
    propagation::inject(&cx, &mut outgoing);
    outgoing
}

#[test]
fn tracestate_passes_on_whole_even_where_the_sdk_type_cannot_hold_it() {
    let tenant = format!("{}@{}", "t".repeat(241), "s".repeat(14));
    let mut incoming = headers(TRACEPARENT, None);
    incoming.insert(
        "tracestate".to_owned(),
        format!("{tenant}=v, congo=1,,foo@@bar=2,rojo=3,congo=4"),
    );
    let outgoing = hop(&incoming);
    assert_eq!(
        outgoing["tracestate"],
        format!("{tenant}=v,congo=1,foo@@bar=2,rojo=3")
    );
    // Through our own span too: the workflow continues the same state.
    let capture = Capture::new();
    let seen = capture.run(|| worker(&incoming));
    assert_eq!(seen.outgoing["tracestate"], outgoing["tracestate"]);
}

#[test]
fn baggage_keeps_its_order_its_members_and_replaces_bad_utf8() {
    let members: Vec<String> = (0..MAX_BAGGAGE_MEMBERS)
        .map(|i| format!("k{:03}=v{i}", (i * 7919) % 1000))
        .collect();
    let mut incoming = headers(TRACEPARENT, None);
    incoming.insert("baggage".to_owned(), members.join(","));
    // Every run writes the members as they came: all 180, in their order.
    for _ in 0..5 {
        assert_eq!(hop(&incoming)["baggage"], members.join(","));
    }
    // An escape that is not UTF-8 decodes to U+FFFD, and goes on encoded.
    incoming.insert("baggage".to_owned(), "city=Z%FCrich,ok=1".to_owned());
    let cx = propagation::extract(&incoming);
    assert_eq!(
        cx.baggage().get("city").map(|v| v.as_str().to_owned()),
        Some("Z\u{FFFD}rich".to_owned())
    );
    assert_eq!(hop(&incoming)["baggage"], "city=Z%EF%BF%BDrich,ok=1");
    // Changed through the API, the API's view goes out: received keys first.
    let cx = propagation::extract(&incoming);
    let changed = cx.with_baggage([
        opentelemetry::KeyValue::new("ok", "2"),
        opentelemetry::KeyValue::new("city", "Bern"),
        opentelemetry::KeyValue::new("added", "x"),
    ]);
    let mut outgoing = Headers::new();
    propagation::inject(&changed, &mut outgoing);
    assert_eq!(outgoing["baggage"], "city=Bern,ok=2,added=x");
    assert!(changed.span().span_context().is_valid());
}
