//! Carrying a trace, its baggage and the workflow lineage across process
//! boundaries: HTTP headers, string maps, or a field of a message.
//!
//! Sending side: [`inject_current`] writes the current context into a
//! [`Carrier`]; a message type with a [`TraceCarrier`] field gets
//! `inject_current_context()` from `#[derive(Carried)]`. Receiving side:
//! `#[child_workflow(parent = msg)]` (or `#[workflow(parent = headers)]`)
//! continues the trace with the remote parent, and the workflow's depth,
//! hierarchy path, parent name and id continue from the lineage.
//!
//! **Where the lineage travels.** Not in baggage: baggage is forwarded by every
//! OpenTelemetry SDK to every downstream call, including third parties, and
//! workflow names and ids are internal. Not in `tracestate` either: its members
//! are capped at 256 characters and shared with vendors. It has its own
//! `workflow-lineage` header (HTTP and string maps), which other SDKs ignore and
//! do not forward, and its own field in [`TraceCarrier`] (messages).
//!
//! ```
//! use std::collections::HashMap;
//! use workflow_otel::propagation::{TraceCarrier, inject_current};
//! use workflow_otel::{child_workflow, workflow};
//!
//! #[workflow]
//! fn coordinator() -> (u32, String) {
//!     let mut job = TraceCarrier::default();
//!     inject_current(&mut job); // what goes into the message sent to a worker
//!     worker(&job)
//! }
//!
//! // In the worker process, with the message received:
//! #[child_workflow(parent = job)]
//! fn worker(job: &TraceCarrier) -> (u32, String) {
//!     let lineage = workflow_otel::current_workflow().unwrap();
//!     (lineage.depth(), lineage.hierarchy_path().to_owned())
//! }
//! # let pipeline = workflow_otel::Pipeline::new(workflow_otel::ConsoleExporter::with_writer(std::io::sink()));
//! # let (depth, path) = workflow_otel::Instrumentation::new(&pipeline).run(coordinator);
//! assert_eq!(depth, 1);
//! # assert_eq!(path, "coordinator/worker");
//! ```

use std::collections::HashMap;

use opentelemetry::baggage::{BaggageExt as _, KeyValueMetadata};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags};
use opentelemetry::{Context, StringValue};
use uuid::Uuid;

use crate::context::{ParentLineage, WorkflowContext};
use crate::instrumentation::Instrumentation;
use crate::w3c::{self, BaggageEntry, TraceParent};

/// The W3C Trace Context header with the trace and parent span ids.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C Trace Context header with vendor data.
pub const TRACESTATE: &str = "tracestate";
/// The W3C Baggage header.
pub const BAGGAGE: &str = "baggage";
/// The header that carries the workflow lineage.
pub const WORKFLOW_LINEAGE: &str = "workflow-lineage";

/// Something context can be written into and read from: HTTP headers, a
/// string map, a message field.
pub trait Carrier {
    /// The value for `key` (header names compare case-insensitively); values
    /// of a repeated header joined with `,`, as HTTP combines them.
    fn get(&self, key: &str) -> Option<String>;
    /// Sets `key` to `value`, replacing what was there.
    fn set(&mut self, key: &str, value: String);
}

impl Carrier for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned().or_else(|| {
            self.iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(key))
                .map(|(_, value)| value.clone())
        })
    }

    fn set(&mut self, key: &str, value: String) {
        self.insert(key.to_owned(), value);
    }
}

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
impl Carrier for http::HeaderMap {
    fn get(&self, key: &str) -> Option<String> {
        let values: Vec<&str> = self
            .get_all(key)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }

    fn set(&mut self, key: &str, value: String) {
        // Our values are always valid header values; a foreign one that is not
        // is left out rather than sent broken.
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.insert(name, value);
        }
    }
}

/// The workflow a remote child continues.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct WorkflowLineage {
    /// The parent workflow's name.
    pub name: String,
    /// The parent workflow's id.
    pub id: String,
    /// The parent workflow's depth.
    pub depth: u32,
    /// The parent workflow's hierarchy path.
    pub hierarchy_path: String,
    /// The correlation id of the whole workflow tree.
    pub correlation_id: String,
    /// The span id (hex) of the root workflow of the tree.
    pub root_span_id: String,
    /// The span id (hex) of the parent workflow's span, the target of the
    /// remote child's span link.
    pub span_id: String,
}

