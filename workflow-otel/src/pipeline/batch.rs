//! What the worker exports: our records and other libraries' `SpanData`, in
//! the order they reached it. The built-in exporters encode the records as
//! they are ([`NativeExport`]); any other exporter gets the batch as
//! `SpanData`, built from the same records by the same attribute walk.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::export::JsonLinesExporter;
use crate::export::fanout::Fanout;
use crate::pipeline::error_text::ErrorText;
use crate::pipeline::limits::SpanLimits;
use crate::record::ids::Calibration;
use crate::record::raw::{Extras, RawSpan};

/// One span of a batch.
#[derive(Debug)]
pub(crate) enum Item {
    Ours(RawSpan),
    /// Its error text already filtered, when the worker took it.
    Foreign(Box<SpanData>),
}

/// A batch, with what it takes to read our records: their scope, the clock
/// that turns their ticks into times, the rule for error text, and the span
/// limits.
pub(crate) struct Records<'a> {
    pub(crate) items: &'a [Item],
    pub(crate) scope: &'a InstrumentationScope,
    pub(crate) clock: &'a Calibration,
    pub(crate) error_text: &'a ErrorText,
    pub(crate) limits: &'a SpanLimits,
}

impl Records<'_> {
    /// The batch as the SDK's `SpanData`, error text filtered; the batch
    /// stays as it is, for the other exporters of a list.
    pub(crate) fn to_span_data(&self) -> Vec<SpanData> {
        self.items
            .iter()
            .map(|item| self.span_data_of(item))
            .collect()
    }

    /// The batch as the SDK's `SpanData`, taken out of `items`: other
    /// libraries' spans move rather than copy.
    pub(crate) fn take_span_data(
        items: &mut Vec<Item>,
        scope: &InstrumentationScope,
        clock: &Calibration,
        error_text: &ErrorText,
        limits: &SpanLimits,
    ) -> Vec<SpanData> {
        let records = Records {
            items: &[],
            scope,
            clock,
            error_text,
            limits,
        };
        items
            .drain(..)
            .map(|item| match item {
                Item::Ours(mut raw) => {
                    let span = records.ours_to_span_data(&raw);
                    if let Some(extras) = raw.extras.take() {
                        Extras::recycle(extras);
                    }
                    span
                }
                Item::Foreign(span) => *span,
            })
            .collect()
    }

    /// One span as the SDK's `SpanData`, error text filtered: what a tail
    /// sampling rule sees.
    pub(crate) fn span_data_of(&self, item: &Item) -> SpanData {
        match item {
            Item::Ours(raw) => self.ours_to_span_data(raw),
            Item::Foreign(span) => (**span).clone(),
        }
    }

    fn ours_to_span_data(&self, raw: &RawSpan) -> SpanData {
        let mut span = raw.to_span_data(self.scope, self.clock, self.limits);
        self.error_text.apply(&mut span);
        span
    }
}

pub(crate) type ExportFuture<'a> = Pin<Box<dyn Future<Output = OTelSdkResult> + Send + 'a>>;

/// An exporter of ours that writes records without making `SpanData` of
/// them; its output is the same as its `SpanExporter::export` of the batch
/// made into `SpanData`.
pub(crate) trait NativeExport: Send + Sync {
    fn export_records<'a>(&'a self, records: &'a Records<'a>) -> ExportFuture<'a>;
}

/// The native side of `exporter`, if it is one of ours that has one.
pub(crate) fn native_of<E: SpanExporter + 'static>(exporter: &E) -> Option<&dyn NativeExport> {
    let exporter = exporter as &dyn Any;
    if let Some(file) = exporter.downcast_ref::<JsonLinesExporter>() {
        return Some(file);
    }
    if let Some(fanout) = exporter.downcast_ref::<Fanout>() {
        return Some(fanout);
    }
    #[cfg(feature = "otlp")]
    if let Some(otlp) = exporter.downcast_ref::<crate::export::otlp::OtlpExporter>() {
        return Some(otlp);
    }
    #[cfg(feature = "zipkin")]
    if let Some(zipkin) = exporter.downcast_ref::<crate::export::zipkin::ZipkinExporter>() {
        return Some(zipkin);
    }
    #[cfg(feature = "testing")]
    if let Some(counter) = exporter.downcast_ref::<crate::testing::CountingExporter>() {
        return Some(counter);
    }
    None
}
