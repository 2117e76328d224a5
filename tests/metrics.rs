//! Metrics read the way Prometheus reads them: over HTTP from the endpoint
//! `setup()` starts. Every test runs workflows of its own (metrics are
//! per process, labelled by name) and checks exact counts, buckets, failures,
//! the in-flight gauge, sampling independence and exemplars.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use opentelemetry_sdk::trace::Sampler;
use workflow_otel::testing::Capture;
use workflow_otel::{TelemetryGuard, step, workflow};

/// The bounds every test here uses: a fast call lands in the first bucket,
/// a call sleeping 120 ms in the third.
const BUCKETS: [f64; 3] = [0.05, 0.1, 5.0];

/// One endpoint for the whole test binary (metrics are per process); spans
/// go nowhere unless a test captures them.
fn endpoint() -> SocketAddr {
    static TELEMETRY: OnceLock<TelemetryGuard> = OnceLock::new();
    TELEMETRY
        .get_or_init(|| {
            workflow_otel::setup()
                .environment_from(|name| (name == "OTEL_TRACES_EXPORTER").then(|| "none".into()))
                .prometheus_address("127.0.0.1:0")
                .metric_buckets(BUCKETS)
                .try_install()
                .expect("the endpoint starts")
        })
        .prometheus_address()
        .expect("listening")
}

/// The raw answer to one request: its head, and the body its
/// `Content-Length` announces (the connection is kept alive, so the answer
/// ends there, not at the close). A `HEAD` answer has no body.
fn request(address: SocketAddr, text: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(text.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        if let Some(at) = answer.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream.read(&mut chunk).unwrap();
        assert!(read > 0, "the connection closed before the head ended");
        answer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    let wanted = if text.starts_with("HEAD ") { 0 } else { length };
    while answer.len() < head_end + wanted {
        let read = stream.read(&mut chunk).unwrap();
        assert!(read > 0, "the connection closed before the body ended");
        answer.extend_from_slice(&chunk[..read]);
    }
    String::from_utf8(answer).unwrap()
}

/// `GET /metrics` in the Prometheus text format: (content type, body).
fn scrape_with(accept: &str) -> (String, String) {
    let address = endpoint();
    let answer = request(
        address,
        &format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nAccept: {accept}\r\n\r\n"),
    );
    let (head, body) = answer.split_once("\r\n\r\n").expect("a complete answer");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let content_type = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Type: "))
        .unwrap_or_default()
        .to_owned();
    (content_type, body.to_owned())
}

fn scrape() -> String {
    scrape_with("text/plain").1
}

/// The lines of `body` that mention `workflow_name="{workflow}"`.
fn lines_of(body: &str, workflow: &str) -> Vec<String> {
    let label = format!("workflow_name=\"{workflow}\"");
    body.lines()
        .filter(|line| line.contains(&label))
        .map(str::to_owned)
        .collect()
}

#[derive(Debug)]
struct StepError;

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "step failed")
    }
}

#[step]
fn quick() -> u32 {
    1
}

#[step]
fn slow() -> u32 {
    std::thread::sleep(Duration::from_millis(120));
    2
}

#[step]
fn fallible(fail: bool) -> Result<u32, StepError> {
    if fail { Err(StepError) } else { Ok(3) }
}

#[step]
fn explode() {
    panic!("the step blew up");
}

#[workflow]
fn metered_orders(fail: bool) -> Result<u32, StepError> {
    Ok(quick() + slow() + fallible(fail)?)
}

#[workflow]
fn metered_panics() {
    let _ = std::panic::catch_unwind(explode);
}

#[step]
async fn never_ready() {
    std::future::pending::<()>().await;
}

#[workflow]
async fn metered_cancels() {
    // Polled once, then dropped: the step is cancelled, the workflow not.
    let mut step = std::pin::pin!(never_ready());
    let waker = std::task::Waker::noop();
    let _ = step
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker));
}

use std::future::Future as _;

