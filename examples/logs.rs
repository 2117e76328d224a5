//! Log lines that carry the workflow: an import job logging at several
//! levels, through `tracing` and through the `log` crate, written as JSON
//! lines on stdout with the trace id, span id, workflow and correlation id
//! of where each line was emitted. Each trace's tree follows on the console;
//! the step's log events are also span events of the step.
//!
//! Run with `cargo run --example logs`; `RUST_LOG=debug` shows the debug
//! lines too. With `OTEL_LOGS_EXPORTER=otlp` the same records also go to an
//! OTLP endpoint as OpenTelemetry log records.

use std::fmt;

use workflow_otel::logs::LogFormat;
use workflow_otel::{step, workflow};

#[derive(Debug)]
struct ImportError(u32);

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch {} has no rows", self.0)
    }
}

impl std::error::Error for ImportError {}

#[workflow]
async fn import_batch(batch: u32) -> Result<usize, ImportError> {
    tracing::info!(batch, "import started");
    let rows = parse(batch).await?;
    store(rows).await;
    Ok(rows)
}

#[step]
async fn parse(batch: u32) -> Result<usize, ImportError> {
    tracing::debug!(batch, "parsing");
    match batch {
        0 => {
            tracing::error!(batch, "empty batch");
            Err(ImportError(batch))
        }
        2 => {
            tracing::warn!(batch, row = 17, "malformed row skipped");
            Ok(99)
        }
        _ => Ok(100),
    }
}

#[step]
async fn store(rows: usize) {
    tracing::info!(rows, "rows stored");
    // Crates that log through `log` are bridged in.
    log::info!("index refreshed");
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _telemetry = workflow_otel::setup()
        .default_service_name("importer")
        .logs(LogFormat::Json)
        .log_span_events()
        .try_install()?;
    tracing::info!("importer starting");
    for batch in 1..=3 {
        let _ = import_batch(batch).await;
    }
    let _ = import_batch(0).await;
    tracing::info!("importer done");
    Ok(())
}
