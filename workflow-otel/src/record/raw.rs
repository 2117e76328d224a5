//! What the calling thread keeps of a finished span, and how the pipeline's
//! worker reads it: the built-in exporters encode straight from the record
//! (its attributes walked with [`RawSpan::visit_attributes`]); only an
//! exporter of the user's gets the SDK's `SpanData`, built from the same walk.
//!
//! The record holds references, not attributes: the static [`Site`], the
//! workflow's `Arc`, two instants. Every attribute is made on the worker, so a
//! step with only static attributes costs its caller no allocation.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{Event, Link, SpanContext, SpanId, Status, TraceId};
use opentelemetry::{InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::metrics::series::Series;
use crate::pipeline::SpanLimits;
use crate::record::attributes as attr;
use crate::record::context::WorkflowContext;
use crate::record::ids::{Calibration, Ticks};
use crate::record::instrumentation::SuccessStatus;
use crate::record::limited::event_text;
use crate::record::span::{Kind, Literal, Site};
use crate::record::time::{rfc3339, span_id_hex, trace_id_hex};
use crate::record::usage::GenAiUsage;

/// The instrumentation scope every span of ours carries.
pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("workflow-otel")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndState {
    Completed,
    Failed,
    Cancelled,
}

impl EndState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EndState::Completed => attr::STATUS_COMPLETED,
            EndState::Failed => attr::STATUS_FAILED,
            EndState::Cancelled => attr::STATUS_CANCELLED,
        }
    }
}

/// The `error.type` of a panic.
pub(crate) const PANIC: &str = "panic";

/// An error read from a return value or a panic.
#[derive(Debug)]
pub(crate) struct ErrorRecord {
    pub(crate) type_name: &'static str,
    pub(crate) message: String,
}

/// An event the body added (`add_event`), cut to the limits as it came.
#[derive(Debug)]
pub(crate) struct RawEvent {
    pub(crate) name: Cow<'static, str>,
    pub(crate) at: Ticks,
    pub(crate) attributes: Vec<KeyValue>,
    pub(crate) dropped_attributes: u32,
}

/// What only some spans have; allocated the first time one is needed, so
/// the common span carries one pointer for all of it.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    pub(crate) attributes: Vec<KeyValue>,
    pub(crate) events: Vec<RawEvent>,
    pub(crate) return_value: Option<String>,
    pub(crate) error: Option<ErrorRecord>,
    /// A workflow's model-call and tool totals when it ended.
    pub(crate) usage: Option<GenAiUsage>,
    /// A workflow's `set_workflow_attribute` values, taken by the worker.
    pub(crate) workflow_attributes: Vec<KeyValue>,
    /// How many of `attributes` came from `args(..)` and `fields(..)`: the
    /// site's literal fields go after them, before what the body set.
    pub(crate) fields_end: usize,
    /// Attributes and events the body added past the span limits.
    pub(crate) dropped_attributes: u32,
    pub(crate) dropped_events: u32,
}

/// Emptied extras the worker gives back, for callers to fill again rather
/// than allocate: at most this many.
const MAX_SPARE_EXTRAS: usize = 256;

/// Extras kept with their room; neither side ever waits for the lock. Kept
/// boxed: a span holds them boxed, and taking one must not allocate.
#[allow(clippy::vec_box)]
static SPARE_EXTRAS: Mutex<Vec<Box<Extras>>> = Mutex::new(Vec::new());

impl Extras {
    /// Leaves nothing of a span in them, keeping the room of their lists.
    /// Every field is named: a field added later must be cleared here too.
    fn clear(&mut self) {
        let Extras {
            attributes,
            events,
            return_value,
            error,
            usage,
            workflow_attributes,
            fields_end,
            dropped_attributes,
            dropped_events,
        } = self;
        attributes.clear();
        events.clear();
        *return_value = None;
        *error = None;
        *usage = None;
        *workflow_attributes = Vec::new();
        *fields_end = 0;
        *dropped_attributes = 0;
        *dropped_events = 0;
    }

    /// Empty extras, spare ones if there are.
    pub(crate) fn boxed() -> Box<Extras> {
        SPARE_EXTRAS
            .try_lock()
            .ok()
            .and_then(|mut spare| spare.pop())
            .unwrap_or_default()
    }

