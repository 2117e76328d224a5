//! `workflow-otel-view`: see workflows without a backend. Reads the
//! JSON-lines span files that workflow-otel's file exporter writes (one or
//! several; the files of several processes merge into one trace by trace
//! id) and prints each trace as a tree with its critical path, a summary
//! table (`--summary`), or a self-contained HTML waterfall (`--html FILE`).

mod compare;
mod html;
mod input;
mod map;
mod model;
mod text;

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId};

use crate::input::Input;
use crate::model::{Kind, Span, Trace};
use crate::text::Summary;

/// Most spans kept of one trace; past it, the trace's later spans are
/// counted and left out.
const MAX_SPANS_PER_TRACE: usize = 200_000;

/// Most spans the HTML page holds of traces it takes in: a trace first seen
/// once this many spans are in is left out of the page (counted, and said
/// in the page and on stderr); the summary still counts every span. Keeps
/// the viewer's memory and the page's size bounded on any input.
const MAX_PAGE_SPANS: usize = 20_000;

const HELP: &str = "\
workflow-otel-view: workflow traces from JSON-lines span files, without a backend

USAGE:
    workflow-otel-view [OPTIONS] FILE...

Several files (the files of several processes) merge into one trace by trace id.

OPTIONS:
    --trace ID           only the trace whose id starts with ID
    --workflow NAME      only traces with a workflow named NAME
    --status ok|error    only traces whose root failed (error) or did not (ok); a root
                         that succeeded after a failed, retried step is ok
    --min-duration TIME  only traces at least TIME long: 250ms, 1.5s, 2m
    --summary            per workflow, step and model call: count, error rate, p50,
                         p95, max (and tokens and cost where spans carry them)
    --by-service         with --summary: one row per service, workflow and step
    --compare FILE       a file of the baseline run (repeat for several); the
                         positional files are the candidate run. Per workflow, step
                         and model call: count, error rate, p50, p95 and p99 of both
                         runs and the change, and a verdict. A row regresses when its
                         candidate durations are larger by a one-sided Mann-Whitney U
                         test at p < 0.001 AND its median is at least 20% and 50µs
                         slower (so that a large run's tiny drifts are not flagged),
                         or when its error rate is at least 5 points higher (a
                         one-sided two-proportion z test at p < 0.001). A workflow
                         slower only because a step or child in it regressed (its own
                         time, less its children's, did not) is shown as a
                         consequence of that row, not as a regression. Rows with
                         fewer than 8 calls in either run are not judged.
    --fail-on-regression with --compare: exit with status 3 if a row regresses
    --map                the service map: services, with an edge where a span's parent
                         (or a span it links to) is in another process, and workflows,
                         with an edge from the workflow that started each child
                         workflow; each edge with its calls, errors and the p95 of the
                         callee's duration (within 3%). Streaming: memory is the edges
                         and a window of the last 200,000 spans, in which a remote
                         parent is looked up (the files are read one line of each in
                         turn); a call whose parent is not found there is drawn from
                         `(not in these files)`. --html pages have a Map tab too
    --html FILE          write one self-contained HTML file: a waterfall per trace,
                         the trace list and the summary (and the comparison, with
                         --compare); the page takes traces
                         until it holds 20,000 spans (filters apply to those),
                         and its summary counts every span
    --follow             keep reading; print each trace when its root span ends
    -h, --help           this text

EXIT STATUS: 0, or 1 on an error, 2 on a bad option, 3 when --fail-on-regression
finds a regression.
";

#[derive(Debug, Default)]
struct Options {
    files: Vec<PathBuf>,
    trace: Option<String>,
    workflow: Option<String>,
    status: Option<bool>,
    min_duration: Option<u64>,
    summary: bool,
    by_service: bool,
    compare: Vec<PathBuf>,
    fail_on_regression: bool,
    map: bool,
    html: Option<PathBuf>,
    follow: bool,
}

fn parse_duration(text: &str) -> Option<u64> {
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic() || c == 'µ')
        .map_or((text, "ms"), |at| text.split_at(at));
    let value: f64 = number.trim().parse().ok()?;
    let scale = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        _ => return None,
    };
    (value >= 0.0).then_some((value * scale) as u64)
}

