//! Several exporters behind one: each batch goes to every one of them.

use std::fmt;
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::pipeline::{ExportFuture, NativeExport, Records, native_of};

/// `SpanExporter` made object-safe, so exporters of different types can sit
/// in one list.
pub(crate) trait DynExporter: Send + Sync + fmt::Debug {
    fn export_dyn(&self, batch: Vec<SpanData>) -> ExportFuture<'_>;
    fn force_flush_dyn(&self) -> OTelSdkResult;
    fn shutdown_dyn(&self, timeout: Duration) -> OTelSdkResult;
    fn set_resource_dyn(&mut self, resource: &Resource);
    fn native(&self) -> Option<&dyn NativeExport>;
}

impl<E: SpanExporter + 'static> DynExporter for E {
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

    fn native(&self) -> Option<&dyn NativeExport> {
        native_of(self)
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
        first_error(results)
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

impl NativeExport for Fanout {
    /// Exporters of ours get the records; `SpanData` is made once, and
    /// only if another exporter is in the list.
    fn export_records<'a>(&'a self, records: &'a Records<'a>) -> ExportFuture<'a> {
        Box::pin(async move {
            let mut results = Vec::with_capacity(self.exporters.len());
            let mut others = self
                .exporters
                .iter()
                .filter(|exporter| exporter.native().is_none())
                .count();
            let mut spans = None;
            for exporter in &self.exporters {
                let result = match exporter.native() {
                    Some(native) => native.export_records(records).await,
                    None => {
                        others -= 1;
                        let spans = spans.get_or_insert_with(|| records.to_span_data());
                        let batch = if others == 0 {
                            std::mem::take(spans)
                        } else {
                            spans.clone()
                        };
                        exporter.export_dyn(batch).await
                    }
                };
                results.push(result);
            }
            first_error(results)
        })
    }
}
