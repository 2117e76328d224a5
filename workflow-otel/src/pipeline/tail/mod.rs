//! Tail sampling: the worker holds the spans of each local trace until its
//! root ends, then keeps or drops the trace whole, by what happened in it.
//!
//! A local root is a span whose parent is not in this process (none, or a
//! remote one): a root workflow, a workflow continuing a remote caller, a
//! server layer's span. Every span of ours and of other libraries reaches
//! the worker with its trace id, so spawned tasks and threads are held with
//! the rest. The caller pays nothing more: holding and deciding happen here.

use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;
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

mod policy;

pub use policy::TailSampling;
use policy::ratio_keeps;

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
}
