//! The service's instruments end to end inside the crate: registration
//! rules, the points they keep, and what the encoders write of them. Each
//! test uses a meter (scope) of its own and reads back only its lines; the
//! tests take one lock, since the cardinality limit is process-wide.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};

use super::*;
use crate::metrics::encode::{self, Format};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The exposition's lines of `scope`'s instruments, with their headers.
fn lines_of(scope: &str, format: Format) -> Vec<String> {
    let text = encode::encode(&encode::snapshot(), format, &[]);
    let marker = format!("otel_scope_name=\"{scope}\"");
    let lines: Vec<&str> = text.lines().collect();
    let mut kept = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if line.contains(&marker) {
            // The family's header lines stand right before its first sample.
            let mut header = Vec::new();
            let mut at = index;
            while at > 0 && lines[at - 1].starts_with('#') {
                header.insert(0, lines[at - 1].to_owned());
                at -= 1;
            }
            if !header.is_empty() && kept.last() != header.last() {
                kept.extend(header);
            }
            kept.push((*line).to_owned());
        }
    }
    kept
}

#[test]
fn every_instrument_kind_is_written_with_its_prometheus_name_type_and_unit() {
    let _serial = serial();
    let meter = meter_provider().meter_with_scope(
        opentelemetry::InstrumentationScope::builder("kinds")
            .with_version("1.2")
            .build(),
    );
    let placed = meter
        .u64_counter("orders.placed")
        .with_description("Orders placed.")
        .build();
    placed.add(2, &[KeyValue::new("region", "eu")]);
    placed.add(3, &[KeyValue::new("region", "eu")]);
    placed.add(1, &[KeyValue::new("region", "us")]);
    let revenue = meter.f64_counter("revenue").with_unit("USD").build();
    revenue.add(2.5, &[]);
    revenue.add(-1.0, &[]);
    revenue.add(f64::NAN, &[]);
    let queue = meter
        .i64_up_down_counter("queue.depth")
        .with_unit("{job}")
        .build();
    queue.add(5, &[]);
    queue.add(-7, &[]);
    let temperature = meter.f64_gauge("temperature").with_unit("Cel").build();
    temperature.record(21.5, &[]);
    temperature.record(19.25, &[]);
    let amount = meter
        .f64_histogram("order.amount")
        .with_unit("USD")
        .with_boundaries(vec![10.0, 100.0])
        .build();
    for value in [5.0, 10.0, 50.0, 500.0, f64::INFINITY] {
        amount.record(value, &[KeyValue::new("region", "eu")]);
    }
    let sizes = meter.u64_histogram("payload").with_unit("By").build();
    sizes.record(7, &[]);
    let _cpu = meter
        .f64_observable_gauge("cpu.utilization")
        .with_unit("1")
        .with_callback(|observer| {
            observer.observe(0.25, &[KeyValue::new("cpu", 0)]);
            observer.observe(0.5, &[KeyValue::new("cpu", 1)]);
        })
        .build();
    let _read = meter
        .u64_observable_counter("disk.read")
        .with_unit("By")
        .with_callback(|observer| observer.observe(4096, &[]))
        .build();
    let _connections = meter
        .i64_observable_up_down_counter("connections")
        .with_callback(|observer| observer.observe(-2, &[]))
        .build();

    let scope = r#"otel_scope_name="kinds",otel_scope_version="1.2""#;
    let expected = format!(
        "# HELP orders_placed_total Orders placed.
# TYPE orders_placed_total counter
orders_placed_total{{{scope},region=\"eu\"}} 5
orders_placed_total{{{scope},region=\"us\"}} 1
# TYPE revenue_USD_total counter
revenue_USD_total{{{scope}}} 2.5
# TYPE queue_depth gauge
queue_depth{{{scope}}} -2
# TYPE temperature_celsius gauge
temperature_celsius{{{scope}}} 19.25
# TYPE order_amount_USD histogram
order_amount_USD_bucket{{{scope},region=\"eu\",le=\"10\"}} 2
order_amount_USD_bucket{{{scope},region=\"eu\",le=\"100\"}} 3
order_amount_USD_bucket{{{scope},region=\"eu\",le=\"+Inf\"}} 4
order_amount_USD_sum{{{scope},region=\"eu\"}} 565
order_amount_USD_count{{{scope},region=\"eu\"}} 4
# TYPE payload_bytes histogram
{payload}payload_bytes_sum{{{scope}}} 7
payload_bytes_count{{{scope}}} 1
# TYPE cpu_utilization_ratio gauge
cpu_utilization_ratio{{{scope},cpu=\"0\"}} 0.25
cpu_utilization_ratio{{{scope},cpu=\"1\"}} 0.5
# TYPE disk_read_bytes_total counter
disk_read_bytes_total{{{scope}}} 4096
# TYPE connections gauge
connections{{{scope}}} -2",
        payload = DEFAULT_HISTOGRAM_BOUNDARIES
            .iter()
            .map(|bound| {
                let count = u64::from(*bound >= 7.0);
                format!("payload_bytes_bucket{{{scope},le=\"{bound}\"}} {count}\n")
            })
            .chain(std::iter::once(format!(
                "payload_bytes_bucket{{{scope},le=\"+Inf\"}} 1\n"
            )))
            .collect::<String>(),
    );
    assert_eq!(lines_of("kinds", Format::Prometheus).join("\n"), expected);

    // OpenMetrics: counter families without `_total`, units where the name ends with one.
    let open_metrics = lines_of("kinds", Format::OpenMetrics);
    for header in [
        "# TYPE orders_placed counter",
        "# TYPE revenue_USD counter",
        "# UNIT revenue_USD USD",
        "# UNIT temperature_celsius celsius",
        "# UNIT payload_bytes bytes",
        "# UNIT cpu_utilization_ratio ratio",
        "# TYPE disk_read_bytes counter",
    ] {
        assert!(open_metrics.iter().any(|line| line == header), "{header}");
    }
    assert!(
        !open_metrics
            .iter()
            .any(|line| line.starts_with("# UNIT queue_depth"))
    );
}

#[test]
fn the_same_set_in_any_order_is_one_series_and_names_are_case_insensitive() {
    let _serial = serial();
    let meter = meter_provider().meter("orders-case");
    let first = meter.u64_counter("Jobs.Done").build();
    let again = meter.u64_counter("jobs.done").build();
    first.add(1, &[KeyValue::new("a", "1"), KeyValue::new("b", "2")]);
    again.add(1, &[KeyValue::new("b", "2"), KeyValue::new("a", "1")]);
    first.add(
        1,
        &[
            KeyValue::new("b", "x"),
            KeyValue::new("a", "1"),
            KeyValue::new("b", "2"),
        ],
    );
    let lines = lines_of("orders-case", Format::Prometheus);
    assert_eq!(
        lines[1..],
        [r#"Jobs_Done_total{otel_scope_name="orders-case",a="1",b="2"} 3"#]
    );
}

#[test]
fn a_name_registered_again_with_another_kind_or_unit_keeps_the_first() {
    let _serial = serial();
    let meter = meter_provider().meter("conflicts");
    let counter = meter.u64_counter("work").with_unit("s").build();
    let histogram = meter.f64_histogram("work").with_unit("s").build();
    let other_unit = meter.u64_counter("work").with_unit("ms").build();
    counter.add(4, &[]);
    histogram.record(1.0, &[]);
    other_unit.add(100, &[]);
    let lines = lines_of("conflicts", Format::Prometheus);
    assert_eq!(
        lines[1..],
        [r#"work_seconds_total{otel_scope_name="conflicts"} 4"#]
    );
    let registry = lock(registry());
    let conflicts = registry
        .reported
        .iter()
        .filter(|key| key.starts_with("conflict") && key.contains("\"work\""))
        .count();
    // Both later registrations differ in the same identity: said once.
    assert_eq!(conflicts, 1);
}

#[test]
fn invalid_names_and_units_record_nothing_and_are_reported() {
    let _serial = serial();
    let meter = meter_provider().meter("invalid");
    let long = format!("a{}", "b".repeat(255));
    for name in ["", "9lives", "has space", "ünïcode", long.as_str()] {
        meter.u64_counter(name.to_owned()).build().add(1, &[]);
    }
    meter
        .u64_counter("fine")
        .with_unit("µs")
        .build()
        .add(1, &[]);
    meter.u64_counter("ok.name-1/x_y").build().add(1, &[]);
    let lines = lines_of("invalid", Format::Prometheus);
    assert_eq!(
        lines[1..],
        [r#"ok_name_1_x_y_total{otel_scope_name="invalid"} 1"#]
    );
    let registry = lock(registry());
    for key in ["name 9lives", "name has space", "name ", "unit fine"] {
        assert!(registry.reported.contains(key), "{key}");
    }
}

#[test]
fn past_the_cardinality_limit_new_sets_fold_into_the_overflow_series() {
    let _serial = serial();
    set_cardinality_limit(3);
    let meter = meter_provider().meter("cardinality");
    let requests = meter.u64_counter("requests").build();
    let _users = meter
        .u64_observable_gauge("users")
        .with_callback(|observer| {
            for user in 0..10_i64 {
                observer.observe(1, &[KeyValue::new("user", user)]);
            }
        })
        .build();
    set_cardinality_limit(DEFAULT_CARDINALITY_LIMIT);
    for user in 0..1000 {
        requests.add(1, &[KeyValue::new("user", user.to_string())]);
    }
    requests.add(1, &[KeyValue::new("user", "0")]);
    let lines = lines_of("cardinality", Format::Prometheus);
    assert_eq!(
        lines,
        [
            "# TYPE requests_total counter",
            r#"requests_total{otel_scope_name="cardinality",user="0"} 2"#,
            r#"requests_total{otel_scope_name="cardinality",user="1"} 1"#,
            r#"requests_total{otel_scope_name="cardinality",otel_metric_overflow="true"} 998"#,
            "# TYPE users gauge",
            r#"users{otel_scope_name="cardinality",user="0"} 1"#,
            r#"users{otel_scope_name="cardinality",user="1"} 1"#,
            r#"users{otel_scope_name="cardinality",otel_metric_overflow="true"} 1"#,
        ]
    );
}

#[test]
fn a_panicking_callback_keeps_its_last_values_and_the_others_are_collected() {
    let _serial = serial();
    let meter = meter_provider().meter("panics");
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let _flaky = meter
        .u64_observable_gauge("flaky")
        .with_callback({
            let calls = calls.clone();
            move |observer| {
                let call = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                observer.observe(call, &[]);
                assert!(
                    call == 0,
                    "the callback fails from its second collection on"
                );
            }
        })
        .build();
    let _steady = meter
        .u64_observable_gauge("steady")
        .with_callback(|observer| observer.observe(7, &[]))
        .build();
    let first = lines_of("panics", Format::Prometheus);
    let second = lines_of("panics", Format::Prometheus);
    for lines in [first, second] {
        assert!(lines.contains(&r#"flaky{otel_scope_name="panics"} 0"#.to_owned()));
        assert!(lines.contains(&r#"steady{otel_scope_name="panics"} 7"#.to_owned()));
    }
    assert!(calls.load(std::sync::atomic::Ordering::SeqCst) >= 2);
}

#[test]
fn a_blocking_callback_holds_no_collection_past_the_deadline() {
    let _serial = serial();
    let meter = meter_provider().meter("blocking");
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Mutex::new(released);
    let blocks = std::sync::atomic::AtomicBool::new(false);
    let blocks = std::sync::Arc::new(blocks);
    let _slow = meter
        .u64_observable_gauge("slow")
        .with_callback({
            let blocks = blocks.clone();
            move |observer| {
                if blocks.load(std::sync::atomic::Ordering::SeqCst) {
                    let _ = released
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(30));
                }
                observer.observe(1, &[]);
            }
        })
        .build();
    let counter = meter.u64_counter("beside").build();
    counter.add(1, &[]);
    let before = lines_of("blocking", Format::Prometheus);
    assert!(before.contains(&r#"slow{otel_scope_name="blocking"} 1"#.to_owned()));
    blocks.store(true, std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    let during = lines_of("blocking", Format::Prometheus);
    let waited = started.elapsed();
    // Still stuck: the next collection does not wait at all.
    let started = Instant::now();
    let stuck = lines_of("blocking", Format::Prometheus);
    let waited_again = started.elapsed();
    release.send(()).unwrap();
    // The collector finishes the round it was stuck in before the next
    // test collects: else that one would find it stuck still.
    super::observe::settle();
    // The documented bound, with room for a loaded machine.
    assert!(waited >= CALLBACK_DEADLINE, "{waited:?}");
    assert!(
        waited < CALLBACK_DEADLINE + Duration::from_secs(2),
        "{waited:?}"
    );
    assert!(waited_again < CALLBACK_DEADLINE, "{waited_again:?}");
    for lines in [during, stuck] {
        assert!(lines.contains(&r#"slow{otel_scope_name="blocking"} 1"#.to_owned()));
        assert!(lines.contains(&r#"beside_total{otel_scope_name="blocking"} 1"#.to_owned()));
    }
}

#[test]
fn histograms_and_counters_keep_the_current_sampled_span_as_exemplar() {
    let _serial = serial();
    crate::record::ids::init_clock();
    let meter = meter_provider().meter("exemplars");
    let latency = meter
        .f64_histogram("latency")
        .with_unit("s")
        .with_boundaries(vec![0.1, 1.0])
        .build();
    let done = meter.u64_counter("done").build();
    let span = |trace: u128, sampled: bool| {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(trace),
            SpanId::from(7_u64),
            if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            false,
            TraceState::default(),
        ))
    };
    {
        // An unsampled span leaves no exemplar.
        let _attached = span(1, false).attach();
        latency.record(0.5, &[]);
    }
    {
        let _attached = span(0xabc, true).attach();
        latency.record(0.5, &[]);
        done.add(3, &[]);
    }
    latency.record(0.05, &[]);
    let lines = lines_of("exemplars", Format::OpenMetrics);
    let trace = format!("{:032x}", 0xabc);
    let exemplar_of = |prefix: &str| {
        lines
            .iter()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix} in {lines:#?}"))
            .split_once(" # ")
            .map(|(_, exemplar)| exemplar.to_owned())
    };
    let bucket = exemplar_of(r#"latency_seconds_bucket{otel_scope_name="exemplars",le="1"}"#)
        .expect("an exemplar");
    assert!(
        bucket.starts_with(&format!(
            r#"{{trace_id="{trace}",span_id="0000000000000007"}} 0.5 "#
        )),
        "{bucket}"
    );
    assert_eq!(
        exemplar_of(r#"latency_seconds_bucket{otel_scope_name="exemplars",le="0.1"}"#),
        None
    );
    let counted = exemplar_of(r#"done_total{otel_scope_name="exemplars"}"#).expect("an exemplar");
    assert!(
        counted.contains(&trace) && counted.contains("} 3 "),
        "{counted}"
    );
    // The older text format carries none.
    assert!(
        !lines_of("exemplars", Format::Prometheus)
            .iter()
            .any(|line| line.contains(" # "))
    );
}

#[cfg(feature = "otlp")]
#[test]
fn the_otlp_request_carries_each_meter_as_a_scope_with_its_kinds() {
    use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
    let _serial = serial();
    let meter = meter_provider().meter_with_scope(
        opentelemetry::InstrumentationScope::builder("otlp-kinds")
            .with_version("3")
            .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
            .build(),
    );
    meter
        .u64_counter("sent")
        .build()
        .add(9, &[KeyValue::new("peer", "a")]);
    meter.f64_up_down_counter("balance").build().add(-1.5, &[]);
    meter.i64_gauge("level").build().record(-4, &[]);
    meter
        .u64_histogram("sizes")
        .with_boundaries(vec![1.0, 2.0])
        .build()
        .record(2, &[]);
    let snapshot = encode::snapshot();
    let request = crate::metrics::otlp::request(
        &snapshot,
        Default::default(),
        std::time::SystemTime::UNIX_EPOCH,
        std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(10),
    );
    let scopes = &request.resource_metrics[0].scope_metrics;
    assert_eq!(scopes[0].scope.as_ref().unwrap().name, "workflow-otel");
    let ours = scopes
        .iter()
        .find(|scope| scope.scope.as_ref().unwrap().name == "otlp-kinds")
        .expect("the meter's scope");
    assert_eq!(ours.scope.as_ref().unwrap().version, "3");
    assert_eq!(ours.schema_url, "https://opentelemetry.io/schemas/1.30.0");
    let names: Vec<&str> = ours
        .metrics
        .iter()
        .map(|metric| metric.name.as_str())
        .collect();
    assert_eq!(names, ["sent", "balance", "level", "sizes"]);
    let Some(metric::Data::Sum(sent)) = &ours.metrics[0].data else {
        panic!("a sum")
    };
    assert!(sent.is_monotonic);
    assert_eq!(
        sent.data_points[0].value,
        Some(number_data_point::Value::AsInt(9))
    );
    assert_eq!(sent.data_points[0].time_unix_nano, 10_000_000_000);
    assert!(sent.data_points[0].start_time_unix_nano > 0);
    let Some(metric::Data::Sum(balance)) = &ours.metrics[1].data else {
        panic!("a sum")
    };
    assert!(!balance.is_monotonic);
    assert_eq!(
        balance.data_points[0].value,
        Some(number_data_point::Value::AsDouble(-1.5))
    );
    let Some(metric::Data::Gauge(level)) = &ours.metrics[2].data else {
        panic!("a gauge")
    };
    assert_eq!(
        level.data_points[0].value,
        Some(number_data_point::Value::AsInt(-4))
    );
    assert_eq!(level.data_points[0].start_time_unix_nano, 0);
    let Some(metric::Data::Histogram(sizes)) = &ours.metrics[3].data else {
        panic!("a histogram")
    };
    assert_eq!(sizes.data_points[0].explicit_bounds, [1.0, 2.0]);
    assert_eq!(sizes.data_points[0].bucket_counts, [0, 1, 0]);
    assert_eq!(sizes.data_points[0].sum, Some(2.0));
}
