//! Exemplars: the latest sampled call or measurement kept per histogram
//! bucket (or per counter), so that a latency bucket leads to a trace. One
//! slot of atomics each, written under a sequence number so a reader never
//! mixes two writes, and replaced at most every [`EXEMPLAR_INTERVAL`]: most
//! writers pay one comparison.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, TraceContextExt};

use crate::record::ids::{Calibration, Ticks};

/// A histogram bucket's (or a counter's) exemplar is replaced at most this often.
pub const EXEMPLAR_INTERVAL: Duration = Duration::from_millis(100);

/// One exemplar's room.
#[derive(Debug, Default)]
pub(crate) struct ExemplarSlot {
    sequence: AtomicU64,
    trace_high: AtomicU64,
    trace_low: AtomicU64,
    span: AtomicU64,
    /// The measured value, as its writer encodes it (ticks, or `f64` bits).
    value: AtomicU64,
    at: AtomicU64,
}

/// What a slot held when read: the value still as its writer encoded it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RawExemplar {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) value: u64,
    pub(crate) at: Ticks,
}

/// A kept exemplar, ready for the encoders.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Exemplar {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) value: f64,
    pub(crate) time: SystemTime,
}

impl ExemplarSlot {
    /// Whether the slot was last written `interval` or more before `now`
    /// (never, for a `now` before the last write).
    #[inline]
    pub(crate) fn due(&self, now: Ticks, interval: Ticks) -> bool {
        now.saturating_sub(self.at.load(Ordering::Relaxed)) >= interval
    }

    /// Writes the slot, unless another writer is at it (then this one skips:
    /// an exemplar is an example, not a count).
    #[inline(never)]
    pub(crate) fn write(&self, span: &SpanContext, value: u64, at: Ticks) {
        let sequence = self.sequence.load(Ordering::Relaxed);
        if sequence % 2 == 1
            || self
                .sequence
                .compare_exchange(sequence, sequence + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let trace = u128::from_be_bytes(span.trace_id().to_bytes());
        self.trace_high
            .store((trace >> 64) as u64, Ordering::Relaxed);
        self.trace_low.store(trace as u64, Ordering::Relaxed);
        self.span.store(
            u64::from_be_bytes(span.span_id().to_bytes()),
            Ordering::Relaxed,
        );
        self.value.store(value, Ordering::Relaxed);
        self.at.store(at, Ordering::Relaxed);
        self.sequence.store(sequence + 2, Ordering::Release);
    }

    /// What the slot holds, if it was ever written.
    pub(crate) fn read(&self) -> Option<RawExemplar> {
        for _ in 0..4 {
            let before = self.sequence.load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let trace = (u128::from(self.trace_high.load(Ordering::Relaxed)) << 64)
                | u128::from(self.trace_low.load(Ordering::Relaxed));
            let span = self.span.load(Ordering::Relaxed);
            let value = self.value.load(Ordering::Relaxed);
            let at = self.at.load(Ordering::Relaxed);
            std::sync::atomic::fence(Ordering::Acquire);
            if self.sequence.load(Ordering::Relaxed) == before {
                return Some(RawExemplar {
                    trace_id: trace.to_be_bytes(),
                    span_id: span.to_be_bytes(),
                    value,
                    at,
                });
            }
        }
        // Rewritten under us four times: the next read will see one.
        None
    }
}

impl RawExemplar {
    /// The exemplar, with its value decoded by `value` and its time by `calibration`.
    pub(crate) fn decode(self, calibration: &Calibration, value: impl Fn(u64) -> f64) -> Exemplar {
        Exemplar {
            trace_id: self.trace_id,
            span_id: self.span_id,
            value: value(self.value),
            time: calibration.system_time(self.at),
        }
    }
}

/// Keeps a measurement of `value` (as `f64` bits) in `slot` if the slot is
/// due and a sampled span is current: the span of ours whose body makes the
/// measurement, else the current span of another library.
///
/// Inside a span of ours, whether the slot is due is told by the span's
/// start, not by the clock: a measurement reads no time unless it is kept,
/// and a long span's measurements wait for the next span (at most one
/// exemplar per slot per span started `interval` apart).
#[inline]
pub(crate) fn offer(slot: &ExemplarSlot, value: f64, interval: Ticks) {
    let current = crate::record::current::current_recording();
    if !current.is_null() {
        // SAFETY: a recording is current only while its body runs on this
        // thread (see `record::current`), which is where this is called.
        let recording = unsafe { &*current };
        if let Some(raw) = recording.raw() {
            if slot.due(raw.started, interval) {
                keep(slot, &raw.span_context, value);
            }
            return;
        }
    }
    let now = crate::record::ids::now();
    if slot.due(now, interval) {
        offer_now(slot, value, now);
    }
}

#[cold]
#[inline(never)]
fn keep(slot: &ExemplarSlot, span: &SpanContext, value: f64) {
    slot.write(span, value.to_bits(), crate::record::ids::now());
}

#[cold]
#[inline(never)]
fn offer_now(slot: &ExemplarSlot, value: f64, now: Ticks) {
    Context::map_current(|cx| {
        let span = cx.span();
        let span = span.span_context();
        if span.is_sampled() && span.is_valid() {
            slot.write(span, value.to_bits(), now);
        }
    });
}
