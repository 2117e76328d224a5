//! The service's own instruments: an OpenTelemetry `MeterProvider` whose
//! counters, histograms and gauges are exported with the workflow metrics,
//! on the same endpoint, in the same push, with the same resource.
//!
//! Built on the metrics API's `InstrumentProvider` rather than on the SDK's
//! `SdkMeterProvider`: a measurement finds its point without a lock (see
//! `table`), and histograms and counters keep exemplars, which the SDK
//! (0.33) does not record. The benchmark case "user Counter::add +
//! Histogram::record" measures it against the SDK and the `metrics` crate.

pub(crate) mod instrument;
pub(crate) mod observe;
#[cfg(feature = "otlp")]
pub(crate) mod otlp;
pub(crate) mod prometheus;
pub(crate) mod table;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use opentelemetry::metrics::{
    AsyncInstrumentBuilder, Counter, Gauge, Histogram, HistogramBuilder, InstrumentBuilder,
    InstrumentProvider, Meter, ObservableCounter, ObservableGauge, ObservableUpDownCounter,
    SyncInstrument, UpDownCounter,
};

use crate::record::ids::{Calibration, Ticks};
use instrument::{
    Callbacks, Dropped, Instrument, InstrumentKind, Number, PointSnapshot, Recorder, Scope, Spec,
    lock,
};
pub use observe::CALLBACK_DEADLINE;
pub use table::MAX_ATTRIBUTE_SET_BYTES;

/// Attribute sets kept per instrument unless
/// [`Setup::metric_cardinality_limit`](crate::Setup::metric_cardinality_limit)
/// says otherwise: the OpenTelemetry metrics SDK specification's default.
/// The last of them is the overflow series, `otel.metric.overflow = true`.
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

/// Most instruments a process can register; later ones are reported and
/// record nothing.
pub const MAX_INSTRUMENTS: usize = 1000;

/// Histogram bounds used when an instrument gives none: the OpenTelemetry
/// SDK specification's default for explicit bucket histograms.
pub const DEFAULT_HISTOGRAM_BOUNDARIES: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

/// Most bucket bounds an instrument may advise.
const MAX_BOUNDARIES: usize = 256;

static CARDINALITY_LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_CARDINALITY_LIMIT);

/// Sets the cardinality limit of instruments registered from now on.
pub(crate) fn set_cardinality_limit(limit: usize) {
    CARDINALITY_LIMIT.store(limit.max(1), Ordering::Relaxed);
}

/// The OpenTelemetry `MeterProvider` of workflow-otel: instruments made
/// through it are exported with the workflow metrics (Prometheus, OTLP,
/// console). `setup()` installs it as the global provider when metrics are
/// on, so `opentelemetry::global::meter(..)` reaches it; pass it to
/// libraries that take a provider instead of using the global one.
///
/// Every handle records into the same process-wide instruments.
///
/// ```
/// use opentelemetry::KeyValue;
/// use opentelemetry::metrics::MeterProvider as _;
///
/// let meter = workflow_otel::metrics::meter_provider().meter("orders");
/// let placed = meter.u64_counter("orders.placed").build();
/// placed.add(1, &[KeyValue::new("region", "eu")]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct WorkflowMeterProvider {
    _private: (),
}

/// The provider the service's instruments are made with (see
/// [`WorkflowMeterProvider`]).
pub fn meter_provider() -> WorkflowMeterProvider {
    WorkflowMeterProvider::default()
}

impl opentelemetry::metrics::MeterProvider for WorkflowMeterProvider {
    fn meter_with_scope(&self, scope: opentelemetry::InstrumentationScope) -> Meter {
        Meter::new(Arc::new(ScopedInstruments {
            scope: Arc::new(Scope::from(&scope)),
        }))
    }
}

/// The instruments of one meter.
#[derive(Debug)]
struct ScopedInstruments {
    scope: Arc<Scope>,
}

