//! The policy: what tail sampling keeps, its bounds, and the form of
//! `WORKFLOW_OTEL_TAIL_SAMPLING`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TraceId;
use opentelemetry_sdk::trace::SpanData;

/// A rule over a whole trace: its spans as exporters would get them.
type Rule = Arc<dyn Fn(&[SpanData]) -> bool + Send + Sync>;

/// Which local traces are kept, decided when their root ends; set with
/// [`Setup::tail_sampling`](crate::Setup::tail_sampling),
/// [`PipelineConfig::tail_sampling`](crate::PipelineConfig::tail_sampling)
/// or `WORKFLOW_OTEL_TAIL_SAMPLING`.
///
/// A trace is kept if any of its spans failed (`keep_errors`, on by
/// default; a panic is a failure), if one was cancelled (`keep_cancelled`,
/// off), if its root took longer than `slower_than`, if the `rule` says so,
/// or else with probability `ratio` (0 by default), decided from the trace
/// id's random bits so that every process using the same ratio agrees. The
/// root of a kept trace carries `sampling.reason` = `error`, `cancelled`,
/// `slow`, `rule` or `ratio`.
///
/// Held spans are bounded: at most `max_held_spans` in all (100 000) and
/// `max_trace_spans` per trace (10 000), each for at most `max_hold` (60 s).
/// A trace that would pass a bound is decided at once, as if its root had
/// ended then (a failure so far keeps it; the rule and the ratio decide
/// the rest, not the duration); its later spans follow that decision, which
/// is remembered for twice `max_hold` (at least a minute), for at most
/// twice `max_held_spans` traces.
///
/// ```
/// use std::time::Duration;
/// use workflow_otel::TailSampling;
///
/// let tail = TailSampling::new()
///     .slower_than(Duration::from_secs(2))
///     .rule(|spans| spans.iter().any(|span| {
///         span.attributes.iter().any(|kv| kv.key.as_str() == "order.priority" && kv.value.as_str() == "high")
///     }))
///     .ratio(0.01);
/// # drop(tail);
/// ```
#[derive(Clone)]
pub struct TailSampling {
    pub(super) keep_errors: bool,
    pub(super) keep_cancelled: bool,
    pub(super) slower_than: Option<Duration>,
    pub(super) rule: Option<Rule>,
    pub(super) ratio: f64,
    pub(super) max_held_spans: usize,
    pub(super) max_trace_spans: usize,
    pub(super) max_hold: Duration,
}

impl Default for TailSampling {
    fn default() -> Self {
        TailSampling::new()
    }
}

impl TailSampling {
    /// Spans held in all, by default.
    pub const DEFAULT_MAX_HELD_SPANS: usize = 100_000;
    /// Spans held per trace, by default.
    pub const DEFAULT_MAX_TRACE_SPANS: usize = 10_000;
    /// How long a trace is held at most, by default.
    pub const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(60);

    /// Keeps traces with a failure, drops the rest.
    pub fn new() -> TailSampling {
        TailSampling {
            keep_errors: true,
            keep_cancelled: false,
            slower_than: None,
            rule: None,
            ratio: 0.0,
            max_held_spans: Self::DEFAULT_MAX_HELD_SPANS,
            max_trace_spans: Self::DEFAULT_MAX_TRACE_SPANS,
            max_hold: Self::DEFAULT_MAX_HOLD,
        }
    }

    /// Whether a trace with a failed span (status `Error`, a panic) is kept.
    pub fn keep_errors(mut self, keep: bool) -> Self {
        self.keep_errors = keep;
        self
    }

    /// Whether a trace with a cancelled workflow or step is kept.
    pub fn keep_cancelled(mut self, keep: bool) -> Self {
        self.keep_cancelled = keep;
        self
    }

    /// Keeps traces whose root took longer than `threshold`.
    pub fn slower_than(mut self, threshold: Duration) -> Self {
        self.slower_than = Some(threshold);
        self
    }

    /// Keeps traces for which `rule` returns true; it sees every span of
    /// the trace, with the attributes set anywhere in the body. It runs on
    /// the export thread, for traces not kept already.
    pub fn rule(mut self, rule: impl Fn(&[SpanData]) -> bool + Send + Sync + 'static) -> Self {
        self.rule = Some(Arc::new(rule));
        self
    }

