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

// GenAI semantic conventions (https://opentelemetry.io/docs/specs/semconv/gen-ai/).

/// GenAI: the operation (`chat`, `embeddings`, `execute_tool`, `invoke_agent`, `invoke_workflow`).
pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
/// GenAI: the model provider (`openai`, `anthropic`, `aws.bedrock`, ...).
pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
/// GenAI: the model asked for.
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
/// GenAI: the model that answered.
pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
/// GenAI: why the model stopped, one per choice.
pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
/// GenAI: input (prompt) tokens.
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// GenAI: output tokens.
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// GenAI: input tokens served from the provider's cache.
pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
/// GenAI: output tokens spent on reasoning.
pub const GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";
/// GenAI: the chat history sent (opt-in, size-limited).
pub const GEN_AI_INPUT_MESSAGES: &str = "gen_ai.input.messages";
/// GenAI: the messages the model returned (opt-in, size-limited).
pub const GEN_AI_OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
/// GenAI: the workflow of an `invoke_workflow` span.
pub const GEN_AI_WORKFLOW_NAME: &str = "gen_ai.workflow.name";
/// GenAI: the agent of an `invoke_agent` span.
pub const GEN_AI_AGENT_NAME: &str = "gen_ai.agent.name";
/// GenAI: the tool of an `execute_tool` span.
pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
/// OpenInference (Arize Phoenix): `CHAIN`, `AGENT`, `TOOL`, `LLM`, `EMBEDDING`.
pub const OPENINFERENCE_SPAN_KIND: &str = "openinference.span.kind";

// This project's cost and roll-up attributes (not part of the conventions).

/// A model call's cost, from the price table (a double).
pub const GEN_AI_USAGE_COST: &str = "workflow.gen_ai.usage.cost";
/// The currency of [`GEN_AI_USAGE_COST`], as the price table names it.
pub const GEN_AI_USAGE_COST_CURRENCY: &str = "workflow.gen_ai.usage.cost_currency";
/// Workflow roll-up: model calls beneath the workflow.
pub const WORKFLOW_GEN_AI_MODEL_CALLS: &str = "workflow.gen_ai.model_calls";
/// Workflow roll-up: calls of `genai = tool` steps beneath the workflow.
pub const WORKFLOW_GEN_AI_TOOL_CALLS: &str = "workflow.gen_ai.tool_calls";
/// Workflow roll-up: input tokens.
pub const WORKFLOW_GEN_AI_INPUT_TOKENS: &str = "workflow.gen_ai.usage.input_tokens";
/// Workflow roll-up: output tokens.
pub const WORKFLOW_GEN_AI_OUTPUT_TOKENS: &str = "workflow.gen_ai.usage.output_tokens";
/// Workflow roll-up: cached input tokens.
pub const WORKFLOW_GEN_AI_CACHE_READ_INPUT_TOKENS: &str =
    "workflow.gen_ai.usage.cache_read.input_tokens";
/// Workflow roll-up: reasoning output tokens.
pub const WORKFLOW_GEN_AI_REASONING_OUTPUT_TOKENS: &str =
    "workflow.gen_ai.usage.reasoning.output_tokens";
/// Workflow roll-up: the cost of the priced calls.
pub const WORKFLOW_GEN_AI_COST: &str = "workflow.gen_ai.usage.cost";
/// Workflow roll-up: the currency of [`WORKFLOW_GEN_AI_COST`].
pub const WORKFLOW_GEN_AI_COST_CURRENCY: &str = "workflow.gen_ai.usage.cost_currency";

// Retries.

/// On an attempt span: which attempt this is, from 1.
pub const RETRY_ATTEMPT: &str = "retry.attempt";
/// On a retried step: how many times it was retried (attempts - 1).
pub const RETRY_COUNT: &str = "retry.count";
