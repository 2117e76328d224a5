//! The viewer on files written by workflow-otel's own file exporter: exact
//! trees (durations and ids masked), the summary, filters, malformed lines,
//! a file still being written (`--follow`), and memory that stays bounded
//! on a large input.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{Declined, VIEWER, scratch, view};
use workflow_otel::{Instrumentation, JsonLinesExporter, Pipeline, child_workflow, step, workflow};

#[step]
fn validate() {}

#[step]
fn reserve(millis: u64) {
    std::thread::sleep(Duration::from_millis(millis));
}

#[step]
fn charge(fail: bool) -> Result<(), Declined> {
    std::thread::sleep(Duration::from_millis(2));
    if fail { Err(Declined) } else { Ok(()) }
}

#[child_workflow]
fn bill(fail: bool) -> Result<(), Declined> {
    charge(fail)
}

#[workflow]
fn order(fail: bool) -> Result<(), Declined> {
    validate();
    reserve(1);
    // The slow reservation, then the bill: the bill ends last, so the
    // critical path runs through it.
    reserve(5);
    bill(fail)
}

/// Two orders, the second failing, written by the file exporter to `path`.
fn write_orders(path: &Path) {
    let pipeline = Pipeline::new(JsonLinesExporter::create(path).unwrap());
    Instrumentation::new(&pipeline).run(|| {
        order(false).unwrap();
        order(true).unwrap_err();
    });
    pipeline.shutdown().unwrap();
}

