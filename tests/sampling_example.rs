//! Runs the `sampling` example and checks its file against its metrics:
//! every one of the 50 failed orders is in the file, whole, kept for
//! `error`; the 4 slow ones for `slow`; the rest by the 1% ratio only, each
//! complete; and the metrics counted all 1,000 orders.
//!
//! Not part of `cargo test`: it runs the example binary, which
//! `scripts/test` builds first (`cargo build --examples`).

#[path = "support/examples.rs"]
mod examples;

use std::collections::BTreeMap;
use std::io::BufReader;
use std::process::Command;

use examples::example_binary;
use opentelemetry::Value;
use workflow_otel::{SpanTree, read_json_lines};

#[test]
fn every_failure_and_every_slow_order_is_kept_whole() {
    let file = std::env::temp_dir().join(format!("wo-sampling-{}.jsonl", std::process::id()));
    let output = Command::new(example_binary("sampling"))
        .env("WORKFLOW_OTEL_FILE", &file)
        .output()
        .expect("the example runs");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in [
        "1000 orders, 50 failed;",
        "  50 traces kept for `error`",
        "  4 traces kept for `slow`",
        "workflow_calls_total{workflow_name=\"place_order\",outcome=\"ok\"} 950",
        "workflow_failures_total{workflow_name=\"place_order\",error_type=\"payment.declined\"} 50",
        "workflow_tail_sampling_traces_total{otel_scope_name=\"workflow-otel\",otel_scope_version=\"0.1.0\",decision=\"kept\",reason=\"error\",when=\"root_ended\"} 50",
        "workflow_tail_sampling_traces_total{otel_scope_name=\"workflow-otel\",otel_scope_version=\"0.1.0\",decision=\"kept\",reason=\"slow\",when=\"root_ended\"} 4",
    ] {
        assert!(stdout.contains(line), "no `{line}` in {stdout}");
    }
    let spans = read_json_lines(BufReader::new(std::fs::File::open(&file).unwrap())).unwrap();
    let _ = std::fs::remove_file(&file);
    let tree = SpanTree::from_spans(spans);
    // Each kept order by its id: its reason, and its steps by name.
    let mut kept: BTreeMap<i64, (String, Vec<String>)> = BTreeMap::new();
    for root in tree.roots() {
        assert_eq!(root.span.name, "place_order");
        let Some(Value::I64(id)) = root.attribute("order.id") else {
            panic!("a root without its order id");
        };
        let reason = root
            .attribute("sampling.reason")
            .expect("a reason")
            .as_str()
            .into_owned();
        let steps = root
            .children
            .iter()
            .map(|step| step.span.name.to_string())
            .collect();
        assert!(
            kept.insert(*id, (reason, steps)).is_none(),
            "order {id} kept twice"
        );
    }
    let failed: Vec<i64> = (1..=1000).filter(|id| id % 20 == 7).collect();
    let slow: Vec<i64> = (1..=1000).filter(|id| id % 250 == 100).collect();
    for id in &failed {
        assert_eq!(
            kept.get(id),
            Some(&(
                "error".to_owned(),
                vec!["validate".to_owned(), "charge".to_owned()]
            )),
            "failed order {id}"
        );
    }
    let whole = vec![
        "validate".to_owned(),
        "charge".to_owned(),
        "ship".to_owned(),
    ];
    for id in &slow {
        assert_eq!(
            kept.get(id),
            Some(&("slow".to_owned(), whole.clone())),
            "slow order {id}"
        );
    }
    let by_ratio: Vec<_> = kept
        .iter()
        .filter(|(id, _)| !failed.contains(id) && !slow.contains(id))
        .collect();
    for (id, entry) in &by_ratio {
        assert_eq!(*entry, &("ratio".to_owned(), whole.clone()), "order {id}");
    }
    // 1% of 946: a handful, never the bulk.
    assert!(by_ratio.len() < 60, "{} kept by the ratio", by_ratio.len());
}
