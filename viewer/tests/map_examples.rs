//! The service map of the `distributed` and `http_service` examples' own
//! files: exact edges and counts. Not part of `cargo test`: `scripts/test`
//! runs it once the examples are built.

use std::path::PathBuf;
use std::process::Command;

mod support;

use support::{scratch, view};

fn example(name: &str) -> Command {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let mut command = Command::new(target.join("debug/examples").join(name));
    command.env_remove("OTEL_TRACES_EXPORTER");
    command
}

/// graph, from, to, calls, errors of each edge (p95 varies).
fn edges(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip(1)
        .map(|line| line.split_whitespace().take(5).map(str::to_owned).collect())
        .collect()
}

#[test]
fn the_distributed_example_is_a_coordinator_calling_a_worker() {
    let dir = scratch("map-distributed");
    let status = example("distributed")
        .env("DISTRIBUTED_TRACES_DIR", &dir)
        .output()
        .expect("the distributed example is built: run `cargo build --examples`")
        .status;
    assert!(status.success());
    let files = ["coordinator.jsonl", "worker.jsonl"].map(|name| dir.join(name));
    let (text, _) = view(&[
        "--map",
        files[0].to_str().unwrap(),
        files[1].to_str().unwrap(),
    ]);
    // Three jobs, each a child workflow in the worker under the
    // coordinator's dispatch.
    assert_eq!(
        edges(&text),
        [
            ["service", "coordinator", "worker", "3", "0"],
            [
                "workflow",
                "coordinator/dispatch_jobs",
                "worker/process",
                "3",
                "0"
            ],
        ],
        "{text}"
    );
}

#[test]
fn the_http_service_example_is_two_hops_and_their_workflows() {
    let dir = scratch("map-http");
    let file = dir.join("http.jsonl");
    let status = example("http_service")
        .env("OTEL_TRACES_EXPORTER", "jsonl")
        .env("WORKFLOW_OTEL_FILE", &file)
        .output()
        .expect("the http_service example is built: run `cargo build --examples`")
        .status;
    assert!(status.success());
    let (text, _) = view(&["--map", file.to_str().unwrap()]);
    // One process, one service: five requests cross a hop (orders three
    // times, billing twice; the declined card fails one of each), and the
    // workflows chain customer → place_order → issue_invoice for the two
    // orders (the request to no route runs no workflow).
    assert_eq!(
        edges(&text),
        [
            ["service", "http_service", "http_service", "5", "2"],
            [
                "workflow",
                "http_service/customer",
                "http_service/place_order",
                "2",
                "1"
            ],
            [
                "workflow",
                "http_service/place_order",
                "http_service/issue_invoice",
                "2",
                "1"
            ],
        ],
        "{text}"
    );
}