fn parse(arguments: Vec<String>) -> Result<Options, String> {
    let mut options = Options::default();
    let mut arguments = arguments.into_iter();
    while let Some(argument) = arguments.next() {
        let mut value = |name: &str| {
            arguments
                .next()
                .ok_or_else(|| format!("{name} needs a value; see --help"))
        };
        match argument.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--trace" => options.trace = Some(value("--trace")?.to_ascii_lowercase()),
            "--workflow" => options.workflow = Some(value("--workflow")?),
            "--status" => {
                options.status = Some(match value("--status")?.as_str() {
                    "ok" => true,
                    "error" => false,
                    other => return Err(format!("--status takes `ok` or `error`, not `{other}`")),
                })
            }
            "--min-duration" => {
                let text = value("--min-duration")?;
                options.min_duration = Some(parse_duration(&text).ok_or_else(|| {
                    format!("--min-duration takes a time like 250ms or 1.5s, not `{text}`")
                })?);
            }
            "--summary" => options.summary = true,
            "--by-service" => options.by_service = true,
            "--compare" => options.compare.push(PathBuf::from(value("--compare")?)),
            "--fail-on-regression" => options.fail_on_regression = true,
            "--map" => options.map = true,
            "--html" => options.html = Some(PathBuf::from(value("--html")?)),
            "--follow" => options.follow = true,
            flag if flag.starts_with('-') => {
                return Err(format!("unknown option {flag}; see --help"));
            }
            file => options.files.push(PathBuf::from(file)),
        }
    }
    if options.files.is_empty() {
        return Err("no file given; see --help".to_owned());
    }
    if options.follow && (options.summary || options.html.is_some() || !options.compare.is_empty())
    {
        return Err(
            "--follow prints trees; it does not go with --summary, --compare or --html".to_owned(),
        );
    }
    if options.map
        && (options.summary
            || options.filters()
            || options.html.is_some()
            || !options.compare.is_empty())
    {
        return Err(
            "--map draws every span's calls: it goes alone (--html pages have the map too)"
                .to_owned(),
        );
    }
    if options.by_service && !options.summary {
        return Err("--by-service groups the summary: use it with --summary".to_owned());
    }
    if !options.compare.is_empty() && (options.filters() || options.summary) {
        return Err(
            "--compare compares whole runs: it does not go with filters or --summary".to_owned(),
        );
    }
    if options.fail_on_regression && options.compare.is_empty() {
        return Err("--fail-on-regression needs --compare BASELINE".to_owned());
    }
    Ok(options)
}

impl Options {
    fn filters(&self) -> bool {
        self.trace.is_some()
            || self.workflow.is_some()
            || self.status.is_some()
            || self.min_duration.is_some()
    }

    fn keeps(&self, trace: &Trace) -> bool {
        if let Some(prefix) = &self.trace
            && !trace.id().to_string().starts_with(prefix.as_str())
        {
            return false;
        }
        if let Some(name) = &self.workflow
            && !trace
                .spans
                .iter()
                .any(|span| span.kind == Kind::Workflow && span.name == *name)
        {
            return false;
        }
        if let Some(ok) = self.status
            && trace.root_failed(&trace.layout()) == ok
        {
            return false;
        }
        if let Some(minimum) = self.min_duration {
            let start = trace.spans.iter().map(|span| span.start).min().unwrap_or(0);
            let end = trace.spans.iter().map(|span| span.end).max().unwrap_or(0);
            if end - start < minimum {
                return false;
            }
        }
        true
    }
}

/// Spans grouped by trace, in the order traces were first seen.
#[derive(Default)]
struct Traces {
    order: Vec<TraceId>,
    by_id: HashMap<TraceId, Trace>,
    dropped: u64,
    /// With a budget, a trace first seen once `kept` spans reach it is left out.
    budget: Option<usize>,
    kept: usize,
    left_out: u64,
}

impl Traces {
    fn with_budget(spans: usize) -> Traces {
        Traces {
            budget: Some(spans),
            ..Traces::default()
        }
    }

    fn add(&mut self, span: Span) {
        if !self.by_id.contains_key(&span.trace)
            && self.budget.is_some_and(|budget| self.kept >= budget)
        {
            self.left_out += 1;
            return;
        }
        let trace = self.by_id.entry(span.trace).or_insert_with(|| {
            self.order.push(span.trace);
            Trace::default()
        });
        if trace.spans.len() >= MAX_SPANS_PER_TRACE {
            self.dropped += 1;
        } else {
            trace.spans.push(span);
            self.kept += 1;
        }
    }