/// Durations and trace ids vary from run to run: masked.
fn masked(text: &str) -> String {
    text.lines()
        .map(|line| {
            let mut out = String::new();
            let mut rest = line;
            while let Some(open) = rest.find('[') {
                out.push_str(&rest[..=open]);
                let close = rest[open..]
                    .find(']')
                    .map_or(rest.len(), |close| open + close);
                out.push('T');
                rest = &rest[close..];
            }
            out.push_str(rest);
            if let Some(after) = out.strip_prefix("trace ") {
                let fields: Vec<&str> = after.split(" · ").collect();
                out = format!("trace <id> · {} · T · {}", fields[1], fields[3]);
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn trees_show_nesting_status_errors_and_the_critical_path() {
    let dir = scratch("trees");
    let file = dir.join("orders.jsonl");
    write_orders(&file);
    let (out, _) = view(&[file.to_str().unwrap()]);
    assert_eq!(
        masked(&out),
        "\
trace <id> · 6 spans · T · * critical path
* workflow order [T] ✓
  ├── step validate [T] ✓
  ├── step reserve [T] ✓
  ├── step reserve [T] ✓
* └── workflow bill [T] ✓
*     └── step charge [T] ✓

trace <id> · 6 spans · T · * critical path
* workflow order [T] ✗ card declined
  ├── step validate [T] ✓
  ├── step reserve [T] ✓
  ├── step reserve [T] ✓
* └── workflow bill [T] ✗ card declined
*     └── step charge [T] ✗ card declined
"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn filters_pick_traces() {
    let dir = scratch("filters");
    let file = dir.join("orders.jsonl");
    write_orders(&file);
    let path = file.to_str().unwrap();
    let count = |out: &str| {
        out.lines()
            .filter(|line| line.starts_with("trace "))
            .count()
    };
    assert_eq!(count(&view(&["--status", "error", path]).0), 1);
    assert!(
        view(&["--status", "error", path])
            .0
            .contains("✗ card declined")
    );
    assert_eq!(count(&view(&["--status", "ok", path]).0), 1);
    assert_eq!(count(&view(&["--workflow", "bill", path]).0), 2);
    assert_eq!(count(&view(&["--workflow", "refund", path]).0), 0);
    assert_eq!(count(&view(&["--min-duration", "0ms", path]).0), 2);
    assert_eq!(count(&view(&["--min-duration", "10m", path]).0), 0);
    let all = view(&[path]).0;
    let first_id = all
        .lines()
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .to_owned();
    let only = view(&["--trace", &first_id[..8], path]).0;
    assert_eq!(count(&only), 1);
    assert!(only.starts_with(&format!("trace {first_id}")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_summary_counts_every_workflow_and_step() {
    let dir = scratch("summary");
    let file = dir.join("orders.jsonl");
    write_orders(&file);
    let (out, _) = view(&["--summary", file.to_str().unwrap()]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "kind", "name", "count", "errors", "error", "rate", "p50", "p95", "max"
        ]
    );
    let counts: Vec<(&str, &str, &str, &str, &str)> = rows[1..]
        .iter()
        .map(|row| (row[0], row[1], row[2], row[3], row[4]))
        .collect();
    assert_eq!(
        counts,
        [
            ("workflow", "bill", "2", "1", "50.0%"),
            ("workflow", "order", "2", "1", "50.0%"),
            ("step", "charge", "2", "1", "50.0%"),
            ("step", "reserve", "4", "0", "0.0%"),
            ("step", "validate", "2", "0", "0.0%"),
        ]
    );
    // Aligned: each number ends where its column's header ends.
    let header = out.lines().next().unwrap();
    let count_end = header.find("count").unwrap() + "count".len();
    for line in out.lines().skip(1) {
        let bytes = line.as_bytes();
        assert!(bytes[count_end - 1].is_ascii_digit(), "{line}");
        assert_eq!(bytes[count_end], b' ', "{line}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malformed_lines_are_counted_and_skipped() {
    let dir = scratch("malformed");
    let file = dir.join("orders.jsonl");
    write_orders(&file);
    let written = std::fs::read_to_string(&file).unwrap().lines().count();
    let mut append = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    writeln!(append, "this is not JSON").unwrap();
    writeln!(
        append,
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"zz"}}]}}]}}]}}"#
    )
    .unwrap();
    // A last line cut short, as by a crash mid-write.
    write!(append, r#"{{"resourceSpans":[{{"scopeSp"#).unwrap();
    drop(append);
    let (out, err) = view(&[file.to_str().unwrap()]);
    assert_eq!(
        out.lines()
            .filter(|line| line.starts_with("trace "))
            .count(),
        2
    );
    assert!(err.contains("3 malformed lines skipped"), "{err}");
    let first_bad = format!("orders.jsonl:{}:", written + 1);
    assert!(err.contains(&first_bad), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn follow_prints_each_trace_when_its_root_ends() {
    let dir = scratch("follow");
    let file = dir.join("live.jsonl");
    std::fs::write(&file, "").unwrap();
    let mut child = Command::new(VIEWER)
        .args(["--follow", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for round in 0..2 {
        write_orders(&file);
        // Two traces per round; wait for both trees (the viewer polls).
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut trees = 0;
        while trees < 2 {
            assert!(Instant::now() < deadline, "round {round}: {trees} trees");
            let line = lines.next().unwrap().unwrap();
            trees += usize::from(line.starts_with("trace ") && !line.contains("continued"));
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_large_file_is_summarised_in_bounded_memory() {
    let dir = scratch("large");
    let file = dir.join("orders.jsonl");
    write_orders(&file);
    let lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let big = dir.join("big.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
    let mut written = 0;
    let mut copies = 0;
    while written < 96 * 1024 * 1024 {
        for line in &lines {
            writeln!(out, "{line}").unwrap();
            written += line.len() + 1;
        }
        copies += 1;
    }
    out.flush().unwrap();
    drop(out);
    // 96 MB of spans, summarised with 64 MB of address space at most.
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 65536 && exec {VIEWER} --summary {}",
            big.display()
        ))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out = String::from_utf8(output.stdout).unwrap();
    let reserve = out
        .lines()
        .find(|line| line.starts_with("step      reserve"))
        .unwrap();
    assert_eq!(
        reserve.split_whitespace().nth(2).unwrap(),
        (copies * 4).to_string()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn span_json(trace: &str, id: &str, parent: &str, name: &str, start: u64, end: u64) -> String {
    format!(
        r#"{{"traceId":"{trace}","spanId":"{id}","parentSpanId":"{parent}","name":"{name}","kind":1,"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}","status":{{}}}}"#
    )
}

#[test]
fn hostile_files_are_shown_or_skipped_never_fatal() {
    let dir = scratch("hostile");
    let file = dir.join("hostile.jsonl");
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let spans = [
        // Two spans that are each other's parent: both still shown.
        span_json(
            trace,
            "00000000000000a1",
            "00000000000000b2",
            "cycle-a",
            10,
            20,
        ),
        span_json(
            trace,
            "00000000000000b2",
            "00000000000000a1",
            "cycle-b",
            11,
            19,
        ),
        // Ends before it starts: shown with no duration.
        span_json(trace, "00000000000000c3", "", "backwards", 50, 5),
    ];
    let line = format!(
        r#"{{"resourceSpans":[{{"resource":{{}},"scopeSpans":[{{"scope":{{"name":"x"}},"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    );
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    std::fs::write(&file, format!("{line}\n{deep}\n\u{0}\u{1}\n")).unwrap();
    let (out, err) = view(&[file.to_str().unwrap()]);
    for name in ["cycle-a", "cycle-b", "backwards"] {
        assert!(out.contains(&format!("span {name} [")), "{name}: {out}");
    }
    assert!(out.contains("span backwards [0ns]"), "{out}");
    assert!(err.contains("2 malformed lines skipped"), "{err}");
    let html = dir.join("hostile.html");
    view(&["--html", html.to_str().unwrap(), file.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What a peer could put in an error text or a span name: an OSC title,
/// a bell, a screen clear, a carriage return, a right-to-left override.
const HOSTILE: &str = "\u{1b}]0;owned\u{7}\u{1b}[2J\rover\u{202e}txt";

#[step]
fn hostile_charge() -> Result<(), String> {
    Err(format!("declined {HOSTILE}"))
}

#[workflow(name = "hostile")]
fn hostile_order(tracer: &opentelemetry_sdk::trace::SdkTracer) -> Result<(), String> {
    use opentelemetry::trace::Tracer as _;
    tracer.in_span(format!("foreign {HOSTILE}"), |_| {});
    hostile_charge()
}

#[test]
fn control_characters_in_files_are_shown_not_obeyed() {
    use opentelemetry::trace::TracerProvider as _;
    let dir = scratch("hostile");
    let path = dir.join("hostile.jsonl");
    let pipeline = Pipeline::new(JsonLinesExporter::create(&path).unwrap());
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(pipeline.span_processor())
        .build();
    let tracer = provider.tracer("other");
    let _ = Instrumentation::new(&pipeline).run(|| hostile_order(&tracer));
    pipeline.shutdown().unwrap();
    let file = path.to_str().unwrap();
    let visible = r"\u{1b}]0;owned\u{7}\u{1b}[2J\u{d}over\u{202e}txt";
    let acts_on_a_terminal = |character: char| {
        (character.is_control() && character != '\n')
            || ('\u{202a}'..='\u{202e}').contains(&character)
    };
    let (tree, _) = view(&[file]);
    assert!(!tree.chars().any(acts_on_a_terminal), "{tree:?}");
    assert!(tree.contains(&format!("foreign {visible} [")), "{tree}");
    assert!(tree.contains(&format!("✗ declined {visible}")), "{tree}");
    let (summary, _) = view(&["--summary", file]);
    assert!(!summary.chars().any(acts_on_a_terminal), "{summary:?}");
    assert!(summary.contains(&format!("foreign {visible}")), "{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// 200,000 one-span traces (what took 345 MB when the page held every
/// trace): the page takes the first 20,000 spans' traces and says how many
/// it left out, its summary counts every span, and the viewer writes it
/// within 160 MB of address space.
#[test]
fn a_page_of_many_traces_holds_a_bounded_share_and_says_what_it_left_out() {
    let dir = scratch("many-traces");
    let file = dir.join("many.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    let traces = 200_000_u64;
    for index in 1..=traces {
        let span = span_json(
            &format!("{index:032x}"),
            &format!("{index:016x}"),
            "",
            "job",
            1_000_000_000,
            1_000_005_000,
        );
        writeln!(
            out,
            r#"{{"resourceSpans":[{{"resource":{{}},"scopeSpans":[{{"scope":{{"name":"x"}},"spans":[{span}]}}]}}]}}"#
        )
        .unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let page = dir.join("many.html");
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 163840 && exec {VIEWER} --html {} {}",
            page.display(),
            file.display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("(20000 traces, 20000 spans)"), "{stderr}");
    assert!(
        stderr.contains("180000 spans of traces first seen after the page's first 20000 spans"),
        "{stderr}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains(r#""leftOut":180000"#));
    // The summary row counts all 200,000.
    assert!(
        html.contains(r#""name":"job","count":200000,"#),
        "the summary"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
