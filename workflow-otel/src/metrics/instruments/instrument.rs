//! One instrument of the service's: what it is (scope, name, kind, unit,
//! bounds), its points, and how a measurement lands in one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, BoundSyncInstrument, Callback, SyncInstrument};

use crate::metrics::exemplar::{self, Exemplar, ExemplarSlot};
use crate::metrics::instruments::table::{
    self, MAX_ATTRIBUTE_SET_BYTES, OVERFLOW_ATTRIBUTE, PointTable,
};
use crate::metrics::series::Histogram;
use crate::record::ids::{Calibration, Ticks};

/// The instrument kinds of the OpenTelemetry metrics API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum InstrumentKind {
    Counter,
    UpDownCounter,
    Histogram,
    Gauge,
    ObservableCounter,
    ObservableUpDownCounter,
    ObservableGauge,
}

impl InstrumentKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            InstrumentKind::Counter => "Counter",
            InstrumentKind::UpDownCounter => "UpDownCounter",
            InstrumentKind::Histogram => "Histogram",
            InstrumentKind::Gauge => "Gauge",
            InstrumentKind::ObservableCounter => "ObservableCounter",
            InstrumentKind::ObservableUpDownCounter => "ObservableUpDownCounter",
            InstrumentKind::ObservableGauge => "ObservableGauge",
        }
    }

    /// The data model's point kind: a monotonic sum, a sum, a gauge or a histogram.
    pub(crate) fn data(self) -> DataKind {
        match self {
            InstrumentKind::Counter | InstrumentKind::ObservableCounter => DataKind::MonotonicSum,
            InstrumentKind::UpDownCounter | InstrumentKind::ObservableUpDownCounter => {
                DataKind::Sum
            }
            InstrumentKind::Gauge | InstrumentKind::ObservableGauge => DataKind::Gauge,
            InstrumentKind::Histogram => DataKind::Histogram,
        }
    }

    pub(crate) fn is_observable(self) -> bool {
        matches!(
            self,
            InstrumentKind::ObservableCounter
                | InstrumentKind::ObservableUpDownCounter
                | InstrumentKind::ObservableGauge
        )
    }
}

/// What an instrument's points are in the metrics data model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DataKind {
    MonotonicSum,
    Sum,
    Gauge,
    Histogram,
}

/// The number type an instrument measures in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Number {
    U64,
    I64,
    F64,
}

/// A measured or aggregated value, in its instrument's number type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum NumberValue {
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Number {
    /// A value kept as 64 bits: integers as themselves, floats as their bits.
    pub(crate) fn decode(self, bits: u64) -> NumberValue {
        match self {
            Number::U64 => NumberValue::U64(bits),
            Number::I64 => NumberValue::I64(bits as i64),
            Number::F64 => NumberValue::F64(f64::from_bits(bits)),
        }
    }
}

/// The instrumentation scope an instrument was made in (its meter's).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Scope {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) schema_url: String,
    pub(crate) attributes: Vec<KeyValue>,
}

impl From<&opentelemetry::InstrumentationScope> for Scope {
    fn from(scope: &opentelemetry::InstrumentationScope) -> Scope {
        Scope {
            name: scope.name().to_owned(),
            version: scope.version().unwrap_or_default().to_owned(),
            schema_url: scope.schema_url().unwrap_or_default().to_owned(),
            attributes: scope.attributes().cloned().collect(),
        }
    }
}

/// The aggregate of one attribute set: a sum, a last value, or histogram
/// buckets with their sum (in `value`) and an exemplar per bucket.
#[derive(Debug)]
pub(crate) struct Point {
    value: AtomicU64,
    buckets: Box<[AtomicU64]>,
    exemplars: Box<[ExemplarSlot]>,
    created: SystemTime,
}

/// A callback's observations of one collection, or the last kept.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Observed {
    pub(crate) attributes: Vec<KeyValue>,
    pub(crate) bits: u64,
}

/// The callbacks of an observable instrument, in its number type.
pub(crate) enum Callbacks {
    U64(Vec<Callback<u64>>),
    I64(Vec<Callback<i64>>),
    F64(Vec<Callback<f64>>),
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = match self {
            Callbacks::U64(callbacks) => callbacks.len(),
            Callbacks::I64(callbacks) => callbacks.len(),
            Callbacks::F64(callbacks) => callbacks.len(),
        };
        write!(f, "{count} callbacks")
    }
}

