//! The workflow a piece of code runs in, carried inside the OpenTelemetry [`Context`].
//!
//! Keeping the workflow in the same `Context` as the span means one mechanism
//! carries both across `.await`, threads and spawned tasks: whatever propagates
//! an OpenTelemetry context (ours, the SDK's `FutureExt`, tracing-opentelemetry)
//! propagates the workflow too.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt};
use opentelemetry::{Context, KeyValue, StringValue};
use uuid::Uuid;

use crate::record::attributes;
use crate::record::current::with_current_recording;
use crate::record::instrumentation::Instrumentation;
use crate::record::usage::{GenAiUsage, UsageTotals};

/// Identity and lineage of one workflow run.
///
/// Created by `#[workflow]` and `#[child_workflow]` when the function is called,
/// visible to everything that runs inside it through [`current_workflow`].
///
/// ```
/// use workflow_otel::{current_workflow, workflow, child_workflow};
///
/// #[workflow]
/// fn nightly_import() -> (u32, String) {
///     load_customers()
/// }
///
/// #[child_workflow]
/// fn load_customers() -> (u32, String) {
///     let workflow = current_workflow().expect("inside a workflow");
///     (workflow.depth(), workflow.hierarchy_path().to_owned())
/// }
///
/// assert_eq!(nightly_import(), (1, "nightly_import/load_customers".to_owned()));
/// ```
pub struct WorkflowContext {
    id: Uuid,
    // Texts are attribute values, cheap to clone for every span that carries
    // them (static or shared): the id's text is made once per workflow.
    id_text: StringValue,
    name: StringValue,
    /// The same name: the site's, which metrics recognise by address.
    static_name: &'static str,
    /// `genai = agent("openai")`: the provider the agent's model calls inherit.
    provider: Option<&'static str>,
    depth: u32,
    hierarchy_path: StringValue,
    parent: Option<ParentWorkflow>,
    correlation_id: StringValue,
    causation_id: Option<StringValue>,
    started: Instant,
    span_context: SpanContext,
    root_span_id: SpanId,
    attributes: Mutex<Vec<KeyValue>>,
    /// The workflow this one runs inside in this process: model calls and
    /// tool steps add to its totals too.
    local_parent: Option<Arc<WorkflowContext>>,
    usage: UsageTotals,
    /// Pinned when the root workflow starts, so every span below records into
    /// the same pipeline without looking it up.
    instrumentation: Option<Instrumentation>,
}

/// The workflow that started a child workflow.
#[derive(Clone, Debug)]
pub struct ParentWorkflow {
    name: StringValue,
    id: Uuid,
    id_text: StringValue,
    span_context: SpanContext,
}

impl ParentWorkflow {
    /// The parent workflow's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    pub(crate) fn name_value(&self) -> &StringValue {
        &self.name
    }

    pub(crate) fn id_value(&self) -> &StringValue {
        &self.id_text
    }

    /// The parent workflow's id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The parent workflow's span, the target of the child's span link.
    pub fn span_context(&self) -> &SpanContext {
        &self.span_context
    }
}

/// What a child workflow inherits from its parent, local or remote.
#[derive(Clone, Debug)]
pub(crate) struct ParentLineage {
    pub(crate) name: StringValue,
    pub(crate) id: Uuid,
    pub(crate) id_text: StringValue,
    pub(crate) depth: u32,
    pub(crate) hierarchy_path: StringValue,
    pub(crate) correlation_id: StringValue,
    pub(crate) root_span_id: SpanId,
    /// The parent workflow's span (remote for a lineage from a carrier).
    pub(crate) span_context: SpanContext,
    /// The parent itself, when it runs in this process.
    pub(crate) local: Option<Arc<WorkflowContext>>,
}

/// A workflow lineage received from another process: what a child workflow
/// started under the extracted context inherits.
#[derive(Clone, Debug)]
pub(crate) struct RemoteWorkflow(pub(crate) ParentLineage);

/// The `Context` entry; private so only the macros' runtime can set it.
#[derive(Clone)]
pub(crate) struct CurrentWorkflow(pub(crate) Arc<WorkflowContext>);

