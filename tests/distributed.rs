//! Runs the two-process `distributed` example and checks the merged trace:
//! one trace id, parent ids across the process boundary, and the workflow
//! lineage (depth, hierarchy path, parent workflow) continued in the worker.
//!
//! Not part of `cargo test`: it runs the example binary, which `scripts/test`
//! builds first (`cargo build --examples`).

#[path = "support/examples.rs"]
mod examples;

use std::io::BufReader;
use std::process::Command;

use examples::example_binary;
use opentelemetry::trace::SpanId;
use workflow_otel::{SpanTree, read_json_lines};

#[test]
fn the_distributed_example_makes_one_trace_across_two_processes() {
    let dir = std::env::temp_dir().join(format!(
        "workflow-otel-distributed-test-{}",
        std::process::id()
    ));
    let output = Command::new(example_binary("distributed"))
        .env("DISTRIBUTED_TRACES_DIR", &dir)
        .env_remove("OTEL_TRACES_EXPORTER")
        .output()
        .expect("the example runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let read = |name: &str| {
        read_json_lines(BufReader::new(std::fs::File::open(dir.join(name)).unwrap())).unwrap()
    };
    let coordinator = read("coordinator.jsonl");
    let worker = read("worker.jsonl");
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        (coordinator.len(), worker.len()),
        (4, 6),
        "1 workflow + 3 sends; 3 child workflows + 3 steps"
    );

    let sends: Vec<SpanId> = coordinator
        .iter()
        .filter(|span| span.name == "send")
        .map(|span| span.span_context.span_id())
        .collect();
    for span in worker.iter().filter(|span| span.name == "process") {
        assert!(
            span.parent_span_is_remote,
            "the parent is in the other process"
        );
        assert!(
            sends.contains(&span.parent_span_id),
            "each job's workflow is a child of the step that sent it"
        );
    }

    let mut spans = coordinator;
    spans.extend(worker);
    let tree = SpanTree::from_spans(spans);
    let lineage = |key: &str| {
        matches!(
            key,
            "observability.workflow_depth"
                | "relationship.hierarchy_path"
                | "relationship.parent_workflow_name"
                | "relationship.parent_workflow_id"
                | "observability.workflow_id"
                | "observability.trace_id"
                | "arg.id"
                | "job.id"
        )
    };
    let mut expected = String::from(
        "\
dispatch_jobs #1 [workflow] Unset
  | observability.trace_id: trace#1
  | observability.workflow_depth: 0
  | observability.workflow_id: wf#1
  | relationship.hierarchy_path: \"dispatch_jobs\"
",
    );
    for job in 1..=3 {
        let (send, process, sum) = (3 * job - 1, 3 * job, 3 * job + 1);
        expected.push_str(&format!(
            "  send #{send} [step] Unset
    | arg.id: {job}
    | observability.workflow_id: wf#1
    process #{process} [workflow] Unset
      | job.id: {job}
      | observability.trace_id: trace#1
      | observability.workflow_depth: 1
      | observability.workflow_id: wf#{wf}
      | relationship.hierarchy_path: \"dispatch_jobs/process\"
      | relationship.parent_workflow_id: wf#1
      | relationship.parent_workflow_name: \"dispatch_jobs\"
      | link #1 {{link.type: \"parent_workflow\"}}
      sum #{sum} [step] Unset
        | observability.workflow_id: wf#{wf}
",
            wf = job + 1
        ));
    }
    assert_eq!(tree.render_with(lineage), expected);
}
