//! Metrics from the same three attributes: every `#[workflow]`,
//! `#[child_workflow]` and `#[step]` call adds to a duration histogram, a
//! count of calls by outcome, a count of failures by `error.type`, and, for
//! workflows, a gauge of runs in flight. Every call counts, sampled or not.
//!
//! The calling thread aggregates in place (a few atomic additions into a
//! series found through its static site), so there is no queue to fill and
//! nothing a slow backend can hold up; the Prometheus endpoint and the OTLP
//! exporter read the totals when they need them. A sampled call also leaves
//! its trace and span id as the exemplar of the histogram bucket it fell in.
//!
//! Turned on by [`Setup::prometheus`](crate::Setup::prometheus),
//! [`Setup::otlp_metrics`](crate::Setup::otlp_metrics), or
//! `OTEL_METRICS_EXPORTER`; off, each call pays one relaxed load.
//!
//! | instrument (OpenTelemetry name) | Prometheus name | labels |
//! |---|---|---|
//! | `workflow.duration` histogram, s | `workflow_duration_seconds` | `workflow_name` |
//! | `workflow.calls` counter | `workflow_calls_total` | `workflow_name`, `outcome` |
//! | `workflow.failures` counter | `workflow_failures_total` | `workflow_name`, `error_type` |
//! | `workflow.active` up-down counter | `workflow_active` | `workflow_name` |
//! | `workflow.step.duration` histogram, s | `workflow_step_duration_seconds` | `workflow_name`, `step_name` |
//! | `workflow.step.calls` counter | `workflow_step_calls_total` | `workflow_name`, `step_name`, `outcome` |
//! | `workflow.step.failures` counter | `workflow_step_failures_total` | `workflow_name`, `step_name`, `error_type` |
//!
//! `outcome` is `ok`, `error`, `panic` or `cancelled`; `error.type` is the
//! error's type name, or `panic`, as on the span. A step's `workflow.name` is
//! the workflow it ran in (empty outside any).
//!
//! Model calls ([`genai`](crate::genai)) add the GenAI conventions' client
//! metrics, with the conventions' bucket boundaries
//! ([`GEN_AI_DURATION_BUCKETS`], [`GEN_AI_TOKEN_BUCKETS`]), and a cost
//! counter:
//!
//! | instrument (OpenTelemetry name) | Prometheus name | labels |
//! |---|---|---|
//! | `gen_ai.client.operation.duration` histogram, s | `gen_ai_client_operation_duration_seconds` | `gen_ai_operation_name`, `gen_ai_provider_name`, `gen_ai_request_model`, `error_type` (failed calls) |
//! | `gen_ai.client.token.usage` histogram, {token} | `gen_ai_client_token_usage` | the same, `gen_ai_token_type` = `input` / `output` |
//! | `workflow.gen_ai.cost` counter | `workflow_gen_ai_cost_total` | `gen_ai_provider_name`, `gen_ai_request_model`, `currency` |
//!
//! Every histogram bucket above keeps an exemplar: the trace and span id of
//! a recent sampled call that fell in it.
//!
//! # The service's own instruments
//!
//! With metrics on, `setup()` makes [`meter_provider`] the global
//! OpenTelemetry meter provider: instruments made with the metrics API after
//! it are exported with the workflow metrics, by the same exporters. Every
//! kind of the API is supported (counters, up-down counters, histograms
//! with bucket advice, gauges, and the observable ones); Prometheus names
//! follow the OpenTelemetry compatibility rules (unit suffix, `_total` on
//! counters, `otel_scope_name`/`otel_scope_version` labels); counters and
//! histogram buckets keep exemplars from the current sampled span.
//!
//! ```
//! use opentelemetry::KeyValue;
//! use opentelemetry::metrics::MeterProvider as _;
//!
//! // What `opentelemetry::global::meter("orders")` gives after `setup()`.
//! let meter = workflow_otel::metrics::meter_provider().meter("orders");
//! let latency = meter
//!     .f64_histogram("checkout.duration")
//!     .with_unit("s")
//!     .with_boundaries(vec![0.05, 0.1, 0.5, 1.0])
//!     .build();
//! latency.record(0.07, &[KeyValue::new("region", "eu")]);
//! // Served as `checkout_duration_seconds_bucket{otel_scope_name="orders",region="eu",le="0.1"} 1`.
//! ```
//!
//! Limits: [`DEFAULT_CARDINALITY_LIMIT`] attribute sets per instrument
//! (the last the overflow series `otel.metric.overflow = true`), sets of at
//! most [`MAX_ATTRIBUTE_SET_BYTES`] of text, [`MAX_INSTRUMENTS`]
//! instruments, observable callbacks waited for at most
//! [`CALLBACK_DEADLINE`] per collection. A name the API does not allow, or
//! registered again with another kind or unit, records nothing and is
//! reported once on stderr.

pub(crate) mod encode;
pub(crate) mod exemplar;
pub(crate) mod genai;
pub(crate) mod instruments;
#[cfg(feature = "otlp")]
pub(crate) mod otlp;
pub(crate) mod periodic;
pub(crate) mod prometheus;
pub(crate) mod series;

use std::time::Duration;

use opentelemetry::trace::SpanContext;