#[test]
fn counts_every_call_by_outcome_with_exact_buckets() {
    // Metrics count from the setup that turns them on.
    endpoint();
    let capture = Capture::new();
    capture.run(|| {
        assert!(metered_orders(false).is_ok());
        assert!(metered_orders(false).is_ok());
        assert!(metered_orders(true).is_err());
    });
    let body = scrape();
    let step_lines = lines_of(&body, "metered_orders");
    let expect = [
        // The workflow: 3 runs, each at least 120 ms and well under 5 s.
        "workflow_duration_seconds_bucket{workflow_name=\"metered_orders\",le=\"0.05\"} 0",
        "workflow_duration_seconds_bucket{workflow_name=\"metered_orders\",le=\"0.1\"} 0",
        "workflow_duration_seconds_bucket{workflow_name=\"metered_orders\",le=\"5\"} 3",
        "workflow_duration_seconds_bucket{workflow_name=\"metered_orders\",le=\"+Inf\"} 3",
        "workflow_duration_seconds_count{workflow_name=\"metered_orders\"} 3",
        "workflow_calls_total{workflow_name=\"metered_orders\",outcome=\"ok\"} 2",
        "workflow_calls_total{workflow_name=\"metered_orders\",outcome=\"error\"} 1",
        "workflow_calls_total{workflow_name=\"metered_orders\",outcome=\"panic\"} 0",
        "workflow_calls_total{workflow_name=\"metered_orders\",outcome=\"cancelled\"} 0",
        "workflow_failures_total{workflow_name=\"metered_orders\",error_type=\"metrics::StepError\"} 1",
        "workflow_active{workflow_name=\"metered_orders\"} 0",
        // Steps, labelled with the workflow they ran in.
        "workflow_step_duration_seconds_bucket{workflow_name=\"metered_orders\",step_name=\"quick\",le=\"0.05\"} 3",
        "workflow_step_duration_seconds_bucket{workflow_name=\"metered_orders\",step_name=\"slow\",le=\"0.1\"} 0",
        "workflow_step_duration_seconds_bucket{workflow_name=\"metered_orders\",step_name=\"slow\",le=\"5\"} 3",
        "workflow_step_duration_seconds_count{workflow_name=\"metered_orders\",step_name=\"slow\"} 3",
        "workflow_step_calls_total{workflow_name=\"metered_orders\",step_name=\"fallible\",outcome=\"ok\"} 2",
        "workflow_step_calls_total{workflow_name=\"metered_orders\",step_name=\"fallible\",outcome=\"error\"} 1",
        "workflow_step_failures_total{workflow_name=\"metered_orders\",step_name=\"fallible\",error_type=\"metrics::StepError\"} 1",
    ];
    for line in expect {
        assert!(
            step_lines.iter().any(|found| found == line),
            "missing `{line}` in:\n{}",
            step_lines.join("\n")
        );
    }
    // The sum is the recorded durations' sum: at least 3 × 120 ms.
    let sum: f64 = step_lines
        .iter()
        .find_map(|line| {
            line.strip_prefix(
                "workflow_step_duration_seconds_sum{workflow_name=\"metered_orders\",step_name=\"slow\"} ",
            )
        })
        .expect("a sum")
        .parse()
        .unwrap();
    assert!((0.36..5.0).contains(&sum), "{sum}");
    // The spans agree with the metrics: three workflow spans, one failed.
    let spans = capture.spans();
    assert_eq!(
        spans
            .iter()
            .filter(|span| span.name == "metered_orders")
            .count(),
        3
    );
}

#[test]
fn panics_and_cancellations_have_their_own_outcomes() {
    // Metrics count from the setup that turns them on.
    endpoint();
    let capture = Capture::new();
    capture.run(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        metered_panics();
        std::panic::set_hook(previous);
        let waker = std::task::Waker::noop();
        let mut workflow = std::pin::pin!(metered_cancels());
        assert!(
            workflow
                .as_mut()
                .poll(&mut std::task::Context::from_waker(waker))
                .is_ready()
        );
    });
    let body = scrape();
    for line in [
        "workflow_step_calls_total{workflow_name=\"metered_panics\",step_name=\"explode\",outcome=\"panic\"} 1",
        "workflow_step_failures_total{workflow_name=\"metered_panics\",step_name=\"explode\",error_type=\"panic\"} 1",
        "workflow_calls_total{workflow_name=\"metered_panics\",outcome=\"ok\"} 1",
        "workflow_step_calls_total{workflow_name=\"metered_cancels\",step_name=\"never_ready\",outcome=\"cancelled\"} 1",
        "workflow_calls_total{workflow_name=\"metered_cancels\",outcome=\"ok\"} 1",
    ] {
        assert!(body.lines().any(|found| found == line), "missing `{line}`");
    }
}

