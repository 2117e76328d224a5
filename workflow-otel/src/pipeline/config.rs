//! The pipeline's settings and its report of lost spans.

use std::fmt;
use std::time::Duration;

use crate::pipeline::error_text::ErrorText;

/// Queue length, batch size and timings of a [`Pipeline`](super::Pipeline). The defaults are
/// those of OpenTelemetry's batch span processor (`OTEL_BSP_*`), and of its
/// SDK's flush and shutdown timeout.
#[derive(Clone)]
pub struct PipelineConfig {
    /// Spans the queue holds before new ones are dropped (2048; at most
    /// [`MAX_QUEUE_SIZE`]). Memory is taken as spans arrive, not up front.
    pub max_queue_size: usize,
    /// Spans per export call; a full batch also wakes the worker early (512).
    pub max_export_batch_size: usize,
    /// How long the worker waits between exports when batches stay small (5 s;
    /// zero exports as soon as spans arrive).
    pub scheduled_delay: Duration,
    /// How long one export may take before its batch is given up (30 s).
    pub export_timeout: Duration,
    /// The most that [`Pipeline::force_flush`](super::Pipeline::force_flush) and [`Pipeline::shutdown`](super::Pipeline::shutdown)
    /// take, whatever the backend does (5 s): what is not exported by then is
    /// counted as dropped.
    pub shutdown_timeout: Duration,
    /// How often, at most, lost spans are reported (10 s).
    pub drop_report_interval: Duration,
    /// Where lost spans are reported: by default a line on stderr.
    pub drop_report: fn(&DropReport),
    /// What error text (status messages, exception messages and stack traces)
    /// may leave the process; see [`ErrorText`].
    pub error_text: ErrorText,
    /// Hold each local trace until its root ends and keep it or drop it
    /// whole (`None`, the default: every span is exported).
    pub tail_sampling: Option<super::TailSampling>,
    /// How many attributes, events and links a span keeps, and how long
    /// their text may be; see [`SpanLimits`](super::SpanLimits).
    pub span_limits: super::SpanLimits,
}

/// The largest `max_queue_size` accepted: 2^31 - 1, the largest integer the
/// OpenTelemetry specification asks SDKs to support.
pub const MAX_QUEUE_SIZE: usize = (1 << 31) - 1;

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_queue_size: 2048,
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_secs(5),
            export_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
            drop_report_interval: Duration::from_secs(10),
            drop_report: report_to_stderr,
            error_text: ErrorText::default(),
            tail_sampling: None,
            span_limits: super::SpanLimits::default(),
        }
    }
}

impl fmt::Debug for PipelineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineConfig")
            .field("max_queue_size", &self.max_queue_size)
            .field("max_export_batch_size", &self.max_export_batch_size)
            .field("scheduled_delay", &self.scheduled_delay)
            .field("export_timeout", &self.export_timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("drop_report_interval", &self.drop_report_interval)
            .field("error_text", &self.error_text)
            .field("tail_sampling", &self.tail_sampling)
            .field("span_limits", &self.span_limits)
            .finish_non_exhaustive()
    }
}

/// Spans lost since the last report, given to [`PipelineConfig::drop_report`]
/// at most once per [`PipelineConfig::drop_report_interval`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropReport {
    /// Spans lost since the previous report.
    pub dropped: u64,
    /// Spans lost since the pipeline started.
    pub dropped_total: u64,
    /// Spans exported since the pipeline started.
    pub exported_total: u64,
    /// Why the last export since the previous report failed, as the
    /// exporter said it (a refused connection, an unknown certificate
    /// issuer, a timeout); `None` if only the queue dropped spans.
    pub last_error: Option<String>,
}

/// The default [`PipelineConfig::drop_report`]: one line on stderr.
pub fn report_to_stderr(report: &DropReport) {
    eprintln!(
        "workflow-otel: {} spans dropped (queue full, export failed or timed out); \
         {} dropped and {} exported in all{}",
        report.dropped,
        report.dropped_total,
        report.exported_total,
        report
            .last_error
            .as_ref()
            // A backend's answer may carry anything: shown, never obeyed.
            .map(|error| format!("; last export error: {}", crate::terminal_safe(error)))
            .unwrap_or_default()
    );
}
