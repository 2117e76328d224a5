//! The runtime the macros call: start a span from a static [`Site`], run the
//! body with it attached, finish it with the call's outcome.
//!
//! Generated code is `static SITE = Site::new(..); let span = start(&SITE, ..);`
//! followed by [`run`] (sync) or [`instrument`] (async). Everything per call is
//! here, so the expansion stays two calls long and can change without
//! touching user crates.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt};
use opentelemetry::{Context, KeyValue};

use crate::metrics::Meter;
use crate::metrics::series::Series;
use crate::pipeline::limits::cut_attribute;
use crate::pipeline::{Pipeline, SpanLimits, submit};
use crate::record::context::{CurrentWorkflow, ParentLineage, RemoteWorkflow, WorkflowContext};
use crate::record::current::{current_recording, recording_owner};
pub use crate::record::fields::{Fields, no_fields};
use crate::record::ids;
use crate::record::instrumentation::Instrumentation;
use crate::record::raw::{EndState, ErrorRecord, Extras, RawEvent, RawSpan};
use crate::record::run::Finish;
use crate::record::sampling::{join_trace, root_attributes};
pub use crate::record::site::{GenAiRole, Kind, Literal, Site};
use crate::record::usage::UsageTotals;

/// A started call: the `Context` to attach around its body (its span and, for
/// workflows, its workflow) and, when the span is recorded, the record being
/// built. A step inside an unsampled trace has neither and costs nothing more
/// (but its metrics, when they are on).
#[derive(Debug)]
pub struct ActiveSpan {
    pub(crate) cx: Option<Context>,
    pub(crate) recording: Option<Recording>,
    /// The metrics of a call that is not recorded (a recorded one's are in
    /// its `Recording`).
    pub(crate) meter: Option<Meter>,
}

/// A span being recorded. If dropped before [`Recording::finish`], it ends as
/// cancelled (or as panicked, during unwinding): no path leaves a span unsent.
#[derive(Debug)]
pub(crate) struct Recording {
    /// The record handed to the pipeline, built in place from the start;
    /// `None` once finished.
    raw: Option<RawSpan>,
    /// Where the record goes, when its workflow does not say (a step
    /// outside any workflow): a span inside one is not worth a clone.
    pipeline: Option<Pipeline>,
    extras: RefCell<Option<Box<Extras>>>,
}

/// Stands in for the site of a recording already handed over.
static UNKNOWN_SITE: Site = Site::new(Kind::Step, "unknown", "unknown", "unknown", 0, false, false);

impl ActiveSpan {
    /// Whether the call is over and nothing in it is left to drop: then it
    /// may be forgotten, which skips drop glue that would cost more than the
    /// rest of a call's ending.
    pub(crate) fn is_spent(&self) -> bool {
        self.cx.is_none()
            && self.meter.is_none()
            && self.recording.as_ref().is_none_or(Recording::is_spent)
    }

    /// A call with nothing started.
    pub(crate) const fn idle() -> ActiveSpan {
        ActiveSpan {
            cx: None,
            recording: None,
            meter: None,
        }
    }
}

/// Starts the span for one call of the function described by `site`, as a child
/// of the current context.
#[inline(always)]
pub fn start(site: &'static Site, fields: impl FnOnce(&mut Fields<'_>)) -> ActiveSpan {
    // Filled in place: the result is large and most calls leave it empty.
    let mut span = ActiveSpan::idle();
    Context::map_current(|parent| start_under(&mut span, site, parent, fields));
    span
}

/// Starts the span for a call of `site` under `parent` into `span`.
#[inline(always)]
pub(crate) fn start_under(
    span: &mut ActiveSpan,
    site: &'static Site,
    parent: &Context,
    fields: impl FnOnce(&mut Fields<'_>),
) {
    if site.genai == Some(GenAiRole::Tool) {
        count_tool_call(parent);
    }
    match site.kind {
        Kind::Step => start_step(span, site, parent, fields),
        Kind::Workflow | Kind::ChildWorkflow => start_workflow(span, site, parent, fields),
    }
}

/// What a call of `site` under `parent` has to do, from one look at the
/// context.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuickLook {
    /// Start its span: anything but the two below.
    Start,
    /// Nothing: a step (not a tool, which counts itself) in a trace that is
    /// not sampled, with metrics off. Its descendants see the same
    /// unsampled parent: nothing is attached.
    Nothing,
    /// The same step with metrics on: count it, and nothing else.
    CountOnly,
}

#[inline(always)]
pub(crate) fn quick_look(site: &'static Site, parent: &Context) -> QuickLook {
    if site.kind != Kind::Step || site.genai.is_some() {
        return QuickLook::Start;
    }
    let span = parent.span();
    let parent = span.span_context();
    if !parent.is_valid() || parent.is_sampled() {
        QuickLook::Start
    } else if crate::metrics::series::enabled() {
        QuickLook::CountOnly
    } else {
        QuickLook::Nothing
    }
}