/// One registered instrument: what it is, its points, and for an
/// observable one its callbacks and what they observed last.
#[derive(Debug)]
pub(crate) struct Instrument {
    pub(crate) scope: Arc<Scope>,
    pub(crate) spec: Spec,
    /// The Prometheus family, unless its name is taken by another kind.
    pub(crate) prometheus_family: Option<String>,
    pub(crate) created: SystemTime,
    exemplar_interval: Ticks,
    points: PointTable<Point>,
    limit: usize,
    overflow_reported: AtomicBool,
    pub(crate) callbacks: Mutex<Callbacks>,
    /// What the callbacks observed at the last collection that finished.
    pub(crate) observed: Mutex<Vec<Observed>>,
    pub(crate) callback_failure_reported: AtomicBool,
}

/// What an instrument is: its name, description, unit, kind, number type
/// and (histograms) bucket bounds.
#[derive(Debug)]
pub(crate) struct Spec {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) unit: String,
    pub(crate) kind: InstrumentKind,
    pub(crate) number: Number,
    /// Histogram bucket bounds (empty for other kinds).
    pub(crate) bounds: Box<[f64]>,
}

impl Instrument {
    pub(crate) fn new(
        scope: Arc<Scope>,
        spec: Spec,
        prometheus_family: Option<String>,
        callbacks: Callbacks,
        limit: usize,
        exemplar_interval: Ticks,
    ) -> Instrument {
        Instrument {
            scope,
            spec,
            prometheus_family,
            created: SystemTime::now(),
            exemplar_interval,
            points: PointTable::new(limit),
            limit,
            overflow_reported: AtomicBool::new(false),
            callbacks: Mutex::new(callbacks),
            observed: Mutex::new(Vec::new()),
            callback_failure_reported: AtomicBool::new(false),
        }
    }

    #[inline]
    fn point(&self, attributes: &[KeyValue]) -> &Point {
        let (point, overflowed) = self.points.find(attributes, || self.new_point());
        if overflowed {
            self.report_overflow();
        }
        point
    }

    fn new_point(&self) -> Point {
        let (buckets, exemplars) = match self.spec.kind {
            InstrumentKind::Histogram => (self.spec.bounds.len() + 1, self.spec.bounds.len() + 1),
            InstrumentKind::Counter => (0, 1),
            _ => (0, 0),
        };
        Point {
            value: AtomicU64::new(0),
            buckets: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            exemplars: (0..exemplars).map(|_| ExemplarSlot::default()).collect(),
            created: SystemTime::now(),
        }
    }

    #[cold]
    fn report_overflow(&self) {
        if !self.overflow_reported.swap(true, Ordering::Relaxed) {
            eprintln!(
                "workflow-otel: metric `{}` reached its cardinality limit of {} attribute \
                 sets (or was given a set of more than {MAX_ATTRIBUTE_SET_BYTES} bytes of \
                 text); such sets are counted in one series with {OVERFLOW_ATTRIBUTE}=true \
                 (Setup::metric_cardinality_limit raises the limit)",
                self.spec.name, self.limit
            );
        }
    }

    /// Adds an integer (a `u64` counter's, or an `i64` up-down counter's,
    /// which wraps as two's complement).
    #[inline]
    fn add_integer(&self, point: &Point, value: u64) {
        point.value.fetch_add(value, Ordering::Relaxed);
        if let Some(slot) = point.exemplars.first() {
            exemplar::offer(slot, value as f64, self.exemplar_interval);
        }
    }

    #[inline]
    fn add_float(&self, point: &Point, value: f64) {
        add_float(&point.value, value);
        if let Some(slot) = point.exemplars.first() {
            exemplar::offer(slot, value, self.exemplar_interval);
        }
    }