#[derive(Default)]
struct Registry {
    all: Vec<Arc<Instrument>>,
    /// By scope (name, version, schema URL) and lower-case name: the
    /// specification's identity, whose names are case-insensitive.
    by_identity: HashMap<(String, String, String, String), Arc<Instrument>>,
    /// Prometheus families taken, with the type they were taken for.
    families: HashMap<String, &'static str>,
    /// Problems already reported, so each is said once.
    reported: HashSet<String>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Says `message` on stderr, once per `key` in the process.
fn report(registry: &mut Registry, key: String, message: &str) {
    if registry.reported.len() < 10_000 && registry.reported.insert(key) {
        eprintln!("workflow-otel: {message}");
    }
}

/// The API's instrument name rule: a letter, then up to 254 letters,
/// digits, `_`, `.`, `-` and `/`.
fn check_name(name: &str) -> Result<(), &'static str> {
    let mut characters = name.chars();
    match characters.next() {
        None => return Err("it is empty"),
        Some(first) if !first.is_ascii_alphabetic() => {
            return Err("it must start with a letter");
        }
        Some(_) => {}
    }
    if name.len() > 255 {
        return Err("it is longer than 255 characters");
    }
    if !characters.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')) {
        return Err("only letters, digits, `_`, `.`, `-` and `/` may follow the first letter");
    }
    Ok(())
}

/// The API's unit rule: at most 63 ASCII characters.
fn check_unit(unit: &str) -> Result<(), &'static str> {
    if unit.len() > 63 {
        return Err("it is longer than 63 characters");
    }
    if !unit.is_ascii() {
        return Err("it must be ASCII");
    }
    Ok(())
}

fn exemplar_interval() -> Ticks {
    match crate::metrics::series::state() {
        Some(state) => state.exemplar_interval(),
        None => {
            crate::record::ids::init_clock();
            Calibration::now().ticks_in(crate::metrics::EXEMPLAR_INTERVAL)
        }
    }
}

