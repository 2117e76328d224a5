//! Cheap span and trace ids, and timestamps from one monotonic clock read.
//!
//! Ids come from a per-thread wyrand generator seeded from the standard
//! library's randomly keyed hasher: random enough for W3C ids (which are not a
//! security boundary), a handful of instructions each, no lock, no syscall.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{SpanId, TraceId};

thread_local! {
    /// Zero until the thread's first id: a `const` initialiser keeps the
    /// lazy-initialisation check out of every access.
    static STATE: Cell<u64> = const { Cell::new(0) };
}

#[cold]
fn seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    // Never zero, and distinct per thread: each RandomState has fresh keys.
    hasher.finish() | 1
}

/// 64 random bits from this thread's generator.
pub(crate) fn random_u64() -> u64 {
    next_u64()
}

#[inline]
fn next_u64() -> u64 {
    STATE.with(|state| {
        let mut current = state.get();
        if current == 0 {
            current = seed();
        }
        let next = current.wrapping_add(0xa076_1d64_78bd_642f);
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

/// A point in time as spans record it: ticks of the fastest trustworthy clock.
///
/// On x86_64 Linux, when the kernel itself keeps time with the TSC (its
/// clocksource is `tsc`, which it only chooses when the TSC is invariant and
/// synchronised across cores), a tick is a TSC cycle: reading it takes one
/// instruction instead of a `clock_gettime` call. Elsewhere a tick is a
/// nanosecond of `Instant` since the process anchor. Either way ticks are
/// turned into wall-clock time off the hot path, by [`Calibration`].
pub(crate) type Ticks = u64;

const CLOCK_UNSET: u8 = 0;
const CLOCK_INSTANT: u8 = 1;
#[cfg(target_arch = "x86_64")]
const CLOCK_TSC: u8 = 2;

static CLOCK: AtomicU8 = AtomicU8::new(CLOCK_UNSET);

struct Anchor {
    instant: Instant,
    system: SystemTime,
    ticks: Ticks,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

fn anchor() -> &'static Anchor {
    ANCHOR.get_or_init(|| {
        let mode = choose_clock();
        CLOCK.store(mode, Ordering::Relaxed);
        let instant = Instant::now();
        Anchor {
            instant,
            system: SystemTime::now(),
            ticks: raw_ticks(mode, None),
        }
    })
}

fn choose_clock() -> u8 {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        let clocksource = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )
        .unwrap_or_default();
        if clocksource.trim() == "tsc" {
            return CLOCK_TSC;
        }
    }
    CLOCK_INSTANT
}

fn raw_ticks(mode: u8, anchor: Option<&Anchor>) -> Ticks {
    #[cfg(target_arch = "x86_64")]
    if mode == CLOCK_TSC {
        // SAFETY: `rdtsc` exists on every x86_64 processor and has no
        // preconditions; it only reads the time-stamp counter.
        return unsafe { std::arch::x86_64::_rdtsc() };
    }
    let _ = mode;
    match anchor {
        Some(anchor) => anchor.instant.elapsed().as_nanos() as Ticks,
        None => 0,
    }
}

/// Now, in ticks. Cheap: the hot path's only clock read.
#[inline]
pub(crate) fn now() -> Ticks {
    #[cfg(target_arch = "x86_64")]
    if CLOCK.load(Ordering::Relaxed) == CLOCK_TSC {
        // SAFETY: as in `raw_ticks`.
        return unsafe { std::arch::x86_64::_rdtsc() };
    }
    let anchor = anchor();
    raw_ticks(CLOCK.load(Ordering::Relaxed), Some(anchor))
}

/// Chooses the clock and fixes the anchor before the first span, so that
/// neither happens on a hot path.
pub(crate) fn init_clock() {
    anchor();
}

/// Turns ticks into wall-clock time: the tick rate measured between the
/// anchor and the moment the calibration is made, so it sharpens as the
/// process runs (after 10 ms the error is a few parts per million).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Calibration {
    anchor_ticks: Ticks,
    anchor_system: SystemTime,
    /// Nanoseconds elapsed and ticks elapsed over the measured interval.
    nanos: u128,
    ticks: u128,
    /// Nanoseconds per tick as a fraction of 2⁶⁴, when a tick is shorter
    /// than a nanosecond (the TSC): a multiplication per time instead of a
    /// 128-bit division, within a nanosecond of it.
    scale: Option<u64>,
    /// `anchor_system` in nanoseconds since the Unix epoch.
    anchor_unix_nanos: u64,
}