    /// Empties `extras` and keeps them for a caller, if they are small.
    pub(crate) fn recycle(mut extras: Box<Extras>) {
        if extras.attributes.capacity() > 16 || extras.events.capacity() > 16 {
            return;
        }
        extras.clear();
        if let Ok(mut spare) = SPARE_EXTRAS.try_lock()
            && spare.len() < MAX_SPARE_EXTRAS
        {
            spare.push(extras);
        }
    }
}

/// A finished span of ours, as the caller hands it to the pipeline.
#[derive(Debug)]
pub(crate) struct RawSpan {
    pub(crate) site: &'static Site,
    pub(crate) span_context: SpanContext,
    pub(crate) parent_span_id: SpanId,
    pub(crate) parent_is_remote: bool,
    pub(crate) started: Ticks,
    pub(crate) ended: Ticks,
    /// The span's own workflow (workflow kinds) or its owner's (steps).
    pub(crate) workflow: Option<Arc<WorkflowContext>>,
    pub(crate) state: EndState,
    pub(crate) success: SuccessStatus,
    /// The metrics series the call adds to when it ends, if metrics were on
    /// when it started (a workflow was then counted in flight).
    pub(crate) series: Option<&'static Series>,
    pub(crate) extras: Option<Box<Extras>>,
}

/// Attributes every workflow span gets besides the extras: code location (3),
/// lineage (up to 14), end state, end time, duration.
const WORKFLOW_ATTRIBUTES: usize = 20;
/// Attributes every step gets: code location (3), step name, owner name and
/// id, status, duration.
const STEP_ATTRIBUTES: usize = 8;

/// The value of one of our attributes, borrowed from the record: the
/// `SpanData` path makes a `Value` of it, the built-in encoders write it as
/// it is (ids in hex, times in RFC 3339).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Attr<'a> {
    Static(&'static str),
    Shared(&'a StringValue),
    Text(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A length in seconds, as a double (`Duration::as_secs_f64`).
    Seconds(Duration),
    TraceId(TraceId),
    SpanId(SpanId),
    Time(SystemTime),
}

impl Attr<'_> {
    #[inline(always)]
    pub(crate) fn to_value(self) -> Value {
        match self {
            Attr::Static(text) => Value::from(text),
            Attr::Shared(text) => Value::String(text.clone()),
            Attr::Text(text) => Value::from(text.to_owned()),
            Attr::Int(number) => Value::I64(number),
            Attr::Float(number) => Value::F64(number),
            Attr::Bool(flag) => Value::Bool(flag),
            Attr::Seconds(length) => Value::F64(length.as_secs_f64()),
            Attr::TraceId(id) => Value::from(trace_id_hex(id)),
            Attr::SpanId(id) => Value::from(span_id_hex(id)),
            Attr::Time(time) => Value::from(rfc3339(time)),
        }
    }
}

impl From<Literal> for Attr<'_> {
    fn from(value: Literal) -> Self {
        match value {
            Literal::Str(text) => Attr::Static(text),
            Literal::Int(number) => Attr::Int(number),
            Literal::Float(number) => Attr::Float(number),
            Literal::Bool(flag) => Attr::Bool(flag),
        }
    }
}

/// Receives a span's attributes in their order: ours (a static key and a
/// borrowed value) and the user's (as recorded).
pub(crate) trait AttributeSink: Sized {
    fn attribute(&mut self, key: &'static str, value: Attr<'_>);
    fn pair(&mut self, attribute: &KeyValue);

    /// Attributes `emit` gives that are the same for every span of `site`:
    /// an encoder may keep what it made of them.
    #[inline(always)]
    fn same_for_site(&mut self, site: &'static Site, emit: impl FnOnce(&mut Self)) {
        let _ = site;
        emit(self);
    }

    /// Attributes `emit` gives that are the same for every step of `workflow`.
    #[inline(always)]
    fn same_for_workflow(&mut self, workflow: &WorkflowContext, emit: impl FnOnce(&mut Self)) {
        let _ = workflow;
        emit(self);
    }

