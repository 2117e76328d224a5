//! Agent workflows: model calls recorded with the OpenTelemetry GenAI
//! semantic conventions, their cost from a price table of yours, and the
//! totals of every workflow run.
//!
//! A model call is a span of kind `CLIENT` named `{operation} {model}`
//! (`chat gpt-4o`), a child of the current span, with `gen_ai.operation.name`,
//! `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`,
//! `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens` and, when known,
//! `gen_ai.usage.cache_read.input_tokens`, `gen_ai.usage.reasoning.output_tokens`
//! and `gen_ai.response.finish_reasons`; OpenInference's
//! `openinference.span.kind` (`LLM`, or `EMBEDDING`) for Arize Phoenix; and,
//! when the model is in the price table, `gen_ai.usage.cost` and
//! `gen_ai.usage.cost_currency`. Prompt and completion text are recorded only
//! when [`Instrumentation::record_genai_content`] or
//! [`Setup::record_genai_content`](crate::Setup::record_genai_content) says so,
//! and then cut to its limit.
//!
//! Every call (and every step marked `#[step(genai = tool)]`) adds to the
//! totals of the workflow it runs in and of every workflow around it in this
//! process, sampled or not; a workflow's span carries its totals when it ends
//! (`workflow.gen_ai.model_calls`, `workflow.gen_ai.usage.input_tokens`, ...,
//! `workflow.gen_ai.usage.cost`), and [`WorkflowContext::gen_ai_usage`] reads
//! them at any time. A child workflow in another process keeps its own totals,
//! on its own span: summing across processes is the backend's (or the
//! viewer's) job, by correlation id.
//!
//! ```
//! use workflow_otel::genai::{ModelCall, Price, PriceTable, Usage};
//! use workflow_otel::{current_workflow, step, workflow};
//!
//! #[step]
//! fn plan(question: &str) -> String {
//!     let call = ModelCall::chat("openai", "gpt-4o").start();
//!     let answer = format!("look up {question}"); // the real client call goes here
//!     call.finish(Usage::tokens(1200, 80).response_model("gpt-4o-2024-08-06"));
//!     answer
//! }
//!
//! #[workflow(genai = agent)]
//! fn assistant(question: &str) -> f64 {
//!     plan(question);
//!     plan(question);
//!     let usage = current_workflow().unwrap().gen_ai_usage();
//!     assert_eq!((usage.model_calls, usage.input_tokens), (2, 2400));
//!     usage.cost.map_or(0.0, |(cost, _)| cost)
//! }
//!
//! let pipeline = workflow_otel::Pipeline::new(workflow_otel::ConsoleExporter::with_writer(std::io::sink()));
//! let instrumentation = workflow_otel::Instrumentation::new(&pipeline)
//!     .prices(PriceTable::new("USD").model("gpt-4o", Price::per_million(2.50, 10.00)));
//! let cost = instrumentation.run(|| assistant("the weather"));
//! assert!((cost - 2.0 * (1200.0 * 2.50 + 80.0 * 10.00) / 1e6).abs() < 1e-12);
//! ```
//!
//! [`WorkflowContext::gen_ai_usage`]: crate::WorkflowContext::gen_ai_usage

use std::borrow::Cow;
use std::fmt::Display;
use std::time::SystemTime;