#[workflow]
fn metered_waiting(started: mpsc::Sender<()>, release: mpsc::Receiver<()>) {
    started.send(()).unwrap();
    release.recv().unwrap();
}

#[test]
fn in_flight_goes_up_while_a_workflow_runs_and_back_to_zero() {
    // Metrics count from the setup that turns them on.
    endpoint();
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let capture = Capture::new();
    let worker = {
        let instrumentation = capture.instrumentation().clone();
        std::thread::spawn(move || instrumentation.run(|| metered_waiting(started_tx, release_rx)))
    };
    started.recv().unwrap();
    let running = scrape();
    assert!(
        running
            .lines()
            .any(|line| line == "workflow_active{workflow_name=\"metered_waiting\"} 1")
    );
    release.send(()).unwrap();
    worker.join().unwrap();
    let done = scrape();
    assert!(
        done.lines()
            .any(|line| line == "workflow_active{workflow_name=\"metered_waiting\"} 0")
    );
    assert!(done.lines().any(|line| {
        line == "workflow_calls_total{workflow_name=\"metered_waiting\",outcome=\"ok\"} 1"
    }));
}

#[step]
fn sampled_or_not(fail: bool) -> Result<(), StepError> {
    if fail { Err(StepError) } else { Ok(()) }
}

#[workflow]
fn metered_sampling(run: u32) -> Result<(), StepError> {
    sampled_or_not(false)?;
    sampled_or_not(run.is_multiple_of(4))
}

fn sampling_counts() -> Vec<String> {
    let mut lines = lines_of(&scrape(), "metered_sampling");
    lines.retain(|line| line.contains("_calls_total") || line.contains("_count{"));
    lines
}

#[test]
fn counts_do_not_change_when_no_trace_is_sampled() {
    // Metrics count from the setup that turns them on.
    endpoint();
    let all = Capture::new();
    all.run(|| {
        for run in 0..8 {
            let _ = metered_sampling(run);
        }
    });
    let after_sampled = sampling_counts();
    assert_eq!(all.spans().len(), 8 * 3);
    let none = Capture::new().sampler(Sampler::AlwaysOff);
    none.run(|| {
        for run in 0..8 {
            let _ = metered_sampling(run);
        }
    });
    assert_eq!(none.spans().len(), 0, "a 0% sampler records no span");
    let after_unsampled = sampling_counts();
    // Every count doubled: the unsampled runs counted exactly as the sampled ones.
    let doubled: Vec<String> = after_sampled
        .iter()
        .map(|line| {
            let (series, count) = line.rsplit_once(' ').unwrap();
            format!("{series} {}", count.parse::<u64>().unwrap() * 2)
        })
        .collect();
    assert_eq!(after_unsampled, doubled);
    assert!(after_unsampled.contains(
        &"workflow_step_calls_total{workflow_name=\"metered_sampling\",step_name=\"sampled_or_not\",outcome=\"error\"} 4"
            .to_owned()
    ));
    assert!(after_unsampled.contains(
        &"workflow_calls_total{workflow_name=\"metered_sampling\",outcome=\"ok\"} 12".to_owned()
    ));
}

#[workflow]
fn metered_exemplars(slow_down: bool) {
    if slow_down {
        slow();
    } else {
        quick();
    }
}

