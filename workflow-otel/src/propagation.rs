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
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId};
use opentelemetry::{Context, StringValue};
use uuid::Uuid;

pub use crate::context::{MAX_PATH_SEGMENTS, MAX_WORKFLOW_DEPTH, PATH_ELISION, PATH_HEAD};
use crate::context::{ParentLineage, WorkflowContext, bound_path};
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

    /// Reads the header form within the limits below; anything malformed
    /// gives `None` (the trace still continues, without lineage).
    ///
    /// | field | rule |
    /// |---|---|
    /// | the header | at most [`MAX_LINEAGE_HEADER_BYTES`], else ignored |
    /// | `name`, each path name | 1 to 128 of `A-Z a-z 0-9 _ - . :` (the rule for workflow names); longer ones are cut to 128 |
    /// | `path` | names joined by `/`; more than [`MAX_PATH_SEGMENTS`] are shortened to the first [`PATH_HEAD`], `…`, and the last ones |
    /// | `depth` | at most [`MAX_WORKFLOW_DEPTH`] |
    /// | `id` | a UUID |
    /// | `correlation` | 1 to [`MAX_CORRELATION_ID_BYTES`] visible ASCII characters |
    /// | `root`, `span` | 16 lowercase hex digits, not all zero |
    pub fn from_header(header: &str) -> Option<WorkflowLineage> {
        if header.len() > MAX_LINEAGE_HEADER_BYTES {
            return None;
        }
        let mut fields: HashMap<&str, String> = HashMap::new();
        for part in header.split(';') {
            let (key, value) = part.trim().split_once('=')?;
            if fields.insert(key, w3c::percent_decode(value)?).is_some() {
                return None;
            }
        }
        let path = fields.remove("path")?;
        let mut segments = Vec::new();
        for segment in path.split('/') {
            segments.push(if segment == PATH_ELISION {
                segment
            } else {
                bounded_name(segment)?
            });
        }
        let lineage = WorkflowLineage {
            name: bounded_name(&fields.remove("name")?)?.to_owned(),
            id: fields.remove("id")?,
            depth: fields.remove("depth")?.parse().ok()?,
            hierarchy_path: bound_path(&segments.join("/")),
            correlation_id: fields.remove("correlation")?,
            root_span_id: fields.remove("root")?,
            span_id: fields.remove("span")?,
        };
        lineage.is_valid().then_some(lineage)
    }

    fn is_valid(&self) -> bool {
        Uuid::parse_str(&self.id).is_ok()
            && (1..=MAX_CORRELATION_ID_BYTES).contains(&self.correlation_id.len())
            && self.correlation_id.bytes().all(|b| b.is_ascii_graphic())
            && [&self.root_span_id, &self.span_id].iter().all(|id| {
                id.len() == 16
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    && SpanId::from_hex(id).is_ok_and(|id| id != SpanId::INVALID)
            })
            && self.depth <= MAX_WORKFLOW_DEPTH
    }
}

/// The longest `workflow-lineage` header read; a longer one is ignored.
/// Every header this crate writes fits: 16 names of 128 bytes and the ids.
pub const MAX_LINEAGE_HEADER_BYTES: usize = 4096;

/// The longest correlation id a lineage may carry.
pub const MAX_CORRELATION_ID_BYTES: usize = 128;

/// The longest workflow name, as the attributes check at compile time.
const MAX_NAME_BYTES: usize = 128;