    /// Keeps this share of the other traces (0 to 1).
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        self
    }

    /// Spans held in all before the oldest trace is decided early.
    pub fn max_held_spans(mut self, spans: usize) -> Self {
        self.max_held_spans = spans.max(1);
        self
    }

    /// Spans held of one trace before it is decided early.
    pub fn max_trace_spans(mut self, spans: usize) -> Self {
        self.max_trace_spans = spans.max(1);
        self
    }

    /// How long a trace is held before it is decided early (a root that
    /// runs for hours).
    pub fn max_hold(mut self, hold: Duration) -> Self {
        self.max_hold = hold;
        self
    }

    /// Reads `WORKFLOW_OTEL_TAIL_SAMPLING`'s form: comma-separated `errors`
    /// (on unless `errors=false`), `cancelled`, `slower_than=500ms` (`ms`,
    /// `s`), `ratio=0.01`, `max_held_spans=N`, `max_trace_spans=N`,
    /// `max_hold=60s`.
    pub(crate) fn parse(text: &str) -> Result<TailSampling, String> {
        let mut tail = TailSampling::new();
        for item in text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let (key, value) = match item.split_once('=') {
                Some((key, value)) => (key.trim(), Some(value.trim())),
                None => (item, None),
            };
            let flag = |value: Option<&str>| match value {
                None | Some("true") => Ok(true),
                Some("false") => Ok(false),
                Some(other) => Err(format!("`{key}={other}`: expected true or false")),
            };
            let count = |value: Option<&str>| {
                value
                    .and_then(|text| text.parse::<usize>().ok())
                    .filter(|count| *count > 0)
                    .ok_or_else(|| format!("`{item}`: expected `{key}=` a whole number above 0"))
            };
            match key {
                "errors" => tail.keep_errors = flag(value)?,
                "cancelled" => tail.keep_cancelled = flag(value)?,
                "slower_than" => tail.slower_than = Some(duration(key, value)?),
                "max_hold" => tail.max_hold = duration(key, value)?,
                "ratio" => {
                    tail.ratio = value
                        .and_then(|text| text.parse::<f64>().ok())
                        .filter(|ratio| (0.0..=1.0).contains(ratio))
                        .ok_or_else(|| {
                            format!("`{item}`: expected `ratio=` a number from 0 to 1")
                        })?;
                }
                "max_held_spans" => tail.max_held_spans = count(value)?,
                "max_trace_spans" => tail.max_trace_spans = count(value)?,
                _ => {
                    return Err(format!(
                        "unknown item `{item}`; expected errors, cancelled, slower_than=, ratio=, \
                         max_held_spans=, max_trace_spans=, max_hold="
                    ));
                }
            }
        }
        Ok(tail)
    }
}

fn duration(key: &str, value: Option<&str>) -> Result<Duration, String> {
    let text = value.unwrap_or_default();
    let parsed = if let Some(millis) = text.strip_suffix("ms") {
        millis.trim().parse::<u64>().ok().map(Duration::from_millis)
    } else if let Some(seconds) = text.strip_suffix('s') {
        seconds
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0 && *seconds < 1e9)
            .map(Duration::from_secs_f64)
    } else {
        None
    };
    parsed.ok_or_else(|| format!("`{key}={text}`: expected a duration such as 500ms or 2s"))
}

impl fmt::Debug for TailSampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TailSampling")
            .field("keep_errors", &self.keep_errors)
            .field("keep_cancelled", &self.keep_cancelled)
            .field("slower_than", &self.slower_than)
            .field("rule", &self.rule.as_ref().map(|_| "<closure>"))
            .field("ratio", &self.ratio)
            .field("max_held_spans", &self.max_held_spans)
            .field("max_trace_spans", &self.max_trace_spans)
            .field("max_hold", &self.max_hold)
            .finish()
    }
}

/// Whether the trace id's random part (its rightmost 56 bits, random by
/// W3C Trace Context Level 2) falls in the kept share.
pub(super) fn ratio_keeps(trace_id: TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let random = u128::from_be_bytes(trace_id.to_bytes()) as u64 & ((1 << 56) - 1);
    // Compared as integers: a 56-bit value does not fit a double's mantissa.
    let threshold = (ratio * (1_u64 << 56) as f64) as u64;
    random < threshold
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn the_ratio_reads_the_random_bits() {
        let id = |low: u64| TraceId::from(u128::from(low));
        assert!(ratio_keeps(id(0), 0.01));
        assert!(!ratio_keeps(id((1 << 56) - 1), 0.99));
        assert!(ratio_keeps(id((1 << 55) - 1), 0.5));
        assert!(!ratio_keeps(id(1 << 55), 0.5));
        assert!(!ratio_keeps(id(0), 0.0));
        assert!(ratio_keeps(id(u64::MAX), 1.0));
        // Bits above the random part do not count.
        assert!(ratio_keeps(TraceId::from(u128::MAX << 56), 0.01));
    }

    #[test]
    fn the_environment_form_is_read_and_checked() {
        let tail =
            TailSampling::parse("errors, slower_than=500ms, ratio=0.01, max_hold=2s").unwrap();
        assert!(tail.keep_errors);
        assert_eq!(tail.slower_than, Some(Duration::from_millis(500)));
        assert_eq!(tail.ratio, 0.01);
        assert_eq!(tail.max_hold, Duration::from_secs(2));
        let tail = TailSampling::parse("errors=false,cancelled,max_held_spans=10").unwrap();
        assert!(!tail.keep_errors && tail.keep_cancelled);
        assert_eq!(tail.max_held_spans, 10);
        for bad in [
            "ratio=2",
            "slower_than=5",
            "max_trace_spans=0",
            "sometimes",
            "errors=maybe",
        ] {
            assert!(TailSampling::parse(bad).is_err(), "{bad}");
        }
    }
}
