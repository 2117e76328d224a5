//! How a case of ours is set up: its pipeline, and the sink at its end. The
//! counter of records (every case), the JSON-lines file exporter, which
//! encodes our records as they are (what `WORKFLOW_OTEL_FILE` costs), and an
//! exporter of the user's, which gets them as `SpanData`.

use super::*;

/// Writes to nothing, counting lines: each is one batch of spans.
#[derive(Clone, Default)]
struct CountingWriter {
    bytes: Arc<AtomicU64>,
}

impl std::io::Write for CountingWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Our steps exported by the JSON-lines file exporter, which encodes the
/// records as they are (no `SpanData`): what `WORKFLOW_OTEL_FILE` costs.
pub(super) fn json_lines_case(name: &'static str, body: impl FnMut(u64) + 'static) -> Case {
    json_lines_case_with(name, workflow_otel::SpanLimits::default(), body)
}

/// [`json_lines_case`] with span limits of its own.
pub(super) fn json_lines_case_with(
    name: &'static str,
    span_limits: workflow_otel::SpanLimits,
    body: impl FnMut(u64) + 'static,
) -> Case {
    let writer = CountingWriter::default();
    let bytes = writer.bytes.clone();
    let config = PipelineConfig {
        span_limits,
        ..case_config()
    };
    let pipeline = Pipeline::with_config(JsonLinesExporter::with_writer(writer), config, None);
    let instrumentation = Instrumentation::new(&pipeline);
    let exported = pipeline.clone();
    our_case(
        name,
        (1, 1, true),
        pipeline,
        instrumentation,
        body,
        move || {
            // Spans the exporter wrote, and it wrote something for them.
            let exported = exported.exported_spans();
            if bytes.load(Ordering::Relaxed) < exported * 100 {
                return 0;
            }
            exported
        },
    )
}

/// Our steps exported to an exporter of the user's, that counts the
/// `SpanData` made for it.
pub(super) fn span_data_case(name: &'static str, body: impl FnMut(u64) + 'static) -> Case {
    let exporter = CountingExporter::default();
    let spans = exporter.spans.clone();
    let pipeline = Pipeline::with_config(exporter, case_config(), None);
    let instrumentation = Instrumentation::new(&pipeline);
    our_case(
        name,
        (1, 1, true),
        pipeline,
        instrumentation,
        body,
        move || spans.load(Ordering::Relaxed),
    )
}

/// The pipeline settings of every case of ours: room for every span of the
/// largest callgrind run (22,000 × 10), where the worker runs slowly: a
/// dropped span is a failed case.
fn case_config() -> PipelineConfig {
    PipelineConfig {
        max_queue_size: 1 << 20,
        max_export_batch_size: 4096,
        scheduled_delay: background_interval(),
        ..PipelineConfig::default()
    }
}

pub(super) fn workflow_otel_case(
    name: &'static str,
    sampler: Sampler,
    spans_per_iteration: u64,
    spans_per_run: u64,
    body: impl FnMut(u64) + 'static,
) -> Case {
    workflow_otel_case_with(
        name,
        sampler,
        spans_per_iteration,
        spans_per_run,
        body,
        |i| i,
    )
}

pub(super) fn workflow_otel_case_with(
    name: &'static str,
    sampler: Sampler,
    spans_per_iteration: u64,
    spans_per_run: u64,
    body: impl FnMut(u64) + 'static,
    configure: fn(Instrumentation) -> Instrumentation,
) -> Case {
    let records = !matches!(sampler, Sampler::AlwaysOff);
    // Our records, counted as they are, as fastrace's reporter counts
    // fastrace's and the SDK's exporter the SDK's `SpanData`.
    let counter = workflow_otel::testing::CountingExporter::new();
    let pipeline = Pipeline::with_config(counter.clone(), case_config(), None);
    let instrumentation = configure(Instrumentation::new(&pipeline).sampler(sampler));
    let shape = (spans_per_iteration, spans_per_run, records);
    our_case(name, shape, pipeline, instrumentation, body, move || {
        counter.count()
    })
}

/// A case of ours: `body` run under `instrumentation`; what reached the
/// sink counted by `delivered` once `pipeline` is flushed. `shape` is the
/// spans per iteration, per run, and whether the case records.
fn our_case(
    name: &'static str,
    shape: (u64, u64, bool),
    pipeline: Pipeline,
    instrumentation: Instrumentation,
    mut body: impl FnMut(u64) + 'static,
    delivered: impl Fn() -> u64 + 'static,
) -> Case {
    let (spans_per_iteration, spans_per_run, records) = shape;
    Case {
        name,
        spans_per_iteration,
        spans_per_run,
        delivered: Box::new(move || {
            let _ = pipeline.force_flush();
            delivered()
        }),
        run: Box::new(move |iterations| instrumentation.run(|| body(iterations))),
        records,
        roots_every: 0,
    }
}

/// A case of ours with tail sampling on, keeping every trace (ratio 1), so
/// that every span is held, decided and delivered like the others: what
/// holding costs the caller (nothing more) and the worker.
fn tail_case(name: &'static str, spans_per_run: u64, body: fn(u64)) -> Case {
    let counter = workflow_otel::testing::CountingExporter::new();
    let config = PipelineConfig {
        tail_sampling: Some(workflow_otel::TailSampling::new().ratio(1.0)),
        ..case_config()
    };
    let pipeline = Pipeline::with_config(counter.clone(), config, None);
    let instrumentation = Instrumentation::new(&pipeline);
    our_case(
        name,
        (1, spans_per_run, true),
        pipeline,
        instrumentation,
        body,
        move || counter.count(),
    )
}

pub(super) fn tail_factories() -> Vec<(&'static str, Factory)> {
    vec![
        (
            "wo #[step], tail sampling",
            Box::new(|| tail_case("wo #[step], tail sampling", 1, wo_parent)),
        ),
        (
            "wo #[workflow] root per call, tail sampling",
            Box::new(|| {
                tail_case(
                    "wo #[workflow] root per call, tail sampling",
                    0,
                    |iterations| {
                        for i in 0..iterations {
                            wo_workflow(i);
                        }
                    },
                )
            }),
        ),
    ]
}
