//! Every attribute key workflow-otel writes, defined once.
//!
//! The `observability.*`, `relationship.*` and `workflow.*` names are kept from
//! the seed projects so existing dashboards keep working; errors and code location
//! follow the OpenTelemetry semantic conventions.

/// Hex trace id of the span (on workflow spans), for backends that cannot query the id itself.
pub const TRACE_ID: &str = "observability.trace_id";
/// Span id of the root workflow span of this workflow tree.
pub const ROOT_SPAN_ID: &str = "observability.root_span_id";
/// Span id of the span itself.
pub const CURRENT_SPAN_ID: &str = "observability.current_span_id";
/// Name of the workflow; on step spans, the owning workflow's name.
pub const WORKFLOW_NAME: &str = "observability.workflow_name";
/// UUID v7 of the workflow run; on step spans, the owning workflow's id.
pub const WORKFLOW_ID: &str = "observability.workflow_id";
/// 0 for a root workflow, parent depth + 1 for a child.
pub const WORKFLOW_DEPTH: &str = "observability.workflow_depth";
/// `completed`, `failed` or `cancelled`, set when the workflow span ends.
pub const WORKFLOW_STATUS: &str = "observability.workflow_status";
/// RFC 3339 UTC start time of the workflow.
pub const WORKFLOW_START_TIME: &str = "observability.workflow_start_time";
/// RFC 3339 UTC end time of the workflow.
pub const WORKFLOW_END_TIME: &str = "observability.workflow_end_time";
/// Duration of the workflow in seconds (f64).
pub const WORKFLOW_DURATION: &str = "observability.workflow_duration";

/// `root_workflow` or `child_workflow`.
pub const RELATIONSHIP_TYPE: &str = "relationship.type";
/// Name of the parent workflow (child workflows only).
pub const PARENT_WORKFLOW_NAME: &str = "relationship.parent_workflow_name";
/// Id of the parent workflow (child workflows only).
pub const PARENT_WORKFLOW_ID: &str = "relationship.parent_workflow_id";
/// Workflow names from the root down to this workflow, joined by `/`.
pub const HIERARCHY_PATH: &str = "relationship.hierarchy_path";
/// Same number as the workflow depth, under the seed's relationship name.
pub const NESTING_LEVEL: &str = "relationship.nesting_level";

/// Shared by a root workflow and all its descendants: the root workflow's id.
pub const CORRELATION_ID: &str = "workflow.correlation_id";
/// The id of the workflow that caused this one: the parent workflow's id.
pub const CAUSATION_ID: &str = "workflow.causation_id";

/// Name of the step.
pub const STEP_NAME: &str = "step.name";
/// `completed`, `failed` or `cancelled`, set when the step span ends.
pub const STEP_STATUS: &str = "step.status";
/// Duration of the step in seconds (f64).
pub const STEP_DURATION: &str = "step.duration";

/// Value of [`RELATIONSHIP_TYPE`] on a workflow started with no workflow active.
pub const ROOT_WORKFLOW: &str = "root_workflow";
/// Value of [`RELATIONSHIP_TYPE`] on a workflow started inside another.
pub const CHILD_WORKFLOW: &str = "child_workflow";
/// Value of [`WORKFLOW_STATUS`] and [`STEP_STATUS`] after a normal return.
pub const STATUS_COMPLETED: &str = "completed";
/// Value of [`WORKFLOW_STATUS`] and [`STEP_STATUS`] after `Err` or a panic.
pub const STATUS_FAILED: &str = "failed";
/// Value of [`WORKFLOW_STATUS`] and [`STEP_STATUS`] when the future was dropped unfinished.
pub const STATUS_CANCELLED: &str = "cancelled";

/// Semantic convention: the class of error (the error's type name, or `panic`).
pub const ERROR_TYPE: &str = "error.type";
/// Semantic convention: name of the event that records an error.
pub const EXCEPTION_EVENT: &str = "exception";
/// Semantic convention: the error's type on the `exception` event.
pub const EXCEPTION_TYPE: &str = "exception.type";
/// Semantic convention: the error's message on the `exception` event.
pub const EXCEPTION_MESSAGE: &str = "exception.message";

/// Semantic convention: fully qualified function name (`crate::module::function`).
pub const CODE_FUNCTION_NAME: &str = "code.function.name";
/// Semantic convention: source file of the function.
pub const CODE_FILE_PATH: &str = "code.file.path";
/// Semantic convention: line of the function's `fn` keyword.
pub const CODE_LINE_NUMBER: &str = "code.line.number";

/// The return value, recorded with the `ret` option.
pub const RETURN_VALUE: &str = "return.value";
/// Seconds since the workflow started, on a `checkpoint` event.
pub const CHECKPOINT_ELAPSED: &str = "checkpoint.elapsed";
/// Attribute on the span link from a child workflow to its parent workflow's span.
pub const LINK_TYPE: &str = "link.type";
/// Value of [`LINK_TYPE`] on that link.
pub const LINK_PARENT_WORKFLOW: &str = "parent_workflow";

/// Keys whose values are span ids (rendered as span references in trees).
pub(crate) const SPAN_ID_KEYS: &[&str] = &[ROOT_SPAN_ID, CURRENT_SPAN_ID];
/// Keys whose values are workflow ids (UUIDs).
pub(crate) const WORKFLOW_ID_KEYS: &[&str] = &[
    WORKFLOW_ID,
    PARENT_WORKFLOW_ID,
    CORRELATION_ID,
    CAUSATION_ID,
];
/// Keys whose values are wall-clock times or durations, different on every run.
pub(crate) const TIME_KEYS: &[&str] = &[
    WORKFLOW_START_TIME,
    WORKFLOW_END_TIME,
    WORKFLOW_DURATION,
    STEP_DURATION,
    CHECKPOINT_ELAPSED,
];
