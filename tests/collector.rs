//! End to end through a real OpenTelemetry collector, rotel (installed from
//! PyPI by `scripts/test`, which sets `ROTEL_AGENT`): the application exports
//! to rotel over each OTLP protocol; rotel forwards over gRPC to an in-test
//! receiver built on the official protobuf definitions; what arrives must be
//! exactly the spans the application exported. A file written by the
//! JSON-lines exporter, replayed into rotel's OTLP/HTTP JSON endpoint, must
//! arrive as the same spans too. Metrics pushed over each protocol must
//! arrive with their counts and with exemplars that name exported spans.
//! rotel binds loopback only and is stopped by its PID.
//!
//! Not part of `cargo test`: run with `scripts/test`, or
//! `ROTEL_AGENT=/path/to/rotel-agent cargo test -p workflow-otel-tests --test collector`.

#[path = "support/rotel.rs"]
mod rotel;
mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsServiceServer;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
use opentelemetry_proto::tonic::common::v1::{KeyValue as ProtoKeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, metric, number_data_point};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use rotel::start_rotel;
use support::{
    GrpcReceiver, MetricsReceived, MetricsReceiver, Received, Tee, checkout, export_checkout,
    normalized, resource, serve_grpc, span_count, take_received,
};
use workflow_otel::{
    Instrumentation, JsonLinesExporter, OtlpExporter, OtlpProtocol, OtlpSettings, Pipeline,
    PipelineConfig,
};

fn start_receiver(runtime: &tokio::runtime::Runtime) -> (SocketAddr, Received) {
    let received = Received::default();
    let address = serve_grpc(
        runtime,
        tonic::transport::Server::builder().add_service(
            // rotel forwards gzip-compressed.
            TraceServiceServer::new(GrpcReceiver(received.clone()))
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
        ),
    );
    (address, received)
}

/// Waits until `count` spans have come through (rotel batches for 20 ms).
fn wait_for(received: &Received, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while span_count(received) < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} spans arrived within 20 s",
            span_count(received)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn each_protocol_reaches_a_real_collector_intact() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (receiver, received) = start_receiver(&runtime);
    let rotel = start_rotel(receiver);
    let protocols = [
        (OtlpProtocol::Grpc, format!("http://{}", rotel.grpc)),
        (
            OtlpProtocol::HttpProtobuf,
            format!("http://{}/v1/traces", rotel.http),
        ),
        (
            OtlpProtocol::HttpJson,
            format!("http://{}/v1/traces", rotel.http),
        ),
    ];
    for (protocol, endpoint) in protocols {
        let service = format!("collector-{protocol:?}");
        let otlp = OtlpExporter::new(&OtlpSettings {
            endpoint,
            protocol,
            headers: vec![],
            timeout: Duration::from_secs(5),
            gzip: protocol != OtlpProtocol::HttpJson,
            tls: Default::default(),
        })
        .unwrap();
        let copy = Arc::new(Mutex::new(Vec::new()));
        export_checkout(
            Tee {
                otlp,
                copy: copy.clone(),
            },
            resource(&service),
        );
        let spans = copy.lock().unwrap().clone();
        wait_for(&received, spans.len());
        let arrived = take_received(&received);
        let expected = group_spans_by_resource_and_scope(
            spans,
            &ResourceAttributesWithSchema::from(&resource(&service)),
        );
        assert_eq!(normalized(arrived), normalized(expected), "{protocol:?}");
    }
}