impl Calibration {
    pub(crate) fn now() -> Calibration {
        let anchor = anchor();
        let mode = CLOCK.load(Ordering::Relaxed);
        let ticks = raw_ticks(mode, Some(anchor)).wrapping_sub(anchor.ticks);
        let nanos = anchor.instant.elapsed().as_nanos();
        let (nanos, ticks) = if mode == CLOCK_INSTANT || ticks == 0 || nanos == 0 {
            (1, 1)
        } else {
            (nanos, u128::from(ticks))
        };
        let scale = (nanos < ticks).then(|| ((nanos << 64) / ticks) as u64);
        Calibration {
            anchor_ticks: anchor.ticks,
            anchor_system: anchor.system,
            nanos,
            ticks,
            scale,
            anchor_unix_nanos: unix_nanos(anchor.system),
        }
    }

    /// How long `ticks` ticks last.
    pub(crate) fn duration(&self, ticks: Ticks) -> Duration {
        let nanos = u128::from(ticks) * self.nanos / self.ticks;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// How many ticks `duration` lasts.
    pub(crate) fn ticks_in(&self, duration: Duration) -> Ticks {
        let ticks = duration.as_nanos() * self.ticks / self.nanos;
        Ticks::try_from(ticks).unwrap_or(Ticks::MAX)
    }

    /// Wall-clock time of `ticks`.
    pub(crate) fn system_time(&self, ticks: Ticks) -> SystemTime {
        self.anchor_system + Duration::from_nanos(self.nanos_since_anchor(ticks))
    }

    /// Wall-clock time of `ticks` in nanoseconds since the Unix epoch, as
    /// OTLP writes it: the same instant as [`Calibration::system_time`].
    pub(crate) fn unix_nanos(&self, ticks: Ticks) -> u64 {
        self.anchor_unix_nanos
            .saturating_add(self.nanos_since_anchor(ticks))
    }

    fn nanos_since_anchor(&self, ticks: Ticks) -> u64 {
        let since_anchor = u128::from(ticks.saturating_sub(self.anchor_ticks));
        let nanos = match self.scale {
            Some(scale) => (since_anchor * u128::from(scale)) >> 64,
            None => since_anchor * self.nanos / self.ticks,
        };
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }
}

/// `time` in nanoseconds since the Unix epoch (0 before it).
pub(crate) fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// Wall-clock time of `instant`.
pub(crate) fn system_time(instant: Instant) -> SystemTime {
    let anchor = anchor();
    match instant.checked_duration_since(anchor.instant) {
        Some(after) => anchor.system + after,
        None => anchor.system - anchor.instant.duration_since(instant),
    }
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

    /// The multiplication that replaces the division lands within a
    /// nanosecond of it, over a year of ticks at any rate above 1 GHz.
    #[test]
    fn scaled_ticks_stay_within_a_nanosecond_of_the_division() {
        for (nanos, ticks) in [
            (1_000_u128, 2_994_u128),
            (7, 8),
            (999_999, 1_000_000),
            (1, 5),
        ] {
            let exact = Calibration {
                anchor_ticks: 0,
                anchor_system: SystemTime::UNIX_EPOCH,
                nanos,
                ticks,
                scale: None,
                anchor_unix_nanos: 0,
            };
            let scaled = Calibration {
                scale: Some(((nanos << 64) / ticks) as u64),
                ..exact
            };
            let year = 3 * 365 * 86_400 * 1_000_000_000_u64;
            for at in (0..1_000).map(|i| i * (year / 1_000) + i) {
                let (exact_time, scaled_time) = (exact.system_time(at), scaled.system_time(at));
                assert!(exact_time >= scaled_time, "{at} ticks at {nanos}/{ticks}");
                let apart = exact_time.duration_since(scaled_time).unwrap();
                assert!(apart <= Duration::from_nanos(1));
                assert_eq!(scaled.unix_nanos(at), unix_nanos(scaled_time));
            }
        }
    }

    #[test]
    fn threads_draw_different_ids() {
        let here = span_id();
        let there = std::thread::spawn(span_id).join().unwrap();
        assert_ne!(here, there);
    }

    #[test]
    fn ticks_convert_to_the_wall_clock() {
        init_clock();
        let before = SystemTime::now();
        let start = now();
        std::thread::sleep(Duration::from_millis(20));
        let end = now();
        let after = SystemTime::now();
        let calibration = Calibration::now();
        let (start, end) = (calibration.system_time(start), calibration.system_time(end));
        // Within the two wall-clock reads, give or take the anchor's rounding.
        let slack = Duration::from_millis(2);
        assert!(
            start + slack >= before && end <= after + slack,
            "{start:?} {end:?}"
        );
        let slept = end.duration_since(start).unwrap();
        assert!(
            slept >= Duration::from_millis(19) && slept < Duration::from_millis(200),
            "{slept:?}"
        );
    }

    #[test]
    fn system_time_keeps_monotonic_differences() {
        let a = Instant::now();
        let b = a + std::time::Duration::from_millis(1500);
        let difference = system_time(b).duration_since(system_time(a)).unwrap();
        assert_eq!(difference, std::time::Duration::from_millis(1500));
    }
}