    /// Attributes `emit` gives that are the user's (`args`, `fields`,
    /// `set_attribute`): the ones a count limit drops.
    #[inline(always)]
    fn users(&mut self, emit: impl FnOnce(&mut Self)) {
        emit(self);
    }
}

impl AttributeSink for Vec<KeyValue> {
    #[inline(always)]
    fn attribute(&mut self, key: &'static str, value: Attr<'_>) {
        self.push(KeyValue::new(key, value.to_value()));
    }

    fn pair(&mut self, attribute: &KeyValue) {
        self.push(attribute.clone());
    }
}

/// A span's start and end as wall-clock times, and its length in seconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpanTimes {
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    /// The same instants in nanoseconds since the Unix epoch.
    pub(crate) start_unix: u64,
    pub(crate) end_unix: u64,
    length: Duration,
}

/// A span's status, borrowed from the record.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RawStatus<'a> {
    Unset,
    Ok,
    Error(&'a str),
}

impl RawSpan {
    /// The pipeline of the span's workflow, pinned when the root started.
    pub(crate) fn pipeline(&self) -> Option<&crate::pipeline::Pipeline> {
        let workflow = self.workflow.as_deref()?;
        Some(workflow.instrumentation()?.pipeline())
    }

    /// Done by the worker as it takes the record from the queue: a
    /// workflow's attributes are taken out of it once, whoever reads them.
    pub(crate) fn settle(&mut self) {
        if self.site.kind == Kind::Step {
            return;
        }
        if let Some(workflow) = &self.workflow {
            let taken = workflow.take_attributes();
            if !taken.is_empty() {
                self.extras
                    .get_or_insert_with(Default::default)
                    .workflow_attributes = taken;
            }
        }
    }

    pub(crate) fn times(&self, clock: &Calibration) -> SpanTimes {
        let start = clock.system_time(self.started);
        let end = clock.system_time(self.ended);
        let length = end.duration_since(start).unwrap_or_default();
        SpanTimes {
            start,
            end,
            start_unix: clock.unix_nanos(self.started),
            end_unix: clock.unix_nanos(self.ended),
            length,
        }
    }

    fn is_workflow(&self) -> bool {
        self.site.kind != Kind::Step
    }

    pub(crate) fn error(&self) -> Option<&ErrorRecord> {
        self.extras
            .as_ref()
            .and_then(|extras| extras.error.as_ref())
    }

    /// Events the body added, in order; the exception event, if any, comes
    /// after them (see [`RawSpan::error`]).
    pub(crate) fn events(&self) -> &[RawEvent] {
        self.extras
            .as_ref()
            .map_or(&[], |extras| extras.events.as_slice())
    }

