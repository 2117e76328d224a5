//! The cases that measure the other signals: a log line inside a step
//! against the same line through tracing-subscriber alone, metrics on, and
//! what recording through the OpenTelemetry metrics SDK costs.

use super::*;

/// One step that logs a line per iteration, with the same fields as the
/// plain `tracing` case below.
#[workflow_otel::step]
pub(super) fn wo_logging_step(iterations: u64) {
    for i in 0..iterations {
        tracing::info!(order = i, warehouse = "north", "reserved");
    }
}

#[workflow_otel::workflow]
fn wo_logging_parent(iterations: u64) {
    wo_logging_step(iterations);
}

fn logging_alone(iterations: u64) {
    for i in 0..iterations {
        tracing::info!(order = i, warehouse = "north", "reserved");
    }
}

/// A writer that counts the lines written through it and keeps none.
#[derive(Clone, Default)]
struct CountingLines(Arc<AtomicU64>);

impl std::io::Write for CountingLines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let lines = bytes.iter().filter(|byte| **byte == b'\n').count() as u64;
        self.0.fetch_add(lines, Ordering::Relaxed);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A log line per iteration through `dispatch`, every line counted.
fn logging_case(
    name: &'static str,
    lines: CountingLines,
    dispatch: tracing::Dispatch,
    mut run: impl FnMut(u64) + 'static,
) -> Case {
    Case {
        name,
        spans_per_iteration: 1,
        spans_per_run: 0,
        run: Box::new(move |iterations| {
            tracing::dispatcher::with_default(&dispatch, || run(iterations));
        }),
        delivered: Box::new(move || lines.0.load(Ordering::Relaxed)),
        records: true,
        roots_every: 0,
    }
}

/// `case` with metrics on while it runs (they are process-wide; the other
/// cases run with them off).
pub(super) fn with_metrics(mut case: Case) -> Case {
    let mut run = case.run;
    case.run = Box::new(move |iterations| {
        workflow_otel::__private::set_metrics(true);
        run(iterations);
        workflow_otel::__private::set_metrics(false);
    });
    case
}

/// A log line in a step, through `logs::json_layer`.
pub(super) fn log_line_in_a_step() -> Case {
    let lines = CountingLines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::registry()
        .with(workflow_otel::logs::json_layer(move || writer.clone()));
    // The step and its workflow are recorded too, into a sink of
    // their own; the count is of log lines.
    let spans = workflow_otel_case(
        "log line in a #[step], workflow-otel JSON lines",
        Sampler::AlwaysOn,
        0,
        2,
        wo_logging_parent,
    );
    logging_case(
        "log line in a #[step], workflow-otel JSON lines",
        lines,
        tracing::Dispatch::new(subscriber),
        spans.run,
    )
}

/// The same line through tracing-subscriber's JSON formatter, no workflow.
pub(super) fn log_line_through_the_subscriber_alone() -> Case {
    let lines = CountingLines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone()),
    );
    logging_case(
        "log line, tracing-subscriber JSON alone",
        lines,
        tracing::Dispatch::new(subscriber),
        logging_alone,
    )
}

