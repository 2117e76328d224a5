//! Tail sampling: the worker holds the spans of each local trace until its
//! root ends, then keeps or drops the trace whole, by what happened in it.
//!
//! A local root is a span whose parent is not in this process (none, or a
//! remote one): a root workflow, a workflow continuing a remote caller, a
//! server layer's span. Every span of ours and of other libraries reaches
//! the worker with its trace id, so spawned tasks and threads are held with
//! the rest. The caller pays nothing more: holding and deciding happen here.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::metrics::{Counter, MeterProvider as _};
use opentelemetry::trace::{SpanId, Status, TraceId};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;

use crate::pipeline::batch::Item;
use crate::record::ids::Calibration;
use crate::record::raw::{EndState, Extras};

/// The attribute a kept trace's root carries: why it was kept.
pub const SAMPLING_REASON: &str = "sampling.reason";

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
    keep_errors: bool,
    keep_cancelled: bool,
    slower_than: Option<Duration>,
    rule: Option<Rule>,
    ratio: f64,
    max_held_spans: usize,
    max_trace_spans: usize,
    max_hold: Duration,
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
fn ratio_keeps(trace_id: TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let random = u128::from_be_bytes(trace_id.to_bytes()) as u64 & ((1 << 56) - 1);
    // Compared as integers: a 56-bit value does not fit a double's mantissa.
    let threshold = (ratio * (1_u64 << 56) as f64) as u64;
    random < threshold
}

/// What one span tells the decision.
struct Facts {
    trace_id: TraceId,
    local_root: bool,
    failed: bool,
    cancelled: bool,
}

fn facts(item: &Item) -> Facts {
    match item {
        Item::Ours(raw) => Facts {
            trace_id: raw.span_context.trace_id(),
            local_root: raw.parent_span_id == SpanId::INVALID || raw.parent_is_remote,
            failed: raw.state == EndState::Failed,
            cancelled: raw.state == EndState::Cancelled,
        },
        Item::Foreign(span) => Facts {
            trace_id: span.span_context.trace_id(),
            local_root: span.parent_span_id == SpanId::INVALID || span.parent_span_is_remote,
            failed: matches!(span.status, Status::Error { .. }),
            cancelled: false,
        },
    }
}

fn duration_of(item: &Item, clock: &Calibration) -> Duration {
    match item {
        Item::Ours(raw) => clock.duration(raw.ended.saturating_sub(raw.started)),
        Item::Foreign(span) => span
            .end_time
            .duration_since(span.start_time)
            .unwrap_or_default(),
    }
}

/// Puts `sampling.reason` on a root.
fn mark(item: &mut Item, reason: &'static str) {
    let attribute = KeyValue::new(SAMPLING_REASON, Value::from(reason));
    match item {
        Item::Ours(raw) => raw
            .extras
            .get_or_insert_with(Extras::boxed)
            .attributes
            .push(attribute),
        Item::Foreign(span) => span.attributes.push(attribute),
    }
}

struct Held {
    items: Vec<Item>,
    failed: bool,
    cancelled: bool,
}

/// The least time a decision is remembered for the trace's later spans.
const DECISION_MEMORY: Duration = Duration::from_secs(60);

/// A decision taken, for the trace's spans that arrive later.
#[derive(Clone, Copy)]
struct Decided {
    reason: Option<&'static str>,
    at: Instant,
}

/// When a trace was decided: its root ended, or a bound came first.
#[derive(Clone, Copy)]
enum When {
    RootEnded(Duration),
    Budget,
    MaxHold,
    Shutdown,
}

impl When {
    fn label(self) -> &'static str {
        match self {
            When::RootEnded(_) => "root_ended",
            When::Budget => "budget",
            When::MaxHold => "max_hold",
            When::Shutdown => "shutdown",
        }
    }
}

/// What the worker asks of the tail sampler: how to show a span to a rule.
pub(crate) type ToSpanData<'a> = &'a dyn Fn(&Item) -> SpanData;