impl WorkflowContext {
    /// Lineage for a new workflow whose span is `span_context`, nested under
    /// `parent` if there is one.
    pub(crate) fn start(
        (name, provider): (&'static str, Option<&'static str>),
        parent: Option<ParentLineage>,
        span_context: SpanContext,
        started: Instant,
        instrumentation: Option<Instrumentation>,
    ) -> WorkflowContext {
        let id = new_uuid_v7();
        let id_text = StringValue::from(crate::record::time::uuid_text(id));
        let static_name = name;
        let name = StringValue::from(name);
        match parent {
            None => WorkflowContext {
                id,
                correlation_id: id_text.clone(),
                id_text,
                hierarchy_path: name.clone(),
                name,
                static_name,
                provider,
                depth: 0,
                parent: None,
                causation_id: None,
                started,
                root_span_id: span_context.span_id(),
                span_context,
                attributes: Mutex::new(Vec::new()),
                local_parent: None,
                usage: UsageTotals::default(),
                instrumentation,
            },
            Some(parent) => WorkflowContext {
                id,
                id_text,
                hierarchy_path: StringValue::from(extend_path(
                    parent.hierarchy_path.as_str(),
                    name.as_str(),
                )),
                name,
                static_name,
                provider,
                depth: parent.depth.saturating_add(1).min(MAX_WORKFLOW_DEPTH),
                correlation_id: parent.correlation_id,
                causation_id: Some(parent.id_text.clone()),
                started,
                root_span_id: parent.root_span_id,
                span_context,
                parent: Some(ParentWorkflow {
                    name: parent.name,
                    id: parent.id,
                    id_text: parent.id_text,
                    span_context: parent.span_context,
                }),
                attributes: Mutex::new(Vec::new()),
                local_parent: parent.local,
                usage: UsageTotals::default(),
                instrumentation,
            },
        }
    }

    /// What a child of this workflow inherits.
    pub(crate) fn as_parent(&self) -> ParentLineage {
        ParentLineage {
            name: self.name.clone(),
            id: self.id,
            id_text: self.id_text.clone(),
            depth: self.depth,
            hierarchy_path: self.hierarchy_path.clone(),
            correlation_id: self.correlation_id.clone(),
            root_span_id: self.root_span_id,
            span_context: self.span_context.clone(),
            local: None,
        }
    }

    /// What the model calls and tool steps beneath this workflow added up to
    /// so far: its own and its in-process child workflows'. A child workflow
    /// in another process keeps its own totals (on its own span).
    pub fn gen_ai_usage(&self) -> GenAiUsage {
        self.usage.snapshot()
    }

    /// This workflow and every workflow it runs inside in this process.
    pub(crate) fn with_ancestors(&self, mut apply: impl FnMut(&UsageTotals)) {
        apply(&self.usage);
        let mut next = self.local_parent.as_deref();
        while let Some(parent) = next {
            apply(&parent.usage);
            next = parent.local_parent.as_deref();
        }
    }

    /// The workflow active in `cx`, if any.
    pub fn from_context(cx: &Context) -> Option<Arc<WorkflowContext>> {
        cx.get::<CurrentWorkflow>().map(|current| current.0.clone())
    }

    /// This run's id, a UUID v7 (time-ordered).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The workflow's span name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// 0 for a root workflow, parent's depth + 1 for a child.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// Workflow names from the root to this one, joined by `/`.
    pub fn hierarchy_path(&self) -> &str {
        self.hierarchy_path.as_str()
    }

    /// The workflow this one runs inside, if any.
    pub fn parent(&self) -> Option<&ParentWorkflow> {
        self.parent.as_ref()
    }

    /// Shared by a whole workflow tree: the root workflow's id.
    pub fn correlation_id(&self) -> &str {
        self.correlation_id.as_str()
    }

    /// The id of the workflow that started this one (its parent's id).
    pub fn causation_id(&self) -> Option<&str> {
        self.causation_id.as_ref().map(StringValue::as_str)
    }

    /// Wall-clock start time.
    pub fn started_at(&self) -> SystemTime {
        crate::record::ids::system_time(self.started)
    }

    /// Monotonic start time, for elapsed-time measurements.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The workflow's own span.
    pub fn span_context(&self) -> &SpanContext {
        &self.span_context
    }

    /// The span id of the root workflow of this tree.
    pub fn root_span_id(&self) -> SpanId {
        self.root_span_id
    }

    /// Attributes added with [`set_workflow_attribute`] so far.
    pub fn attributes(&self) -> Vec<KeyValue> {
        self.attributes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The name, as the workflow's site holds it.
    pub(crate) fn static_name(&self) -> &'static str {
        self.static_name
    }

