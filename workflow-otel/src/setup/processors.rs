//! Span processors that stamp the workflow onto spans other libraries open
//! inside a workflow (through the OpenTelemetry API, or `tracing` with
//! tracing-opentelemetry), so every span of a workflow can be found by its
//! workflow name or id. Spans of our own attributes carry these already.
//!
//! [`setup()`](crate::setup) installs both on its SDK tracer provider; add
//! them to a provider of your own with `with_span_processor`.

use std::time::Duration;

use opentelemetry::trace::Span as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use crate::record::attributes as attr;
use crate::record::context::WorkflowContext;
use crate::record::time::{span_id_hex, trace_id_hex};

/// Stamps `observability.workflow_name`, `_id`, `_depth`, `observability.trace_id`
/// and `observability.root_span_id` onto every span started inside a workflow.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkflowIdentityProcessor;

impl SpanProcessor for WorkflowIdentityProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        let Some(workflow) = WorkflowContext::from_context(cx) else {
            return;
        };
        let trace_id = span.span_context().trace_id();
        span.set_attributes([
            KeyValue::new(attr::WORKFLOW_NAME, workflow.name_value().clone()),
            KeyValue::new(attr::WORKFLOW_ID, workflow.id_value().clone()),
            KeyValue::new(attr::WORKFLOW_DEPTH, i64::from(workflow.depth())),
            KeyValue::new(attr::TRACE_ID, trace_id_hex(trace_id)),
            KeyValue::new(attr::ROOT_SPAN_ID, span_id_hex(workflow.root_span_id())),
        ]);
    }

    fn on_end(&self, _span: SpanData) {}

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Stamps where in the workflow tree a span started: the enclosing workflow as
/// `relationship.parent_workflow_name`, its `relationship.hierarchy_path` and
/// `relationship.nesting_level`. It leaves `relationship.type` to workflow
/// spans, which is how a reader tells workflows from other spans.
#[derive(Debug, Default, Clone, Copy)]
pub struct RelationshipProcessor;

impl SpanProcessor for RelationshipProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        let Some(workflow) = WorkflowContext::from_context(cx) else {
            return;
        };
        span.set_attributes([
            KeyValue::new(attr::PARENT_WORKFLOW_NAME, workflow.name_value().clone()),
            KeyValue::new(
                attr::HIERARCHY_PATH,
                workflow.hierarchy_path_value().clone(),
            ),
            KeyValue::new(attr::NESTING_LEVEL, i64::from(workflow.depth())),
        ]);
    }

    fn on_end(&self, _span: SpanData) {}

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}