/// Registers an instrument, or finds the one registered before with the
/// same identity. `None` (reported once) when it cannot be: a bad name or
/// unit, the same name with another kind or unit, too many instruments.
fn register(scope: &Arc<Scope>, mut spec: Spec, callbacks: Callbacks) -> Option<Arc<Instrument>> {
    let mut registry = lock(registry());
    let registry = &mut *registry;
    if let Err(reason) = check_name(&spec.name) {
        let message = format!(
            "metric instrument name {:?} is invalid: {reason}; its measurements are dropped",
            spec.name
        );
        report(registry, format!("name {}", spec.name), &message);
        return None;
    }
    if let Err(reason) = check_unit(&spec.unit) {
        let message = format!(
            "the unit {:?} of metric `{}` is invalid: {reason}; its measurements are dropped",
            spec.unit, spec.name
        );
        report(registry, format!("unit {}", spec.name), &message);
        return None;
    }
    let identity = (
        scope.name.clone(),
        scope.version.clone(),
        scope.schema_url.clone(),
        spec.name.to_ascii_lowercase(),
    );
    if let Some(known) = registry.by_identity.get(&identity).cloned() {
        if known.spec.kind != spec.kind
            || known.spec.number != spec.number
            || known.spec.unit != spec.unit
        {
            let message = format!(
                "metric `{}` of scope `{}` was registered as a {:?} {} (unit {:?}) and now as a \
                 {:?} {} (unit {:?}); the first registration is kept and the later one records \
                 nothing",
                known.spec.name,
                scope.name,
                known.spec.number,
                known.spec.kind.as_str(),
                known.spec.unit,
                spec.number,
                spec.kind.as_str(),
                spec.unit
            );
            report(registry, format!("conflict {identity:?}"), &message);
            return None;
        }
        if known.spec.description != spec.description {
            let message = format!(
                "metric `{}` of scope `{}` was registered again with another description; the \
                 first one is kept",
                known.spec.name, scope.name
            );
            report(registry, format!("description {identity:?}"), &message);
        }
        if known.spec.kind == InstrumentKind::Histogram
            && !spec.bounds.is_empty()
            && spec.bounds != known.spec.bounds
        {
            let message = format!(
                "metric `{}` of scope `{}` was registered again with other bucket bounds; the \
                 first ones are kept",
                known.spec.name, scope.name
            );
            report(registry, format!("bounds {identity:?}"), &message);
        }
        add_callbacks(&known, callbacks);
        return Some(known);
    }
    if registry.all.len() >= MAX_INSTRUMENTS {
        let message = format!(
            "more than {MAX_INSTRUMENTS} metric instruments were registered; `{}` and later ones \
             record nothing",
            spec.name
        );
        report(registry, "too many instruments".to_owned(), &message);
        return None;
    }
    if spec.kind == InstrumentKind::Histogram {
        spec.bounds = histogram_bounds(registry, &spec.name, std::mem::take(&mut spec.bounds));
    }
    let family = prometheus::family_name(&spec.name, &spec.unit, spec.kind);
    let family_type = prometheus::family_type(spec.kind);
    let prometheus_family = match registry.families.get(&family).copied() {
        _ if prometheus::is_reserved(&family) => {
            let message = format!(
                "metric `{}` would be the Prometheus family `{family}`, which workflow-otel's \
                 own metrics use; it is exported over OTLP but not on the Prometheus endpoint",
                spec.name
            );
            report(registry, format!("family {family}"), &message);
            None
        }
        Some(taken) if taken != family_type => {
            let message = format!(
                "metric `{}` would be the Prometheus family `{family}`, already a {taken} of \
                 another instrument; it is exported over OTLP but not on the Prometheus endpoint",
                spec.name
            );
            report(registry, format!("family {family}"), &message);
            None
        }
        _ => {
            registry.families.insert(family.clone(), family_type);
            Some(family)
        }
    };
    let instrument = Arc::new(Instrument::new(
        scope.clone(),
        spec,
        prometheus_family,
        callbacks,
        CARDINALITY_LIMIT.load(Ordering::Relaxed),
        exemplar_interval(),
    ));
    registry.by_identity.insert(identity, instrument.clone());
    registry.all.push(instrument.clone());
    Some(instrument)
}

/// The advised bounds if they are usable, else the default (reported).
fn histogram_bounds(registry: &mut Registry, name: &str, advised: Box<[f64]>) -> Box<[f64]> {
    if advised.is_empty() {
        return DEFAULT_HISTOGRAM_BOUNDARIES.into();
    }
    let usable = advised.len() <= MAX_BOUNDARIES
        && advised.iter().all(|bound| bound.is_finite())
        && advised.windows(2).all(|pair| pair[0] < pair[1]);
    if usable {
        return advised;
    }
    let message = format!(
        "the bucket bounds advised for metric `{name}` are not finite and strictly increasing \
         (or are more than {MAX_BOUNDARIES}); the default bounds are used"
    );
    report(registry, format!("bounds {name}"), &message);
    DEFAULT_HISTOGRAM_BOUNDARIES.into()
}

fn add_callbacks(instrument: &Instrument, callbacks: Callbacks) {
    let mut known = lock(&instrument.callbacks);
    match (&mut *known, callbacks) {
        (Callbacks::U64(known), Callbacks::U64(more)) => known.extend(more),
        (Callbacks::I64(known), Callbacks::I64(more)) => known.extend(more),
        (Callbacks::F64(known), Callbacks::F64(more)) => known.extend(more),
        // The identity check above makes the number types agree.
        _ => {}
    }
}

/// Every instrument with callbacks.
fn observable() -> Vec<Arc<Instrument>> {
    lock(registry())
        .all
        .iter()
        .filter(|instrument| instrument.spec.kind.is_observable())
        .cloned()
        .collect()
}

/// One instrument as the encoders see it.
#[derive(Debug)]
pub(crate) struct InstrumentSnapshot {
    pub(crate) instrument: Arc<Instrument>,
    pub(crate) points: Vec<PointSnapshot>,
}