use opentelemetry::trace::{Event, SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::pipeline::error_text::ErrorText;
use crate::record::attributes as attr;
use crate::record::context::CurrentWorkflow;
use crate::record::instrumentation::Instrumentation;
use crate::record::sampling::join_trace;
use crate::record::usage::CallUsage;
pub use crate::record::usage::{GenAiUsage, Price, PriceTable};

/// A call to a model, described before it is made: the operation, the
/// provider and the model asked for.
#[derive(Clone, Debug)]
pub struct ModelCall {
    operation: Cow<'static, str>,
    provider: Cow<'static, str>,
    request_model: Cow<'static, str>,
}

impl ModelCall {
    /// A call of `operation` (a GenAI operation name: `chat`,
    /// `text_completion`, `embeddings`, `generate_content`, ...).
    pub fn new(
        operation: impl Into<Cow<'static, str>>,
        provider: impl Into<Cow<'static, str>>,
        request_model: impl Into<Cow<'static, str>>,
    ) -> ModelCall {
        ModelCall {
            operation: operation.into(),
            provider: provider.into(),
            request_model: request_model.into(),
        }
    }

    /// A call whose provider is that of the agent it runs in
    /// (`#[workflow(genai = agent("openai"))]`, the nearest one in this
    /// process); `_OTHER` outside any agent that names one.
    pub fn inherited(
        operation: impl Into<Cow<'static, str>>,
        request_model: impl Into<Cow<'static, str>>,
    ) -> ModelCall {
        ModelCall::new(operation, "", request_model)
    }

    /// A `chat` call.
    pub fn chat(
        provider: impl Into<Cow<'static, str>>,
        request_model: impl Into<Cow<'static, str>>,
    ) -> ModelCall {
        ModelCall::new("chat", provider, request_model)
    }

    /// An `embeddings` call.
    pub fn embeddings(
        provider: impl Into<Cow<'static, str>>,
        request_model: impl Into<Cow<'static, str>>,
    ) -> ModelCall {
        ModelCall::new("embeddings", provider, request_model)
    }

    /// Starts timing the call, under the current span.
    pub fn start(mut self) -> ActiveModelCall {
        let cx = Context::current();
        if self.provider.is_empty() {
            let inherited = cx
                .get::<CurrentWorkflow>()
                .and_then(|current| current.0.gen_ai_provider());
            self.provider = Cow::Borrowed(inherited.unwrap_or(crate::record::probe::OTHER_ERROR));
        }
        ActiveModelCall {
            call: self,
            cx,
            started: SystemTime::now(),
            input_text: None,
            output_text: None,
            done: false,
        }
    }

    /// Records a call that already happened, with no duration of its own
    /// (for usage reported after the fact, e.g. by a batch API).
    pub fn record(self, usage: Usage) {
        self.start().finish(usage);
    }
}

/// What a model call used, as the provider reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    /// Input (prompt) tokens, cached ones included.
    pub input_tokens: u64,
    /// Output tokens, reasoning ones included.
    pub output_tokens: u64,
    /// Input tokens served from the provider's cache, when it says.
    pub cache_read_input_tokens: Option<u64>,
    /// Output tokens spent on reasoning, when it says.
    pub reasoning_output_tokens: Option<u64>,
    /// The model that answered, when it names one.
    pub response_model: Option<String>,
    /// Why the model stopped, one per choice (`stop`, `length`, `tool_calls`).
    pub finish_reasons: Vec<String>,
}

impl Usage {
    /// Input and output token counts.
    pub fn tokens(input_tokens: u64, output_tokens: u64) -> Usage {
        Usage {
            input_tokens,
            output_tokens,
            ..Usage::default()
        }
    }

    /// Input tokens served from the cache (part of the input tokens).
    pub fn cached_input(mut self, tokens: u64) -> Usage {
        self.cache_read_input_tokens = Some(tokens);
        self
    }

    /// Output tokens spent on reasoning (part of the output tokens).
    pub fn reasoning(mut self, tokens: u64) -> Usage {
        self.reasoning_output_tokens = Some(tokens);
        self
    }

    /// The model that answered.
    pub fn response_model(mut self, model: impl Into<String>) -> Usage {
        self.response_model = Some(model.into());
        self
    }

    /// Why the model stopped.
    pub fn finish_reasons<S: Into<String>>(
        mut self,
        reasons: impl IntoIterator<Item = S>,
    ) -> Usage {
        self.finish_reasons = reasons.into_iter().map(Into::into).collect();
        self
    }
}

/// A model call under way; [`finish`](Self::finish) or [`fail`](Self::fail)
/// records it. Dropped before either (a timeout, a `select!`), it is recorded
/// as failed with `error.type = cancelled`.
#[derive(Debug)]
pub struct ActiveModelCall {
    call: ModelCall,
    cx: Context,
    started: SystemTime,
    input_text: Option<String>,
    output_text: Option<String>,
    done: bool,
}

/// How a call ended.
enum Ending<'a> {
    Finished(Usage),
    Failed(&'static str, &'a dyn Display),
}

impl ActiveModelCall {
    /// The prompt sent, recorded only where content recording is on.
    pub fn input_text(&mut self, text: impl Into<String>) -> &mut Self {
        self.input_text = Some(text.into());
        self
    }

    /// The completion received, recorded only where content recording is on.
    pub fn output_text(&mut self, text: impl Into<String>) -> &mut Self {
        self.output_text = Some(text.into());
        self
    }

    /// The call answered: records it with what it used.
    pub fn finish(mut self, usage: Usage) {
        self.end(Ending::Finished(usage));
    }

    /// The call failed: records it with status `Error`, the error's message,
    /// and `error_type` (`timeout`, `rate_limited`, an HTTP status, ...) as
    /// `error.type`.
    pub fn fail(mut self, error_type: &'static str, error: &dyn Display) {
        self.end(Ending::Failed(error_type, error));
    }

