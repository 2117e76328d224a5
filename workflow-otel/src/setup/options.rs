//! What the builder sets for agent workflows and for sampling.

use super::Setup;
use crate::genai::PriceTable;
use crate::pipeline::{SpanLimits, TailSampling};

impl Setup {
    /// The prices that turn model calls' token counts into costs (see
    /// [`genai`](crate::genai)).
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.prices = Some(prices);
        self
    }

    /// Records prompt and completion text of model calls, each cut to
    /// `max_bytes`; off by default, as prompts often hold personal data.
    pub fn record_genai_content(mut self, max_bytes: usize) -> Self {
        self.genai_content = Some(max_bytes);
        self
    }

    /// Adds OpenInference's names to model-call spans, for Arize Phoenix
    /// (see [`Instrumentation::openinference`](crate::Instrumentation::openinference)).
    pub fn openinference(mut self, on: bool) -> Self {
        self.openinference = on;
        self
    }

    /// Keeps or drops each local trace whole when its root ends, by what
    /// happened in it: every failure kept at any rate (see [`TailSampling`];
    /// overrides `WORKFLOW_OTEL_TAIL_SAMPLING`). The head sampler still
    /// decides first: leave it at its default (every trace) for tail
    /// sampling to see every trace.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use workflow_otel::TailSampling;
    ///
    /// let _telemetry = workflow_otel::setup()
    ///     .tail_sampling(TailSampling::new().slower_than(Duration::from_secs(2)).ratio(0.01))
    ///     .install();
    /// ```
    pub fn tail_sampling(mut self, tail: TailSampling) -> Self {
        self.tail_sampling = Some(tail);
        self
    }

    /// How many attributes, events and links a span keeps, and how long
    /// their strings may be (see [`SpanLimits`]); overrides the
    /// `OTEL_*_LIMIT` variables. Applied to this crate's spans and to every
    /// span other libraries open through the tracer provider installed.
    ///
    /// ```no_run
    /// use workflow_otel::SpanLimits;
    ///
    /// let _telemetry = workflow_otel::setup()
    ///     .span_limits(SpanLimits { attribute_value_length: Some(4096), ..SpanLimits::default() })
    ///     .install();
    /// ```
    pub fn span_limits(mut self, limits: SpanLimits) -> Self {
        self.span_limits = Some(limits);
        self
    }
}
