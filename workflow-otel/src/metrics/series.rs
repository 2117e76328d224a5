//! The aggregation itself: one [`Series`] per label set, made of atomics that
//! the calling thread updates in place. No lock and no allocation on the way
//! in; readers (the Prometheus endpoint, the OTLP exporter) take a consistent
//! enough snapshot whenever they like.
//!
//! Durations stay in clock ticks (see `record::ids`) until they are read: the
//! bucket bounds are converted to ticks once, when metrics are enabled, so an
//! observation is one binary search and three atomic additions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::SpanContext;

use crate::metrics::exemplar::{EXEMPLAR_INTERVAL, Exemplar, ExemplarSlot};
use crate::record::ids::{self, Calibration, Ticks};
use crate::record::span::{Kind, Site};

/// Most label sets kept. Labels come from compile-time names, so a program has
/// a fixed number of them; this guards against a program that names workflows
/// at run time. Calls beyond it are counted under the workflow name `_OTHER`.
pub const MAX_SERIES: usize = 2000;

/// Most distinct `error.type` values counted per series; the rest are
/// counted as `_OTHER`, as the semantic conventions suggest.
pub const MAX_ERROR_TYPES: usize = 32;

/// Label value standing for everything past a limit.
pub(crate) const OTHER: &str = "_OTHER";

/// How a call ended, as the `outcome` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok = 0,
    Error = 1,
    Panic = 2,
    Cancelled = 3,
}

impl Outcome {
    pub(crate) const ALL: [Outcome; 4] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Panic,
        Outcome::Cancelled,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Panic => "panic",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// Whether a series measures workflows (root and child) or steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SeriesKind {
    Workflow,
    Step,
}

/// Metrics are on: checked once per call, the only cost when they are off.
static ENABLED: AtomicBool = AtomicBool::new(false);

static STATE: OnceLock<State> = OnceLock::new();

/// Set once, by the first setup that enables metrics.
pub(crate) struct State {
    pub(crate) bounds_seconds: Vec<f64>,
    bounds_ticks: &'static [u64],
    exemplar_interval: Ticks,
    /// When metrics were enabled: the start of every cumulative series.
    pub(crate) started: SystemTime,
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    by_labels: HashMap<(SeriesKind, &'static str, &'static str), &'static Series>,
    all: Vec<&'static Series>,
}

/// Turns metrics on for the rest of the process. The first call fixes the
/// histogram bounds (seconds, ascending); later calls keep them and say so.
pub(crate) fn enable(bounds_seconds: &[f64]) -> Result<(), Vec<f64>> {
    let state = STATE.get_or_init(|| {
        // A rate measured over a few milliseconds is good to a few parts per
        // million; bounds only need to be right to well under a percent.
        ids::init_clock();
        std::thread::sleep(Duration::from_millis(2));
        let calibration = Calibration::now();
        let ticks: Vec<u64> = bounds_seconds
            .iter()
            .map(|&seconds| calibration.ticks_in(Duration::from_secs_f64(seconds)))
            .collect();
        State {
            bounds_seconds: bounds_seconds.to_vec(),
            bounds_ticks: Vec::leak(ticks),
            exemplar_interval: calibration.ticks_in(EXEMPLAR_INTERVAL),
            started: SystemTime::now(),
            registry: Mutex::new(Registry::default()),
        }
    });
    ENABLED.store(true, Ordering::Release);
    if state.bounds_seconds == bounds_seconds {
        Ok(())
    } else {
        Err(state.bounds_seconds.clone())
    }
}

/// Turns recording on or off, with the default bounds if none were set.
pub(crate) fn set_enabled(on: bool) {
    if on {
        let _ = enable(
            STATE
                .get()
                .map_or(&crate::metrics::DEFAULT_BUCKETS[..], |state| {
                    &state.bounds_seconds[..]
                }),
        );
    } else {
        ENABLED.store(false, Ordering::Release);
    }
}

#[inline]
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub(crate) fn state() -> Option<&'static State> {
    STATE.get()
}

impl State {
    /// [`EXEMPLAR_INTERVAL`] in clock ticks.
    pub(crate) fn exemplar_interval(&self) -> Ticks {
        self.exemplar_interval
    }

    /// Every series so far, in the order they were first used.
    pub(crate) fn series(&self) -> Vec<&'static Series> {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .all
            .clone()
    }
}

/// Every instrument of one label set: a duration histogram with an exemplar
/// per bucket, calls by outcome, failures by `error.type`, and, for
/// workflows, how many are running.
#[derive(Debug)]
pub(crate) struct Series {
    pub(crate) kind: SeriesKind,
    pub(crate) workflow: &'static str,
    /// Empty for workflow series.
    pub(crate) step: &'static str,
    bounds: &'static [u64],
    exemplar_interval: Ticks,
    buckets: Box<[AtomicU64]>,
    sum_ticks: AtomicU64,
    outcomes: [AtomicU64; 4],
    active: AtomicI64,
    exemplars: Box<[ExemplarSlot]>,
    failures: Mutex<Vec<(&'static str, u64)>>,
}

/// Per-bucket counts (not cumulative), their sum and count.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Histogram {
    pub(crate) buckets: Vec<u64>,
    pub(crate) sum: f64,
    pub(crate) count: u64,
}