/// The held traces, on the worker.
pub(crate) struct Tail {
    config: TailSampling,
    held: HashMap<TraceId, Held>,
    /// Held traces in the order they were first seen, for the budget and
    /// the hold time (an entry may name a trace decided since).
    order: VecDeque<(TraceId, Instant)>,
    decided: HashMap<TraceId, Decided>,
    decided_order: VecDeque<TraceId>,
    held_spans: usize,
}

/// Where the tail sampler's spans go: kept ones to the batch, dropped ones
/// counted.
pub(crate) struct Out<'a> {
    pub(crate) kept: &'a mut Vec<Item>,
    pub(crate) dropped: u64,
}

impl Out<'_> {
    fn drop_items(&mut self, items: Vec<Item>) {
        self.dropped += items.len() as u64;
        for item in items {
            if let Item::Ours(mut raw) = item
                && let Some(extras) = raw.extras.take()
            {
                Extras::recycle(extras);
            }
        }
    }
}

impl Tail {
    pub(crate) fn new(config: TailSampling) -> Tail {
        Tail {
            config,
            held: HashMap::new(),
            order: VecDeque::new(),
            decided: HashMap::new(),
            decided_order: VecDeque::new(),
            held_spans: 0,
        }
    }

    /// Takes one span: holds it, or (its trace decided) keeps or drops it.
    pub(crate) fn offer(
        &mut self,
        item: Item,
        clock: &Calibration,
        to_span_data: ToSpanData<'_>,
        out: &mut Out<'_>,
    ) {
        let facts = facts(&item);
        if let Some(decided) = self.decided.get(&facts.trace_id).copied() {
            let mut item = item;
            match decided.reason {
                Some(reason) => {
                    if facts.local_root {
                        mark(&mut item, reason);
                    }
                    out.kept.push(item);
                }
                None => out.drop_items(vec![item]),
            }
            return;
        }
        let root_duration = facts.local_root.then(|| duration_of(&item, clock));
        let now = Instant::now();
        let held = self.held.entry(facts.trace_id).or_insert_with(|| {
            self.order.push_back((facts.trace_id, now));
            Held {
                items: Vec::new(),
                failed: false,
                cancelled: false,
            }
        });
        held.failed |= facts.failed;
        held.cancelled |= facts.cancelled;
        held.items.push(item);
        self.held_spans += 1;
        let full = held.items.len() >= self.config.max_trace_spans;
        match root_duration {
            Some(length) => self.decide(facts.trace_id, When::RootEnded(length), to_span_data, out),
            None if full => self.decide(facts.trace_id, When::Budget, to_span_data, out),
            None => {}
        }
        while self.held_spans > self.config.max_held_spans {
            let Some((oldest, _)) = self.order.pop_front() else {
                break;
            };
            if self.held.contains_key(&oldest) {
                self.decide(oldest, When::Budget, to_span_data, out);
            }
        }
    }

    /// Decides the traces held longer than the hold time; `all` decides
    /// every one (shutdown).
    pub(crate) fn expire(&mut self, all: bool, to_span_data: ToSpanData<'_>, out: &mut Out<'_>) {
        let now = Instant::now();
        while let Some(&(trace_id, since)) = self.order.front() {
            if !self.held.contains_key(&trace_id) {
                // Decided already (its root ended): nothing to wait for.
                self.order.pop_front();
                continue;
            }
            if !all && now.duration_since(since) < self.config.max_hold {
                break;
            }
            self.order.pop_front();
            let when = if all { When::Shutdown } else { When::MaxHold };
            self.decide(trace_id, when, to_span_data, out);
        }
        // Behind a trace held long, entries of decided ones pile up: keep
        // the list within a few times the traces held.
        if self.order.len() > 2 * self.held.len() + 1024 {
            let held = &self.held;
            self.order
                .retain(|(trace_id, _)| held.contains_key(trace_id));
        }
        // A decision is remembered for twice the hold time, at least a
        // minute, and for at most twice the budget's traces.
        let memory = (2 * self.config.max_hold).max(DECISION_MEMORY);
        while let Some(trace_id) = self.decided_order.front().copied() {
            let stale = self
                .decided
                .get(&trace_id)
                .is_none_or(|decided| now.duration_since(decided.at) >= memory);
            if !stale && self.decided.len() <= 2 * self.config.max_held_spans {
                break;
            }
            self.decided_order.pop_front();
            self.decided.remove(&trace_id);
        }
    }