    pub(crate) fn status(&self) -> RawStatus<'_> {
        match self.error() {
            Some(error) => RawStatus::Error(&error.message),
            None if self.state == EndState::Completed && self.success == SuccessStatus::Ok => {
                RawStatus::Ok
            }
            None => RawStatus::Unset,
        }
    }

    /// A child workflow links to the span of the workflow that started it.
    pub(crate) fn parent_link(&self) -> Option<&SpanContext> {
        if self.site.kind != Kind::ChildWorkflow {
            return None;
        }
        let parent = self.workflow.as_ref()?.parent()?;
        Some(parent.span_context()).filter(|context| context.is_valid())
    }

    /// Events the body added past the limit.
    pub(crate) fn dropped_events(&self) -> u32 {
        self.extras
            .as_ref()
            .map_or(0, |extras| extras.dropped_events)
    }

    /// How many attributes [`RawSpan::visit_attributes`] gives, at most.
    pub(crate) fn attribute_room(&self) -> usize {
        let ours = if self.is_workflow() {
            WORKFLOW_ATTRIBUTES
        } else {
            STEP_ATTRIBUTES
        };
        ours + self.extras.as_ref().map_or(0, |extras| {
            extras.attributes.len() + extras.workflow_attributes.len() + 2
        })
    }

    /// Every attribute of the span, in the order it is exported.
    pub(crate) fn visit_attributes(&self, times: &SpanTimes, sink: &mut impl AttributeSink) {
        let site = self.site;
        sink.same_for_site(site, |sink| {
            sink.attribute(attr::CODE_FUNCTION_NAME, Attr::Static(site.function));
            sink.attribute(attr::CODE_FILE_PATH, Attr::Static(site.file));
            sink.attribute(attr::CODE_LINE_NUMBER, Attr::Int(i64::from(site.line)));
            if site.kind == Kind::Step {
                sink.attribute(attr::STEP_NAME, Attr::Static(site.name));
            }
        });
        match (&self.workflow, self.is_workflow()) {
            (Some(workflow), true) => workflow_start_attributes(workflow, times.start, sink),
            (Some(owner), false) => sink.same_for_workflow(owner, |sink| {
                sink.attribute(attr::WORKFLOW_NAME, Attr::Shared(owner.name_value()));
                sink.attribute(attr::WORKFLOW_ID, Attr::Shared(owner.id_value()));
            }),
            (None, _) => {}
        }
        if let Some(role) = site.genai {
            sink.attribute(attr::GEN_AI_OPERATION_NAME, Attr::Static(role.operation()));
            sink.attribute(role.name_key(), Attr::Static(site.name));
            if let Some(provider) = site.provider {
                sink.attribute(attr::GEN_AI_PROVIDER_NAME, Attr::Static(provider));
            }
            sink.attribute(
                attr::OPENINFERENCE_SPAN_KIND,
                Attr::Static(role.openinference_kind()),
            );
        }
        let extras = self.extras.as_deref();
        if let Some(usage) = extras.and_then(|extras| extras.usage.as_ref()) {
            for attribute in usage.attributes(site.genai.is_some()) {
                sink.pair(&attribute);
            }
        }
        let attributes = extras.map_or(&[][..], |extras| &extras.attributes);
        let (from_call, set_later) =
            attributes.split_at(extras.map_or(0, |extras| extras.fields_end.min(attributes.len())));
        sink.users(|sink| {
            for attribute in from_call {
                sink.pair(attribute);
            }
            for (key, value) in site.literal_fields {
                sink.attribute(key, Attr::from(*value));
            }
            for attribute in set_later {
                sink.pair(attribute);
            }
        });
        if let Some(extras) = extras {
            if let Some(value) = &extras.return_value {
                sink.attribute(attr::RETURN_VALUE, Attr::Text(value));
            }
            if let Some(error) = &extras.error {
                sink.attribute(attr::ERROR_TYPE, Attr::Static(error.type_name));
            }
        }
        if self.is_workflow() && self.workflow.is_some() {
            sink.attribute(attr::WORKFLOW_STATUS, Attr::Static(self.state.as_str()));
            sink.attribute(attr::WORKFLOW_END_TIME, Attr::Time(times.end));
            sink.attribute(attr::WORKFLOW_DURATION, Attr::Seconds(times.length));
            let set_on_workflow = extras.map_or(&[][..], |extras| &extras.workflow_attributes);
            sink.users(|sink| {
                for attribute in set_on_workflow {
                    sink.pair(attribute);
                }
            });
        } else {
            sink.attribute(attr::STEP_STATUS, Attr::Static(self.state.as_str()));
            sink.attribute(attr::STEP_DURATION, Attr::Seconds(times.length));
        }
    }

    /// The SDK's form of the span, for exporters of the user's.
    pub(crate) fn to_span_data(
        &self,
        scope: &InstrumentationScope,
        clock: &Calibration,
        limits: &SpanLimits,
    ) -> SpanData {
        let site = self.site;
        let times = self.times(clock);
        let mut attributes = Vec::with_capacity(self.attribute_room());
        let dropped_attributes_count = self.visit_limited(&times, limits, &mut attributes);
        let mut events: Vec<Event> = self
            .events()
            .iter()
            .map(|event| {
                Event::new(
                    event.name.clone(),
                    clock.system_time(event.at),
                    event.attributes.clone(),
                    event.dropped_attributes,
                )
            })
            .collect();
        if let Some(error) = self.error() {
            events.push(Event::new(
                attr::EXCEPTION_EVENT,
                times.end,
                vec![
                    KeyValue::new(
                        attr::EXCEPTION_TYPE,
                        event_text(limits, error.type_name).to_owned(),
                    ),
                    KeyValue::new(
                        attr::EXCEPTION_MESSAGE,
                        event_text(limits, &error.message).to_owned(),
                    ),
                ],
                0,
            ));
        }
        let status = match self.status() {
            RawStatus::Unset => Status::Unset,
            RawStatus::Ok => Status::Ok,
            RawStatus::Error(message) => Status::error(message.to_owned()),
        };
        let mut span_events = SpanEvents::default();
        span_events.events = events;
        span_events.dropped_count = self.dropped_events();
        let mut span_links = SpanLinks::default();
        let link = self.parent_link_within(limits);
        if let Some(parent) = link.link {
            let attributes = if link.with_type {
                vec![KeyValue::new(attr::LINK_TYPE, attr::LINK_PARENT_WORKFLOW)]
            } else {
                Vec::new()
            };
            span_links.links = vec![Link::new(
                parent.clone(),
                attributes,
                link.dropped_attributes(),
            )];
        }
        span_links.dropped_count = link.dropped_links;
        SpanData {
            span_context: self.span_context.clone(),
            parent_span_id: self.parent_span_id,
            parent_span_is_remote: self.parent_is_remote,
            span_kind: site.span_kind.clone(),
            name: Cow::Borrowed(site.span_name),
            start_time: times.start,
            end_time: times.end,
            attributes,
            dropped_attributes_count,
            events: span_events,
            links: span_links,
            status,
            instrumentation_scope: scope.clone(),
        }
    }
}

