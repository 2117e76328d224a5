//! Cases with other exporters than the counter of records: the JSON-lines
//! file exporter, which encodes our records as they are (what
//! `WORKFLOW_OTEL_FILE` costs), and an exporter of the user's, which gets
//! them as `SpanData`.

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
pub(super) fn json_lines_case(name: &'static str, mut body: impl FnMut(u64) + 'static) -> Case {
    let writer = CountingWriter::default();
    let bytes = writer.bytes.clone();
    let config = PipelineConfig {
        max_queue_size: 1 << 20,
        max_export_batch_size: 4096,
        scheduled_delay: background_interval(),
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::with_config(JsonLinesExporter::with_writer(writer), config, None);
    let instrumentation = Instrumentation::new(&pipeline);
    Case {
        name,
        spans_per_iteration: 1,
        spans_per_run: 1,
        delivered: Box::new(move || {
            let _ = pipeline.force_flush();
            // Spans the exporter wrote, and it wrote something for them.
            let exported = pipeline.exported_spans();
            if bytes.load(Ordering::Relaxed) < exported * 100 {
                return 0;
            }
            exported
        }),
        run: Box::new(move |iterations| instrumentation.run(|| body(iterations))),
        records: true,
        roots_every: 0,
    }
}

/// Our steps exported to an exporter of the user's, that counts the
/// `SpanData` made for it.
pub(super) fn span_data_case(name: &'static str, mut body: impl FnMut(u64) + 'static) -> Case {
    let exporter = CountingExporter::default();
    let spans = exporter.spans.clone();
    let config = PipelineConfig {
        max_queue_size: 1 << 20,
        max_export_batch_size: 4096,
        scheduled_delay: background_interval(),
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::with_config(exporter, config, None);
    let instrumentation = Instrumentation::new(&pipeline);
    Case {
        name,
        spans_per_iteration: 1,
        spans_per_run: 1,
        delivered: Box::new(move || {
            let _ = pipeline.force_flush();
            spans.load(Ordering::Relaxed)
        }),
        run: Box::new(move |iterations| instrumentation.run(|| body(iterations))),
        records: true,
        roots_every: 0,
    }
}