/// One SDK `Histogram::record` with the labels our metrics use (reference).
pub(super) fn sdk_histogram_record() -> Case {
    use opentelemetry::metrics::MeterProvider as _;
    // What recording a step's duration through the SDK would
    // cost the caller: one `record` with the labels metrics use.
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(
            // The exporter is never called (an hour's interval): what is
            // measured is recording, not export.
            opentelemetry_sdk::metrics::PeriodicReader::builder(TotalsExporter::default())
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();
    let histogram = provider
        .meter("bench")
        .f64_histogram("workflow.step.duration")
        .build();
    Case {
        name: "otel SDK histogram record, 2 attributes (reference)",
        spans_per_iteration: 1,
        spans_per_run: 0,
        run: Box::new(move |iterations| {
            for i in 0..iterations {
                histogram.record(
                    black_box(i as f64 * 1e-6),
                    &[
                        opentelemetry::KeyValue::new("workflow.name", "orders"),
                        opentelemetry::KeyValue::new("step.name", "reserve"),
                    ],
                );
            }
            let _ = &provider;
        }),
        delivered: Box::new(|| 0),
        records: false,
        roots_every: 0,
    }
}

/// The two measurements every case of the service's own metrics makes per
/// iteration, as the OpenTelemetry docs write them: a counter and a
/// histogram with two attributes each.
macro_rules! measure_order {
    ($placed:expr, $amount:expr, $i:expr) => {{
        $placed.add(
            1,
            &[
                opentelemetry::KeyValue::new("region", "eu"),
                opentelemetry::KeyValue::new("method", "card"),
            ],
        );
        $amount.record(
            black_box(($i % 500) as f64 * 0.1),
            &[
                opentelemetry::KeyValue::new("region", "eu"),
                opentelemetry::KeyValue::new("method", "card"),
            ],
        );
    }};
}

/// A step whose body is the case's measurements: they run inside a
/// sampled span, where ours keep exemplars.
#[workflow_otel::step]
fn wo_measuring_step(body: &mut dyn FnMut(u64), iterations: u64) {
    body(iterations);
}

/// `body` (the measurements of `iterations` orders) inside one sampled step
/// per run; delivered is what `counted` finds kept of them.
fn measurement_case(
    name: &'static str,
    mut body: impl FnMut(u64) + 'static,
    counted: impl Fn() -> u64 + 'static,
) -> Case {
    let pipeline = workflow_otel::Pipeline::new(workflow_otel::testing::CountingExporter::new());
    let instrumentation = Instrumentation::new(&pipeline).sampler(Sampler::AlwaysOn);
    Case {
        name,
        spans_per_iteration: 1,
        spans_per_run: 0,
        run: Box::new(move |iterations| {
            instrumentation.run(|| wo_measuring_step(&mut body, iterations));
        }),
        // Every measurement kept: the counter's total and the histogram's
        // count both equal the orders measured.
        delivered: Box::new(counted),
        records: true,
        roots_every: 0,
    }
}

/// The service's Counter::add and Histogram::record through `meter`, with
/// the attributes given at each call, as the OpenTelemetry docs write them.
fn attribute_case(
    name: &'static str,
    meter: &opentelemetry::metrics::Meter,
    counted: impl Fn() -> u64 + 'static,
) -> Case {
    let placed = meter.u64_counter("bench.orders.placed").build();
    let amount = meter
        .f64_histogram("bench.order.amount")
        .with_unit("USD")
        .build();
    measurement_case(
        name,
        move |iterations| {
            for i in 0..iterations {
                measure_order!(placed, amount, i);
            }
        },
        counted,
    )
}

/// Through workflow-otel's meter provider.
pub(super) fn user_metrics_workflow_otel() -> Case {
    use opentelemetry::metrics::MeterProvider as _;
    let meter = workflow_otel::metrics::meter_provider().meter("bench-orders");
    attribute_case(
        "user Counter::add + Histogram::record, workflow-otel",
        &meter,
        workflow_otel_counted("bench.orders.placed", "bench.order.amount"),
    )
}

/// A metrics exporter that keeps the latest totals of the benchmark's two
/// instruments (cumulative), so the case can check every measurement.
#[derive(Debug, Clone, Default)]
struct TotalsExporter(Arc<std::sync::Mutex<(u64, u64)>>);

impl opentelemetry_sdk::metrics::exporter::PushMetricExporter for TotalsExporter {
    fn export(
        &self,
        metrics: &opentelemetry_sdk::metrics::data::ResourceMetrics,
    ) -> impl Future<Output = OTelSdkResult> + Send {
        use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
        let mut totals = self.0.lock().unwrap();
        for scope in metrics.scope_metrics() {
            for metric in scope.metrics() {
                match metric.data() {
                    AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                        totals.0 = sum.data_points().map(|point| point.value()).sum();
                    }
                    AggregatedMetrics::F64(MetricData::Histogram(histogram)) => {
                        totals.1 = histogram.data_points().map(|point| point.count()).sum();
                    }
                    _ => {}
                }
            }
        }
        std::future::ready(Ok(()))
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
        opentelemetry_sdk::metrics::Temporality::Cumulative
    }
}