    /// The GenAI provider of this workflow or the nearest one around it in
    /// this process that names one.
    pub(crate) fn gen_ai_provider(&self) -> Option<&'static str> {
        let mut workflow = Some(self);
        while let Some(current) = workflow {
            if current.provider.is_some() {
                return current.provider;
            }
            workflow = current.local_parent.as_deref();
        }
        None
    }

    pub(crate) fn instrumentation(&self) -> Option<&Instrumentation> {
        self.instrumentation.as_ref()
    }

    /// The name as an attribute value, without copying a static name.
    pub(crate) fn name_value(&self) -> &StringValue {
        &self.name
    }

    /// The id's hyphenated text, made once per workflow.
    #[cfg(feature = "logs")]
    pub(crate) fn id_text(&self) -> &str {
        self.id_text.as_str()
    }

    /// The id as an attribute value, sharing the text made at the start.
    pub(crate) fn id_value(&self) -> &StringValue {
        &self.id_text
    }

    pub(crate) fn hierarchy_path_value(&self) -> &StringValue {
        &self.hierarchy_path
    }

    pub(crate) fn correlation_id_value(&self) -> &StringValue {
        &self.correlation_id
    }

    pub(crate) fn causation_id_value(&self) -> Option<&StringValue> {
        self.causation_id.as_ref()
    }

    pub(crate) fn take_attributes(&self) -> Vec<KeyValue> {
        std::mem::take(
            &mut *self
                .attributes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

impl Drop for WorkflowContext {
    // A long chain of nested workflows would drop recursively, one frame per
    // level; unlink it iteratively instead.
    fn drop(&mut self) {
        let mut next = self.local_parent.take();
        while let Some(parent) = next {
            next = match Arc::try_unwrap(parent) {
                Ok(mut parent) => parent.local_parent.take(),
                Err(_) => None,
            };
        }
    }
}

impl fmt::Debug for WorkflowContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowContext")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("depth", &self.depth)
            .field("hierarchy_path", &self.hierarchy_path)
            .field("parent", &self.parent)
            .field("correlation_id", &self.correlation_id)
            .field("causation_id", &self.causation_id)
            .finish_non_exhaustive()
    }
}

/// The deepest nesting recorded: a child of a workflow at this depth gets the
/// same depth (it saturates), and a lineage received with a larger depth is
/// ignored.
pub const MAX_WORKFLOW_DEPTH: u32 = 1_000_000;

/// The most names a hierarchy path keeps. A longer path keeps its first
/// [`PATH_HEAD`] names and its last ones, with [`PATH_ELISION`] between, so a
/// job that re-queues itself forever still carries a bounded path.
pub const MAX_PATH_SEGMENTS: usize = 16;

/// The names a shortened hierarchy path keeps from its start.
pub const PATH_HEAD: usize = 4;

/// The segment that stands for the names a shortened path leaves out.
pub const PATH_ELISION: &str = "…";

/// `parent/name`, shortened to [`MAX_PATH_SEGMENTS`] names.
pub(crate) fn extend_path(parent: &str, name: &str) -> Arc<str> {
    let length = parent.len() + 1 + name.len();
    let mut short = [0_u8; 256];
    // The common case, a path within bounds and short: made on the stack,
    // so the shared text is the one allocation.
    if parent.split('/').count() < MAX_PATH_SEGMENTS && length <= short.len() {
        short[..parent.len()].copy_from_slice(parent.as_bytes());
        short[parent.len()] = b'/';
        short[parent.len() + 1..length].copy_from_slice(name.as_bytes());
        if let Ok(path) = std::str::from_utf8(&short[..length]) {
            return Arc::from(path);
        }
    }
    Arc::from(bound_path(&format!("{parent}/{name}")))
}

/// `path` with at most [`MAX_PATH_SEGMENTS`] names: the first [`PATH_HEAD`],
/// then [`PATH_ELISION`], then the last ones.
pub(crate) fn bound_path(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    if segments.len() <= MAX_PATH_SEGMENTS {
        return path.to_owned();
    }
    let tail = MAX_PATH_SEGMENTS - PATH_HEAD - 1;
    let mut kept: Vec<&str> = segments[..PATH_HEAD].to_vec();
    kept.push(PATH_ELISION);
    kept.extend_from_slice(&segments[segments.len() - tail..]);
    kept.join("/")
}