    #[inline]
    fn observe(&self, point: &Point, value: f64) {
        if !value.is_finite() {
            return;
        }
        let bucket = self
            .spec
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.spec.bounds.len());
        point.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        add_float(&point.value, value);
        exemplar::offer(&point.exemplars[bucket], value, self.exemplar_interval);
    }

    /// A `u64` measurement of the point's set.
    #[inline]
    fn record_u64(&self, point: &Point, value: u64) {
        match self.spec.kind {
            InstrumentKind::Counter => self.add_integer(point, value),
            InstrumentKind::Histogram => self.observe(point, value as f64),
            InstrumentKind::Gauge => point.value.store(value, Ordering::Relaxed),
            _ => {}
        }
    }

    #[inline]
    fn record_i64(&self, point: &Point, value: i64) {
        match self.spec.kind {
            InstrumentKind::UpDownCounter => self.add_integer(point, value as u64),
            InstrumentKind::Gauge => point.value.store(value as u64, Ordering::Relaxed),
            _ => {}
        }
    }

    #[inline]
    fn record_f64(&self, point: &Point, value: f64) {
        match self.spec.kind {
            // A counter only goes up: a negative or non-finite increment is
            // dropped, as a Prometheus counter could not show it.
            InstrumentKind::Counter if value >= 0.0 && value.is_finite() => {
                self.add_float(point, value);
            }
            InstrumentKind::UpDownCounter if value.is_finite() => self.add_float(point, value),
            InstrumentKind::Histogram => self.observe(point, value),
            InstrumentKind::Gauge => point.value.store(value.to_bits(), Ordering::Relaxed),
            _ => {}
        }
    }

    /// Every point as it is now: the recorded ones, or for an observable
    /// instrument what its callbacks observed last.
    pub(crate) fn points(&self, calibration: &Calibration) -> Vec<PointSnapshot> {
        if self.spec.kind.is_observable() {
            return lock(&self.observed)
                .iter()
                .map(|observed| PointSnapshot {
                    attributes: observed.attributes.clone(),
                    start: self.created,
                    value: self.spec.number.decode(observed.bits),
                    histogram: None,
                    exemplars: Vec::new(),
                })
                .collect();
        }
        let mut points = Vec::new();
        self.points.for_each(|entry| {
            let point = &entry.point;
            let raw = point.value.load(Ordering::Relaxed);
            let histogram = (self.spec.kind == InstrumentKind::Histogram).then(|| {
                let buckets: Vec<u64> = point
                    .buckets
                    .iter()
                    .map(|count| count.load(Ordering::Relaxed))
                    .collect();
                Histogram {
                    count: buckets.iter().sum(),
                    buckets,
                    sum: f64::from_bits(raw),
                }
            });
            let value = if histogram.is_some() {
                NumberValue::F64(f64::from_bits(raw))
            } else {
                self.spec.number.decode(raw)
            };
            points.push(PointSnapshot {
                attributes: entry.attributes.to_vec(),
                start: point.created,
                value,
                histogram,
                exemplars: point
                    .exemplars
                    .iter()
                    .map(|slot| {
                        slot.read()
                            .map(|raw| raw.decode(calibration, f64::from_bits))
                    })
                    .collect(),
            });
        });
        points
    }
}

/// One point as the encoders see it.
#[derive(Clone, Debug)]
pub(crate) struct PointSnapshot {
    pub(crate) attributes: Vec<KeyValue>,
    /// Start of the cumulative series.
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    pub(crate) start: SystemTime,
    /// The sum or last value (for a histogram, its sum).
    pub(crate) value: NumberValue,
    pub(crate) histogram: Option<Histogram>,
    /// One per bucket for histograms, one for counters, else none.
    pub(crate) exemplars: Vec<Option<Exemplar>>,
}