impl WorkflowLineage {
    fn of(workflow: &WorkflowContext) -> WorkflowLineage {
        WorkflowLineage {
            name: workflow.name().to_owned(),
            id: workflow.id().to_string(),
            depth: workflow.depth(),
            hierarchy_path: workflow.hierarchy_path().to_owned(),
            correlation_id: workflow.correlation_id().to_owned(),
            root_span_id: workflow.root_span_id().to_string(),
            span_id: workflow.span_context().span_id().to_string(),
        }
    }

    /// The header form: `name=..;id=..;depth=..;path=..;correlation=..;root=..;span=..`,
    /// values percent-encoded.
    pub fn to_header(&self) -> String {
        let encode = w3c::percent_encode;
        format!(
            "name={};id={};depth={};path={};correlation={};root={};span={}",
            encode(&self.name),
            encode(&self.id),
            self.depth,
            encode(&self.hierarchy_path),
            encode(&self.correlation_id),
            encode(&self.root_span_id),
            encode(&self.span_id)
        )
    }

    /// Reads the header form; anything malformed gives `None` (the trace still
    /// continues, without lineage).
    pub fn from_header(header: &str) -> Option<WorkflowLineage> {
        let mut fields: HashMap<&str, String> = HashMap::new();
        for part in header.split(';') {
            let (key, value) = part.trim().split_once('=')?;
            if fields.insert(key, w3c::percent_decode(value)?).is_some() {
                return None;
            }
        }
        let lineage = WorkflowLineage {
            name: fields.remove("name")?,
            id: fields.remove("id")?,
            depth: fields.remove("depth")?.parse().ok()?,
            hierarchy_path: fields.remove("path")?,
            correlation_id: fields.remove("correlation")?,
            root_span_id: fields.remove("root")?,
            span_id: fields.remove("span")?,
        };
        lineage.is_valid().then_some(lineage)
    }

    fn is_valid(&self) -> bool {
        !self.name.is_empty()
            && Uuid::parse_str(&self.id).is_ok()
            && [&self.root_span_id, &self.span_id].iter().all(|id| {
                id.len() == 16 && SpanId::from_hex(id).is_ok_and(|id| id != SpanId::INVALID)
            })
            && self.depth < u32::MAX
    }
}

/// The context a message carries: the W3C fields as their header values, and
/// the workflow lineage. Serialisable (feature `serde`) as
/// `{"traceparent": .., "tracestate": .., "baggage": .., "workflow": {..}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TraceCarrier {
    /// `traceparent`, if a span was current.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub traceparent: Option<String>,
    /// `tracestate`, if not empty.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub tracestate: Option<String>,
    /// `baggage`, if not empty.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub baggage: Option<String>,
    /// The workflow lineage, if a workflow was current.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub workflow: Option<WorkflowLineage>,
}

impl TraceCarrier {
    /// The current context.
    pub fn current() -> TraceCarrier {
        let mut carrier = TraceCarrier::default();
        inject_current(&mut carrier);
        carrier
    }
}

impl Carrier for TraceCarrier {
    fn get(&self, key: &str) -> Option<String> {
        match key {
            TRACEPARENT => self.traceparent.clone(),
            TRACESTATE => self.tracestate.clone(),
            BAGGAGE => self.baggage.clone(),
            WORKFLOW_LINEAGE => self.workflow.as_ref().map(WorkflowLineage::to_header),
            _ => None,
        }
    }

    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = Some(value),
            TRACESTATE => self.tracestate = Some(value),
            BAGGAGE => self.baggage = Some(value),
            WORKFLOW_LINEAGE => self.workflow = WorkflowLineage::from_header(&value),
            _ => {}
        }
    }
}

/// A message type that carries a [`TraceCarrier`]; implemented by
/// `#[derive(Carried)]` for the field marked `#[trace_context]`.
pub trait Carried {
    /// The message's carrier.
    fn trace_carrier(&self) -> &TraceCarrier;
    /// The message's carrier, to write into.
    fn trace_carrier_mut(&mut self) -> &mut TraceCarrier;

    /// Writes the current context into the message, before it is sent.
    fn inject_current_context(&mut self) {
        inject_current(self.trace_carrier_mut());
    }
}