    fn decide(
        &mut self,
        trace_id: TraceId,
        when: When,
        to_span_data: ToSpanData<'_>,
        out: &mut Out<'_>,
    ) {
        let Some(mut held) = self.held.remove(&trace_id) else {
            return;
        };
        self.held_spans -= held.items.len();
        let config = &self.config;
        let reason = if config.keep_errors && held.failed {
            Some("error")
        } else if config.keep_cancelled && held.cancelled {
            Some("cancelled")
        } else if matches!((when, config.slower_than), (When::RootEnded(length), Some(threshold)) if length > threshold)
        {
            Some("slow")
        } else if config.rule.as_ref().is_some_and(|rule| {
            let spans: Vec<SpanData> = held.items.iter().map(to_span_data).collect();
            rule(&spans)
        }) {
            Some("rule")
        } else if ratio_keeps(trace_id, config.ratio) {
            Some("ratio")
        } else {
            None
        };
        count(reason, when, held.items.len() as u64);
        self.decided.insert(
            trace_id,
            Decided {
                reason,
                at: Instant::now(),
            },
        );
        self.decided_order.push_back(trace_id);
        match reason {
            Some(reason) => {
                for item in &mut held.items {
                    if facts(item).local_root {
                        mark(item, reason);
                    }
                }
                out.kept.append(&mut held.items);
            }
            None => out.drop_items(held.items),
        }
    }
}

/// Counts a decision on the metrics endpoint: traces and spans, by
/// decision, reason and when it was taken.
fn count(reason: Option<&'static str>, when: When, spans: u64) {
    static COUNTERS: OnceLock<(Counter<u64>, Counter<u64>)> = OnceLock::new();
    let (traces, span_counter) = COUNTERS.get_or_init(|| {
        let meter = crate::metrics::meter_provider().meter_with_scope(crate::record::raw::scope());
        (
            meter
                .u64_counter("workflow.tail_sampling.traces")
                .with_unit("{trace}")
                .with_description("Local traces decided by tail sampling.")
                .build(),
            meter
                .u64_counter("workflow.tail_sampling.spans")
                .with_unit("{span}")
                .with_description("Spans of the local traces decided by tail sampling.")
                .build(),
        )
    });
    let attributes = [
        KeyValue::new(
            "decision",
            if reason.is_some() { "kept" } else { "dropped" },
        ),
        KeyValue::new("reason", reason.unwrap_or("none")),
        KeyValue::new("when", when.label()),
    ];
    traces.add(1, &attributes);
    span_counter.add(spans, &attributes);
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

    /// A finished root span of another library in trace `trace`.
    fn root(trace: u128) -> Item {
        use opentelemetry::trace::{SpanContext, SpanKind, TraceFlags, TraceState};
        let now = std::time::SystemTime::now();
        Item::Foreign(Box::new(SpanData {
            span_context: SpanContext::new(
                TraceId::from(trace),
                SpanId::from(1_u64),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "root".into(),
            start_time: now,
            end_time: now,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }))
    }

    #[test]
    fn decisions_are_forgotten_within_their_bound() {
        let mut tail = Tail::new(TailSampling::new().max_held_spans(10));
        let clock = Calibration::now();
        let unused = |_: &Item| -> SpanData { unreachable!("no rule") };
        let mut kept = Vec::new();
        for trace in 1..=1_000 {
            let mut out = Out {
                kept: &mut kept,
                dropped: 0,
            };
            tail.offer(root(trace), &clock, &unused, &mut out);
            assert_eq!(out.dropped, 1);
            tail.expire(false, &unused, &mut out);
        }
        // Twice the budget at most, however many traces went by; nothing
        // held, nothing waiting.
        assert!(tail.decided.len() <= 20, "{}", tail.decided.len());
        assert!(tail.order.is_empty());
        assert_eq!(tail.held_spans, 0);
        assert!(kept.is_empty());
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
