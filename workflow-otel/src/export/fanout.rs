//! Several exporters behind one: each batch goes to every one of them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

type ExportFuture<'a> = Pin<Box<dyn Future<Output = OTelSdkResult> + Send + 'a>>;

/// `SpanExporter` made object-safe, so exporters of different types can sit
/// in one list.
pub(crate) trait DynExporter: Send + Sync + fmt::Debug {
    fn export_dyn(&self, batch: Vec<SpanData>) -> ExportFuture<'_>;
    fn force_flush_dyn(&self) -> OTelSdkResult;
    fn shutdown_dyn(&self, timeout: Duration) -> OTelSdkResult;
    fn set_resource_dyn(&mut self, resource: &Resource);
}

impl<E: SpanExporter> DynExporter for E {
    fn export_dyn(&self, batch: Vec<SpanData>) -> ExportFuture<'_> {
        Box::pin(self.export(batch))
    }

    fn force_flush_dyn(&self) -> OTelSdkResult {
        self.force_flush()
    }

    fn shutdown_dyn(&self, timeout: Duration) -> OTelSdkResult {
        self.shutdown_with_timeout(timeout)
    }

    fn set_resource_dyn(&mut self, resource: &Resource) {
        self.set_resource(resource);
    }
}

/// Sends every batch to each exporter in turn. A batch counts as exported only
/// if every exporter took it: one failing backend shows in the drop count
/// even while another still receives the spans.
#[derive(Debug)]
pub(crate) struct Fanout {
    exporters: Vec<Box<dyn DynExporter>>,
}

impl Fanout {
    pub(crate) fn new(exporters: Vec<Box<dyn DynExporter>>) -> Fanout {
        Fanout { exporters }
    }
}

fn first_error(results: impl IntoIterator<Item = OTelSdkResult>) -> OTelSdkResult {
    let mut failure = Ok(());
    for result in results {
        if let (Err(error), true) = (result, failure.is_ok()) {
            failure = Err(error);
        }
    }
    failure
}

impl SpanExporter for Fanout {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut results = Vec::with_capacity(self.exporters.len());
        if let Some((last, rest)) = self.exporters.split_last() {
            for exporter in rest {
                results.push(exporter.export_dyn(batch.clone()).await);
            }
            results.push(last.export_dyn(batch).await);
        }
        first_error(results).map_err(|error| OTelSdkError::InternalFailure(format!("{error}")))
    }

    fn force_flush(&self) -> OTelSdkResult {
        first_error(
            self.exporters
                .iter()
                .map(|exporter| exporter.force_flush_dyn()),
        )
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        first_error(
            self.exporters
                .iter()
                .map(|exporter| exporter.shutdown_dyn(timeout)),
        )
    }

    fn set_resource(&mut self, resource: &Resource) {
        for exporter in &mut self.exporters {
            exporter.set_resource_dyn(resource);
        }
    }
}
