//! End to end through a real Prometheus (Debian's `prometheus` package,
//! installed by `scripts/test`): the `metrics` example serves its endpoint,
//! Prometheus scrapes it every second with exemplar storage on, and its HTTP
//! API must return the counts the example produced, exemplars whose trace ids
//! the example's JSON-lines file holds, and data for every query of the
//! Grafana dashboard in `dashboards/`. Both processes listen on loopback and
//! are stopped by their PID.
//!
//! Not part of `cargo test`: run with `scripts/test`, or
//! `cargo build --examples && cargo test -p workflow-otel-tests --test prometheus`
//! with `prometheus` on the PATH (or `PROMETHEUS=/path/to/prometheus`).

#[path = "support/examples.rs"]
mod examples;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use examples::example_binary;
use serde_json::Value;

/// A child process stopped by its PID when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("workflow-otel-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Percent-encodes a query-string value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// `GET path` on Prometheus' API; the JSON answer's `data`.
fn api(prometheus: SocketAddr, path: &str) -> Value {
    let mut stream = TcpStream::connect(prometheus).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {prometheus}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    // Prometheus answers small bodies whole and large ones chunked.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let json: Value = serde_json::from_str(&body).unwrap_or_else(|error| panic!("{error}: {body}"));
    assert_eq!(json["status"], "success", "{path}: {json}");
    json["data"].clone()
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// The result vector of an instant query.
fn query(prometheus: SocketAddr, promql: &str) -> Vec<Value> {
    let data = api(
        prometheus,
        &format!("/api/v1/query?query={}", encode(promql)),
    );
    data["result"].as_array().cloned().unwrap_or_default()
}

/// The single value of an instant query, if it has exactly one series.
fn value(prometheus: SocketAddr, promql: &str) -> Option<f64> {
    match query(prometheus, promql).as_slice() {
        [series] => series["value"][1].as_str()?.parse().ok(),
        _ => None,
    }
}

/// Polls `check` until it gives `Some`, for at most 90 s.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within 90 s");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn start_example(dir: &Path, endpoint: SocketAddr, traces: &Path) -> Running {
    let mut child = Command::new(example_binary("metrics"))
        .arg("--serve")
        .env("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
        .env("OTEL_EXPORTER_PROMETHEUS_PORT", endpoint.port().to_string())
        .env("OTEL_TRACES_EXPORTER", "jsonl")
        .env("WORKFLOW_OTEL_FILE", traces)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the metrics example starts");
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    assert_eq!(
        first.trim(),
        format!("metrics at http://{endpoint}/metrics")
    );
    running
}

fn start_prometheus(dir: &Path, web: SocketAddr, target: SocketAddr) -> Running {
    let binary = std::env::var("PROMETHEUS").unwrap_or_else(|_| "prometheus".to_owned());
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: shop\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(&binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .arg("--enable-feature=exemplar-storage")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|error| {
            panic!("{binary} does not start ({error}): run ./scripts/test, which installs it")
        });
    let running = Running(child);
    eventually("Prometheus listens", || TcpStream::connect(web).ok());
    running
}

#[test]
fn a_real_prometheus_scrapes_counts_exemplars_and_the_dashboard() {
    let dir = scratch_dir();
    let (endpoint, web) = (free_port(), free_port());
    let traces = dir.join("traces.jsonl");
    let _example = start_example(&dir, endpoint, &traces);
    let _prometheus = start_prometheus(&dir, web, endpoint);

    // The example ran `nightly_report` exactly five times at start, days 1
    // and 3 failing, each sleeping 30 ms.
    let exact = [
        (
            "workflow_calls_total{workflow_name=\"nightly_report\",outcome=\"ok\"}",
            3.0,
        ),
        (
            "workflow_calls_total{workflow_name=\"nightly_report\",outcome=\"error\"}",
            2.0,
        ),
        (
            "workflow_duration_seconds_count{workflow_name=\"nightly_report\"}",
            5.0,
        ),
        (
            "workflow_duration_seconds_bucket{workflow_name=\"nightly_report\",le=\"0.025\"}",
            0.0,
        ),
        (
            "workflow_duration_seconds_bucket{workflow_name=\"nightly_report\",le=\"600\"}",
            5.0,
        ),
        ("workflow_active{workflow_name=\"nightly_report\"}", 0.0),
        (
            "workflow_failures_total{workflow_name=\"nightly_report\",error_type=\"metrics::ReportError\"}",
            2.0,
        ),
    ];
    // The shop's own instruments (the OpenTelemetry metrics API, through
    // the global meter provider setup() installed): `import_catalog` ran
    // once with exact values.
    let scope = "otel_scope_name=\"shop\"";
    let own = [
        (format!("catalog_items_total{{{scope},region=\"eu\"}}"), 3.0),
        (format!("catalog_items_total{{{scope},region=\"us\"}}"), 2.0),
        (
            format!("catalog_item_price_USD_count{{{scope},region=\"eu\"}}"),
            3.0,
        ),
        (
            format!("catalog_item_price_USD_sum{{{scope},region=\"eu\"}}"),
            505.5,
        ),
        (
            format!("catalog_item_price_USD_sum{{{scope},region=\"us\"}}"),
            55.0,
        ),
        (
            format!("catalog_item_price_USD_bucket{{{scope},region=\"eu\",le=\"1\"}}"),
            1.0,
        ),
        (
            format!("catalog_item_price_USD_bucket{{{scope},region=\"eu\",le=\"10\"}}"),
            2.0,
        ),
        (
            format!("catalog_item_price_USD_bucket{{{scope},region=\"eu\",le=\"100\"}}"),
            2.0,
        ),
        (
            format!("catalog_item_price_USD_bucket{{{scope},region=\"eu\",le=\"+Inf\"}}"),
            3.0,
        ),
        (
            format!("catalog_item_price_USD_bucket{{{scope},region=\"us\",le=\"10\"}}"),
            1.0,
        ),
        (
            format!("catalog_item_price_USD_bucket{{{scope},region=\"us\",le=\"100\"}}"),
            2.0,
        ),
    ];
    for (promql, expected) in &own {
        let found = eventually(promql, || value(web, promql));
        assert_eq!(found, *expected, "{promql}");
    }
    // The observable gauge answers at every scrape, the counter of billed
    // orders grows with the workload.
    eventually("warehouse_stock", || {
        value(web, "warehouse_stock{warehouse=\"north\"}").filter(|stock| *stock <= 1000.0)
    });
    eventually("orders_placed_total", || {
        value(web, "sum(orders_placed_total)").filter(|placed| *placed >= 1.0)
    });
    for (promql, expected) in exact {
        let found = eventually(promql, || value(web, promql));
        assert_eq!(found, expected, "{promql}");
    }
    let scraped = query(web, "up{job=\"shop\"}");
    assert_eq!(scraped[0]["value"][1], "1", "{scraped:?}");

    // Exemplars of the order workflow's histogram name traces in the file.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let trace_ids: Vec<String> = eventually("exemplars", || {
        let data = api(
            web,
            &format!(
                "/api/v1/query_exemplars?query={}&start={}&end={}",
                encode("workflow_duration_seconds_bucket{workflow_name=\"handle_order\"}"),
                now - 600,
                now + 600
            ),
        );
        let ids: Vec<String> = data
            .as_array()?
            .iter()
            .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
            .filter_map(|exemplar| exemplar["labels"]["trace_id"].as_str().map(str::to_owned))
            .collect();
        (!ids.is_empty()).then_some(ids)
    });
    for id in &trace_ids {
        assert_eq!(id.len(), 32, "{id}");
    }
    eventually("an exemplar's trace in the JSON-lines file", || {
        let file = std::fs::read_to_string(&traces).ok()?;
        trace_ids
            .iter()
            .any(|id| file.contains(&format!("\"traceId\":\"{id}\"")))
            .then_some(())
    });

    // An exemplar of the shop's own histogram names a trace in the file:
    // the `import_catalog` workflow the prices were measured in.
    let catalog_exemplars: Vec<(String, String)> =
        eventually("exemplars of the shop's histogram", || {
            let data = api(
                web,
                &format!(
                    "/api/v1/query_exemplars?query={}&start={}&end={}",
                    encode("catalog_item_price_USD_bucket"),
                    now - 600,
                    now + 600
                ),
            );
            let ids: Vec<(String, String)> = data
                .as_array()?
                .iter()
                .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
                .filter_map(|exemplar| {
                    let labels = &exemplar["labels"];
                    Some((
                        labels["trace_id"].as_str()?.to_owned(),
                        labels["span_id"].as_str()?.to_owned(),
                    ))
                })
                .collect();
            (!ids.is_empty()).then_some(ids)
        });
    eventually("the catalog exemplar's span in the file", || {
        let file = std::fs::read_to_string(&traces).ok()?;
        let catalog = spans_named(&file, "import_catalog");
        let [workflow] = catalog.as_slice() else {
            return None;
        };
        // Measured in the workflow's body: its span is every exemplar's.
        assert!(
            catalog_exemplars
                .iter()
                .all(|exemplar| exemplar == workflow),
            "{catalog_exemplars:?} against {workflow:?}"
        );
        Some(())
    });

    // Every query of the dashboard returns data, with its variables set as
    // Grafana sets them for "All".
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../dashboards/workflow-otel.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 7);
    let mut checked = 0;
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let promql = expr
                .replace("$__rate_interval", "1m")
                .replace("$workflow", ".*");
            let series = eventually(&format!("panel {}: {promql}", panel["title"]), || {
                let result = query(web, &promql);
                (!result.is_empty()).then_some(result)
            });
            assert!(!series.is_empty());
            checked += 1;
        }
    }
    assert!(checked >= 11, "{checked} queries");
    // The workflow variable's query lists the example's workflows.
    let names = api(
        web,
        &format!(
            "/api/v1/label/workflow_name/values?{}",
            encode_pair("match[]", "workflow_calls_total")
        ),
    );
    for name in ["handle_order", "bill", "nightly_report"] {
        assert!(
            names.as_array().unwrap().iter().any(|found| found == name),
            "{names}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The (trace id, span id) of every span named `name` in a JSON-lines file
/// of OTLP requests.
fn spans_named(file: &str, name: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for line in file.lines() {
        let Ok(request) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        for resource in request["resourceSpans"].as_array().into_iter().flatten() {
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    if span["name"] == name {
                        found.push((
                            span["traceId"].as_str().unwrap_or_default().to_owned(),
                            span["spanId"].as_str().unwrap_or_default().to_owned(),
                        ));
                    }
                }
            }
        }
    }
    found
}