/// Every instrument as it is now, after running the observable ones' callbacks.
pub(crate) fn snapshot(calibration: &Calibration) -> Vec<InstrumentSnapshot> {
    let instruments = lock(registry()).all.clone();
    if instruments
        .iter()
        .any(|instrument| instrument.spec.kind.is_observable())
    {
        observe::collect(observable);
    }
    instruments
        .into_iter()
        .map(|instrument| InstrumentSnapshot {
            points: instrument.points(calibration),
            instrument,
        })
        .filter(|snapshot| !snapshot.points.is_empty())
        .collect()
}

/// The sum of an instrument's points (a histogram's: their counts), by
/// name, for the benchmark.
pub(crate) fn total(name: &str) -> Option<f64> {
    let instrument = lock(registry())
        .all
        .iter()
        .find(|instrument| instrument.spec.name == name)
        .cloned()?;
    let points = instrument.points(&Calibration::now());
    Some(
        points
            .iter()
            .map(|point| match (&point.histogram, point.value) {
                (Some(histogram), _) => histogram.count as f64,
                (None, instrument::NumberValue::U64(value)) => value as f64,
                (None, instrument::NumberValue::I64(value)) => value as f64,
                (None, instrument::NumberValue::F64(value)) => value,
            })
            .sum(),
    )
}

fn text(value: Option<Cow<'static, str>>) -> String {
    value.map(Cow::into_owned).unwrap_or_default()
}

impl ScopedInstruments {
    fn sync<T>(
        &self,
        name: Cow<'static, str>,
        description: Option<Cow<'static, str>>,
        unit: Option<Cow<'static, str>>,
        (kind, number): (InstrumentKind, Number),
        bounds: Option<Vec<f64>>,
    ) -> Arc<dyn SyncInstrument<T> + Send + Sync>
    where
        Recorder: SyncInstrument<T>,
        Dropped: SyncInstrument<T>,
    {
        let spec = Spec {
            name: name.into_owned(),
            description: text(description),
            unit: text(unit),
            kind,
            number,
            bounds: bounds.unwrap_or_default().into(),
        };
        match register(&self.scope, spec, Callbacks::U64(Vec::new())) {
            Some(instrument) => Arc::new(Recorder(instrument)),
            None => Arc::new(Dropped),
        }
    }

    fn observable(
        &self,
        name: Cow<'static, str>,
        description: Option<Cow<'static, str>>,
        unit: Option<Cow<'static, str>>,
        (kind, number): (InstrumentKind, Number),
        callbacks: Callbacks,
    ) {
        let spec = Spec {
            name: name.into_owned(),
            description: text(description),
            unit: text(unit),
            kind,
            number,
            bounds: Box::new([]),
        };
        register(&self.scope, spec, callbacks);
    }
}

/// A synchronous instrument of the builder `$builder`.
macro_rules! sync {
    ($self:ident, $builder:ident, $kind:ident, $number:ident) => {
        $self.sync(
            $builder.name,
            $builder.description,
            $builder.unit,
            (InstrumentKind::$kind, Number::$number),
            None,
        )
    };
}

/// An observable instrument of the builder `$builder`.
macro_rules! observable {
    ($self:ident, $builder:ident, $kind:ident, $number:ident, $handle:ident) => {{
        $self.observable(
            $builder.name,
            $builder.description,
            $builder.unit,
            (InstrumentKind::$kind, Number::$number),
            Callbacks::$number($builder.callbacks),
        );
        $handle::new()
    }};
}

impl InstrumentProvider for ScopedInstruments {
    fn u64_counter(&self, builder: InstrumentBuilder<'_, Counter<u64>>) -> Counter<u64> {
        Counter::new(sync!(self, builder, Counter, U64))
    }

    fn f64_counter(&self, builder: InstrumentBuilder<'_, Counter<f64>>) -> Counter<f64> {
        Counter::new(sync!(self, builder, Counter, F64))
    }

