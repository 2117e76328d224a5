//! Cheap span and trace ids, and timestamps from one monotonic clock read.
//!
//! Ids come from a per-thread wyrand generator seeded from the standard
//! library's randomly keyed hasher: random enough for W3C ids (which are not a
//! security boundary), a handful of instructions each, no lock, no syscall.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

use opentelemetry::trace::{SpanId, TraceId};

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    // Never zero, and distinct per thread: each RandomState has fresh keys.
    hasher.finish() | 1
}

fn next_u64() -> u64 {
    STATE.with(|state| {
        let next = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(next);
        let product = u128::from(next) * u128::from(next ^ 0xe703_7ed1_a0b4_28db);
        (product as u64) ^ ((product >> 64) as u64)
    })
}

/// A new non-zero span id.
pub(crate) fn span_id() -> SpanId {
    loop {
        let id = next_u64();
        if id != 0 {
            return SpanId::from(id);
        }
    }
}

/// A new non-zero trace id.
pub(crate) fn trace_id() -> TraceId {
    loop {
        let id = (u128::from(next_u64()) << 64) | u128::from(next_u64());
        if id != 0 {
            return TraceId::from(id);
        }
    }
}

/// The wall-clock time of one monotonic instant, taken once per process, so
/// spans read only the monotonic clock and durations are exact differences.
fn anchor() -> &'static (Instant, SystemTime) {
    static ANCHOR: OnceLock<(Instant, SystemTime)> = OnceLock::new();
    ANCHOR.get_or_init(|| (Instant::now(), SystemTime::now()))
}

/// Wall-clock time of `instant`.
pub(crate) fn system_time(instant: Instant) -> SystemTime {
    let (anchor_instant, anchor_time) = *anchor();
    match instant.checked_duration_since(anchor_instant) {
        Some(after) => anchor_time + after,
        None => anchor_time - anchor_instant.duration_since(instant),
    }
}

/// Fixes the anchor before the first span, so `system_time` never pays for it.
pub(crate) fn init_clock() {
    anchor();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_nonzero_and_do_not_repeat() {
        let spans: HashSet<SpanId> = (0..10_000).map(|_| span_id()).collect();
        assert_eq!(spans.len(), 10_000);
        assert!(!spans.contains(&SpanId::INVALID));
        let traces: HashSet<TraceId> = (0..10_000).map(|_| trace_id()).collect();
        assert_eq!(traces.len(), 10_000);
    }

    #[test]
    fn threads_draw_different_ids() {
        let here = span_id();
        let there = std::thread::spawn(span_id).join().unwrap();
        assert_ne!(here, there);
    }

    #[test]
    fn system_time_keeps_monotonic_differences() {
        let a = Instant::now();
        let b = a + std::time::Duration::from_millis(1500);
        let difference = system_time(b).duration_since(system_time(a)).unwrap();
        assert_eq!(difference, std::time::Duration::from_millis(1500));
    }
}