/// A name made of the characters workflow names allow, cut to 128 bytes.
fn bounded_name(name: &str) -> Option<&str> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':');
    (!name.is_empty() && name.bytes().all(allowed)).then(|| &name[..name.len().min(MAX_NAME_BYTES)])
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
///
/// A `tracestate` and `baggage` received by [`extract`] go out as they came
/// (members in their order, all of them), unless the code in between changed
/// them through the OpenTelemetry API; then the API's view is written.
pub fn inject(cx: &Context, carrier: &mut impl Carrier) {
    let span = cx.span();
    let span_context = span.span_context();
    if span_context.is_valid() {
        let parent = TraceParent {
            trace_id: span_context.trace_id(),
            span_id: span_context.span_id(),
            // Unknown bits are not ours to send on (Trace Context: vendors
            // MUST set them to zero).
            flags: TraceFlags::new(span_context.trace_flags().to_u8() & KNOWN_FLAGS),
        };
        carrier.set(TRACEPARENT, parent.to_header());
        let otel_state = span_context.trace_state().header();
        let state = match cx.get::<ReceivedTraceState>() {
            Some(received)
                if received.trace_id == span_context.trace_id()
                    && received.representable == otel_state =>
            {
                received.header.clone()
            }
            _ => otel_state,
        };
        if !state.is_empty() {
            carrier.set(TRACESTATE, state);
        }
    }
    let baggage = cx.baggage();
    let current = baggage_view(cx);
    let header = match cx.get::<ReceivedBaggage>() {
        Some(received) if received.view == current => w3c::format_baggage(&received.entries),
        _ => {
            let entries: Vec<BaggageEntry> = baggage
                .iter()
                .map(|(key, (value, metadata))| BaggageEntry {
                    key: key.to_string(),
                    value: value.to_string(),
                    properties: metadata.as_str().to_owned(),
                })
                .collect();
            w3c::format_baggage(&in_received_order(entries, cx.get::<ReceivedBaggage>()))
        }
    };
    if !header.is_empty() {
        carrier.set(BAGGAGE, header);
    }
    if let Some(workflow) = WorkflowContext::from_context(cx) {
        carrier.set(WORKFLOW_LINEAGE, WorkflowLineage::of(&workflow).to_header());
    }
}

/// The trace-flag bits this version of Trace Context defines: `sampled` and
/// (Level 2) `random`.
const KNOWN_FLAGS: u8 = 0x03;

/// The `tracestate` received with the trace, whole: the SDK's `TraceState`
/// may hold fewer members (see [`w3c::TraceStateList::to_trace_state`]).
#[derive(Debug)]
struct ReceivedTraceState {
    trace_id: TraceId,
    header: String,
    /// What the SDK's `TraceState` made of it: while spans still carry
    /// this, nobody has changed the state since.
    representable: String,
}

/// The baggage received, in its order and beyond the SDK's 64-entry cap.
#[derive(Debug)]
struct ReceivedBaggage {
    entries: Vec<BaggageEntry>,
    /// What the SDK's `Baggage` held after extraction, sorted: while the
    /// context's baggage is still this, nobody has changed it.
    view: Vec<(String, String, String)>,
}

fn baggage_view(cx: &Context) -> Vec<(String, String, String)> {
    let mut view: Vec<(String, String, String)> = cx
        .baggage()
        .iter()
        .map(|(key, (value, metadata))| {
            (
                key.to_string(),
                value.to_string(),
                metadata.as_str().to_owned(),
            )
        })
        .collect();
    view.sort();
    view
}

/// Baggage changed through the API: the keys received first, in their
/// order, then new keys sorted, so the header is the same on every run.
fn in_received_order(
    mut entries: Vec<BaggageEntry>,
    received: Option<&ReceivedBaggage>,
) -> Vec<BaggageEntry> {
    let position = |key: &str| {
        received
            .and_then(|received| received.entries.iter().position(|entry| entry.key == key))
            .unwrap_or(usize::MAX)
    };
    entries.sort_by(|a, b| {
        position(&a.key)
            .cmp(&position(&b.key))
            .then_with(|| a.key.cmp(&b.key))
    });
    entries
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
        let received = carrier
            .get(TRACESTATE)
            .and_then(|header| w3c::parse_tracestate(&header).ok())
            .unwrap_or_default();
        let state = received.to_trace_state();
        if !received.is_empty() {
            cx = cx.with_value(ReceivedTraceState {
                trace_id: parent.trace_id,
                header: received.header(),
                representable: state.header(),
            });
        }
        cx = cx.with_remote_span_context(SpanContext::new(
            parent.trace_id,
            parent.span_id,
            parent.flags,
            true,
            state,
        ));
    }
    if let Some(header) = carrier.get(BAGGAGE) {
        let (entries, _skipped) = w3c::parse_baggage(&header);
        if !entries.is_empty() {
            cx = cx.with_baggage(entries.iter().map(|entry| {
                KeyValueMetadata::new(
                    entry.key.clone(),
                    entry.value.clone(),
                    entry.properties.clone(),
                )
            }));
            let view = baggage_view(&cx);
            cx = cx.with_value(ReceivedBaggage { entries, view });
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
