//! Services and kinds: two services' files of one trace (a remote child
//! workflow of kind SERVER, nested under its parent in the other file), the
//! tree naming the service where it changes
//! and the kind where it is not internal, the arguments the console shows,
//! `--summary --by-service`, and the summary's blank usage cells.

use std::collections::HashMap;
use std::path::Path;

mod support;

use opentelemetry_sdk::Resource;
use support::{scratch, view};
use workflow_otel::{
    Instrumentation, JsonLinesExporter, Pipeline, PipelineConfig, propagation, step, workflow,
};

#[step(args(warehouse))]
fn reserve(warehouse: &str) -> usize {
    warehouse.len()
}

#[step(args(cents))]
fn charge(cents: u64) -> Result<(), String> {
    if cents > 1_000 {
        Err("declined".to_owned())
    } else {
        Ok(())
    }
}

#[workflow]
fn place_order(cents: u64) -> HashMap<String, String> {
    reserve("north");
    let mut headers = HashMap::new();
    propagation::inject_current(&mut headers);
    let _ = cents;
    headers
}

#[workflow(parent = headers, kind = server)]
fn invoice(headers: &HashMap<String, String>, cents: u64) -> Result<(), String> {
    charge(cents)
}

fn pipeline(path: &Path, service: &str) -> Pipeline {
    let resource = Resource::builder_empty()
        .with_service_name(service.to_owned())
        .build();
    Pipeline::with_config(
        JsonLinesExporter::create(path).unwrap(),
        PipelineConfig::default(),
        Some(resource),
    )
}

/// Two orders across two services, the second declined: the files of
/// `orders` and `billing`.
fn two_services(dir: &Path) -> [String; 2] {
    let (orders_file, billing_file) = (dir.join("orders.jsonl"), dir.join("billing.jsonl"));
    let (orders, billing) = (
        pipeline(&orders_file, "orders"),
        pipeline(&billing_file, "billing"),
    );
    for cents in [990, 1_250] {
        let headers = Instrumentation::new(&orders).run(|| place_order(cents));
        let _ = Instrumentation::new(&billing).run(|| invoice(&headers, cents));
    }
    orders.shutdown().unwrap();
    billing.shutdown().unwrap();
    [orders_file, billing_file].map(|file| file.to_str().unwrap().to_owned())
}

fn masked(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = match line.find('[') {
                Some(open) => {
                    let close = line[open..].find(']').map_or(line.len(), |at| open + at);
                    format!("{}[T{}", &line[..open], &line[close..])
                }
                None => line.to_owned(),
            };
            match line.strip_prefix("trace ") {
                Some(after) => {
                    let fields: Vec<&str> = after.split(" · ").collect();
                    format!(
                        "trace <id> · {} · T · {}",
                        fields[1],
                        fields[3..].join(" · ")
                    )
                }
                None => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_tree_names_services_kinds_and_arguments() {
    let dir = scratch("services");
    let [orders, billing] = two_services(&dir);
    let (text, _) = view(&[&orders, &billing]);
    assert_eq!(
        masked(&text),
        "\
trace <id> · 4 spans · T · * critical path · services orders, billing
* workflow place_order [T] ✓ · service orders
  ├── step reserve(warehouse=\"north\") [T] ✓
* └── workflow invoice [T] ✓ · server · service billing
*     └── step charge(cents=990) [T] ✓

trace <id> · 4 spans · T · * critical path · 2 failed · services orders, billing
* workflow place_order [T] ✓ · service orders
  ├── step reserve(warehouse=\"north\") [T] ✓
* └── workflow invoice [T] ✗ declined · server · service billing
*     └── step charge(cents=1250) [T] ✗ declined
"
    );
}

#[test]
fn the_summary_groups_by_service_and_leaves_usage_blank_where_there_is_none() {
    let dir = scratch("services-summary");
    let [orders, billing] = two_services(&dir);
    let (text, _) = view(&["--summary", "--by-service", &orders, &billing]);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|line| line.split_whitespace().take(5).collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["service", "kind", "name", "count", "errors"],
            vec!["billing", "workflow", "invoice", "2", "1"],
            vec!["billing", "step", "charge", "2", "1"],
            vec!["orders", "workflow", "place_order", "2", "0"],
            vec!["orders", "step", "reserve", "2", "0"],
        ]
    );
    // No span carries tokens or cost: no such columns.
    assert!(!text.contains("tokens"), "{text}");
}

/// The edges of `--map`: graph, from, to, calls, errors (p95 varies).
fn edges(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip(1)
        .map(|line| line.split_whitespace().take(5).map(str::to_owned).collect())
        .collect()
}

#[test]
fn the_map_has_the_call_between_the_services_and_between_their_workflows() {
    let dir = scratch("services-map");
    let [orders, billing] = two_services(&dir);
    // In either order of the files: the parent is found either way.
    for files in [[&orders, &billing], [&billing, &orders]] {
        let (text, _) = view(&["--map", files[0], files[1]]);
        assert_eq!(
            edges(&text),
            [
                ["service", "orders", "billing", "2", "1"],
                [
                    "workflow",
                    "orders/place_order",
                    "billing/invoice",
                    "2",
                    "1"
                ],
            ],
            "{text}"
        );
    }
}

#[test]
fn a_caller_missing_from_the_files_is_drawn_from_outside_them() {
    let dir = scratch("services-map-outside");
    let [_, billing] = two_services(&dir);
    let (text, _) = view(&["--map", &billing]);
    assert_eq!(
        edges(&text),
        [
            ["service", "(not", "in", "these", "files)"],
            ["workflow", "(not", "in", "these", "files)/place_order"],
        ],
        "{text}"
    );
    assert!(text.lines().nth(1).unwrap().contains("billing  "), "{text}");
}
