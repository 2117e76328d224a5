//! What the calling thread keeps of a finished span, and its conversion to the
//! SDK's `SpanData` on the pipeline's worker thread.
//!
//! The record holds references, not attributes: the static [`Site`], the
//! workflow's `Arc`, two instants. Every `KeyValue` is built by the worker, so a
//! step with only static attributes costs its caller no allocation.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::trace::{Event, Link, SpanContext, SpanId, Status};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::metrics::series::Series;
use crate::record::attributes as attr;
use crate::record::context::WorkflowContext;
use crate::record::ids::{Calibration, Ticks};
use crate::record::instrumentation::SuccessStatus;
use crate::record::span::{Kind, Site};
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
    fn as_str(self) -> &'static str {
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

/// What only some spans have; allocated the first time one is needed, so
/// the common span carries one pointer for all of it.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    pub(crate) attributes: Vec<KeyValue>,
    pub(crate) events: Vec<(Cow<'static, str>, Ticks, Vec<KeyValue>)>,
    pub(crate) return_value: Option<String>,
    pub(crate) error: Option<ErrorRecord>,
    /// A workflow's model-call and tool totals when it ended.
    pub(crate) usage: Option<GenAiUsage>,
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

impl RawSpan {
    pub(crate) fn into_span_data(
        self,
        scope: &InstrumentationScope,
        clock: &Calibration,
    ) -> SpanData {
        let site = self.site;
        let start_time = clock.system_time(self.started);
        let end_time = clock.system_time(self.ended);
        let seconds = end_time
            .duration_since(start_time)
            .unwrap_or_default()
            .as_secs_f64();
        let is_workflow = site.kind != Kind::Step;
        let extras = self.extras.map(|extras| *extras).unwrap_or_default();
        let custom = if is_workflow {
            WORKFLOW_ATTRIBUTES
        } else {
            STEP_ATTRIBUTES
        };
        let mut attributes = Vec::with_capacity(custom + extras.attributes.len() + 2);
        attributes.push(KeyValue::new(attr::CODE_FUNCTION_NAME, site.function));
        attributes.push(KeyValue::new(attr::CODE_FILE_PATH, site.file));
        attributes.push(KeyValue::new(attr::CODE_LINE_NUMBER, i64::from(site.line)));
        match (&self.workflow, is_workflow) {
            (Some(workflow), true) => {
                workflow_start_attributes(workflow, start_time, &mut attributes)
            }
            (Some(owner), false) => {
                attributes.push(KeyValue::new(attr::STEP_NAME, site.name));
                attributes.push(KeyValue::new(attr::WORKFLOW_NAME, owner.name_value()));
                attributes.push(KeyValue::new(attr::WORKFLOW_ID, owner.id_value()));
            }
            (None, _) => attributes.push(KeyValue::new(attr::STEP_NAME, site.name)),
        }
        if let Some(role) = site.genai {
            attributes.push(KeyValue::new(attr::GEN_AI_OPERATION_NAME, role.operation()));
            attributes.push(KeyValue::new(role.name_key(), site.name));
            attributes.push(KeyValue::new(
                attr::OPENINFERENCE_SPAN_KIND,
                role.openinference_kind(),
            ));
        }
        if let Some(usage) = &extras.usage {
            attributes.extend(usage.attributes(site.genai.is_some()));
        }
        attributes.extend(extras.attributes);
        if let Some(value) = extras.return_value {
            attributes.push(KeyValue::new(attr::RETURN_VALUE, value));
        }
        let mut events: Vec<Event> = extras
            .events
            .into_iter()
            .map(|(name, at, attributes)| Event::new(name, clock.system_time(at), attributes, 0))
            .collect();

        let status = match extras.error {
            Some(error) => {
                attributes.push(KeyValue::new(attr::ERROR_TYPE, error.type_name));
                events.push(Event::new(
                    attr::EXCEPTION_EVENT,
                    end_time,
                    vec![
                        KeyValue::new(attr::EXCEPTION_TYPE, error.type_name),
                        KeyValue::new(attr::EXCEPTION_MESSAGE, error.message.clone()),
                    ],
                    0,
                ));
                Status::error(error.message)
            }
            None if self.state == EndState::Completed && self.success == SuccessStatus::Ok => {
                Status::Ok
            }
            None => Status::Unset,
        };

        let mut links = Vec::new();
        match (&self.workflow, is_workflow) {
            (Some(workflow), true) => {
                attributes.push(KeyValue::new(attr::WORKFLOW_STATUS, self.state.as_str()));
                attributes.push(KeyValue::new(attr::WORKFLOW_END_TIME, rfc3339(end_time)));
                attributes.push(KeyValue::new(attr::WORKFLOW_DURATION, seconds));
                attributes.extend(workflow.take_attributes());
                if let (Kind::ChildWorkflow, Some(parent)) = (site.kind, workflow.parent())
                    && parent.span_context().is_valid()
                {
                    links.push(Link::new(
                        parent.span_context().clone(),
                        vec![KeyValue::new(attr::LINK_TYPE, attr::LINK_PARENT_WORKFLOW)],
                        0,
                    ));
                }
            }
            _ => {
                attributes.push(KeyValue::new(attr::STEP_STATUS, self.state.as_str()));
                attributes.push(KeyValue::new(attr::STEP_DURATION, seconds));
            }
        }

        let mut span_events = SpanEvents::default();
        span_events.events = events;
        let mut span_links = SpanLinks::default();
        span_links.links = links;
        SpanData {
            span_context: self.span_context,
            parent_span_id: self.parent_span_id,
            parent_span_is_remote: self.parent_is_remote,
            span_kind: site.span_kind.clone(),
            name: Cow::Borrowed(site.name),
            start_time,
            end_time,
            attributes,
            dropped_attributes_count: 0,
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
    attributes: &mut Vec<KeyValue>,
) {
    let span_context = workflow.span_context();
    attributes.extend([
        KeyValue::new(attr::TRACE_ID, trace_id_hex(span_context.trace_id())),
        KeyValue::new(attr::ROOT_SPAN_ID, span_id_hex(workflow.root_span_id())),
        KeyValue::new(attr::CURRENT_SPAN_ID, span_id_hex(span_context.span_id())),
        KeyValue::new(attr::WORKFLOW_NAME, workflow.name_value()),
        KeyValue::new(attr::WORKFLOW_ID, workflow.id_value()),
        KeyValue::new(attr::WORKFLOW_DEPTH, i64::from(workflow.depth())),
        KeyValue::new(attr::WORKFLOW_START_TIME, rfc3339(start_time)),
        KeyValue::new(attr::HIERARCHY_PATH, workflow.hierarchy_path_value()),
        KeyValue::new(attr::NESTING_LEVEL, i64::from(workflow.depth())),
        KeyValue::new(attr::CORRELATION_ID, workflow.correlation_id_value()),
    ]);
    match workflow.parent() {
        None => attributes.push(KeyValue::new(attr::RELATIONSHIP_TYPE, attr::ROOT_WORKFLOW)),
        Some(parent) => {
            attributes.push(KeyValue::new(attr::RELATIONSHIP_TYPE, attr::CHILD_WORKFLOW));
            attributes.push(KeyValue::new(
                attr::PARENT_WORKFLOW_NAME,
                parent.name_value(),
            ));
            attributes.push(KeyValue::new(attr::PARENT_WORKFLOW_ID, parent.id_value()));
        }
    }
    if let Some(causation) = workflow.causation_id_value() {
        attributes.push(KeyValue::new(attr::CAUSATION_ID, causation));
    }
}
