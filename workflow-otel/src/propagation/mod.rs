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

pub mod w3c;

use std::collections::HashMap;

use opentelemetry::baggage::{BaggageExt as _, KeyValueMetadata};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId};
use opentelemetry::{Context, StringValue};
use uuid::Uuid;

pub use crate::record::context::{MAX_PATH_SEGMENTS, MAX_WORKFLOW_DEPTH, PATH_ELISION, PATH_HEAD};
use crate::record::context::{ParentLineage, RemoteWorkflow, WorkflowContext};
use crate::record::instrumentation::Instrumentation;
use w3c::{BaggageEntry, TraceParent};

mod carrier;
mod lineage;

pub use carrier::{Carried, TraceCarrier};
pub use lineage::{MAX_CORRELATION_ID_BYTES, MAX_LINEAGE_HEADER_BYTES, WorkflowLineage};

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
            local: None,
        }));
    }
    cx
}

/// What `parent = ..` accepts: the context a workflow continues from. A
/// message type gets it from `#[derive(Carried)]`; references to any of
/// these work too.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a parent",
    label = "the context this workflow continues from",
    note = "pass a message with `#[derive(Carried)]`, headers (`http::HeaderMap`, \
            `HashMap<String, String>`), a `TraceCarrier` or an OpenTelemetry `Context`"
)]
pub trait ParentSource {
    /// The parent context.
    fn parent_context(&self) -> Context;
}

impl<T: ParentSource + ?Sized> ParentSource for &T {
    fn parent_context(&self) -> Context {
        (**self).parent_context()
    }
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

/// What the macros call for `parent = expr`: a function with a bound, so a
/// value that cannot be a parent gets [`ParentSource`]'s message at `expr`.
#[doc(hidden)]
pub fn parent_context<P: ParentSource + ?Sized>(parent: &P) -> Context {
    let received = parent.parent_context();
    // A remote parent whose trace is continued here already (a server
    // layer opened its span from the same headers): the workflow nests
    // under that span instead of beside it.
    let remote = received.span().span_context().clone();
    if !remote.is_remote() {
        return received;
    }
    let trace_id = remote.trace_id();
    let continued = Context::map_current(|current| {
        let span = current.span();
        let here = span.span_context();
        (here.is_valid() && here.trace_id() == trace_id).then(|| current.clone())
    });
    match continued {
        Some(current) if trace_id != TraceId::INVALID => current,
        _ => received,
    }
}
