//! The ends of a program that no destructor sees, each run as a real second
//! process (this test binary started again in a child role): a guard left
//! behind by `std::process::exit`, a guard kept in a `static`, and a guard
//! dropped at once by mistake. Plus `install()`'s leniency with a bad
//! variable: that setting keeps its default, the others still count.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use workflow_otel::{TelemetryGuard, setup, step, workflow};

/// Set in the child: which role to play, and the file to write.
const ROLE: &str = "WORKFLOW_OTEL_TEST_ROLE";
const FILE: &str = "WORKFLOW_OTEL_TEST_FILE";

#[workflow]
fn nightly() {
    rows();
}

#[step]
fn rows() {}

/// Runs `test` again in a child process with `role`; returns its output and
/// the span names it exported to its file.
fn child(test: &str, role: &str, extra: &[(&str, &str)]) -> (Output, Vec<String>) {
    let (output, names) = child_that_may_fail(test, role, extra);
    assert!(output.status.success(), "child failed: {output:?}");
    (output, names)
}

/// As [`child`], for a child that ends by panicking.
fn child_that_may_fail(test: &str, role: &str, extra: &[(&str, &str)]) -> (Output, Vec<String>) {
    let file = scratch(role);
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(FILE, &file)
        .envs(extra.iter().copied())
        .output()
        .unwrap();
    let names = match std::fs::File::open(&file) {
        Ok(opened) => workflow_otel::read_json_lines(std::io::BufReader::new(opened))
            .unwrap()
            .into_iter()
            .map(|span| span.name.into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    let _ = std::fs::remove_file(&file);
    (output, names)
}

fn scratch(role: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "workflow-otel-exit-{role}-{}.jsonl",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

fn role() -> Option<(String, PathBuf)> {
    Some((std::env::var(ROLE).ok()?, std::env::var(FILE).ok()?.into()))
}

fn file_only(path: &Path) -> workflow_otel::Setup {
    setup().environment_from(|_| None).file(path)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn std_process_exit_still_exports_what_was_recorded() {
    if let Some((_, path)) = role() {
        let _telemetry = file_only(&path).install();
        nightly();
        // No destructor runs: the exit flush must.
        std::process::exit(0);
    }
    let (_, names) = child(
        "std_process_exit_still_exports_what_was_recorded",
        "exit",
        &[],
    );
    assert_eq!(names, ["rows", "nightly"]);
}

static GUARD: OnceLock<TelemetryGuard> = OnceLock::new();

#[test]
fn a_guard_kept_in_a_static_is_flushed_at_exit() {
    if let Some((_, path)) = role() {
        let _ = GUARD.set(file_only(&path).install());
        nightly();
        // The test harness returns from main; statics are never dropped.
        return;
    }
    let (_, names) = child("a_guard_kept_in_a_static_is_flushed_at_exit", "static", &[]);
    assert_eq!(names, ["rows", "nightly"]);
}

#[test]
fn a_guard_dropped_at_once_is_reported_once_on_stderr() {
    if let Some((_, path)) = role() {
        #[allow(let_underscore_drop)]
        let _ = file_only(&path).install();
        nightly();
        nightly();
        return;
    }
    let (output, names) = child(
        "a_guard_dropped_at_once_is_reported_once_on_stderr",
        "dropped",
        &[],
    );
    assert_eq!(names, Vec::<String>::new(), "nothing can be recorded");
    let text = stderr(&output);
    let warnings = text
        .matches("after the telemetry guard was dropped")
        .count();
    assert_eq!(warnings, 1, "{text}");
    assert!(
        text.contains("let _telemetry = workflow_otel::setup().install();"),
        "{text}"
    );
}

#[test]
fn a_bad_variable_keeps_its_default_and_the_rest_of_the_environment_applies() {
    if let Some((_, path)) = role() {
        let environment: HashMap<String, String> = std::env::vars().collect();
        let telemetry = setup()
            .environment_from(move |name| environment.get(name).cloned())
            .install();
        nightly();
        drop(telemetry);
        let _ = path;
        return;
    }
    let file = scratch("lenient-target");
    let file_text = file.to_str().unwrap();
    let (output, names) = child(
        "a_bad_variable_keeps_its_default_and_the_rest_of_the_environment_applies",
        "lenient",
        &[
            // Upper case, as the specification allows for enumerations.
            ("OTEL_TRACES_EXPORTER", "JSONL"),
            ("WORKFLOW_OTEL_FILE", file_text),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "0"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key sk-live-secret"),
        ],
    );
    assert!(names.is_empty(), "the child's own file is not used here");
    let text = stderr(&output);
    for variable in [
        "OTEL_TRACES_SAMPLER=\"sometimes\"",
        "OTEL_BSP_EXPORT_TIMEOUT=\"0\"",
        "OTEL_EXPORTER_OTLP_HEADERS=",
    ] {
        assert!(text.contains(variable), "{variable} is named: {text}");
    }
    assert!(
        !text.contains("sk-live-secret"),
        "a secret reached stderr: {text}"
    );
    assert!(
        !text.contains("console instead"),
        "the other settings applied: {text}"
    );
    let spans = workflow_otel::read_json_lines(std::io::BufReader::new(
        std::fs::File::open(&file).unwrap(),
    ))
    .unwrap();
    let names: Vec<&str> = spans.iter().map(|span| span.name.as_ref()).collect();
    assert_eq!(names, ["rows", "nightly"]);
    let _ = std::fs::remove_file(&file);
}

/// More spans than the queue holds (2 048 by default): a workflow of 11 000
/// steps, recorded faster than a file takes them.
const BULK_STEPS: usize = 11_000;

#[workflow]
fn bulk() {
    for _ in 0..BULK_STEPS {
        rows();
    }
}

/// The last drop report's totals on stderr: (dropped, exported).
fn reported_totals(stderr: &str) -> Option<(usize, usize)> {
    let line = stderr
        .lines()
        .rev()
        .find(|line| line.contains(" dropped and ") && line.contains(" exported in all"))?;
    let (before, after) = line.split_once(" dropped and ")?;
    let dropped = before.rsplit(' ').next()?.parse().ok()?;
    let exported = after.split(' ').next()?.parse().ok()?;
    Some((dropped, exported))
}

/// Every exit path: the file holds what was exported, stderr says how many
/// were lost, and the two add up to every span recorded.
fn every_span_accounted_for(output: &Output, names: &[String], path: &str) {
    let text = stderr(output);
    // No report means nothing was lost: then the file holds every span.
    let (dropped, exported) = reported_totals(&text).unwrap_or((0, names.len()));
    assert_eq!(exported, names.len(), "{path}: {text}");
    assert_eq!(dropped + exported, BULK_STEPS + 1, "{path}: {text}");
}

#[test]
fn spans_lost_at_exit_are_reported_on_every_exit_path() {
    if let Some((role, path)) = role() {
        match role.as_str() {
            "bulk-exit" => {
                let _telemetry = file_only(&path).install();
                bulk();
                std::process::exit(0);
            }
            "bulk-static" => {
                let _ = GUARD.set(file_only(&path).install());
                bulk();
            }
            "bulk-forget" => {
                std::mem::forget(file_only(&path).install());
                bulk();
            }
            "bulk-panic" => {
                let _telemetry = file_only(&path).install();
                bulk();
                panic!("main panics with the guard alive");
            }
            _ => {}
        }
        return;
    }
    let test = "spans_lost_at_exit_are_reported_on_every_exit_path";
    for role in ["bulk-exit", "bulk-static", "bulk-forget"] {
        let (output, names) = child(test, role, &[]);
        every_span_accounted_for(&output, &names, role);
    }
    let (output, names) = child_that_may_fail(test, "bulk-panic", &[]);
    assert!(!output.status.success());
    every_span_accounted_for(&output, &names, "bulk-panic");
}