/// Adds to a float kept as its bits.
#[inline]
fn add_float(cell: &AtomicU64, value: f64) {
    let mut current = cell.load(Ordering::Relaxed);
    loop {
        let next = (f64::from_bits(current) + value).to_bits();
        match cell.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(seen) => current = seen,
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The handle the API's synchronous instruments call into.
pub(crate) struct Recorder(pub(crate) Arc<Instrument>);

/// A handle bound to one attribute set (`Counter::bind`): a measurement
/// goes straight to its point, with no lookup.
struct Bound {
    instrument: Arc<Instrument>,
    point: *const Point,
}

// SAFETY: `point` is a point of `instrument`'s table, which keeps it at
// its address until the table is dropped, and `instrument` is kept alive
// here; `Point` is made of atomics.
unsafe impl Send for Bound {}
// SAFETY: as for `Send`.
unsafe impl Sync for Bound {}

impl Bound {
    fn point(&self) -> &Point {
        // SAFETY: see `unsafe impl Send for Bound`.
        unsafe { &*self.point }
    }
}

/// The three number types' impls of the API's traits for `Recorder` and `Bound`.
macro_rules! recorders {
    ($($number:ty => $record:ident),*) => {$(
        impl SyncInstrument<$number> for Recorder {
            #[inline]
            fn measure(&self, value: $number, attributes: &[KeyValue]) {
                let instrument = &*self.0;
                instrument.$record(instrument.point(attributes), value);
            }

            fn bind(&self, attributes: &[KeyValue]) -> Box<dyn BoundSyncInstrument<$number> + Send + Sync> {
                let point: *const Point = self.0.point(attributes);
                Box::new(Bound {
                    instrument: self.0.clone(),
                    point,
                })
            }
        }

        impl BoundSyncInstrument<$number> for Bound {
            #[inline]
            fn measure(&self, value: $number) {
                self.instrument.$record(self.point(), value);
            }
        }
    )*};
}

recorders!(u64 => record_u64, i64 => record_i64, f64 => record_f64);

/// The handle of an instrument whose registration was refused (reported
/// once): its measurements go nowhere.
pub(crate) struct Dropped;

impl<T> SyncInstrument<T> for Dropped {
    fn measure(&self, _: T, _: &[KeyValue]) {}
}

/// Where one collection's observations go: the instrument's limit and
/// canonical sets apply, as for recorded points.
pub(crate) struct Observations<'a> {
    pub(crate) instrument: &'a Instrument,
    pub(crate) observed: Mutex<Vec<Observed>>,
}

impl Observations<'_> {
    fn keep(&self, bits: u64, attributes: &[KeyValue]) {
        let canonical = table::canonical(attributes);
        let mut observed = lock(&self.observed);
        if let Some(known) = observed
            .iter_mut()
            .find(|known| table::same(&known.attributes, &canonical))
        {
            // Observed twice in one collection: the last observation counts.
            known.bits = bits;
            return;
        }
        let overflow = [KeyValue::new(OVERFLOW_ATTRIBUTE, true)];
        let has_overflow = observed
            .last()
            .is_some_and(|last| table::same(&last.attributes, &overflow));
        if observed.len() + 1 - usize::from(has_overflow) < self.instrument.limit {
            let at = observed.len() - usize::from(has_overflow);
            observed.insert(
                at,
                Observed {
                    attributes: canonical,
                    bits,
                },
            );
            return;
        }
        if !has_overflow {
            self.instrument.report_overflow();
            observed.push(Observed {
                attributes: overflow.to_vec(),
                bits: match self.instrument.spec.number {
                    Number::F64 => 0f64.to_bits(),
                    _ => 0,
                },
            });
        }
        let last = observed
            .last_mut()
            .expect("the overflow point was just made");
        last.bits = match (
            self.instrument.spec.kind.data(),
            self.instrument.spec.number,
        ) {
            (DataKind::Gauge, _) => bits,
            (_, Number::F64) => (f64::from_bits(last.bits) + f64::from_bits(bits)).to_bits(),
            _ => last.bits.wrapping_add(bits),
        };
    }
}

impl AsyncInstrument<u64> for Observations<'_> {
    fn observe(&self, value: u64, attributes: &[KeyValue]) {
        self.keep(value, attributes);
    }
}

impl AsyncInstrument<i64> for Observations<'_> {
    fn observe(&self, value: i64, attributes: &[KeyValue]) {
        self.keep(value as u64, attributes);
    }
}

impl AsyncInstrument<f64> for Observations<'_> {
    fn observe(&self, value: f64, attributes: &[KeyValue]) {
        let sum = self.instrument.spec.kind.data() != DataKind::Gauge;
        if sum && !value.is_finite() {
            return;
        }
        self.keep(value.to_bits(), attributes);
    }
}