fn workflow_start_attributes(
    workflow: &WorkflowContext,
    start_time: SystemTime,
    sink: &mut impl AttributeSink,
) {
    let span_context = workflow.span_context();
    let depth = Attr::Int(i64::from(workflow.depth()));
    sink.attribute(attr::TRACE_ID, Attr::TraceId(span_context.trace_id()));
    sink.attribute(attr::ROOT_SPAN_ID, Attr::SpanId(workflow.root_span_id()));
    sink.attribute(attr::CURRENT_SPAN_ID, Attr::SpanId(span_context.span_id()));
    sink.attribute(attr::WORKFLOW_NAME, Attr::Shared(workflow.name_value()));
    sink.attribute(attr::WORKFLOW_ID, Attr::Shared(workflow.id_value()));
    sink.attribute(attr::WORKFLOW_DEPTH, depth);
    sink.attribute(attr::WORKFLOW_START_TIME, Attr::Time(start_time));
    sink.attribute(
        attr::HIERARCHY_PATH,
        Attr::Shared(workflow.hierarchy_path_value()),
    );
    sink.attribute(attr::NESTING_LEVEL, depth);
    sink.attribute(
        attr::CORRELATION_ID,
        Attr::Shared(workflow.correlation_id_value()),
    );
    match workflow.parent() {
        None => sink.attribute(attr::RELATIONSHIP_TYPE, Attr::Static(attr::ROOT_WORKFLOW)),
        Some(parent) => {
            sink.attribute(attr::RELATIONSHIP_TYPE, Attr::Static(attr::CHILD_WORKFLOW));
            sink.attribute(
                attr::PARENT_WORKFLOW_NAME,
                Attr::Shared(parent.name_value()),
            );
            sink.attribute(attr::PARENT_WORKFLOW_ID, Attr::Shared(parent.id_value()));
        }
    }
    if let Some(causation) = workflow.causation_id_value() {
        sink.attribute(attr::CAUSATION_ID, Attr::Shared(causation));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Extras given back to callers carry nothing of the span they were in.
    #[test]
    fn cleared_extras_are_empty_and_keep_their_room() {
        let mut extras = Extras {
            attributes: vec![KeyValue::new("a", 1)],
            events: vec![RawEvent {
                name: "e".into(),
                at: 5,
                attributes: vec![KeyValue::new("b", 2)],
                dropped_attributes: 1,
            }],
            return_value: Some("42".to_owned()),
            error: Some(ErrorRecord {
                type_name: PANIC,
                message: "boom".to_owned(),
            }),
            usage: Some(GenAiUsage::default()),
            workflow_attributes: vec![KeyValue::new("c", 3)],
            fields_end: 1,
            dropped_attributes: 2,
            dropped_events: 3,
        };
        extras.clear();
        assert_eq!(format!("{extras:?}"), format!("{:?}", Extras::default()));
        assert!(extras.attributes.capacity() >= 1);
    }
}
