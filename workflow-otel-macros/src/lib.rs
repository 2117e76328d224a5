//! Procedural macros behind `workflow-otel`.
//!
//! Depend on the `workflow-otel` crate, not on this one: it re-exports these
//! attributes together with the runtime that the generated code calls into.
//! The documentation of each attribute lives on its re-export there.

mod args;
mod derive;
mod expand;
mod item;
mod name;
mod retry;

use proc_macro::TokenStream;

/// What kind of span an attribute opens; the runtime's `Kind` has the same variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SpanKind {
    Workflow,
    ChildWorkflow,
    Step,
}

impl SpanKind {
    fn attribute_name(self) -> &'static str {
        match self {
            SpanKind::Workflow => "workflow",
            SpanKind::ChildWorkflow => "child_workflow",
            SpanKind::Step => "step",
        }
    }
}

/// Opens a workflow span around each call. See `workflow_otel::workflow`.
#[proc_macro_attribute]
pub fn workflow(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::instrument(SpanKind::Workflow, attr.into(), item.into()).into()
}

/// Opens a child-workflow span around each call. See `workflow_otel::child_workflow`.
#[proc_macro_attribute]
pub fn child_workflow(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::instrument(SpanKind::ChildWorkflow, attr.into(), item.into()).into()
}

/// Opens a step span around each call. See `workflow_otel::step`.
#[proc_macro_attribute]
pub fn step(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::instrument(SpanKind::Step, attr.into(), item.into()).into()
}

/// Implements `workflow_otel::propagation::Carried` for a message struct whose
/// field marked `#[trace_context]` is a `TraceCarrier`. See `workflow_otel::Carried`.
#[proc_macro_derive(Carried, attributes(trace_context))]
pub fn derive_carried(input: TokenStream) -> TokenStream {
    derive::carried(input.into()).into()
}