fn encode_pair(key: &str, value: &str) -> String {
    format!("{}={}", encode(key), encode(value))
}

/// `GET /metrics` with `accept`, the answer's body (the connection closed
/// after it).
fn scrape(endpoint: SocketAddr, accept: &str) -> String {
    let mut stream = TcpStream::connect(endpoint).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {endpoint}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    body.to_owned()
}

/// Both exposition formats of the `metrics` example (workflow, step and the
/// shop's own instruments, exemplars included) pass prometheus-client's
/// strict parsers (its OpenMetrics parser rejects what the standard does
/// not allow): the reference parsers of the formats, from PyPI.
#[test]
fn both_formats_pass_the_reference_parsers() {
    let python = std::env::var("WORKFLOW_OTEL_PYTHON").unwrap_or_else(|_| {
        panic!("WORKFLOW_OTEL_PYTHON must name a python with prometheus-client: run ./scripts/test")
    });
    // A folder of its own: the other test here clears `scratch_dir()`.
    let dir = std::env::temp_dir().join(format!(
        "workflow-otel-prometheus-parsers-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let endpoint = free_port();
    let traces = dir.join("traces.jsonl");
    let _example = start_example(&dir, endpoint, &traces);
    // Wait for the shop's instruments and an exemplar of its histogram.
    let open_metrics = eventually("the shop's metrics with an exemplar", || {
        let body = scrape(endpoint, "application/openmetrics-text;version=1.0.0");
        (body.contains("catalog_item_price_USD_bucket{") && body.contains(" # {trace_id="))
            .then_some(body)
    });
    let text = scrape(endpoint, "text/plain;version=0.0.4");
    std::fs::write(dir.join("metrics.om"), &open_metrics).unwrap();
    std::fs::write(dir.join("metrics.txt"), &text).unwrap();
    let check = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as text
folder = sys.argv[1]
parsed = {}
for name, parse in (("metrics.om", openmetrics), ("metrics.txt", text)):
    families = list(parse(open(folder + "/" + name).read()))
    parsed[name] = {family.name: family for family in families}
om, txt = parsed["metrics.om"], parsed["metrics.txt"]
exemplars = sum(1 for family in om.values() for sample in family.samples if sample.exemplar)
assert exemplars > 0, "no exemplar parsed"
for family in ("catalog_items", "catalog_item_price_USD", "warehouse_stock", "workflow_calls"):
    assert family in om, family
placed = [s for s in om["catalog_items"].samples if s.name == "catalog_items_total" and s.labels.get("region") == "eu"]
assert [s.value for s in placed] == [3.0], placed
assert om["catalog_item_price_USD"].type == "histogram" and om["catalog_item_price_USD"].unit == "USD"
print(len(om), "families,", exemplars, "exemplars")
"#;
    let output = Command::new(&python)
        .arg("-c")
        .arg(check)
        .arg(&dir)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}\n{open_metrics}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `OTEL_METRICS_EXPORTER=console` prints the Prometheus text at shutdown
/// (the `logs` example chooses no metrics exporter in code).
#[test]
fn console_metrics_are_printed_at_shutdown() {
    let output = Command::new(example_binary("logs"))
        .env("OTEL_METRICS_EXPORTER", "console")
        .env("OTEL_TRACES_EXPORTER", "none")
        .env_remove("RUST_LOG")
        .output()
        .expect("the logs example runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    for line in [
        "# TYPE workflow_calls_total counter",
        "workflow_calls_total{workflow_name=\"import_batch\",outcome=\"ok\"} 3",
        "workflow_calls_total{workflow_name=\"import_batch\",outcome=\"error\"} 1",
        "workflow_step_calls_total{workflow_name=\"import_batch\",step_name=\"store\",outcome=\"ok\"} 3",
        "workflow_active{workflow_name=\"import_batch\"} 0",
    ] {
        assert!(
            stdout.lines().any(|found| found == line),
            "missing `{line}` in:\n{stdout}"
        );
    }
}