    fn into_traces(mut self) -> Vec<Trace> {
        self.order
            .iter()
            .filter_map(|id| self.by_id.remove(id))
            .collect()
    }
}

fn report(input: &Input, dropped: u64) {
    if input.malformed.count > 0 {
        eprintln!(
            "workflow-otel-view: {} malformed lines skipped (first: {})",
            input.malformed.count,
            workflow_otel::terminal_safe(input.malformed.first.as_deref().unwrap_or_default())
        );
    }
    if dropped > 0 {
        eprintln!(
            "workflow-otel-view: {dropped} spans left out of traces with more than {MAX_SPANS_PER_TRACE}"
        );
    }
}

/// The traces the filters keep, in the order they were first seen, once
/// what was skipped on the way is reported.
fn chosen(traces: Traces, options: &Options, input: &Input) -> Vec<Trace> {
    report(input, traces.dropped);
    traces
        .into_traces()
        .into_iter()
        .filter(|trace| options.keeps(trace))
        .collect()
}

/// Reads both runs and prints (or puts in the page) their comparison;
/// returns whether a row regressed.
fn run_compare(options: &Options, input: &mut Input) -> Result<bool, String> {
    let mut baseline = compare::Run::default();
    let mut base_input = Input::open(&options.compare).map_err(|error| error.to_string())?;
    base_input
        .read(true, &mut |span| baseline.add(&span))
        .map_err(|error| error.to_string())?;
    report(&base_input, 0);
    let mut candidate = compare::Run::default();
    let mut traces = Traces::with_budget(MAX_PAGE_SPANS);
    let mut everything = Summary::default();
    let mut map = map::Map::default();
    let page = options.html.is_some();
    input.interleave = page;
    input
        .read(true, &mut |span| {
            candidate.add(&span);
            if page {
                everything.add(&span);
                map.add(&span);
                traces.add(span);
            }
        })
        .map_err(|error| error.to_string())?;
    for (run, left_out) in [
        ("baseline", baseline.left_out),
        ("candidate", candidate.left_out),
    ] {
        if left_out > 0 {
            eprintln!(
                "workflow-otel-view: {left_out} spans of the {run} past its first {} left out of the comparison",
                compare::MAX_RUN_SPANS
            );
        }
    }
    let rows = compare::compare(&baseline, &candidate);
    let regressed = rows
        .iter()
        .any(|row| row.verdict == compare::Verdict::Regression);
    match &options.html {
        Some(path) => {
            let left_out = traces.left_out;
            let kept = chosen(traces, options, input);
            let page = html::page(
                &kept,
                &everything.table(),
                input.malformed.count,
                left_out,
                Some(&rows),
                &map.edges(),
            );
            std::fs::write(path, page).map_err(|error| format!("{}: {error}", path.display()))?;
            eprintln!(
                "workflow-otel-view: wrote {} (with the comparison)",
                path.display()
            );
        }
        None => {
            let _ = std::io::stdout().write_all(compare::table(&rows).as_bytes());
        }
    }
    Ok(regressed)
}