#[test]
fn exemplars_name_spans_that_were_exported() {
    // Metrics count from the setup that turns them on.
    endpoint();
    let capture = Capture::new();
    capture.run(|| {
        metered_exemplars(false);
        metered_exemplars(true);
    });
    let (content_type, body) =
        scrape_with("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5");
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("# EOF\n"));
    let spans = capture.spans();
    let mut exemplars = 0;
    for line in lines_of(&body, "metered_exemplars") {
        let Some((sample, exemplar)) = line.split_once(" # ") else {
            continue;
        };
        assert!(
            sample.contains("_bucket{"),
            "exemplars only on buckets: {line}"
        );
        let trace = exemplar
            .split("trace_id=\"")
            .nth(1)
            .unwrap()
            .get(..32)
            .unwrap();
        let span = exemplar
            .split("span_id=\"")
            .nth(1)
            .unwrap()
            .get(..16)
            .unwrap();
        let found = spans
            .iter()
            .find(|data| data.span_context.span_id().to_string() == span)
            .unwrap_or_else(|| panic!("exemplar span {span} was not exported"));
        assert_eq!(found.span_context.trace_id().to_string(), trace);
        exemplars += 1;
    }
    // The fast and the slow run fell in different buckets of the workflow
    // histogram, and so did their steps (both step series are labelled
    // with this workflow): four exemplars in all.
    assert_eq!(exemplars, 4, "{body}");
    // The plain text format carries none.
    assert!(
        lines_of(&scrape(), "metered_exemplars")
            .iter()
            .all(|line| !line.contains(" # "))
    );
}

#[workflow]
fn metered_formats() {
    quick();
}

#[test]
fn both_formats_are_well_formed() {
    // Metrics count from the setup that turns them on.
    endpoint();
    let capture = Capture::new();
    capture.run(metered_formats);
    let (text_type, text) = scrape_with("*/*");
    assert_eq!(text_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(text.contains("# TYPE workflow_calls_total counter\n"));
    assert!(text.contains("# TYPE workflow_duration_seconds histogram\n"));
    assert!(text.contains("# TYPE target_info gauge\n"));
    assert!(!text.contains("# EOF"));
    let (_, open_metrics) = scrape_with("application/openmetrics-text");
    assert!(open_metrics.contains("# TYPE workflow_calls counter\n"));
    assert!(open_metrics.contains("# UNIT workflow_duration_seconds seconds\n"));
    assert!(open_metrics.contains("# TYPE target info\n"));
    assert!(open_metrics.contains("target_info{"));
    assert_eq!(open_metrics.matches("# EOF").count(), 1);
    // Every sample line is `name{labels} value[ # exemplar]`, and every
    // family is declared before its samples.
    for body in [&text, &open_metrics] {
        let mut declared = Vec::new();
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap().to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (name, rest) = line.split_once('{').expect(line);
            assert!(rest.contains("} "), "{line}");
            assert!(
                declared
                    .iter()
                    .any(|family| name.starts_with(family.as_str())),
                "{name} before its TYPE"
            );
        }
    }
}

