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

/// A metrics exporter that keeps nothing: the reference case measures the
/// cost of recording, not of export.
#[derive(Debug)]
struct DiscardMetrics;

impl opentelemetry_sdk::metrics::exporter::PushMetricExporter for DiscardMetrics {
    fn export(
        &self,
        _: &opentelemetry_sdk::metrics::data::ResourceMetrics,
    ) -> impl Future<Output = OTelSdkResult> + Send {
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
            opentelemetry_sdk::metrics::PeriodicReader::builder(DiscardMetrics)
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