/// An SDK meter provider whose exporter keeps the totals, and a check that
/// reads them (after a flush): every measurement kept, or 0.
fn sdk_meters() -> (
    opentelemetry_sdk::metrics::SdkMeterProvider,
    impl Fn() -> u64 + 'static,
) {
    let exporter = TotalsExporter::default();
    let totals = exporter.0.clone();
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(
            opentelemetry_sdk::metrics::PeriodicReader::builder(exporter)
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();
    let flushed = provider.clone();
    let counted = move || {
        let _ = flushed.force_flush();
        let (placed, amount) = *totals.lock().unwrap();
        if placed == amount { placed } else { 0 }
    };
    (provider, counted)
}

/// Every measurement of the two instruments named, through workflow-otel's
/// provider, kept: the counter's total and the histogram's count agree.
fn workflow_otel_counted(placed: &'static str, amount: &'static str) -> impl Fn() -> u64 {
    move || {
        let placed = workflow_otel::__private::instrument_total(placed);
        let amount = workflow_otel::__private::instrument_total(amount);
        if placed == amount {
            placed.unwrap_or(0.0) as u64
        } else {
            0
        }
    }
}

/// The same measurements through the OpenTelemetry metrics SDK.
pub(super) fn user_metrics_sdk() -> Case {
    use opentelemetry::metrics::MeterProvider as _;
    let (provider, counted) = sdk_meters();
    attribute_case(
        "user Counter::add + Histogram::record, otel SDK",
        &provider.meter("bench-orders"),
        counted,
    )
}

/// The `metrics` crate's recorder interface over metrics-util's atomic
/// storage, as its Prometheus exporter records.
#[derive(Clone)]
struct AtomicRecorder(
    Arc<metrics_util::registry::Registry<metrics::Key, metrics_util::registry::AtomicStorage>>,
);

impl metrics::Recorder for AtomicRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        self.0
            .get_or_create_counter(key, |counter| metrics::Counter::from_arc(counter.clone()))
    }
    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        self.0
            .get_or_create_gauge(key, |gauge| metrics::Gauge::from_arc(gauge.clone()))
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        self.0.get_or_create_histogram(key, |histogram| {
            metrics::Histogram::from_arc(histogram.clone())
        })
    }
}

/// The same measurements through the `metrics` crate, with handles made
/// once (labels bound to them), as its docs recommend for hot paths.
pub(super) fn user_metrics_metrics_crate() -> Case {
    let recorder = AtomicRecorder(Arc::new(metrics_util::registry::Registry::atomic()));
    let (placed, amount) = metrics::with_local_recorder(&recorder, || {
        (
            metrics::counter!("bench_orders_placed", "region" => "eu", "method" => "card"),
            metrics::histogram!("bench_order_amount", "region" => "eu", "method" => "card"),
        )
    });
    let storage = recorder.0.clone();
    measurement_case(
        "user counter + histogram, metrics crate (cached handles)",
        move |iterations| {
            for i in 0..iterations {
                placed.increment(1);
                amount.record(black_box((i % 500) as f64 * 0.1));
            }
        },
        move || {
            let mut placed = 0;
            storage.visit_counters(|_, counter| placed += counter.load(Ordering::Relaxed));
            let mut amount = 0;
            storage.visit_histograms(|_, histogram| amount += histogram.data().len() as u64);
            if placed == amount { placed } else { 0 }
        },
    )
}

/// The attributes every bound case binds once.
fn order_attributes() -> [opentelemetry::KeyValue; 2] {
    [
        opentelemetry::KeyValue::new("region", "eu"),
        opentelemetry::KeyValue::new("method", "card"),
    ]
}

/// Counter and histogram of `meter` bound to their attribute set once (the
/// API's `bind`, the counterpart of the `metrics` crate's cached handles).
fn bound_case(
    name: &'static str,
    meter: &opentelemetry::metrics::Meter,
    counted: impl Fn() -> u64 + 'static,
) -> Case {
    let placed = meter
        .u64_counter("bench.bound.placed")
        .build()
        .bind(&order_attributes());
    let amount = meter
        .f64_histogram("bench.bound.amount")
        .with_unit("USD")
        .build()
        .bind(&order_attributes());
    measurement_case(
        name,
        move |iterations| {
            for i in 0..iterations {
                placed.add(1);
                amount.record(black_box((i % 500) as f64 * 0.1));
            }
        },
        counted,
    )
}

/// Bound handles through workflow-otel's meter provider.
pub(super) fn bound_metrics_workflow_otel() -> Case {
    use opentelemetry::metrics::MeterProvider as _;
    let meter = workflow_otel::metrics::meter_provider().meter("bench-bound");
    bound_case(
        "bound counter + histogram, workflow-otel",
        &meter,
        workflow_otel_counted("bench.bound.placed", "bench.bound.amount"),
    )
}

/// The same bound handles through the OpenTelemetry metrics SDK.
pub(super) fn bound_metrics_sdk() -> Case {
    use opentelemetry::metrics::MeterProvider as _;
    let (provider, counted) = sdk_meters();
    let meter = provider.meter("bench-bound");
    bound_case("bound counter + histogram, otel SDK", &meter, counted)
}