    fn end(&mut self, ending: Ending<'_>) {
        self.done = true;
        let ended = SystemTime::now();
        let owner = self
            .cx
            .get::<CurrentWorkflow>()
            .map(|current| current.0.clone());
        let fallback;
        let instrumentation = match owner.as_ref().and_then(|owner| owner.instrumentation()) {
            Some(pinned) => Some(pinned),
            None => {
                fallback = Instrumentation::from_context(&self.cx).map(Cow::into_owned);
                fallback.as_ref()
            }
        };
        let usage = match &ending {
            Ending::Finished(usage) => usage.clone(),
            Ending::Failed(..) => Usage::default(),
        };
        let mut counted = CallUsage {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cache_read_input_tokens: usage.cache_read_input_tokens.unwrap_or(0),
            reasoning_output_tokens: usage.reasoning_output_tokens.unwrap_or(0),
            cost: None,
        };
        if let Some(prices) = instrumentation.and_then(Instrumentation::price_table)
            && let Some(price) =
                prices.price(&self.call.request_model, usage.response_model.as_deref())
        {
            counted.cost = Some((prices.cost_nanos(price, &counted), prices.currency_label()));
        }
        if let Some(owner) = &owner {
            owner.with_ancestors(|totals| totals.add_call(&counted));
        }
        // With the attributes' `instrument` feature off, nothing is recorded,
        // as for the attributes themselves; the totals above and the metrics
        // still add up.
        let recorded = instrumentation.filter(|_| cfg!(feature = "instrument"));
        let span = recorded.and_then(|instrumentation| {
            self.span_data(
                instrumentation,
                owner.as_deref(),
                &usage,
                &counted,
                &ending,
                ended,
            )
        });
        crate::metrics::genai::record(&crate::metrics::genai::ModelCallRecord {
            operation: &self.call.operation,
            provider: &self.call.provider,
            model: &self.call.request_model,
            error_type: match &ending {
                Ending::Failed(error_type, _) => Some(error_type),
                Ending::Finished(_) => None,
            },
            duration: ended.duration_since(self.started).unwrap_or_default(),
            tokens: match &ending {
                Ending::Finished(usage) => Some((usage.input_tokens, usage.output_tokens)),
                Ending::Failed(..) => None,
            },
            cost: counted.cost.as_ref().map(|(nanos, currency)| {
                (*nanos as f64 / crate::record::usage::NANOS, &**currency)
            }),
            span: span.as_ref().map(|span| &span.span_context),
        });
        let Some(instrumentation) = recorded else {
            return;
        };
        if let Some(span) = span {
            instrumentation.pipeline().submit_foreign(span);
        }
    }

