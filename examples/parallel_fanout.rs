//! Fan-out and aggregate: N task workflows run in parallel on a multi-threaded
//! runtime (spawned with `workflow_otel::spawn`, which carries the context),
//! then an aggregation workflow combines their results. Every task is a child
//! of the coordinating workflow, whichever thread ran it.
//!
//! Run with `cargo run --example parallel_fanout`.

use std::time::Duration;

use workflow_otel::{child_workflow, step, workflow};

const SHARDS: u64 = 4;

#[workflow]
async fn word_count(text: &'static str) -> u64 {
    let tasks: Vec<_> = (0..SHARDS)
        .map(|shard| workflow_otel::spawn(count_shard(text, shard)))
        .collect();
    let mut counts = Vec::new();
    for task in tasks {
        counts.push(task.await.expect("shard task panicked"));
    }
    aggregate(counts).await
}

#[child_workflow(args(shard))]
async fn count_shard(text: &'static str, shard: u64) -> u64 {
    let words = split(text, shard);
    tokio::time::sleep(Duration::from_millis(2 * (SHARDS - shard))).await;
    words
}

#[step(args(shard), ret)]
fn split(text: &str, shard: u64) -> u64 {
    text.split_whitespace()
        .enumerate()
        .filter(|(index, _)| *index as u64 % SHARDS == shard)
        .count() as u64
}

#[child_workflow(args(counts))]
async fn aggregate(counts: Vec<u64>) -> u64 {
    counts.iter().sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let telemetry = workflow_otel::setup()
        .default_service_name("parallel_fanout")
        .install();
    let total = word_count("the quick brown fox jumps over the lazy dog again and again").await;
    telemetry.flush();
    println!("=> {total} words");
}