use crate::record::context::WorkflowContext;
use crate::record::ids::{self, Ticks};
use crate::record::span::{Kind, Site};
pub use exemplar::EXEMPLAR_INTERVAL;
pub use genai::{
    DURATION_BUCKETS as GEN_AI_DURATION_BUCKETS, TOKEN_BUCKETS as GEN_AI_TOKEN_BUCKETS,
};
pub use instruments::{
    CALLBACK_DEADLINE, DEFAULT_CARDINALITY_LIMIT, DEFAULT_HISTOGRAM_BOUNDARIES,
    MAX_ATTRIBUTE_SET_BYTES, MAX_INSTRUMENTS, WorkflowMeterProvider, meter_provider,
};
pub use prometheus::{CLIENT_TIMEOUT, MAX_CONNECTION_TIME, MAX_CONNECTIONS, MAX_REQUEST_HEAD};
pub use series::{MAX_ERROR_TYPES, MAX_SERIES};
use series::{Outcome, Series, SeriesKind};

/// Histogram bounds in seconds, for work that takes from a millisecond to
/// ten minutes: roughly 1-2.5-5 steps per decade.
pub const DEFAULT_BUCKETS: [f64; 18] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
];

/// Where the Prometheus endpoint listens unless told otherwise
/// (`OTEL_EXPORTER_PROMETHEUS_HOST`, `OTEL_EXPORTER_PROMETHEUS_PORT`).
pub const DEFAULT_PROMETHEUS_ADDRESS: &str = "localhost:9464";

/// How often metrics are pushed over OTLP or printed, unless
/// `OTEL_METRIC_EXPORT_INTERVAL` says otherwise (the specification's default).
pub const DEFAULT_EXPORT_INTERVAL: Duration = Duration::from_secs(60);

/// The name a recorded call of `site` is labelled with: a workflow's own, a
/// step's owner's.
fn workflow_label(site: &'static Site, workflow: Option<&WorkflowContext>) -> &'static str {
    match site.kind {
        Kind::Step => workflow.map_or("", WorkflowContext::static_name),
        Kind::Workflow | Kind::ChildWorkflow => site.name,
    }
}

/// A recorded call of `site` starts: its series, for its record to carry (a
/// workflow is counted in flight).
#[inline]
pub(crate) fn started(
    site: &'static Site,
    workflow: Option<&WorkflowContext>,
) -> Option<&'static Series> {
    let series = series::series_for(site, workflow_label(site, workflow))?;
    if series.kind == SeriesKind::Workflow {
        series.enter();
    }
    Some(series)
}

/// A recorded call that ran `ticks` (start, end) ended.
#[inline(always)]
pub(crate) fn ended(
    series: &'static Series,
    (started, ended): (Ticks, Ticks),
    cancelled: bool,
    error_type: Option<&'static str>,
    span: &SpanContext,
) {
    Meter { series, started }.end(ended, cancelled, error_type, Some(span));
}

/// The metrics side of one call: its series, and when it started. Dropped
/// unfinished, it ends the call as cancelled (or panicked, while unwinding).
#[derive(Debug)]
pub(crate) struct Meter {
    series: &'static Series,
    started: Ticks,
}

impl Meter {
    /// A call of `site` starting at `started`, inside the workflow named
    /// `workflow` (its own name for workflows); `None` while metrics are off.
    #[inline]
    pub(crate) fn start(
        site: &'static Site,
        workflow: &'static str,
        started: Ticks,
    ) -> Option<Meter> {
        let series = series::series_for(site, workflow)?;
        if series.kind == SeriesKind::Workflow {
            series.enter();
        }
        Some(Meter { series, started })
    }

    /// Ends the call. `error_type` is set for failures (`panic` for a
    /// panic); `sampled` is the call's span when it was recorded.
    #[inline(always)]
    pub(crate) fn end(
        self,
        ended: Ticks,
        cancelled: bool,
        error_type: Option<&'static str>,
        sampled: Option<&SpanContext>,
    ) {
        // Ended here, so not again by `Drop`.
        let this = std::mem::ManuallyDrop::new(self);
        this.record(ended, cancelled, error_type, sampled);
    }

    #[inline(always)]
    fn record(
        &self,
        ended: Ticks,
        cancelled: bool,
        error_type: Option<&'static str>,
        sampled: Option<&SpanContext>,
    ) {
        let series = self.series;
        let outcome = match error_type {
            Some(crate::record::raw::PANIC) => Outcome::Panic,
            Some(_) => Outcome::Error,
            None if cancelled => Outcome::Cancelled,
            None => Outcome::Ok,
        };
        let ticks = ended.saturating_sub(self.started);
        let bucket = series.observe(ticks, outcome);
        if let Some(span) = sampled {
            series.keep_exemplar(bucket, span, ticks, ended);
        }
        if let Some(error_type) = error_type {
            series.fail(error_type);
        }
        if series.kind == SeriesKind::Workflow {
            series.leave();
        }
    }
}

impl Drop for Meter {
    #[cold]
    fn drop(&mut self) {
        let panicked = std::thread::panicking().then_some(crate::record::raw::PANIC);
        self.record(ids::now(), panicked.is_none(), panicked, None);
    }
}
