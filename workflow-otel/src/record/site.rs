//! What the macros know of a function at compile time: its kind, its span
//! name, where it is, its options; one `static` per annotated function.

use std::sync::atomic::AtomicPtr;

use opentelemetry::trace::SpanKind;

use crate::metrics::series::Series;

/// What an annotated function opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `#[workflow]`: a root workflow, or a nested one inside another workflow.
    Workflow,
    /// `#[child_workflow]`: a child of the current workflow, linked to its span.
    ChildWorkflow,
    /// `#[step]`: one unit of work inside the current workflow.
    Step,
}

/// Everything about an annotated function that is known at compile time.
/// The macro emits one per function as a `static`.
#[derive(Debug)]
pub struct Site {
    pub(crate) kind: Kind,
    pub(crate) name: &'static str,
    pub(crate) function: &'static str,
    pub(crate) file: &'static str,
    pub(crate) line: u32,
    pub(crate) err_debug: bool,
    pub(crate) detached: bool,
    pub(crate) span_kind: SpanKind,
    pub(crate) genai: Option<GenAiRole>,
    /// The span's name: `name`, or for a GenAI role the conventions' name
    /// (`invoke_agent triage`).
    pub(crate) span_name: &'static str,
    /// `genai = agent("openai")`: the `gen_ai.provider.name` of the agent,
    /// which its model calls inherit.
    pub(crate) provider: Option<&'static str>,
    /// The metrics series this site used last (see `metrics::series`).
    pub(crate) series: AtomicPtr<Series>,
    /// `fields(..)` that are all literals: the same for every call.
    pub(crate) literal_fields: &'static [(&'static str, Literal)],
}

/// The value of a `fields(..)` entry written as a literal.
#[derive(Clone, Copy, Debug)]
pub enum Literal {
    /// A string literal.
    Str(&'static str),
    /// An integer literal that fits an `i64`.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
}

impl Literal {
    /// The attribute value it records.
    pub(crate) fn to_value(self) -> opentelemetry::Value {
        use opentelemetry::Value;
        match self {
            Literal::Str(text) => Value::from(text),
            Literal::Int(number) => Value::I64(number),
            Literal::Float(number) => Value::F64(number),
            Literal::Bool(flag) => Value::Bool(flag),
        }
    }
}

/// The GenAI conventions' role of a span (`genai = ..`): its
/// `gen_ai.operation.name` and the name attribute that goes with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenAiRole {
    /// `invoke_workflow`, `gen_ai.workflow.name`; OpenInference `CHAIN`.
    Workflow,
    /// `invoke_agent`, `gen_ai.agent.name`; OpenInference `AGENT`.
    Agent,
    /// `execute_tool`, `gen_ai.tool.name`; OpenInference `TOOL`. Counted as
    /// a tool call in the workflow's totals.
    Tool,
}

impl GenAiRole {
    pub(crate) fn operation(self) -> &'static str {
        match self {
            GenAiRole::Workflow => "invoke_workflow",
            GenAiRole::Agent => "invoke_agent",
            GenAiRole::Tool => "execute_tool",
        }
    }

    pub(crate) fn name_key(self) -> &'static str {
        match self {
            GenAiRole::Workflow => crate::record::attributes::GEN_AI_WORKFLOW_NAME,
            GenAiRole::Agent => crate::record::attributes::GEN_AI_AGENT_NAME,
            GenAiRole::Tool => crate::record::attributes::GEN_AI_TOOL_NAME,
        }
    }

    pub(crate) fn openinference_kind(self) -> &'static str {
        match self {
            GenAiRole::Workflow => "CHAIN",
            GenAiRole::Agent => "AGENT",
            GenAiRole::Tool => "TOOL",
        }
    }
}

impl Site {
    /// Called only by the macros, in a `static` initialiser.
    pub const fn new(
        kind: Kind,
        name: &'static str,
        function: &'static str,
        file: &'static str,
        line: u32,
        err_debug: bool,
        detached: bool,
    ) -> Site {
        Site {
            kind,
            name,
            function,
            file,
            line,
            err_debug,
            detached,
            span_kind: SpanKind::Internal,
            genai: None,
            span_name: name,
            provider: None,
            series: AtomicPtr::new(std::ptr::null_mut()),
            literal_fields: &[],
        }
    }

    /// `fields(..)` that are all literals, recorded from the site rather
    /// than per call.
    pub const fn with_literal_fields(mut self, fields: &'static [(&'static str, Literal)]) -> Site {
        self.literal_fields = fields;
        self
    }

    /// The GenAI conventions' role of the span (`genai = tool`), the span
    /// name that goes with it, and the agent's provider.
    pub const fn with_genai(
        mut self,
        role: GenAiRole,
        span_name: &'static str,
        provider: Option<&'static str>,
    ) -> Site {
        self.genai = Some(role);
        self.span_name = span_name;
        self.provider = provider;
        self
    }

    /// The OpenTelemetry span kind (`kind = server`); `Internal` by default.
    pub const fn with_span_kind(mut self, span_kind: SpanKind) -> Site {
        self.span_kind = span_kind;
        self
    }
}
