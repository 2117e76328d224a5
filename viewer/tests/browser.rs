//! The HTML view in a real browser: headless Chromium (Debian's `chromium`,
//! installed by `scripts/test`), no network, loads the file from `file://`;
//! the DOM it built is checked against the viewer's own text tree of the
//! same trace (one bar per span in tree order, widths proportional to
//! durations, errors and the critical path marked), the cross-process
//! parent of the `distributed` example's worker is linked, a screenshot is
//! taken, and the load time of a 10,000-span trace is measured and reported.
//!
//! Not part of `cargo test`: `scripts/test` runs it once Chromium is
//! installed and the examples are built.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod support;

use support::{Declined, scratch, view};
use workflow_otel::{Instrumentation, JsonLinesExporter, Pipeline, PipelineConfig, step, workflow};

fn target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned())
}

/// Headless, sandbox off (CI runs as root), and no way out to the network:
/// every host resolves to nothing and every request goes to a dead proxy.
fn browser(arguments: &[&str]) -> String {
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            "--hide-scrollbars",
        ])
        .args(arguments)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "{} does not start ({error}): run ./scripts/test, which installs it",
                chromium()
            )
        });
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The DOM after the page's script ran, for `file` opened at `#hash`.
fn dom(file: &Path, hash: &str) -> String {
    // The page's script runs as the document is parsed, so the DOM is
    // complete at the load event, which `--dump-dom` waits for (in real
    // time: the load time measured is the browser's own).
    browser(&["--dump-dom", &format!("file://{}#{hash}", file.display())])
}

fn viewer(arguments: &[&str]) -> String {
    view(arguments).0
}

/// Every `name="value"` attribute of the elements whose class starts with
/// `class_prefix`, one map per element, in document order.
fn elements(dom: &str, class_prefix: &str) -> Vec<std::collections::HashMap<String, String>> {
    // The page's own script (and its data) come after the markup it built.
    let dom = &dom[..dom.find("<script").unwrap_or(dom.len())];
    let needle = format!("class=\"{class_prefix}");
    let mut found = Vec::new();
    for (start, _) in dom.match_indices(&needle) {
        let open = dom[..start].rfind('<').unwrap();
        let close = start + dom[start..].find('>').unwrap();
        let tag = &dom[open..close];
        let mut attributes = std::collections::HashMap::new();
        let mut rest = tag;
        while let Some(equals) = rest.find("=\"") {
            let name = rest[..equals].rsplit([' ', '<']).next().unwrap().to_owned();
            let value_start = equals + 2;
            let value_end = value_start + rest[value_start..].find('"').unwrap();
            attributes.insert(name, rest[value_start..value_end].to_owned());
            rest = &rest[value_end + 1..];
        }
        found.push(attributes);
    }
    found
}

/// (depth, name, failed, critical) of each line of the viewer's text tree.
fn text_rows(tree: &str) -> Vec<(usize, String, bool, bool)> {
    tree.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let critical = line.starts_with('*');
            let body = &line[2..];
            let kind_at = body.find(|c: char| c.is_ascii_alphabetic()).unwrap();
            // Each level of the tree is four characters wide.
            let depth = body[..kind_at].chars().count() / 4;
            let mut words = body[kind_at..].split(' ');
            let _kind = words.next();
            // The name, without the arguments the tree shows after it.
            let name = words.next().unwrap().split('(').next().unwrap().to_owned();
            (depth, name, line.contains(" ✗ "), critical)
        })
        .collect()
}

#[step]
fn pause(millis: u64) {
    std::thread::sleep(Duration::from_millis(millis));
}

#[step]
fn charge() -> Result<(), Declined> {
    std::thread::sleep(Duration::from_millis(3));
    Err(Declined)
}

