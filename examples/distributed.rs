//! Two processes, one trace: a coordinator starts a worker process and sends it
//! jobs as JSON lines on its stdin; each job carries the trace context in a
//! `#[trace_context]` field, and the worker runs a child workflow per job that
//! continues the coordinator's trace and workflow lineage. Each process exports
//! to its own JSON-lines file (the worker is configured by environment
//! variables alone); the coordinator then merges both files and prints the tree.
//!
//! Run with `cargo run --example distributed`. Files go to
//! `$DISTRIBUTED_TRACES_DIR` (default: a folder in the system temp dir). With
//! `OTEL_TRACES_EXPORTER` set, both processes follow the environment instead
//! (`OTEL_TRACES_EXPORTER=otlp` sends one trace from two services to a
//! collector).

use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use workflow_otel::propagation::TraceCarrier;
use workflow_otel::{Carried, SpanTree, child_workflow, read_json_lines, step, workflow};

#[derive(Carried, Serialize, Deserialize, Default)]
struct Job {
    id: u32,
    values: Vec<u64>,
    #[trace_context]
    context: TraceCarrier,
}

#[workflow]
fn dispatch_jobs(worker: &mut impl Write) -> io::Result<()> {
    for id in 1..=3 {
        send(worker, id)?;
    }
    Ok(())
}

#[step(args(id))]
fn send(worker: &mut impl Write, id: u32) -> io::Result<()> {
    let mut job = Job {
        id,
        values: (1..=u64::from(id) * 10).collect(),
        ..Job::default()
    };
    job.inject_current_context();
    writeln!(worker, "{}", serde_json::to_string(&job)?)?;
    worker.flush()
}

#[child_workflow(parent = job, fields(job.id = job.id))]
fn process(job: &Job) -> u64 {
    sum(&job.values)
}

#[step]
fn sum(values: &[u64]) -> u64 {
    values.iter().sum()
}

/// The worker: configured by the environment its coordinator gives it.
fn worker() -> io::Result<()> {
    let _telemetry = workflow_otel::setup().install();
    for line in io::stdin().lock().lines() {
        let job: Job = serde_json::from_str(&line?)?;
        let total = process(&job);
        eprintln!("  worker: job {} adds up to {total}", job.id);
    }
    Ok(())
}

fn traces_dir() -> PathBuf {
    std::env::var_os("DISTRIBUTED_TRACES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("workflow-otel-distributed-{}", std::process::id()))
        })
}

fn main() -> io::Result<()> {
    if std::env::args().any(|arg| arg == "--worker") {
        return worker();
    }
    let dir = traces_dir();
    std::fs::create_dir_all(&dir)?;
    let (coordinator_file, worker_file) = (dir.join("coordinator.jsonl"), dir.join("worker.jsonl"));
    for file in [&coordinator_file, &worker_file] {
        let _ = std::fs::remove_file(file);
    }

    // With OTEL_TRACES_EXPORTER set, both processes export where it says
    // (a collector, say); otherwise each writes a file, merged below.
    let from_environment = std::env::var_os("OTEL_TRACES_EXPORTER").is_some_and(|v| !v.is_empty());
    let mut setup = workflow_otel::setup().default_service_name("coordinator");
    if !from_environment {
        setup = setup.file(&coordinator_file);
    }
    let telemetry = setup.install();
    let mut worker = Command::new(std::env::current_exe()?);
    worker.arg("--worker").env("OTEL_SERVICE_NAME", "worker");
    if !from_environment {
        worker
            .env("OTEL_TRACES_EXPORTER", "jsonl")
            .env("WORKFLOW_OTEL_FILE", &worker_file);
    }
    let mut child = worker.stdin(Stdio::piped()).spawn()?;
    let mut to_worker = child.stdin.take().expect("piped stdin");
    dispatch_jobs(&mut to_worker)?;
    drop(to_worker); // end of input: the worker finishes and exits
    let status = child.wait()?;
    drop(telemetry); // writes what is left
    if !status.success() {
        return Err(io::Error::other(format!("the worker failed: {status}")));
    }
    if from_environment {
        println!("=> both processes exported where OTEL_TRACES_EXPORTER says");
        return Ok(());
    }

    let mut spans = Vec::new();
    for file in [&coordinator_file, &worker_file] {
        spans.extend(read_json_lines(BufReader::new(std::fs::File::open(file)?))?);
    }
    let tree = SpanTree::from_spans(spans);
    for root in tree.roots() {
        println!("trace {}", root.span.span_context.trace_id());
    }
    print!("{}", tree.render_console());
    println!(
        "=> {} spans from two processes, in {}",
        tree.nodes().len(),
        dir.display()
    );
    Ok(())
}