#[test]
fn a_json_lines_file_replays_into_a_real_collector() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (receiver, received) = start_receiver(&runtime);
    let rotel = start_rotel(receiver);

    let path =
        std::env::temp_dir().join(format!("workflow-otel-replay-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let copy = Arc::new(Mutex::new(Vec::new()));
    let file = JsonLinesExporter::create(&path).unwrap();
    export_checkout(
        FileTee {
            file,
            copy: copy.clone(),
        },
        resource("replayed"),
    );

    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    for line in text.lines() {
        let mut stream = TcpStream::connect(rotel.http).unwrap();
        write!(
            stream,
            "POST /v1/traces HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{line}",
            rotel.http,
            line.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "rotel refused the line: {response}"
        );
    }
    let spans = copy.lock().unwrap().clone();
    wait_for(&received, spans.len());
    let arrived = take_received(&received);
    let expected = group_spans_by_resource_and_scope(
        spans,
        &ResourceAttributesWithSchema::from(&resource("replayed")),
    );
    assert_eq!(normalized(arrived), normalized(expected));
}

/// Keeps a copy of every batch written to the file.
#[derive(Debug)]
struct FileTee {
    file: JsonLinesExporter,
    copy: Arc<Mutex<Vec<SpanData>>>,
}

impl SpanExporter for FileTee {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        self.copy.lock().unwrap().extend(batch.iter().cloned());
        self.file.export(batch)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.file.set_resource(resource);
    }
}

#[test]
fn a_collector_killed_mid_run_costs_exactly_the_spans_sent_after() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (receiver, received) = start_receiver(&runtime);
    let mut rotel = start_rotel(receiver);
    let otlp = OtlpExporter::new(&OtlpSettings {
        endpoint: format!("http://{}", rotel.grpc),
        protocol: OtlpProtocol::Grpc,
        headers: vec![],
        timeout: Duration::from_millis(500),
        gzip: false,
        tls: Default::default(),
    })
    .unwrap();
    let config = PipelineConfig {
        export_timeout: Duration::from_secs(2),
        drop_report_interval: Duration::from_secs(3600),
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::with_config(otlp, config, Some(resource("killed")));
    let instrumentation = Instrumentation::new(&pipeline);
    let run = || {
        instrumentation.run(|| {
            for _ in 0..10 {
                checkout().unwrap_err();
            }
        });
        10 * 3
    };
    let before = run();
    pipeline.force_flush().unwrap();
    wait_for(&received, before as usize);

    // The collector dies: killed by its PID.
    rotel.child.kill().unwrap();
    rotel.child.wait().unwrap();
    let after = run();
    let _ = pipeline.shutdown();
    assert_eq!(pipeline.exported_spans(), before);
    assert_eq!(
        pipeline.dropped_spans(),
        after,
        "dropped = produced - received by the collector"
    );
    assert_eq!(span_count(&received), before as usize);
}

/// Exemplars' trace and span ids.
type Exemplars = Vec<(Vec<u8>, Vec<u8>)>;

fn start_metrics_receiver(runtime: &tokio::runtime::Runtime) -> (SocketAddr, MetricsReceived) {
    let received = MetricsReceived::default();
    let address = serve_grpc(
        runtime,
        tonic::transport::Server::builder().add_service(
            MetricsServiceServer::new(MetricsReceiver(received.clone()))
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
        ),
    );
    (address, received)
}

#[workflow_otel::step]
fn collected_step(fail: bool) -> Result<(), String> {
    if fail {
        Err("declined".to_owned())
    } else {
        Ok(())
    }
}

#[workflow_otel::workflow]
fn collected_orders(fail: bool) -> Result<(), String> {
    collected_step(fail)
}

fn text_attribute<'a>(attributes: &'a [ProtoKeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(
            |attribute| match attribute.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(text) => Some(text.as_str()),
                _ => None,
            },
        )
}

/// The latest metrics of `service`'s resource. rotel may batch several
/// services' pushes into one request: only the resource of `service` counts.
fn latest_of<'a, T>(
    requests: &'a [(T, ExportMetricsServiceRequest)],
    service: &str,
) -> Option<&'a ResourceMetrics> {
    requests
        .iter()
        .rev()
        .flat_map(|(_, request)| &request.resource_metrics)
        .find(|metrics| {
            metrics
                .resource
                .as_ref()
                .and_then(|resource| text_attribute(&resource.attributes, "service.name"))
                == Some(service)
        })
}

