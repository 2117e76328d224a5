//! `--compare` on runs written by workflow-otel's own file exporter: a run
//! in which one step is 3x slower flags exactly that step, and its workflow
//! only as a consequence; runs of the same code flag nothing, over several
//! seeds; the exit status gates CI.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod support;

use support::{VIEWER, scratch};
use workflow_otel::{Instrumentation, JsonLinesExporter, Pipeline, child_workflow, step, workflow};

#[step]
fn validate() {}

#[step]
fn reserve(micros: u64) {
    std::thread::sleep(Duration::from_micros(micros));
}

#[step]
fn pack(micros: u64) {
    std::thread::sleep(Duration::from_micros(micros));
}

#[step]
fn charge(micros: u64) {
    std::thread::sleep(Duration::from_micros(micros));
}

#[child_workflow]
fn bill(micros: u64) {
    charge(micros);
}

#[workflow]
fn order(reserve_micros: u64, pack_micros: u64, charge_micros: u64) {
    validate();
    reserve(reserve_micros);
    pack(pack_micros);
    bill(charge_micros);
}

/// A small generator of its own, so that a seed gives the same run.
struct Jitter(u64);

impl Jitter {
    /// A duration from 700 to 1,300 µs.
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        700 + self.0 % 601
    }
}

/// 30 orders into `path`; `reserve_scale` multiplies the reservations.
fn run(path: &Path, seed: u64, reserve_scale: u64) {
    let pipeline = Pipeline::new(JsonLinesExporter::create(path).unwrap());
    let mut jitter = Jitter(seed | 1);
    Instrumentation::new(&pipeline).run(|| {
        for _ in 0..30 {
            let reserve = jitter.next() * reserve_scale;
            order(reserve, jitter.next(), jitter.next());
        }
    });
    pipeline.shutdown().unwrap();
}

/// The viewer's output and exit status for `--compare`.
fn compare(baseline: &Path, candidate: &Path, gate: bool) -> (String, Option<i32>) {
    let mut command = Command::new(VIEWER);
    command.arg("--compare").arg(baseline).arg(candidate);
    if gate {
        command.arg("--fail-on-regression");
    }
    let output = command.output().unwrap();
    (
        String::from_utf8(output.stdout).unwrap(),
        output.status.code(),
    )
}

/// Each row's kind, name and verdict.
fn verdicts(table: &str) -> Vec<(String, String, String)> {
    table
        .lines()
        .skip(1)
        .filter(|line| !line.starts_with(char::is_numeric))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let verdict = line
                .split("  ")
                .filter(|field| !field.trim().is_empty())
                .last()
                .unwrap()
                .trim()
                .to_owned();
            (fields[0].to_owned(), fields[1].to_owned(), verdict)
        })
        .collect()
}

#[test]
fn a_step_three_times_slower_is_the_one_regression_and_its_workflow_a_consequence() {
    let dir = scratch("compare-slower");
    let (baseline, candidate) = (dir.join("baseline.jsonl"), dir.join("candidate.jsonl"));
    run(&baseline, 1, 1);
    run(&candidate, 2, 3);
    let (table, status) = compare(&baseline, &candidate, false);
    assert_eq!(status, Some(0), "{table}");
    let rows = verdicts(&table);
    assert_eq!(
        rows[0],
        (
            "step".to_owned(),
            "reserve".to_owned(),
            "REGRESSION".to_owned()
        ),
        "{table}"
    );
    assert_eq!(
        rows[1],
        (
            "workflow".to_owned(),
            "order".to_owned(),
            "slower as a consequence of step reserve".to_owned()
        ),
        "{table}"
    );
    for (kind, name, verdict) in &rows[2..] {
        assert!(
            verdict == "same" || verdict == "faster",
            "{kind} {name}: {verdict}\n{table}"
        );
    }
    assert_eq!(rows.len(), 6, "{table}");
    assert!(table.ends_with("1 regression (Mann-Whitney U, p < 0.001, median at least 20% and 50µs slower; or error rate 5 points higher)\n"), "{table}");
    // The 3x shows in the change of the median.
    let reserve = table
        .lines()
        .find(|line| line.starts_with("step      reserve"))
        .unwrap();
    let change: i64 = reserve
        .split_whitespace()
        .find(|field| field.starts_with('+'))
        .and_then(|field| {
            field
                .trim_start_matches('+')
                .trim_end_matches('%')
                .parse()
                .ok()
        })
        .unwrap();
    assert!((150..=250).contains(&change), "{reserve}");
    // Gating CI: exit status 3.
    let (_, status) = compare(&baseline, &candidate, true);
    assert_eq!(status, Some(3));
}

#[test]
fn runs_of_the_same_code_flag_nothing_whatever_the_seed() {
    let dir = scratch("compare-same");
    for seed in [11_u64, 23, 37, 41] {
        let (baseline, candidate) = (dir.join("baseline.jsonl"), dir.join("candidate.jsonl"));
        let _ = std::fs::remove_file(&baseline);
        let _ = std::fs::remove_file(&candidate);
        run(&baseline, seed, 1);
        run(&candidate, seed * 7919, 1);
        let (table, status) = compare(&baseline, &candidate, true);
        assert_eq!(status, Some(0), "seed {seed}:\n{table}");
        assert!(table.ends_with("0 regressions (Mann-Whitney U, p < 0.001, median at least 20% and 50µs slower; or error rate 5 points higher)\n"), "seed {seed}:\n{table}");
        for (kind, name, verdict) in verdicts(&table) {
            assert!(
                verdict == "same" || verdict == "faster",
                "seed {seed}: {kind} {name}: {verdict}\n{table}"
            );
        }
    }
}

#[test]
fn options_that_do_not_go_with_compare_are_refused() {
    let dir = scratch("compare-options");
    let file = dir.join("run.jsonl");
    run(&file, 5, 1);
    for arguments in [
        vec!["--fail-on-regression", file.to_str().unwrap()],
        vec![
            "--compare",
            file.to_str().unwrap(),
            "--summary",
            file.to_str().unwrap(),
        ],
    ] {
        let output = Command::new(VIEWER).args(&arguments).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{arguments:?}");
    }
}
