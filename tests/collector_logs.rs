//! OpenTelemetry log records through a real collector, rotel, over each OTLP
//! protocol: the `logs` example exports its log records to rotel and its
//! spans to a JSON-lines file; every record rotel forwards must carry the
//! trace and span id of a span in that file (or none, for the two lines
//! outside workflows), with its severity and message.
//!
//! Not part of `cargo test`: `scripts/test` runs it once rotel is installed
//! (`ROTEL_AGENT`) and the examples are built.

#[path = "support/examples.rs"]
mod examples;
#[path = "support/rotel.rs"]
mod rotel;
mod support;

use std::collections::HashMap;
use std::io::BufReader;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use examples::example_binary;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::LogsServiceServer;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use rotel::start_rotel;
use support::{LogsReceived, LogsReceiver, serve_grpc};
use workflow_otel::read_json_lines;

fn start_receiver(runtime: &tokio::runtime::Runtime) -> (SocketAddr, LogsReceived) {
    let received = LogsReceived::default();
    let address = serve_grpc(
        runtime,
        tonic::transport::Server::builder().add_service(
            LogsServiceServer::new(LogsReceiver(received.clone()))
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
        ),
    );
    (address, received)
}

/// The records forwarded for `service`.
fn records_of(received: &LogsReceived, service: &str) -> Vec<LogRecord> {
    received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, request)| &request.resource_logs)
        .filter(|logs| {
            logs.resource.as_ref().is_some_and(|resource| {
                resource.attributes.iter().any(|attribute| {
                    attribute.key == "service.name"
                        && matches!(
                            attribute.value.as_ref().and_then(|value| value.value.as_ref()),
                            Some(any_value::Value::StringValue(name)) if name == service
                        )
                })
            })
        })
        .flat_map(|logs| &logs.scope_logs)
        .flat_map(|scope| scope.log_records.clone())
        .collect()
}

fn body(record: &LogRecord) -> String {
    match record.body.as_ref().and_then(|body| body.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        other => format!("{other:?}"),
    }
}

/// The example's records at INFO and above: 12 inside workflows, 2 outside.
const RECORDS: usize = 14;

/// The spans the example records (its JSON-lines file holds 11).
const SPANS: usize = 11;