    fn u64_observable_counter(
        &self,
        builder: AsyncInstrumentBuilder<'_, ObservableCounter<u64>, u64>,
    ) -> ObservableCounter<u64> {
        observable!(self, builder, ObservableCounter, U64, ObservableCounter)
    }

    fn f64_observable_counter(
        &self,
        builder: AsyncInstrumentBuilder<'_, ObservableCounter<f64>, f64>,
    ) -> ObservableCounter<f64> {
        observable!(self, builder, ObservableCounter, F64, ObservableCounter)
    }

    fn i64_up_down_counter(
        &self,
        builder: InstrumentBuilder<'_, UpDownCounter<i64>>,
    ) -> UpDownCounter<i64> {
        UpDownCounter::new(sync!(self, builder, UpDownCounter, I64))
    }

    fn f64_up_down_counter(
        &self,
        builder: InstrumentBuilder<'_, UpDownCounter<f64>>,
    ) -> UpDownCounter<f64> {
        UpDownCounter::new(sync!(self, builder, UpDownCounter, F64))
    }

    fn i64_observable_up_down_counter(
        &self,
        builder: AsyncInstrumentBuilder<'_, ObservableUpDownCounter<i64>, i64>,
    ) -> ObservableUpDownCounter<i64> {
        observable!(
            self,
            builder,
            ObservableUpDownCounter,
            I64,
            ObservableUpDownCounter
        )
    }

    fn f64_observable_up_down_counter(
        &self,
        builder: AsyncInstrumentBuilder<'_, ObservableUpDownCounter<f64>, f64>,
    ) -> ObservableUpDownCounter<f64> {
        observable!(
            self,
            builder,
            ObservableUpDownCounter,
            F64,
            ObservableUpDownCounter
        )
    }

    fn u64_gauge(&self, builder: InstrumentBuilder<'_, Gauge<u64>>) -> Gauge<u64> {
        Gauge::new(sync!(self, builder, Gauge, U64))
    }

    fn f64_gauge(&self, builder: InstrumentBuilder<'_, Gauge<f64>>) -> Gauge<f64> {
        Gauge::new(sync!(self, builder, Gauge, F64))
    }

    fn i64_gauge(&self, builder: InstrumentBuilder<'_, Gauge<i64>>) -> Gauge<i64> {
        Gauge::new(sync!(self, builder, Gauge, I64))
    }

    fn u64_observable_gauge(
        &self,
        builder: AsyncInstrumentBuilder<'_, ObservableGauge<u64>, u64>,
    ) -> ObservableGauge<u64> {
        observable!(self, builder, ObservableGauge, U64, ObservableGauge)
    }

    fn i64_observable_gauge(
        &self,
        builder: AsyncInstrumentBuilder<'_, ObservableGauge<i64>, i64>,
    ) -> ObservableGauge<i64> {
        observable!(self, builder, ObservableGauge, I64, ObservableGauge)
    }

    fn f64_observable_gauge(
        &self,
        builder: AsyncInstrumentBuilder<'_, ObservableGauge<f64>, f64>,
    ) -> ObservableGauge<f64> {
        observable!(self, builder, ObservableGauge, F64, ObservableGauge)
    }

    fn f64_histogram(&self, builder: HistogramBuilder<'_, Histogram<f64>>) -> Histogram<f64> {
        Histogram::new(self.sync(
            builder.name,
            builder.description,
            builder.unit,
            (InstrumentKind::Histogram, Number::F64),
            builder.boundaries,
        ))
    }

    fn u64_histogram(&self, builder: HistogramBuilder<'_, Histogram<u64>>) -> Histogram<u64> {
        Histogram::new(self.sync(
            builder.name,
            builder.description,
            builder.unit,
            (InstrumentKind::Histogram, Number::U64),
            builder.boundaries,
        ))
    }
}

#[cfg(test)]
mod tests;