/// A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random
/// bits from the thread's id generator; time-ordered like the seeds' ids.
fn new_uuid_v7() -> Uuid {
    let millis = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    let random = (u128::from(crate::record::ids::random_u64()) << 64)
        | u128::from(crate::record::ids::random_u64());
    let mut bits = (u128::from(millis & 0xffff_ffff_ffff) << 80) | (random & ((1 << 80) - 1));
    bits = (bits & !(0xf << 76)) | (0x7 << 76); // version 7
    bits = (bits & !(0x3 << 62)) | (0x2 << 62); // variant 0b10
    Uuid::from_u128(bits)
}

/// The workflow the calling code runs in, if any.
pub fn current_workflow() -> Option<Arc<WorkflowContext>> {
    Context::map_current(WorkflowContext::from_context)
}

/// Records a checkpoint: an event named `name` on the current span, with
/// `checkpoint.elapsed`, the seconds since the current workflow started.
///
/// Outside any workflow the event carries no elapsed time; with no span active
/// it is dropped, as OpenTelemetry drops events on a non-recording span.
///
/// ```
/// # use workflow_otel::{checkpoint, workflow};
/// #[workflow]
/// fn import() {
///     // ... read the file ...
///     checkpoint("file_read");
///     // ... write the rows ...
/// }
/// # import();
/// ```
pub fn checkpoint(name: impl Into<Cow<'static, str>>) {
    let name = name.into();
    let attributes = match current_workflow() {
        Some(workflow) => vec![KeyValue::new(
            attributes::CHECKPOINT_ELAPSED,
            workflow.started.elapsed().as_secs_f64(),
        )],
        None => Vec::new(),
    };
    let event = (name, attributes);
    let unhandled = with_current_recording(event, |recording, (name, attributes)| {
        recording.add_event(name, attributes);
    });
    if let Some((name, attributes)) = unhandled {
        Context::map_current(|cx| cx.span().add_event(name, attributes));
    }
}

/// Adds an event with attributes to the current span (the innermost step or
/// workflow), within the span limits (see [`SpanLimits`](crate::SpanLimits)).
///
/// ```
/// # use workflow_otel::{add_event, step};
/// #[step]
/// fn retry_payment(attempt: u32) {
///     add_event("backoff", vec![opentelemetry::KeyValue::new("attempt", i64::from(attempt))]);
/// }
/// # retry_payment(2);
/// ```
pub fn add_event(name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>) {
    let event = (name.into(), attributes);
    let unhandled = with_current_recording(event, |recording, (name, attributes)| {
        recording.add_event(name, attributes);
    });
    if let Some((name, attributes)) = unhandled {
        Context::map_current(|cx| cx.span().add_event(name, attributes));
    }
}

/// Sets an attribute on the current span (the innermost step or workflow).
///
/// ```
/// # use workflow_otel::{set_attribute, step};
/// #[step]
/// fn charge(cents: u64) {
///     set_attribute(opentelemetry::KeyValue::new("payment.provider", "acme"));
/// }
/// # charge(100);
/// ```
pub fn set_attribute(attribute: KeyValue) {
    let unhandled = with_current_recording(attribute, |recording, attribute| {
        recording.set_attribute(attribute);
    });
    if let Some(attribute) = unhandled {
        Context::map_current(|cx| cx.span().set_attribute(attribute));
    }
}

/// Adds an attribute to the current workflow's span, even from inside a step;
/// it is written when the workflow span ends. Does nothing outside a workflow.
pub fn set_workflow_attribute(attribute: KeyValue) {
    if let Some(workflow) = current_workflow() {
        workflow
            .attributes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(attribute);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quick way to extend a path makes what bounding the joined path
    /// makes, for short and long names, below, at and past the bound.
    #[test]
    fn extended_paths_are_the_bounded_join() {
        let long = "n".repeat(300);
        for name in ["step", long.as_str()] {
            let mut parent = String::from("root");
            for _ in 0..MAX_PATH_SEGMENTS + 3 {
                let extended = extend_path(&parent, name);
                assert_eq!(&*extended, bound_path(&format!("{parent}/{name}")));
                assert!(extended.split('/').count() <= MAX_PATH_SEGMENTS);
                parent = extended.to_string();
            }
        }
    }
}