#[test]
fn log_records_reach_a_real_collector_with_their_trace_context() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (receiver, received) = start_receiver(&runtime);
    let rotel = start_rotel(receiver);
    let dir = std::env::temp_dir().join(format!("workflow-otel-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (protocol, endpoint) in [
        ("grpc", format!("http://{}", rotel.grpc)),
        ("http/protobuf", format!("http://{}/v1/logs", rotel.http)),
        ("http/json", format!("http://{}/v1/logs", rotel.http)),
    ] {
        let service = format!("logs-{}", protocol.replace('/', "-"));
        let traces = dir.join(format!("{service}.jsonl"));
        let output = Command::new(example_binary("logs"))
            .env("OTEL_SERVICE_NAME", &service)
            .env("OTEL_LOGS_EXPORTER", "otlp")
            .env("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", &endpoint)
            .env("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", protocol)
            .env("OTEL_TRACES_EXPORTER", "jsonl")
            .env("WORKFLOW_OTEL_FILE", &traces)
            .env_remove("RUST_LOG")
            .output()
            .expect("the logs example runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // Every line on stdout is the service's own, and names it.
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(stdout.lines().count() >= RECORDS, "{stdout}");
        for line in stdout.lines() {
            let line: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("{protocol}: {error}: {line}"));
            assert_eq!(line["service.name"], service.as_str(), "{line}");
            assert_eq!(line["target"], "logs", "{line}");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let records = loop {
            let records = records_of(&received, &service);
            if records.len() >= RECORDS {
                break records;
            }
            assert!(
                Instant::now() < deadline,
                "{protocol}: {} of {RECORDS} records within 20 s",
                records.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(records.len(), RECORDS, "{protocol}");
        let spans = read_json_lines(BufReader::new(std::fs::File::open(&traces).unwrap())).unwrap();
        let by_id: HashMap<Vec<u8>, _> = spans
            .iter()
            .map(|span| (span.span_context.span_id().to_bytes().to_vec(), span))
            .collect();
        let mut inside = 0;
        for record in &records {
            let text = body(record);
            if text.starts_with("importer") {
                assert!(
                    record.trace_id.is_empty() && record.span_id.is_empty(),
                    "{protocol}: {text}"
                );
                continue;
            }
            let span = by_id.get(&record.span_id).unwrap_or_else(|| {
                panic!("{protocol}: `{text}` names a span that was not exported")
            });
            assert_eq!(
                record.trace_id,
                span.span_context.trace_id().to_bytes().to_vec()
            );
            let expected_span = match text.as_str() {
                "import started" => "import_batch",
                "malformed row skipped" | "empty batch" => "parse",
                "rows stored" | "index refreshed" => "store",
                other => panic!("{protocol}: unexpected record `{other}`"),
            };
            assert_eq!(span.name, expected_span, "{protocol}: {text}");
            let (severity, number) = match text.as_str() {
                "malformed row skipped" => ("WARN", 13),
                "empty batch" => ("ERROR", 17),
                _ => ("INFO", 9),
            };
            assert_eq!(
                (record.severity_text.as_str(), record.severity_number),
                (severity, number)
            );
            inside += 1;
        }
        assert_eq!(inside, RECORDS - 2, "{protocol}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the `logs` example with `settings` (and no `RUST_LOG`), which must
/// succeed: how long it took, and its stderr.
fn logs_example_with(settings: &[(&str, &str)]) -> (Duration, String) {
    let started = Instant::now();
    let output = Command::new(example_binary("logs"))
        .envs(settings.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .expect("the logs example runs");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    (took, stderr)
}

#[test]
fn a_backend_that_never_answers_costs_the_shutdown_bound_and_is_reported() {
    // Accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    let (took, stderr) = logs_example_with(&[
        ("OTEL_LOGS_EXPORTER", "otlp"),
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            &format!("http://{address}/v1/logs"),
        ),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf"),
        // Far longer than the 5 s shutdown bound: the bound must hold anyway.
        ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "60000"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ]);
    // The guard's 5 s, plus start-up; not the 60 s export timeout.
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert!(
        stderr.contains(&format!(
            "{RECORDS} of {RECORDS} log records were not exported"
        )),
        "{stderr}"
    );
    drop(silent);
}

/// Traces, metrics and logs into one backend that accepts and never
/// answers, each with an export timeout far past the bound, a metrics push
/// under way when the guard drops: the process ends within the one 5 s
/// shutdown bound (plus start-up), and every signal says what it lost.
#[test]
fn every_signal_into_a_silent_backend_ends_within_the_one_bound() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    let (took, stderr) = logs_example_with(&[
        ("OTEL_TRACES_EXPORTER", "otlp"),
        ("OTEL_METRICS_EXPORTER", "otlp"),
        ("OTEL_LOGS_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://{address}")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "60000"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "60000"),
        // A push every millisecond: one is under way at shutdown.
        ("OTEL_METRIC_EXPORT_INTERVAL", "1"),
    ]);
    // Before the bound held for every signal, this took the 60 s timeout.
    assert!(took < Duration::from_secs(9), "{took:?}: {stderr}");
    for said in [
        format!("{RECORDS} of {RECORDS} log records were not exported"),
        format!(
            "{SPANS} spans dropped (queue full, export failed or timed out); {SPANS} dropped and 0 exported in all"
        ),
        "a metrics push was still under way after the shutdown bound".to_owned(),
    ] {
        assert!(stderr.contains(&said), "missing `{said}` in:\n{stderr}");
    }
    drop(silent);
}

/// With the default console trees, stdout stays the stream of JSON lines
/// (`cargo run --example logs | jq` reads every line); the trees go to stderr.
#[test]
fn json_log_lines_keep_stdout_to_themselves() {
    let output = Command::new(example_binary("logs"))
        .env_remove("OTEL_TRACES_EXPORTER")
        .env_remove("RUST_LOG")
        .output()
        .expect("the logs example runs");
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), RECORDS, "{stdout}");
    for line in stdout.lines() {
        let line: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"));
        assert_eq!(line["service.name"], "importer");
    }
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr
            .lines()
            .any(|line| line.starts_with("workflow import_batch [")),
        "{stderr}"
    );
}