/// The meter of a step that only counts ([`QuickLook::CountOnly`]), out of
/// line, so that the metrics-off path stays a few instructions.
#[inline(never)]
pub(crate) fn unsampled_meter(site: &'static Site, parent: &Context) -> Option<Meter> {
    let started = ids::now();
    let span = parent.span();
    Meter::start(
        site,
        owner_name(parent, span.span_context().span_id()),
        started,
    )
}

/// A tool step adds to the totals of every workflow it runs in, sampled or not.
fn count_tool_call(parent: &Context) {
    if let Some(owner) = parent.get::<CurrentWorkflow>() {
        owner.0.with_ancestors(UsageTotals::add_tool_call);
    }
}

fn start_step(
    span: &mut ActiveSpan,
    site: &'static Site,
    parent: &Context,
    fields: impl FnOnce(&mut Fields<'_>),
) {
    let parent_ref = parent.span();
    let parent_span = parent_ref.span_context();
    // The common case of an unsampled trace: nothing to record, nothing to
    // attach (descendants see the same unsampled parent).
    if parent_span.is_valid() && !parent_span.is_sampled() {
        if crate::metrics::series::enabled() {
            let owner = owner_name(parent, parent_span.span_id());
            span.meter = Meter::start(site, owner, ids::now());
        }
        return;
    }
    let owner = match recording_owner(parent, parent_span.span_id()) {
        Some(owner) => Some(owner),
        None => parent.get::<CurrentWorkflow>().map(|current| &current.0),
    };
    let fallback;
    let instrumentation = match owner.and_then(|owner| owner.instrumentation()) {
        Some(pinned) => pinned,
        None => {
            fallback = Instrumentation::from_context(parent);
            match &fallback {
                Some(found) => &**found,
                None => {
                    crate::record::instrumentation::nothing_records();
                    return;
                }
            }
        }
    };
    let (prefilled, fields) = root_fields(parent_span, fields);
    let (span_context, added) = join_trace(
        (site.span_name, &site.span_kind),
        parent,
        parent_span,
        instrumentation,
        &root_attributes(prefilled.as_deref(), site),
    );
    // Unsampled here means an unsampled root: attach its context anyway, so
    // everything below follows the decision.
    span.cx = Some(parent.with_remote_span_context(span_context.clone()));
    let started = ids::now();
    if span_context.is_sampled() {
        let owner = owner.cloned();
        record(
            span,
            site,
            (span_context, parent_span),
            started,
            owner,
            instrumentation,
            (prefilled, added, fields),
        );
    } else if crate::metrics::series::enabled() {
        span.meter = Meter::start(site, owner.map_or("", |owner| owner.static_name()), started);
    }
}

thread_local! {
    /// The last parent span an unsampled step ran under on this thread, and
    /// the name of the workflow it belongs to. A span id names one span, and
    /// only the workflow that opened a span puts itself next to it in a
    /// `Context`, so the pair stays true; a loop of steps in one workflow
    /// then skips the `Context` lookup.
    static LAST_OWNER: Cell<(SpanId, &'static str)> = const { Cell::new((SpanId::INVALID, "")) };
}

/// The name of the workflow `parent` (whose span is `parent_span`) runs in,
/// as metrics label a step.
fn owner_name(parent: &Context, parent_span: SpanId) -> &'static str {
    if let Ok((span, name)) = LAST_OWNER.try_with(Cell::get)
        && span == parent_span
    {
        return name;
    }
    let name = parent
        .get::<CurrentWorkflow>()
        .map_or("", |current| current.0.static_name());
    let _ = LAST_OWNER.try_with(|last| last.set((parent_span, name)));
    name
}

/// Starts the span for one call of a workflow whose parent is `parent` (the
/// `parent = ..` option): typically a context extracted from another process.
pub fn start_from(
    site: &'static Site,
    parent: Context,
    fields: impl FnOnce(&mut Fields<'_>),
) -> ActiveSpan {
    let mut span = ActiveSpan {
        cx: None,
        recording: None,
        meter: None,
    };
    start_workflow(&mut span, site, &parent, fields);
    span
}

/// The workflow a new workflow under `parent` continues: a local one, or one
/// received from another process.
fn parent_lineage(parent: &Context) -> Option<ParentLineage> {
    match parent.get::<CurrentWorkflow>() {
        Some(local) => {
            let mut lineage = local.0.as_parent();
            lineage.local = Some(local.0.clone());
            Some(lineage)
        }
        None => parent
            .get::<RemoteWorkflow>()
            .map(|remote| remote.0.clone()),
    }
}

fn start_workflow(
    span: &mut ActiveSpan,
    site: &'static Site,
    parent: &Context,
    fields: impl FnOnce(&mut Fields<'_>),
) {
    let parent_ref = parent.span();
    let mut parent_span = parent_ref.span_context();
    let local_parent = parent.get::<CurrentWorkflow>().map(|current| &current.0);
    let lineage = parent_lineage(parent);
    let fallback;
    let instrumentation = match local_parent.and_then(|workflow| workflow.instrumentation()) {
        Some(pinned) => Some(pinned),
        None => {
            // A parent given explicitly (`parent = ..`) rarely carries one:
            // then the caller's own context decides.
            fallback = Instrumentation::from_context(parent)
                .map(|found| found.into_owned())
                .or_else(|| {
                    Context::map_current(|current| {
                        Instrumentation::from_context(current).map(|found| found.into_owned())
                    })
                });
            fallback.as_ref()
        }
    };
    let started = Instant::now();
    let ticks = ids::now();
    let Some(instrumentation) = instrumentation else {
        crate::record::instrumentation::nothing_records();
        // Nothing records: keep the lineage, but attach no span context, which
        // would make other libraries' spans below look unsampled.
        let workflow = Arc::new(WorkflowContext::start(
            (site.name, site.provider),
            lineage,
            SpanContext::empty_context(),
            started,
            None,
        ));
        span.cx = Some(parent.with_value(CurrentWorkflow(workflow)));
        return;
    };
    // A detached child starts a trace of its own, linked to its parent.
    let root = SpanContext::empty_context();
    if site.detached {
        parent_span = &root;
    }
    let (prefilled, fields) = root_fields(parent_span, fields);
    let (span_context, added) = join_trace(
        (site.span_name, &site.span_kind),
        parent,
        parent_span,
        instrumentation,
        &root_attributes(prefilled.as_deref(), site),
    );
    let workflow = Arc::new(WorkflowContext::start(
        (site.name, site.provider),
        lineage,
        span_context.clone(),
        started,
        Some(instrumentation.clone()),
    ));
    let sampled = span_context.is_sampled();
    span.cx = Some(
        parent
            .with_remote_span_context(span_context.clone())
            .with_value(CurrentWorkflow(workflow.clone())),
    );
    if sampled {
        let workflow = Some(workflow);
        record(
            span,
            site,
            (span_context, parent_span),
            ticks,
            workflow,
            instrumentation,
            (prefilled, added, fields),
        );
    } else if crate::metrics::series::enabled() {
        span.meter = Meter::start(site, site.name, ticks);
    }
}

/// Starts recording the span into `span`, then runs the macro's closure that
/// records `args(..)` and `fields(..)` (a root's ran already, for its
/// sampler: they come `prefilled`, with the sampler's `added` attributes).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn record(
    span: &mut ActiveSpan,
    site: &'static Site,
    (span_context, parent_span): (SpanContext, &SpanContext),
    started: ids::Ticks,
    workflow: Option<Arc<WorkflowContext>>,
    instrumentation: &Instrumentation,
    (prefilled, added, fields): (
        Option<Box<Extras>>,
        Vec<KeyValue>,
        Option<impl FnOnce(&mut Fields<'_>)>,
    ),
) {
    let series = if crate::metrics::series::enabled() {
        crate::metrics::started(site, workflow.as_deref())
    } else {
        None
    };
    let pinned = workflow
        .as_deref()
        .and_then(WorkflowContext::instrumentation)
        .is_some_and(|pinned| pinned.pipeline().same_as(instrumentation.pipeline()));
    let pipeline = (!pinned).then(|| instrumentation.pipeline().clone());
    let recording = span.recording.insert(Recording {
        raw: Some(RawSpan {
            site,
            span_context,
            parent_span_id: parent_span.span_id(),
            parent_is_remote: parent_span.is_remote(),
            started,
            ended: 0,
            workflow,
            state: EndState::Completed,
            success: instrumentation.success(),
            series,
            extras: None,
        }),
        pipeline,
        extras: RefCell::new(prefilled),
    });
    let extras = recording.extras.get_mut();
    if let Some(fields) = fields {
        fields(&mut Fields::new(extras));
    }
    if !added.is_empty() {
        extras
            .get_or_insert_with(Extras::boxed)
            .attributes
            .extend(added);
    }
    if let Some(extras) = extras {
        extras.fields_end = extras.attributes.len();
    }
}

/// A root's `args(..)` and `fields(..)`, read before its sampler decides
/// (which sees them); any other span's closure is left to run when it
/// records.
#[inline(always)]
fn root_fields<F: FnOnce(&mut Fields<'_>)>(
    parent_span: &SpanContext,
    fields: F,
) -> (Option<Box<Extras>>, Option<F>) {
    if parent_span.is_valid() {
        return (None, Some(fields));
    }
    let mut extras = None;
    fields(&mut Fields::new(&mut extras));
    (extras, None)
}

/// How a call ended.
pub(crate) enum Ending {
    Returned(Finish),
    Panicked(String),
    Cancelled,
}

impl Recording {
    /// The record, until it is handed over.
    pub(crate) fn raw(&self) -> Option<&RawSpan> {
        self.raw.as_ref()
    }

    pub(crate) fn site(&self) -> &'static Site {
        self.raw.as_ref().map_or(&UNKNOWN_SITE, |raw| raw.site)
    }

    pub(crate) fn span_id(&self) -> SpanId {
        self.raw
            .as_ref()
            .map_or(SpanId::INVALID, |raw| raw.span_context.span_id())
    }

    pub(crate) fn finish(&mut self, ending: Ending) {
        let Some(raw) = &mut self.raw else {
            return;
        };
        raw.ended = ids::now();
        let mut extras = self.extras.get_mut().take();
        let error = match ending {
            Ending::Returned(finish) => {
                if let Some(value) = finish.return_value {
                    extras.get_or_insert_with(Extras::boxed).return_value = Some(value);
                }
                finish.error
            }
            Ending::Panicked(message) => Some(ErrorRecord {
                type_name: crate::record::raw::PANIC,
                message,
            }),
            Ending::Cancelled => {
                raw.state = EndState::Cancelled;
                None
            }
        };
        if let Some(error) = error {
            raw.state = EndState::Failed;
            extras.get_or_insert_with(Extras::boxed).error = Some(error);
        }
        if raw.site.kind != Kind::Step
            && let Some(workflow) = &raw.workflow
        {
            // The totals as the workflow ends: calls that finish later (a
            // spawned task outliving it) are not part of this run.
            let usage = workflow.gen_ai_usage();
            if !usage.is_empty() {
                extras.get_or_insert_with(Extras::boxed).usage = Some(usage);
            }
        }
        raw.extras = extras;
        if let Some(series) = raw.series {
            end_meter(series, raw);
        }
        submit(
            self.pipeline.as_ref(),
            &mut self.raw,
            !current_recording().is_null(),
        );
        // Finished, it owns nothing more (see `ActiveSpan::is_spent`).
        self.pipeline = None;
    }

    /// Whether nothing is left to drop: finished, its pipeline let go.
    fn is_spent(&self) -> bool {
        self.raw.is_none() && self.pipeline.is_none() && self.extras.borrow().is_none()
    }

    /// The limits of the span's pipeline.
    fn limits(&self) -> SpanLimits {
        self.pipeline
            .as_ref()
            .or_else(|| self.raw.as_ref()?.pipeline())
            .map_or_else(SpanLimits::default, |pipeline| *pipeline.limits())
    }

    /// Adds an attribute of the body's, within the span limits: past the
    /// count it is dropped and counted, so a loop cannot grow the span.
    pub(crate) fn set_attribute(&self, attribute: KeyValue) {
        let limits = self.limits();
        let mut extras = self.extras.borrow_mut();
        let extras = extras.get_or_insert_with(Extras::boxed);
        if extras.attributes.len() >= limits.attribute_count as usize {
            extras.dropped_attributes = extras.dropped_attributes.saturating_add(1);
            return;
        }
        extras
            .attributes
            .push(cut_attribute(attribute, limits.attribute_value_length));
    }

    pub(crate) fn add_event(&self, name: Cow<'static, str>, mut attributes: Vec<KeyValue>) {
        let at = ids::now();
        let limits = self.limits();
        let mut extras = self.extras.borrow_mut();
        let extras = extras.get_or_insert_with(Extras::boxed);
        if extras.events.len() >= limits.event_count as usize {
            extras.dropped_events = extras.dropped_events.saturating_add(1);
            return;
        }
        let dropped_attributes = limits.cut_event_attributes(&mut attributes);
        extras.events.push(RawEvent {
            name,
            at,
            attributes,
            dropped_attributes,
        });
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if self.raw.is_some() {
            let ending = if std::thread::panicking() {
                Ending::Panicked("panicked".to_owned())
            } else {
                Ending::Cancelled
            };
            self.finish(ending);
        }
    }
}

/// Ends the metrics of a recorded call; out of line, so that a call with
/// metrics off pays only the check.
#[inline(never)]
fn end_meter(series: &'static Series, raw: &RawSpan) {
    let error = raw.extras.as_ref().and_then(|extras| extras.error.as_ref());
    crate::metrics::ended(
        series,
        (raw.started, raw.ended),
        raw.state == EndState::Cancelled,
        error.map(|error| error.type_name),
        &raw.span_context,
    );
}