impl Histogram {
    pub(crate) fn new(bounds: &[f64]) -> Histogram {
        Histogram {
            buckets: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub(crate) fn observe(&mut self, bounds: &[f64], value: f64) {
        let bucket = bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(bounds.len());
        self.buckets[bucket] += 1;
        self.sum += value;
        self.count += 1;
    }
}

/// What a reader sees of a series at one moment.
#[derive(Clone, Debug)]
pub(crate) struct SeriesSnapshot {
    pub(crate) kind: SeriesKind,
    pub(crate) workflow: &'static str,
    pub(crate) step: &'static str,
    /// Durations in seconds.
    pub(crate) duration: Histogram,
    pub(crate) outcomes: [u64; 4],
    pub(crate) active: i64,
    pub(crate) exemplars: Vec<Option<Exemplar>>,
    pub(crate) failures: Vec<(&'static str, u64)>,
}

impl Series {
    fn new(kind: SeriesKind, workflow: &'static str, step: &'static str, state: &State) -> Series {
        let bounds = state.bounds_ticks;
        Series {
            kind,
            workflow,
            step,
            bounds,
            exemplar_interval: state.exemplar_interval,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ticks: AtomicU64::new(0),
            outcomes: Default::default(),
            active: AtomicI64::new(0),
            exemplars: (0..=bounds.len())
                .map(|_| ExemplarSlot::default())
                .collect(),
            failures: Mutex::new(Vec::new()),
        }
    }

    /// Adds one call that took `ticks`; returns its bucket.
    #[inline]
    pub(crate) fn observe(&self, ticks: Ticks, outcome: Outcome) -> usize {
        // From the short end: most calls are short, and a long one can
        // afford the comparisons.
        let bucket = self
            .bounds
            .iter()
            .position(|&bound| ticks <= bound)
            .unwrap_or(self.bounds.len());
        if let Some(count) = self.buckets.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ticks.fetch_add(ticks, Ordering::Relaxed);
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        bucket
    }

    /// Keeps a sampled call as the example of `bucket`, unless the bucket
    /// got one less than [`EXEMPLAR_INTERVAL`] ago: a scraper sees a recent
    /// example of every bucket, and most calls pay one comparison.
    #[inline]
    pub(crate) fn keep_exemplar(
        &self,
        bucket: usize,
        span: &SpanContext,
        ticks: Ticks,
        ended: Ticks,
    ) {
        let Some(slot) = self.exemplars.get(bucket) else {
            return;
        };
        if slot.due(ended, self.exemplar_interval) {
            slot.write(span, ticks, ended);
        }
    }
}

impl Series {
    /// Counts a failure of type `error_type` (a type name, or `panic`).
    pub(crate) fn fail(&self, error_type: &'static str) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let error_type = if failures.len() >= MAX_ERROR_TYPES
            && !failures.iter().any(|(known, _)| *known == error_type)
        {
            OTHER
        } else {
            error_type
        };
        match failures.iter_mut().find(|(known, _)| *known == error_type) {
            Some((_, count)) => *count += 1,
            None => failures.push((error_type, 1)),
        }
    }

    pub(crate) fn enter(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn leave(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, calibration: &Calibration) -> SeriesSnapshot {
        let buckets: Vec<u64> = self
            .buckets
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect();
        let exemplars = self
            .exemplars
            .iter()
            .map(|slot| read_exemplar(slot, calibration))
            .collect();
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        failures.sort_unstable();
        SeriesSnapshot {
            kind: self.kind,
            workflow: self.workflow,
            step: self.step,
            duration: Histogram {
                count: buckets.iter().sum(),
                buckets,
                sum: calibration
                    .duration(self.sum_ticks.load(Ordering::Relaxed))
                    .as_secs_f64(),
            },
            outcomes: Outcome::ALL
                .map(|outcome| self.outcomes[outcome as usize].load(Ordering::Relaxed)),
            active: self.active.load(Ordering::Relaxed),
            exemplars,
            failures,
        }
    }
}

fn read_exemplar(slot: &ExemplarSlot, calibration: &Calibration) -> Option<Exemplar> {
    let raw = slot.read()?;
    Some(raw.decode(calibration, |ticks| {
        calibration.duration(ticks).as_secs_f64()
    }))
}

/// The series of calls to `site` inside the workflow named `workflow` (for
/// workflows, their own name). The site remembers the last one it used, so
/// the usual call finds it with one comparison; `None` while metrics are off.
#[inline]
pub(crate) fn series_for(site: &'static Site, workflow: &'static str) -> Option<&'static Series> {
    if !enabled() {
        return None;
    }
    let cached = site.series.load(Ordering::Acquire);
    if !cached.is_null() {
        // SAFETY: the site only ever holds series leaked by `register`, which
        // live for the rest of the process.
        let series: &'static Series = unsafe { &*cached };
        // Two workflows of the same name are one series but two addresses:
        // a step shared by both finds its series under the lock each time.
        if std::ptr::eq(series.workflow, workflow) {
            return Some(series);
        }
    }
    let series = register(site, workflow)?;
    site.series
        .store((series as *const Series).cast_mut(), Ordering::Release);
    Some(series)
}

fn register(site: &'static Site, workflow: &'static str) -> Option<&'static Series> {
    let state = STATE.get()?;
    let (kind, step) = match site.kind {
        Kind::Step => (SeriesKind::Step, site.name),
        Kind::Workflow | Kind::ChildWorkflow => (SeriesKind::Workflow, ""),
    };
    let mut registry = state
        .registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut key = (kind, workflow, step);
    if !registry.by_labels.contains_key(&key) && registry.all.len() >= MAX_SERIES {
        key = (kind, OTHER, step);
    }
    if let Some(series) = registry.by_labels.get(&key) {
        return Some(series);
    }
    let series: &'static Series = Box::leak(Box::new(Series::new(kind, key.1, step, state)));
    registry.by_labels.insert(key, series);
    registry.all.push(series);
    Some(series)
}
