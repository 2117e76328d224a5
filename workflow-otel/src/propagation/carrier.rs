//! The context a message carries, and the trait `#[derive(Carried)]`
//! implements for message types with a [`TraceCarrier`] field.

use super::lineage::WorkflowLineage;
use super::{BAGGAGE, Carrier, TRACEPARENT, TRACESTATE, WORKFLOW_LINEAGE, inject_current};

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
/// `#[derive(Carried)]` for the field marked `#[trace_context]`, which also
/// implements [`ParentSource`](super::ParentSource) so that the message can
/// be named in `parent = msg`. (Implemented by hand, implement that too:
/// `extract(self.trace_carrier())`.)
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
