//! A request's span between its start and its end, and the duration metric
//! that goes with it: `http.server.request.duration`,
//! `http.client.request.duration`, `rpc.server.call.duration` and
//! `rpc.client.call.duration`, recorded (with metrics on) when the span
//! ends, with the conventions' attributes and an exemplar of the span.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::Instant;

use opentelemetry::metrics::{Histogram, MeterProvider as _};
use opentelemetry::trace::{Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};

use crate::http::grpc::{Call, Side};

/// The conventions' advice for the four duration histograms, in seconds.
const DURATION_BOUNDARIES: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Which duration a request adds to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Duration {
    HttpServer,
    HttpClient,
    RpcServer,
    RpcClient,
}

impl Duration {
    pub(crate) fn of(side: Side, grpc: bool) -> Duration {
        match (side, grpc) {
            (Side::Server, false) => Duration::HttpServer,
            (Side::Client, false) => Duration::HttpClient,
            (Side::Server, true) => Duration::RpcServer,
            (Side::Client, true) => Duration::RpcClient,
        }
    }

    /// The span attributes the metric keeps: the conventions' required and
    /// recommended ones, all of low cardinality.
    fn keeps(self, key: &str) -> bool {
        match self {
            Duration::HttpServer => matches!(
                key,
                "http.request.method" | "url.scheme" | "http.route" | "network.protocol.version"
            ),
            Duration::HttpClient => matches!(
                key,
                "http.request.method" | "server.address" | "server.port"
            ),
            Duration::RpcServer | Duration::RpcClient => {
                matches!(key, "rpc.system.name" | "rpc.method")
            }
        }
    }

    fn histogram(self) -> &'static Histogram<f64> {
        static HISTOGRAMS: OnceLock<[Histogram<f64>; 4]> = OnceLock::new();
        let histograms = HISTOGRAMS.get_or_init(|| {
            let meter =
                crate::metrics::meter_provider().meter_with_scope(crate::record::raw::scope());
            let make = |name: &'static str, description: &'static str| {
                meter
                    .f64_histogram(name)
                    .with_unit("s")
                    .with_description(description)
                    .with_boundaries(DURATION_BOUNDARIES.to_vec())
                    .build()
            };
            [
                make(
                    "http.server.request.duration",
                    "Duration of HTTP server requests.",
                ),
                make(
                    "http.client.request.duration",
                    "Duration of HTTP client requests.",
                ),
                make("rpc.server.call.duration", "Duration of incoming RPCs."),
                make("rpc.client.call.duration", "Duration of outgoing RPCs."),
            ]
        });
        &histograms[self as usize]
    }
}

/// The metric of a request under way: when it started, and its attributes.
#[derive(Debug)]
pub(crate) struct Measure {
    started: Instant,
    duration: Duration,
    attributes: Vec<KeyValue>,
}

impl Measure {
    /// A measure of `duration` with the attributes it keeps of the span's,
    /// when metrics are on.
    pub(crate) fn start(duration: Duration, span_attributes: &[KeyValue]) -> Option<Measure> {
        crate::metrics::series::enabled().then(|| Measure {
            started: Instant::now(),
            duration,
            attributes: span_attributes
                .iter()
                .filter(|attribute| duration.keeps(attribute.key.as_str()))
                .cloned()
                .collect(),
        })
    }
}

/// A span still waiting for its answer or its body to end.
#[derive(Debug)]
pub(crate) struct OpenSpan {
    pub(crate) cx: Context,
    pub(crate) grpc: Option<Call>,
    /// Which end of the request the span is: how its status is judged.
    pub(crate) side: Side,
    pub(crate) measure: Option<Measure>,
}

impl OpenSpan {
    /// Sets `attribute` on the span, and on the metric too if `metric`.
    pub(crate) fn attribute(&mut self, attribute: KeyValue, metric: bool) {
        if metric && let Some(measure) = &mut self.measure {
            measure.attributes.push(attribute.clone());
        }
        self.cx.span().set_attribute(attribute);
    }

    /// Records a response's status code; `Error` (with `error.type` = the
    /// code) when `failed` says so for it.
    pub(crate) fn status_code(&mut self, code: u16, failed: bool) {
        self.attribute(
            KeyValue::new("http.response.status_code", i64::from(code)),
            true,
        );
        if failed {
            // The reason phrase, so that a tree or a trace view says what failed.
            let reason = ::http::StatusCode::from_u16(code)
                .ok()
                .and_then(|status| status.canonical_reason())
                .unwrap_or("");
            self.failure(
                Cow::Owned(code.to_string()),
                format!("{code} {reason}").trim_end().to_owned(),
            );
        }
    }

    /// Records a failure: `error.type` and the status message.
    pub(crate) fn failure(&mut self, error_type: Cow<'static, str>, message: String) {
        self.attribute(KeyValue::new("error.type", error_type), true);
        self.cx.span().set_status(Status::error(message));
    }

    /// Ends the span and records its duration: the answer is complete.
    pub(crate) fn end(mut self) {
        if self.grpc.as_ref().is_some_and(|call| !call.seen) {
            // No status at all: the stream was cut (gRPC says UNKNOWN).
            crate::http::grpc::record_missing_status(&mut self);
        }
        if let Some(measure) = self.measure.take() {
            // The span's context current, so the exemplar points at it.
            let _attached = self.cx.clone().attach();
            measure
                .duration
                .histogram()
                .record(measure.started.elapsed().as_secs_f64(), &measure.attributes);
        }
        self.cx.span().end();
    }

    /// Ends the span of a request that did not finish (the peer went away,
    /// a panic): no duration is recorded for it.
    pub(crate) fn abandon(self) {
        self.cx.span().end();
    }
}
