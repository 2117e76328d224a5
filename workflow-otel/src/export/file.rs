//! The JSON-lines file exporter: OTLP/JSON, one request per line.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::future::{Future, ready};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::export::otlp_json::{Fragments, encode_records, encode_request_into};
use crate::pipeline::{ExportFuture, NativeExport, Records};

/// Writes each exported batch as one line of OTLP/JSON: an
/// `ExportTraceServiceRequest` with hex ids, as the OpenTelemetry Collector's
/// file exporter writes and its OTLP JSON file receiver reads. So a file can
/// be replayed into any collector (`POST` each line to `/v1/traces` with
/// `Content-Type: application/json`), or read with `jq`.
///
/// ```no_run
/// use workflow_otel::JsonLinesExporter;
///
/// let exporter = JsonLinesExporter::create("traces.jsonl")?;
/// let _telemetry = workflow_otel::setup().service_name("nightly-import").exporter(exporter).install();
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct JsonLinesExporter {
    writer: Mutex<BufWriter<Box<dyn Write + Send>>>,
    encoder: Mutex<Encoder>,
    resource: Resource,
}

/// The line being written, kept with its room from one batch to the next,
/// and what the encoder of records keeps between spans.
#[derive(Debug, Default)]
struct Encoder {
    line: Vec<u8>,
    fragments: Fragments,
}

/// Room a line keeps for the next batch: a batch of thousands of spans
/// must not pin its megabytes for the rest of the program.
const KEPT_LINE_CAPACITY: usize = 1 << 20;

impl JsonLinesExporter {
    /// Appends to the file at `path`, creating it if needed: earlier traces
    /// in the file are kept.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        let file: File = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self::with_writer(file))
    }

    /// Writes to `writer`.
    pub fn with_writer(writer: impl Write + Send + 'static) -> Self {
        JsonLinesExporter {
            writer: Mutex::new(BufWriter::new(Box::new(writer))),
            encoder: Mutex::default(),
            resource: Resource::builder_empty().build(),
        }
    }

    /// Encodes a line with `encode`, then writes it.
    fn encode_and_write(&self, encode: impl FnOnce(&mut Encoder)) -> io::Result<()> {
        let mut encoder = self.encoder.lock().unwrap_or_else(|p| p.into_inner());
        encoder.line.clear();
        encode(&mut encoder);
        let result = self.write_line(&encoder.line);
        if encoder.line.capacity() > KEPT_LINE_CAPACITY {
            encoder.line = Vec::new();
        }
        result
    }

    fn write_line(&self, line: &[u8]) -> io::Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.write_all(line)?;
        writer.write_all(b"\n")?;
        // A whole line reaches the file at once, so a reader never sees half.
        writer.flush()
    }
}

fn failure(error: io::Error) -> OTelSdkError {
    OTelSdkError::InternalFailure(format!("JSON-lines file exporter: {error}"))
}

impl SpanExporter for JsonLinesExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let result = if batch.is_empty() {
            Ok(())
        } else {
            self.encode_and_write(|encoder| {
                encode_request_into(&mut encoder.line, &self.resource, &batch);
            })
            .map_err(failure)
        };
        ready(result)
    }

    fn force_flush(&self) -> OTelSdkResult {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.flush().map_err(failure)
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.clone();
    }
}

impl NativeExport for JsonLinesExporter {
    fn export_records<'a>(&'a self, records: &'a Records<'a>) -> ExportFuture<'a> {
        let result = if records.items.is_empty() {
            Ok(())
        } else {
            self.encode_and_write(|encoder| {
                let Encoder { line, fragments } = encoder;
                encode_records(line, &self.resource, records, fragments);
            })
            .map_err(failure)
        };
        Box::pin(ready(result))
    }
}

impl fmt::Debug for JsonLinesExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesExporter")
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}