/// Writes `cx` into `carrier`: `traceparent` and `tracestate` if `cx` has a
/// valid span, `baggage` if it has any, the lineage if a workflow is active.
pub fn inject(cx: &Context, carrier: &mut impl Carrier) {
    let span = cx.span();
    let span_context = span.span_context();
    if span_context.is_valid() {
        let parent = TraceParent {
            trace_id: span_context.trace_id(),
            span_id: span_context.span_id(),
            flags: span_context.trace_flags(),
        };
        carrier.set(TRACEPARENT, parent.to_header());
        let state = span_context.trace_state().header();
        if !state.is_empty() {
            carrier.set(TRACESTATE, state);
        }
    }
    let baggage = cx.baggage();
    if !baggage.is_empty() {
        let entries: Vec<BaggageEntry> = baggage
            .iter()
            .map(|(key, (value, metadata))| BaggageEntry {
                key: key.to_string(),
                value: value.to_string(),
                properties: metadata.as_str().to_owned(),
            })
            .collect();
        let header = w3c::format_baggage(&entries);
        if !header.is_empty() {
            carrier.set(BAGGAGE, header);
        }
    }
    if let Some(workflow) = WorkflowContext::from_context(cx) {
        carrier.set(WORKFLOW_LINEAGE, WorkflowLineage::of(&workflow).to_header());
    }
}

/// Writes the current context into `carrier`.
pub fn inject_current(carrier: &mut impl Carrier) {
    Context::map_current(|cx| inject(cx, carrier));
}

/// A workflow lineage received from another process: what a child workflow
/// started under the extracted context inherits.
#[derive(Clone, Debug)]
pub(crate) struct RemoteWorkflow(pub(crate) ParentLineage);

/// Reads `carrier` into a new context: the remote span as parent (if the
/// `traceparent` is valid; otherwise a new trace starts, as the spec says),
/// its baggage, and the workflow lineage. The instrumentation in effect where
/// this is called carries over, so test scopes keep working.
pub fn extract(carrier: &impl Carrier) -> Context {
    let mut cx = Context::new();
    if let Some(instrumentation) =
        Context::map_current(|current| current.get::<Instrumentation>().cloned())
    {
        cx = cx.with_value(instrumentation);
    }
    let parent = carrier
        .get(TRACEPARENT)
        .and_then(|header| TraceParent::parse(&header).ok());
    if let Some(parent) = parent {
        // An invalid tracestate is dropped; the traceparent still counts.
        let state = carrier
            .get(TRACESTATE)
            .and_then(|header| w3c::parse_tracestate(&header).ok())
            .unwrap_or_default();
        let flags = TraceFlags::new(parent.flags.to_u8());
        cx = cx.with_remote_span_context(SpanContext::new(
            parent.trace_id,
            parent.span_id,
            flags,
            true,
            state,
        ));
    }
    if let Some(header) = carrier.get(BAGGAGE) {
        let (entries, _skipped) = w3c::parse_baggage(&header);
        if !entries.is_empty() {
            cx = cx.with_baggage(
                entries
                    .into_iter()
                    .map(|entry| KeyValueMetadata::new(entry.key, entry.value, entry.properties)),
            );
        }
    }
    if let Some(lineage) = carrier
        .get(WORKFLOW_LINEAGE)
        .and_then(|header| WorkflowLineage::from_header(&header))
        && let (Ok(id), Ok(root_span_id), Ok(span_id)) = (
            Uuid::parse_str(&lineage.id),
            SpanId::from_hex(&lineage.root_span_id),
            SpanId::from_hex(&lineage.span_id),
        )
    {
        // The parent workflow's span, in the trace the traceparent names (none
        // if that was invalid: then the lineage continues, without a link).
        let remote = cx.span().span_context().clone();
        let span_context = if remote.is_valid() {
            let state = remote.trace_state().clone();
            SpanContext::new(
                remote.trace_id(),
                span_id,
                remote.trace_flags(),
                true,
                state,
            )
        } else {
            SpanContext::empty_context()
        };
        cx = cx.with_value(RemoteWorkflow(ParentLineage {
            name: StringValue::from(lineage.name),
            id,
            id_text: StringValue::from(lineage.id),
            depth: lineage.depth,
            hierarchy_path: StringValue::from(lineage.hierarchy_path),
            correlation_id: StringValue::from(lineage.correlation_id),
            root_span_id,
            span_context,
        }));
    }
    cx
}

/// What `parent = ..` accepts: the context a workflow continues from.
pub trait ParentSource {
    /// The parent context.
    fn parent_context(&self) -> Context;
}

impl ParentSource for Context {
    fn parent_context(&self) -> Context {
        self.clone()
    }
}

impl ParentSource for TraceCarrier {
    fn parent_context(&self) -> Context {
        extract(self)
    }
}

impl ParentSource for HashMap<String, String> {
    fn parent_context(&self) -> Context {
        extract(self)
    }
}

#[cfg(feature = "http")]
impl ParentSource for http::HeaderMap {
    fn parent_context(&self) -> Context {
        extract(self)
    }
}

impl<T: Carried> ParentSource for T {
    fn parent_context(&self) -> Context {
        extract(self.trace_carrier())
    }
}