#[test]
fn the_endpoint_answers_only_scrapes_and_survives_bad_clients() {
    // Metrics count from the setup that turns them on.
    endpoint();
    let address = endpoint();
    let status = |answer: &str| answer.lines().next().unwrap_or_default().to_owned();
    assert_eq!(
        status(&request(address, "GET / HTTP/1.1\r\n\r\n")),
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        status(&request(address, "DELETE /metrics HTTP/1.1\r\n\r\n")),
        "HTTP/1.1 405 Method Not Allowed"
    );
    let head = request(address, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200 OK") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    // A request head larger than the limit is refused, not read to the end.
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    let mut stream = TcpStream::connect(address).unwrap();
    let _ = stream.write_all(huge.as_bytes());
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert_eq!(
        status(&answer),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // A client that says nothing is given up on after its timeout, and the
    // next scrape is answered.
    let silent = TcpStream::connect(address).unwrap();
    assert!(scrape().contains("target_info"));
    drop(silent);
}

#[test]
fn a_port_in_use_is_a_setup_error() {
    // Metrics count from the setup that turns them on.
    endpoint();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let error = workflow_otel::setup()
        .environment_from(|_| None)
        .prometheus_address(address.clone())
        .metric_buckets(BUCKETS)
        .try_install()
        .expect_err("the port is taken");
    assert_eq!(error.setting, "Setup::prometheus_address");
    assert_eq!(error.value, address);
    assert!(error.reason.contains("the port is in use"), "{error}");
}

#[workflow]
fn metered_unsampled_panics() {
    let _ = std::panic::catch_unwind(explode);
}

#[workflow]
async fn metered_unsampled_cancels() {
    let mut step = std::pin::pin!(never_ready());
    let _ = step
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
}

#[test]
fn unsampled_panics_and_cancellations_count_too() {
    // Metrics count from the setup that turns them on.
    endpoint();
    let none = Capture::new().sampler(Sampler::AlwaysOff);
    none.run(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        metered_unsampled_panics();
        std::panic::set_hook(previous);
        let mut workflow = std::pin::pin!(metered_unsampled_cancels());
        let _ = workflow
            .as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
    });
    assert!(none.spans().is_empty());
    let body = scrape();
    for line in [
        "workflow_step_calls_total{workflow_name=\"metered_unsampled_panics\",step_name=\"explode\",outcome=\"panic\"} 1",
        "workflow_step_failures_total{workflow_name=\"metered_unsampled_panics\",step_name=\"explode\",error_type=\"panic\"} 1",
        "workflow_step_calls_total{workflow_name=\"metered_unsampled_cancels\",step_name=\"never_ready\",outcome=\"cancelled\"} 1",
        "workflow_calls_total{workflow_name=\"metered_unsampled_cancels\",outcome=\"ok\"} 1",
        "workflow_active{workflow_name=\"metered_unsampled_cancels\"} 0",
    ] {
        assert!(body.lines().any(|found| found == line), "missing `{line}`");
    }
}

#[workflow]
fn metered_pushed() {}

fn otlp_metrics_setup(endpoint: String, shutdown_timeout: Duration) -> TelemetryGuard {
    let settings = [
        ("OTEL_SERVICE_NAME", "pushed".to_owned()),
        ("OTEL_TRACES_EXPORTER", "none".to_owned()),
        ("OTEL_METRICS_EXPORTER", "otlp".to_owned()),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint),
        (
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            "http/protobuf".to_owned(),
        ),
        // Longer than the shutdown timeout: the bound must come from that.
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "30000".to_owned()),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "30000".to_owned()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "3600000".to_owned()),
    ];
    workflow_otel::setup()
        .environment_from(support::environment(settings))
        .metric_buckets(BUCKETS)
        .pipeline_config(workflow_otel::PipelineConfig {
            shutdown_timeout,
            ..workflow_otel::PipelineConfig::default()
        })
        .try_install()
        .unwrap()
}

#[test]
fn shutdown_pushes_the_last_interval() {
    // Metrics count from the setup that turns them on.
    endpoint();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let address = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(support::http_receiver_of::<
            opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
        >(listener, received.clone(), "/v1/metrics"));
        address
    });
    let telemetry = otlp_metrics_setup(
        format!("http://{address}/v1/metrics"),
        Duration::from_secs(5),
    );
    Capture::new().run(metered_pushed);
    // The interval is an hour: only the push at shutdown can carry the call.
    assert!(received.lock().unwrap().is_empty());
    drop(telemetry);
    let requests = received.lock().unwrap();
    assert_eq!(requests.len(), 1, "one push, at shutdown");
    let (encoding, request) = &requests[0];
    assert_eq!(encoding, "application/x-protobuf ");
    let calls = request.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|metric| metric.name == "workflow.calls")
        .expect("workflow.calls");
    let text = format!("{calls:?}");
    assert!(text.contains("metered_pushed"), "{text}");
}

#[test]
fn the_last_push_is_bounded_by_the_shutdown_timeout() {
    // Metrics count from the setup that turns them on.
    endpoint();
    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    let telemetry = otlp_metrics_setup(
        format!("http://{address}/v1/metrics"),
        Duration::from_millis(300),
    );
    Capture::new().run(metered_pushed);
    // A flush waits for its push no longer than the bound either.
    let started = std::time::Instant::now();
    telemetry.flush();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "flush: {took:?}");
    // The push the flush left hanging is still under way: the drop waits
    // for it no longer than the bound, and lets it go.
    let started = std::time::Instant::now();
    drop(telemetry);
    let took = started.elapsed();
    // 300 ms, not the 30 s push timeout; a wide margin for a loaded machine.
    assert!(took < Duration::from_secs(3), "{took:?}");
    drop(silent);
}