    fn span_data(
        &self,
        instrumentation: &Instrumentation,
        owner: Option<&crate::WorkflowContext>,
        usage: &Usage,
        counted: &CallUsage,
        ending: &Ending<'_>,
        ended: SystemTime,
    ) -> Option<SpanData> {
        let call = &self.call;
        let name = format!("{} {}", call.operation, call.request_model);
        let parent = self.cx.span().span_context().clone();
        // A call that is a root: the sampler sees its name and kind.
        let (span_context, added) = join_trace(
            (&name, &SpanKind::Client),
            &self.cx,
            &parent,
            instrumentation,
            &[],
        );
        if !span_context.is_sampled() {
            return None;
        }
        let count = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        let mut attributes = vec![
            KeyValue::new(attr::GEN_AI_OPERATION_NAME, call.operation.clone()),
            KeyValue::new(attr::GEN_AI_PROVIDER_NAME, call.provider.clone()),
            KeyValue::new(attr::GEN_AI_REQUEST_MODEL, call.request_model.clone()),
            KeyValue::new(
                attr::OPENINFERENCE_SPAN_KIND,
                if call.operation == "embeddings" {
                    "EMBEDDING"
                } else {
                    "LLM"
                },
            ),
        ];
        attributes.extend(added);
        if let Some(owner) = owner {
            attributes.push(KeyValue::new(
                attr::WORKFLOW_NAME,
                owner.name_value().clone(),
            ));
            attributes.push(KeyValue::new(attr::WORKFLOW_ID, owner.id_value().clone()));
        }
        if let Ending::Finished(_) = ending {
            if let Some(model) = &usage.response_model {
                attributes.push(KeyValue::new(attr::GEN_AI_RESPONSE_MODEL, model.clone()));
            }
            attributes.push(KeyValue::new(
                attr::GEN_AI_USAGE_INPUT_TOKENS,
                count(usage.input_tokens),
            ));
            attributes.push(KeyValue::new(
                attr::GEN_AI_USAGE_OUTPUT_TOKENS,
                count(usage.output_tokens),
            ));
            if let Some(tokens) = usage.cache_read_input_tokens {
                attributes.push(KeyValue::new(
                    attr::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
                    count(tokens),
                ));
            }
            if let Some(tokens) = usage.reasoning_output_tokens {
                attributes.push(KeyValue::new(
                    attr::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
                    count(tokens),
                ));
            }
            if !usage.finish_reasons.is_empty() {
                let reasons: Vec<StringValue> = usage
                    .finish_reasons
                    .iter()
                    .map(|reason| StringValue::from(reason.clone()))
                    .collect();
                attributes.push(KeyValue::new(
                    attr::GEN_AI_RESPONSE_FINISH_REASONS,
                    Value::Array(Array::String(reasons)),
                ));
            }
            if let Some((nanos, currency)) = &counted.cost {
                attributes.push(KeyValue::new(
                    attr::GEN_AI_USAGE_COST,
                    *nanos as f64 / crate::record::usage::NANOS,
                ));
                attributes.push(KeyValue::new(
                    attr::GEN_AI_USAGE_COST_CURRENCY,
                    currency.to_string(),
                ));
            }
        }
        if instrumentation.openinference_on()
            && let Ending::Finished(_) = ending
        {
            openinference_attributes(call, usage, counted, &mut attributes);
        }
        if let Some(limit) = instrumentation.genai_content_limit() {
            let cut = ErrorText::default().max_len(limit);
            for (key, text) in [
                (attr::GEN_AI_INPUT_MESSAGES, &self.input_text),
                (attr::GEN_AI_OUTPUT_MESSAGES, &self.output_text),
            ] {
                if let Some(text) = text {
                    attributes.push(KeyValue::new(key, cut.filter(text).into_owned()));
                }
            }
        }
        let mut events = SpanEvents::default();
        let status = match ending {
            Ending::Finished(_) => Status::Unset,
            Ending::Failed(error_type, error) => {
                let message = error.to_string();
                attributes.push(KeyValue::new(attr::ERROR_TYPE, *error_type));
                events.events.push(Event::new(
                    attr::EXCEPTION_EVENT,
                    ended,
                    vec![
                        KeyValue::new(attr::EXCEPTION_TYPE, *error_type),
                        KeyValue::new(attr::EXCEPTION_MESSAGE, message.clone()),
                    ],
                    0,
                ));
                Status::error(message)
            }
        };
        Some(SpanData {
            span_context,
            parent_span_id: parent.span_id(),
            parent_span_is_remote: parent.is_remote(),
            span_kind: SpanKind::Client,
            name: Cow::Owned(name),
            start_time: self.started,
            end_time: ended,
            attributes,
            dropped_attributes_count: 0,
            events,
            links: SpanLinks::default(),
            status,
            instrumentation_scope: crate::record::raw::scope(),
        })
    }
}

/// OpenInference's names for what the GenAI attributes already say.
fn openinference_attributes(
    call: &ModelCall,
    usage: &Usage,
    counted: &CallUsage,
    attributes: &mut Vec<KeyValue>,
) {
    let count = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    let model = usage
        .response_model
        .clone()
        .map_or_else(|| call.request_model.clone(), Cow::Owned);
    attributes.extend([
        KeyValue::new("llm.system", call.provider.clone()),
        KeyValue::new("llm.provider", call.provider.clone()),
        KeyValue::new("llm.model_name", model),
        KeyValue::new("llm.token_count.prompt", count(usage.input_tokens)),
        KeyValue::new("llm.token_count.completion", count(usage.output_tokens)),
        KeyValue::new(
            "llm.token_count.total",
            count(usage.input_tokens.saturating_add(usage.output_tokens)),
        ),
    ]);
    if let Some(tokens) = usage.cache_read_input_tokens {
        attributes.push(KeyValue::new(
            "llm.token_count.prompt_details.cache_read",
            count(tokens),
        ));
    }
    if let Some(tokens) = usage.reasoning_output_tokens {
        attributes.push(KeyValue::new(
            "llm.token_count.completion_details.reasoning",
            count(tokens),
        ));
    }
    // OpenInference's costs are in US dollars: another currency is not
    // converted, and left to `workflow.gen_ai.usage.cost`.
    if let Some((nanos, currency)) = &counted.cost
        && &**currency == "USD"
    {
        attributes.push(KeyValue::new(
            "llm.cost.total",
            *nanos as f64 / crate::record::usage::NANOS,
        ));
    }
}

impl Drop for ActiveModelCall {
    fn drop(&mut self) {
        if !self.done {
            self.end(Ending::Failed(
                "cancelled",
                &"the model call was dropped before it finished",
            ));
        }
    }
}