/// The `workflow.calls` value of `collected_orders` with `outcome`, and the
/// exemplar ids of its duration histogram, from requests of `service`.
fn collected(received: &MetricsReceived, service: &str, outcome: &str) -> Option<(i64, Exemplars)> {
    let requests = received.lock().unwrap();
    let resource = latest_of(&requests, service)?;
    let metrics: Vec<&Metric> = resource
        .scope_metrics
        .iter()
        .flat_map(|scope| &scope.metrics)
        .collect();
    let calls = metrics
        .iter()
        .find(|metric| metric.name == "workflow.calls")?;
    let Some(metric::Data::Sum(sum)) = &calls.data else {
        panic!("workflow.calls is a sum: {calls:?}");
    };
    assert!(sum.is_monotonic);
    let value = sum.data_points.iter().find_map(|point| {
        let ours = text_attribute(&point.attributes, "workflow.name") == Some("collected_orders")
            && text_attribute(&point.attributes, "outcome") == Some(outcome);
        match (ours, &point.value) {
            (true, Some(number_data_point::Value::AsInt(value))) => Some(*value),
            _ => None,
        }
    })?;
    let duration = metrics
        .iter()
        .find(|metric| metric.name == "workflow.duration")?;
    assert_eq!(duration.unit, "s");
    let Some(metric::Data::Histogram(histogram)) = &duration.data else {
        panic!("workflow.duration is a histogram: {duration:?}");
    };
    let exemplars = histogram
        .data_points
        .iter()
        .filter(|point| {
            text_attribute(&point.attributes, "workflow.name") == Some("collected_orders")
        })
        .flat_map(|point| &point.exemplars)
        .map(|exemplar| (exemplar.trace_id.clone(), exemplar.span_id.clone()))
        .collect();
    Some((value, exemplars))
}

/// What the service's own instruments (scope `collector-test`) carried in
/// the last request of `service`.
#[derive(Debug, PartialEq)]
struct Own {
    jobs_done: i64,
    job_seconds_buckets: Vec<u64>,
    job_seconds_sum: f64,
    queue_size: i64,
    exemplars: Exemplars,
}

fn collected_own(received: &MetricsReceived, service: &str) -> Option<Own> {
    let requests = received.lock().unwrap();
    let resource = latest_of(&requests, service)?;
    let scope = resource.scope_metrics.iter().find(|scope| {
        scope
            .scope
            .as_ref()
            .is_some_and(|scope| scope.name == "collector-test")
    })?;
    let find = |name: &str| scope.metrics.iter().find(|metric| metric.name == name);
    let Some(metric::Data::Sum(jobs)) = &find("jobs.done")?.data else {
        panic!("jobs.done is a sum");
    };
    assert!(jobs.is_monotonic);
    let [done] = jobs.data_points.as_slice() else {
        panic!("one attribute set: {jobs:?}");
    };
    assert_eq!(text_attribute(&done.attributes, "kind"), Some("import"));
    let Some(number_data_point::Value::AsInt(jobs_done)) = done.value else {
        panic!("an integer sum");
    };
    let seconds = find("job.seconds")?;
    assert_eq!(seconds.unit, "s");
    let Some(metric::Data::Histogram(histogram)) = &seconds.data else {
        panic!("job.seconds is a histogram");
    };
    let [point] = histogram.data_points.as_slice() else {
        panic!("one attribute set: {histogram:?}");
    };
    assert_eq!(point.explicit_bounds, [0.5, 1.0]);
    let Some(metric::Data::Gauge(queue)) = &find("queue.size")?.data else {
        panic!("queue.size is a gauge");
    };
    let Some(number_data_point::Value::AsInt(queue_size)) = queue.data_points[0].value else {
        panic!("an integer gauge");
    };
    Some(Own {
        jobs_done,
        job_seconds_buckets: point.bucket_counts.clone(),
        job_seconds_sum: point.sum.unwrap_or_default(),
        queue_size,
        exemplars: point
            .exemplars
            .iter()
            .map(|exemplar| (exemplar.trace_id.clone(), exemplar.span_id.clone()))
            .collect(),
    })
}