/// Runs what `options` ask; returns whether a comparison found a regression.
fn run(options: Options) -> Result<bool, String> {
    let mut input = Input::open(&options.files).map_err(|error| error.to_string())?;
    if options.follow {
        return follow(&options, &mut input).map(|()| false);
    }
    if !options.compare.is_empty() {
        return run_compare(&options, &mut input);
    }
    if options.map {
        let mut map = map::Map::default();
        input.interleave = true;
        input
            .read(true, &mut |span| map.add(&span))
            .map_err(|error| error.to_string())?;
        report(&input, 0);
        let left_out = map.edges_left_out;
        let _ = std::io::stdout().write_all(map::table(&map.edges()).as_bytes());
        if left_out > 0 {
            eprintln!(
                "workflow-otel-view: {left_out} calls on edges past the first {} left out",
                map::MAX_EDGES
            );
        }
        return Ok(false);
    }
    let mut stdout = std::io::stdout().lock();
    if options.summary && !options.filters() && options.html.is_none() {
        // Streaming: no span is kept, whatever the input's size.
        let mut summary = if options.by_service {
            Summary::by_service()
        } else {
            Summary::default()
        };
        input
            .read(true, &mut |span| summary.add(&span))
            .map_err(|error| error.to_string())?;
        report(&input, 0);
        let _ = stdout.write_all(text::summary(&summary.table()).as_bytes());
        return Ok(false);
    }
    if let Some(path) = &options.html {
        // The page takes a bounded share of the input; its summary counts
        // every span, as `--summary` does, unless filters choose traces.
        let mut traces = Traces::with_budget(MAX_PAGE_SPANS);
        let mut everything = Summary::default();
        let mut map = map::Map::default();
        let filters = options.filters();
        input.interleave = true;
        input
            .read(true, &mut |span| {
                if !filters {
                    everything.add(&span);
                }
                map.add(&span);
                traces.add(span);
            })
            .map_err(|error| error.to_string())?;
        let left_out = traces.left_out;
        let kept = chosen(traces, &options, &input);
        if filters {
            for span in kept.iter().flat_map(|trace| &trace.spans) {
                everything.add(span);
            }
        }
        let page = html::page(
            &kept,
            &everything.table(),
            input.malformed.count,
            left_out,
            None,
            &map.edges(),
        );
        std::fs::write(path, page).map_err(|error| format!("{}: {error}", path.display()))?;
        eprintln!(
            "workflow-otel-view: wrote {} ({} traces, {} spans)",
            path.display(),
            kept.len(),
            kept.iter().map(|trace| trace.spans.len()).sum::<usize>()
        );
        if left_out > 0 {
            eprintln!(
                "workflow-otel-view: {left_out} spans of traces first seen after the page's \
                 first {MAX_PAGE_SPANS} spans are left out of the page (the summary counts them); \
                 --trace, --workflow or --status choose which traces the page takes"
            );
        }
        return Ok(false);
    }
    let mut traces = Traces::default();
    input
        .read(true, &mut |span| traces.add(span))
        .map_err(|error| error.to_string())?;
    let kept = chosen(traces, &options, &input);
    let mut summary = if options.by_service {
        Summary::by_service()
    } else {
        Summary::default()
    };
    for span in kept.iter().flat_map(|trace| &trace.spans) {
        summary.add(span);
    }
    let rows = summary.table();
    if options.summary {
        let _ = stdout.write_all(text::summary(&rows).as_bytes());
        return Ok(false);
    }
    for trace in &kept {
        let _ = writeln!(stdout, "{}", text::tree(trace));
    }
    Ok(false)
}

/// Keeps reading; a trace is printed when its root span (one without a
/// parent) arrives, and spans of it that come later (from another
/// process's file) are printed as its continuation.
fn follow(options: &Options, input: &mut Input) -> Result<(), String> {
    let mut pending: HashMap<TraceId, Trace> = HashMap::new();
    let mut printed: HashSet<TraceId> = HashSet::new();
    let mut stdout = std::io::stdout();
    loop {
        let mut ready: Vec<TraceId> = Vec::new();
        let got = input
            .read(false, &mut |span| {
                let root = span.parent == SpanId::INVALID;
                let id = span.trace;
                let trace = pending.entry(id).or_default();
                if trace.spans.len() < MAX_SPANS_PER_TRACE {
                    trace.spans.push(span);
                }
                if root || printed.contains(&id) {
                    ready.push(id);
                }
            })
            .map_err(|error| error.to_string())?;
        ready.dedup();
        for id in ready {
            let Some(trace) = pending.remove(&id) else {
                continue;
            };
            if !options.keeps(&trace) {
                continue;
            }
            let mut text = text::tree(&trace);
            if !printed.insert(id) {
                text = text.replacen("trace ", "trace (continued) ", 1);
            }
            let _ = writeln!(stdout, "{text}");
            let _ = stdout.flush();
        }
        if !got {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1).collect()) {
        Ok(options) => options,
        Err(message) if message.is_empty() => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("workflow-otel-view: {message}");
            return ExitCode::from(2);
        }
    };
    let fail_on_regression = options.fail_on_regression;
    match run(options) {
        Ok(true) if fail_on_regression => {
            eprintln!("workflow-otel-view: a regression was found");
            ExitCode::from(3)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("workflow-otel-view: {message}");
            ExitCode::FAILURE
        }
    }
}