#[step]
fn ask_model(fail: bool) {
    use workflow_otel::genai::{ModelCall, Usage};
    let call = ModelCall::chat("openai", "gpt-4o-metrics").start();
    if fail {
        call.fail("rate_limited", &"429 Too Many Requests");
    } else {
        call.finish(Usage::tokens(1_000, 100));
    }
}

#[workflow]
fn metered_agent() {
    ask_model(false);
    ask_model(false);
    ask_model(true);
}

#[test]
fn model_calls_add_the_genai_client_metrics() {
    // Metrics count from the setup that turns them on.
    endpoint();
    use workflow_otel::genai::{Price, PriceTable};
    let capture = Capture::new()
        .prices(PriceTable::new("USD").model("gpt-4o-metrics", Price::per_million(2.5, 10.0)));
    capture.run(metered_agent);
    let (_, body) = scrape_with("application/openmetrics-text");
    let model = "gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"gpt-4o-metrics\"";
    for line in [
        "# TYPE gen_ai_client_operation_duration_seconds histogram".to_owned(),
        "# UNIT gen_ai_client_operation_duration_seconds seconds".to_owned(),
        format!("gen_ai_client_operation_duration_seconds_count{{{model}}} 2"),
        format!("gen_ai_client_operation_duration_seconds_count{{{model},error_type=\"rate_limited\"}} 1"),
        // The conventions' token buckets: 1,000 input tokens fall in
        // (256, 1024], 100 output tokens in (64, 256].
        format!("gen_ai_client_token_usage_bucket{{{model},gen_ai_token_type=\"input\",le=\"256\"}} 0"),
        format!("gen_ai_client_token_usage_bucket{{{model},gen_ai_token_type=\"input\",le=\"1024\"}} 2"),
        format!("gen_ai_client_token_usage_bucket{{{model},gen_ai_token_type=\"output\",le=\"64\"}} 0"),
        format!("gen_ai_client_token_usage_bucket{{{model},gen_ai_token_type=\"output\",le=\"256\"}} 2"),
        format!("gen_ai_client_token_usage_sum{{{model},gen_ai_token_type=\"input\"}} 2000"),
        // 2 × (1,000 × 2.5 + 100 × 10) / 1,000,000 USD.
        "workflow_gen_ai_cost_total{gen_ai_provider_name=\"openai\",gen_ai_request_model=\"gpt-4o-metrics\",currency=\"USD\"} 0.007".to_owned(),
    ] {
        // Compared without the exemplar a bucket may carry.
        assert!(
            body.lines()
                .any(|found| found.split(" # ").next() == Some(line.as_str())),
            "missing `{line}` in:\n{body}"
        );
    }
    // Bucket exemplars name the model calls' spans, in both GenAI histograms.
    let spans = capture.spans();
    for family in [
        "gen_ai_client_operation_duration_seconds_bucket",
        "gen_ai_client_token_usage_bucket",
    ] {
        let exemplars: Vec<&str> = body
            .lines()
            .filter(|line| line.starts_with(family) && line.contains("gpt-4o-metrics"))
            .filter_map(|line| line.split_once(" # ").map(|(_, exemplar)| exemplar))
            .collect();
        assert!(!exemplars.is_empty(), "no exemplar on {family}:\n{body}");
        for exemplar in exemplars {
            let span_id = exemplar
                .split("span_id=\"")
                .nth(1)
                .and_then(|rest| rest.get(..16))
                .unwrap_or_else(|| panic!("{exemplar}"));
            assert!(
                spans.iter().any(|span| span.name == "chat gpt-4o-metrics"
                    && span.span_context.span_id().to_string() == span_id),
                "{family}: exemplar {exemplar} names no model call span"
            );
        }
    }
    // The failed call used no tokens: it has no token series.
    assert!(!body.contains("error_type=\"rate_limited\",gen_ai_token_type"));
}