#[workflow]
fn checkout() -> Result<(), Declined> {
    pause(2);
    std::thread::scope(|scope| {
        // Parallel branches: both start together, the slower one is critical.
        let slow = scope.spawn(workflow_otel::in_current_context(|| pause(12)));
        let fast = scope.spawn(workflow_otel::in_current_context(|| pause(4)));
        slow.join().unwrap();
        fast.join().unwrap();
    });
    charge()
}

#[test]
fn the_waterfall_matches_the_trace() {
    let dir = scratch("waterfall");
    let file = dir.join("checkout.jsonl");
    let pipeline = Pipeline::new(JsonLinesExporter::create(&file).unwrap());
    Instrumentation::new(&pipeline).run(|| checkout().unwrap_err());
    pipeline.shutdown().unwrap();
    // The two processes of the distributed example, merged.
    let traces = dir.join("distributed");
    let output = Command::new(target().join("debug/examples/distributed"))
        .env("DISTRIBUTED_TRACES_DIR", &traces)
        .env_remove("OTEL_TRACES_EXPORTER")
        .output()
        .expect("the distributed example is built: run `cargo build --examples`");
    assert!(output.status.success());
    assert!(
        std::fs::metadata(traces.join("worker.jsonl")).is_ok_and(|file| file.len() > 0),
        "the distributed example wrote no spans: was it built with instrumentation off? \
         run `cargo build --examples`"
    );
    let html = dir.join("view.html");
    let files = [
        file.to_str().unwrap().to_owned(),
        traces
            .join("coordinator.jsonl")
            .to_str()
            .unwrap()
            .to_owned(),
        traces.join("worker.jsonl").to_str().unwrap().to_owned(),
    ];
    let mut arguments: Vec<&str> = vec!["--html", html.to_str().unwrap()];
    arguments.extend(files.iter().map(String::as_str));
    viewer(&arguments);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing is fetched"
    );

    // Each trace as the page shows it, against the text tree of the same
    // input: the checkout, and the two processes' files merged.
    for inputs in [
        vec![files[0].as_str()],
        vec![files[1].as_str(), files[2].as_str()],
    ] {
        let tree = viewer(&inputs);
        let id = tree.split(' ').nth(1).unwrap();
        let rows = text_rows(&tree);
        let dom = dom(&html, id);
        let bars = elements(&dom, "bar ");
        let lines = elements(&dom, "row");
        assert_eq!(bars.len(), rows.len(), "one bar per span of {id}");
        assert_eq!(lines.len(), rows.len());
        let total: f64 = bars
            .iter()
            .map(|bar| {
                bar["data-offset-ns"].parse::<f64>().unwrap()
                    + bar["data-duration-ns"].parse::<f64>().unwrap()
            })
            .fold(0.0, f64::max);
        for ((bar, line), (depth, name, failed, critical)) in bars.iter().zip(&lines).zip(&rows) {
            // Tree order and nesting: the same as the text tree's.
            assert_eq!(line["data-depth"], depth.to_string(), "{name}");
            assert!(
                bar["title"].starts_with(&format!("{name} ·")),
                "{name}: {}",
                bar["title"]
            );
            assert_eq!(bar["class"].contains("error"), *failed, "{name}");
            assert_eq!(bar["class"].contains("critical"), *critical, "{name}");
            // Widths proportional to durations, left edges to start offsets.
            let style = &bar["style"];
            let percent = |key: &str| -> f64 {
                let at = style.find(key).unwrap() + key.len();
                style[at..].split('%').next().unwrap().parse().unwrap()
            };
            let duration: f64 = bar["data-duration-ns"].parse().unwrap();
            let offset: f64 = bar["data-offset-ns"].parse().unwrap();
            assert!(
                (percent("width:") - duration / total * 100.0).abs() < 0.01,
                "{name}: {style}"
            );
            assert!(
                (percent("left:") - offset / total * 100.0).abs() < 0.01,
                "{name}: {style}"
            );
        }
        assert!(rows.iter().any(|row| row.3), "a critical path");
    }
    // The checkout trace: its failure is marked, and the slow parallel
    // branch is on the critical path, the fast one is not.
    let checkout_rows = text_rows(&viewer(&[&files[0]]));
    assert!(
        checkout_rows
            .iter()
            .any(|row| row.1 == "charge" && row.2 && row.3)
    );
    let pauses: Vec<_> = checkout_rows
        .iter()
        .filter(|row| row.1 == "pause")
        .collect();
    assert_eq!(pauses.len(), 3);
    assert_eq!(
        pauses.iter().filter(|row| row.3).count(),
        0,
        "charge ends last"
    );

    // The worker's child workflow links to the coordinator's span that sent
    // it, in another process.
    let merged = viewer(&[&files[1], &files[2]]);
    let id = merged.split(' ').nth(1).unwrap().to_owned();
    let rows = text_rows(&merged);
    let process = rows.iter().position(|row| row.1 == "process").unwrap();
    let dom = dom(&html, &format!("{id}/{process}"));
    let details = &dom[dom.find("id=\"details\"").unwrap()..];
    assert!(details.contains("parent (in another process)"), "{details}");
    assert!(details.contains("step send</a>"), "{details}");

    // A picture, for people (and the README's): the checkout, with the
    // failed charge's details open.
    let checkout_tree = viewer(&[&files[0]]);
    let checkout_id = checkout_tree.split(' ').nth(1).unwrap().to_owned();
    let charge = checkout_rows
        .iter()
        .position(|row| row.1 == "charge")
        .unwrap();
    let screenshot = target().join("viewer-screenshot.png");
    browser(&[
        &format!("--screenshot={}", screenshot.display()),
        "--window-size=1400,640",
        &format!("file://{}#{checkout_id}/{charge}", html.display()),
    ]);
    let png = std::fs::read(&screenshot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(png.len() > 10_000, "a screenshot with something on it");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[step]
fn tiny(i: u64) -> u64 {
    i + 1
}

#[workflow]
fn ten_thousand() {
    for i in 0..9_999 {
        tiny(i);
    }
}

#[test]
fn ten_thousand_spans_load_and_are_measured() {
    let dir = scratch("large");
    let file = dir.join("large.jsonl");
    // Room for every span: the page must show all 10,000.
    let config = PipelineConfig {
        max_queue_size: 20_000,
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::with_config(JsonLinesExporter::create(&file).unwrap(), config, None);
    Instrumentation::new(&pipeline).run(ten_thousand);
    pipeline.shutdown().unwrap();
    assert_eq!(pipeline.exported_spans(), 10_000);
    let html = dir.join("large.html");
    viewer(&["--html", html.to_str().unwrap(), file.to_str().unwrap()]);
    let dom = dom(&html, "");
    assert_eq!(elements(&dom, "bar ").len(), 10_000);
    let at = dom.find("data-load-ms=\"").unwrap() + "data-load-ms=\"".len();
    let load_ms: f64 = dom[at..].split('"').next().unwrap().parse().unwrap();
    // Reported, not asserted: a timing is a measurement, not a test.
    println!(
        "10,000 spans: page loaded and laid out in {load_ms} ms ({} KB of HTML)",
        std::fs::metadata(&html).unwrap().len() / 1024
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[step]
fn work(micros: u64) {
    std::thread::sleep(Duration::from_micros(micros));
}

#[workflow]
fn job(micros: u64) {
    work(micros);
    work(micros / 2);
}

/// 20 jobs into `path`, `work` taking about `micros`.
fn jobs(path: &Path, micros: u64) {
    let pipeline = Pipeline::new(JsonLinesExporter::create(path).unwrap());
    Instrumentation::new(&pipeline).run(|| {
        for _ in 0..20 {
            job(micros);
        }
    });
    pipeline.shutdown().unwrap();
}

#[test]
fn the_comparison_and_the_map_show_what_the_text_says() {
    let dir = scratch("compare-map");
    let (baseline, candidate) = (dir.join("baseline.jsonl"), dir.join("candidate.jsonl"));
    jobs(&baseline, 1_000);
    jobs(&candidate, 3_000);
    let traces = dir.join("distributed");
    let output = Command::new(target().join("debug/examples/distributed"))
        .env("DISTRIBUTED_TRACES_DIR", &traces)
        .env_remove("OTEL_TRACES_EXPORTER")
        .output()
        .expect("the distributed example is built: run `cargo build --examples`");
    assert!(output.status.success());
    let coordinator = traces.join("coordinator.jsonl");
    let worker = traces.join("worker.jsonl");
    let (baseline, candidate, coordinator, worker) = (
        baseline.to_str().unwrap(),
        candidate.to_str().unwrap(),
        coordinator.to_str().unwrap(),
        worker.to_str().unwrap(),
    );
    let html = dir.join("compare.html");
    let html = html.to_str().unwrap();
    viewer(&[
        "--compare",
        baseline,
        "--html",
        html,
        candidate,
        coordinator,
        worker,
    ]);
    let text = viewer(&["--compare", baseline, candidate, coordinator, worker]);

    // The Compare tab: one row per line of the text, the same verdicts.
    let compare_dom = dom(Path::new(html), "compare");
    let shown: Vec<(String, String)> =
        ["regression", "consequence", "faster", "same", "not-judged"]
            .iter()
            .flat_map(|class| elements(&compare_dom, class))
            .filter(|row| row.contains_key("data-verdict"))
            .map(|row| (row["data-name"].clone(), row["data-verdict"].clone()))
            .collect();
    let mut expected: Vec<(String, String)> = text
        .lines()
        .skip(1)
        .filter(|line| !line.starts_with(char::is_numeric))
        .map(|line| {
            let name = line.split_whitespace().nth(1).unwrap().to_owned();
            let verdict = if line.ends_with("REGRESSION") {
                "regression"
            } else if line.contains("as a consequence of") {
                "consequence"
            } else if line.ends_with("faster") {
                "faster"
            } else if line.ends_with("same") {
                "same"
            } else {
                "not judged"
            };
            (name, verdict.to_owned())
        })
        .collect();
    let mut shown_sorted = shown.clone();
    shown_sorted.sort();
    expected.sort();
    assert_eq!(shown_sorted, expected, "{text}");
    assert!(
        shown.contains(&("work".to_owned(), "regression".to_owned())),
        "{text}"
    );
    assert!(
        shown.contains(&("job".to_owned(), "consequence".to_owned())),
        "{text}"
    );

    // The Map tab: one arrow per edge of `--map`, with its calls and errors.
    let map = viewer(&["--map", candidate, coordinator, worker]);
    let map_dom = dom(Path::new(html), "map");
    let mut drawn: Vec<[String; 4]> = elements(&map_dom, "edge")
        .iter()
        .map(|edge| {
            [
                edge["data-from"].clone(),
                edge["data-to"].clone(),
                edge["data-calls"].clone(),
                edge["data-errors"].clone(),
            ]
        })
        .collect();
    let mut listed: Vec<[String; 4]> = map
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            [fields[1], fields[2], fields[3], fields[4]].map(str::to_owned)
        })
        .collect();
    drawn.sort();
    listed.sort();
    assert_eq!(drawn, listed, "{map}");
    assert!(
        listed
            .iter()
            .any(|edge| edge[..3] == ["coordinator", "worker", "3"]),
        "{map}"
    );
    let nodes = elements(&map_dom, "node");
    assert!(
        nodes
            .iter()
            .any(|node| node["data-name"] == "worker/process")
    );

    // Pictures, for the README.
    for (hash, name) in [("compare", "viewer-compare.png"), ("map", "viewer-map.png")] {
        let screenshot = target().join(name);
        browser(&[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1400,560",
            &format!("file://{html}#{hash}"),
        ]);
        let png = std::fs::read(&screenshot).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert!(png.len() > 10_000, "a screenshot with something on it");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