/// gRPC and HTTP/protobuf go through rotel; HTTP/JSON goes to an in-test
/// receiver decoding with the official definitions' JSON mapping, as
/// rotel 0.0.1a15 decodes no OTLP/JSON histogram (the serde of the
/// `opentelemetry-proto` it is built on drops them).
#[test]
fn metrics_reach_a_real_collector_over_each_protocol() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (receiver, received) = start_metrics_receiver(&runtime);
    let rotel = start_rotel(receiver);
    let json_receiver = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(support::http_receiver_of(
            listener,
            received.clone(),
            "/v1/metrics",
        ));
        address
    });
    let capture = workflow_otel::testing::Capture::new();
    for (round, (protocol, endpoint)) in [
        ("grpc", format!("http://{}", rotel.grpc)),
        ("http/protobuf", format!("http://{}/v1/metrics", rotel.http)),
        ("http/json", format!("http://{json_receiver}/v1/metrics")),
    ]
    .into_iter()
    .enumerate()
    {
        let service = format!("metrics-{}", protocol.replace('/', "-"));
        let settings = [
            ("OTEL_SERVICE_NAME", service.clone()),
            ("OTEL_TRACES_EXPORTER", "none".to_owned()),
            ("OTEL_METRICS_EXPORTER", "otlp".to_owned()),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", protocol.to_owned()),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip".to_owned()),
        ];
        let telemetry = workflow_otel::setup()
            .environment_from(support::environment(settings))
            .try_install()
            .unwrap();
        // The service's own instruments, through the global provider
        // setup() installed; made again each round, they are the same ones.
        let meter = opentelemetry::global::meter("collector-test");
        let jobs = meter.u64_counter("jobs.done").build();
        let seconds = meter
            .f64_histogram("job.seconds")
            .with_unit("s")
            .with_boundaries(vec![0.5, 1.0])
            .build();
        let _queue = meter
            .i64_observable_gauge("queue.size")
            .with_callback(|observer| observer.observe(7, &[]))
            .build();
        // Metrics count from the first setup that asks for them, and go on
        // counting (cumulative) through later ones.
        capture.run(|| {
            for run in 0..5 {
                let _ = collected_orders(run == 2);
                collected_job(&jobs, &seconds);
            }
        });
        let spans = capture.spans();
        telemetry.flush();
        let deadline = Instant::now() + Duration::from_secs(20);
        let (ok, exemplars) = loop {
            if let Some(found) = collected(&received, &service, "ok") {
                break found;
            }
            assert!(
                Instant::now() < deadline,
                "no metrics from {service} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let rounds = round as i64 + 1;
        assert_eq!(ok, 4 * rounds, "{protocol}");
        assert_eq!(
            collected(&received, &service, "error").unwrap().0,
            rounds,
            "{protocol}"
        );
        // Each exemplar is a workflow span that was exported.
        assert!(!exemplars.is_empty(), "{protocol}");
        for (trace, span) in exemplars {
            assert!(
                spans.iter().any(|data| {
                    data.name == "collected_orders"
                        && data.span_context.trace_id().to_bytes().as_slice() == trace
                        && data.span_context.span_id().to_bytes().as_slice() == span
                }),
                "{protocol}: an exemplar that names no exported span"
            );
        }
        let own = collected_own(&received, &service).expect("the service's own instruments");
        assert_eq!(
            (
                own.jobs_done,
                &own.job_seconds_buckets[..],
                own.job_seconds_sum,
                own.queue_size
            ),
            (
                5 * rounds,
                &[5 * rounds as u64, 0, 0][..],
                1.25 * rounds as f64,
                7
            ),
            "{protocol}"
        );
        // Measured inside `collected_job`'s span: the exemplar names it.
        assert!(!own.exemplars.is_empty(), "{protocol}");
        for (trace, span) in own.exemplars {
            assert!(
                spans.iter().any(|data| {
                    data.name == "collected_job"
                        && data.span_context.trace_id().to_bytes().as_slice() == trace
                        && data.span_context.span_id().to_bytes().as_slice() == span
                }),
                "{protocol}: an exemplar of the service's histogram that names no exported span"
            );
        }
        drop(telemetry);
    }
}

#[workflow_otel::workflow]
fn collected_job(
    jobs: &opentelemetry::metrics::Counter<u64>,
    seconds: &opentelemetry::metrics::Histogram<f64>,
) {
    let kind = [opentelemetry::KeyValue::new("kind", "import")];
    jobs.add(1, &kind);
    seconds.record(0.25, &kind);
}
