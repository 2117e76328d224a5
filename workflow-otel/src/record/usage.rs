//! What the model calls and tool steps beneath a workflow added up to: kept
//! per workflow in atomics, so parallel steps and spawned tasks add exactly,
//! and written on the workflow's span when it ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use opentelemetry::KeyValue;

use crate::record::attributes as attr;

/// Billions of a currency unit per unit: costs are summed as whole
/// nano-units, so a total is the exact sum of its calls in any order.
pub(crate) const NANOS: f64 = 1e9;

/// Running totals of one workflow (its own calls and its in-process
/// children's).
#[derive(Debug, Default)]
pub(crate) struct UsageTotals {
    model_calls: AtomicU64,
    tool_calls: AtomicU64,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
    cache_read_input_tokens: AtomicU64,
    reasoning_output_tokens: AtomicU64,
    cost_nanos: AtomicU64,
    currency: OnceLock<Arc<str>>,
}

/// One model call's contribution.
#[derive(Clone, Debug, Default)]
pub(crate) struct CallUsage {
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) cache_read_input_tokens: u64,
    pub(crate) reasoning_output_tokens: u64,
    pub(crate) cost: Option<(u64, Arc<str>)>,
}

impl UsageTotals {
    pub(crate) fn add_call(&self, call: &CallUsage) {
        let add = |counter: &AtomicU64, value: u64| {
            counter.fetch_add(value, Ordering::Relaxed);
        };
        add(&self.model_calls, 1);
        add(&self.input_tokens, call.input_tokens);
        add(&self.output_tokens, call.output_tokens);
        add(&self.cache_read_input_tokens, call.cache_read_input_tokens);
        add(&self.reasoning_output_tokens, call.reasoning_output_tokens);
        if let Some((nanos, currency)) = &call.cost {
            add(&self.cost_nanos, *nanos);
            let _ = self.currency.set(currency.clone());
        }
    }

    pub(crate) fn add_tool_call(&self) {
        self.tool_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// The totals now.
    pub(crate) fn snapshot(&self) -> GenAiUsage {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        GenAiUsage {
            model_calls: load(&self.model_calls),
            tool_calls: load(&self.tool_calls),
            input_tokens: load(&self.input_tokens),
            output_tokens: load(&self.output_tokens),
            cache_read_input_tokens: load(&self.cache_read_input_tokens),
            reasoning_output_tokens: load(&self.reasoning_output_tokens),
            cost: self
                .currency
                .get()
                .map(|currency| (load(&self.cost_nanos) as f64 / NANOS, currency.clone())),
        }
    }
}

/// What the model calls and tool steps of a workflow run added up to, its own
/// and its in-process child workflows'. Read it with
/// [`WorkflowContext::gen_ai_usage`](crate::WorkflowContext::gen_ai_usage);
/// it is also written on the workflow's span when the workflow ends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenAiUsage {
    /// Model calls recorded with [`crate::genai::ModelCall`].
    pub model_calls: u64,
    /// Calls of steps marked `genai = tool`.
    pub tool_calls: u64,
    /// Input (prompt) tokens, cached ones included.
    pub input_tokens: u64,
    /// Output tokens, reasoning ones included.
    pub output_tokens: u64,
    /// Input tokens served from the provider's cache.
    pub cache_read_input_tokens: u64,
    /// Output tokens spent on reasoning.
    pub reasoning_output_tokens: u64,
    /// The cost of the calls whose model has a price, and its currency.
    pub cost: Option<(f64, Arc<str>)>,
}

impl GenAiUsage {
    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.model_calls == 0 && self.tool_calls == 0
    }

    /// The totals as span attributes; with `conventions`, also the
    /// `gen_ai.usage.*` pair the GenAI conventions put on agent spans.
    pub(crate) fn attributes(&self, conventions: bool) -> Vec<KeyValue> {
        let count = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        let mut attributes = vec![
            KeyValue::new(attr::WORKFLOW_GEN_AI_MODEL_CALLS, count(self.model_calls)),
            KeyValue::new(attr::WORKFLOW_GEN_AI_TOOL_CALLS, count(self.tool_calls)),
            KeyValue::new(attr::WORKFLOW_GEN_AI_INPUT_TOKENS, count(self.input_tokens)),
            KeyValue::new(
                attr::WORKFLOW_GEN_AI_OUTPUT_TOKENS,
                count(self.output_tokens),
            ),
        ];
        if self.cache_read_input_tokens > 0 {
            attributes.push(KeyValue::new(
                attr::WORKFLOW_GEN_AI_CACHE_READ_INPUT_TOKENS,
                count(self.cache_read_input_tokens),
            ));
        }
        if self.reasoning_output_tokens > 0 {
            attributes.push(KeyValue::new(
                attr::WORKFLOW_GEN_AI_REASONING_OUTPUT_TOKENS,
                count(self.reasoning_output_tokens),
            ));
        }
        if let Some((cost, currency)) = &self.cost {
            attributes.push(KeyValue::new(attr::WORKFLOW_GEN_AI_COST, *cost));
            attributes.push(KeyValue::new(
                attr::WORKFLOW_GEN_AI_COST_CURRENCY,
                currency.to_string(),
            ));
        }
        if conventions && self.model_calls > 0 {
            attributes.push(KeyValue::new(
                attr::GEN_AI_USAGE_INPUT_TOKENS,
                count(self.input_tokens),
            ));
            attributes.push(KeyValue::new(
                attr::GEN_AI_USAGE_OUTPUT_TOKENS,
                count(self.output_tokens),
            ));
        }
        attributes
    }
}

/// What one model costs, per million tokens, in the table's currency.
#[derive(Clone, Debug, PartialEq)]
pub struct Price {
    /// Per million input tokens not served from the cache.
    pub input: f64,
    /// Per million output tokens (reasoning tokens included).
    pub output: f64,
    /// Per million input tokens served from the cache (the input price if `None`).
    pub cache_read_input: Option<f64>,
}

impl Price {
    /// Input and output prices per million tokens.
    pub fn per_million(input: f64, output: f64) -> Price {
        Price {
            input,
            output,
            cache_read_input: None,
        }
    }

    /// The price per million cached input tokens.
    pub fn cached_input(mut self, per_million: f64) -> Price {
        self.cache_read_input = Some(per_million);
        self
    }
}

/// Prices per model, in one currency, given by the user: a model call's
/// cost is its token counts times these prices. A model missing from the
/// table gets no cost (and its calls count in every total but the cost).
///
/// ```
/// use workflow_otel::genai::{Price, PriceTable};
///
/// let prices = PriceTable::new("USD")
///     .model("gpt-4o", Price::per_million(2.50, 10.00).cached_input(1.25))
///     .model("text-embedding-3-small", Price::per_million(0.02, 0.0));
/// assert_eq!(prices.currency(), "USD");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct PriceTable {
    currency: Arc<str>,
    models: Vec<(String, Price)>,
}

impl PriceTable {
    /// An empty table in `currency` (an ISO 4217 code such as `USD`, or any label).
    pub fn new(currency: impl Into<String>) -> PriceTable {
        PriceTable {
            currency: Arc::from(currency.into()),
            models: Vec::new(),
        }
    }

    /// Adds (or replaces) the price of `model`, matched exactly against the
    /// request model, then the response model, of each call.
    pub fn model(mut self, model: impl Into<String>, price: Price) -> PriceTable {
        let model = model.into();
        self.models.retain(|(known, _)| *known != model);
        self.models.push((model, price));
        self
    }

    /// The table's currency.
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// The price for a call to `request_model` answered by `response_model`.
    pub fn price(&self, request_model: &str, response_model: Option<&str>) -> Option<&Price> {
        let find = |name: &str| {
            self.models
                .iter()
                .find(|(model, _)| model == name)
                .map(|(_, price)| price)
        };
        find(request_model).or_else(|| response_model.and_then(find))
    }

    /// The cost of a call, in whole nano-units of the currency.
    pub(crate) fn cost_nanos(&self, price: &Price, usage: &CallUsage) -> u64 {
        let cached = usage.cache_read_input_tokens.min(usage.input_tokens);
        let uncached = usage.input_tokens - cached;
        let per_token = |per_million: f64| per_million / 1e6;
        let cost = uncached as f64 * per_token(price.input)
            + cached as f64 * per_token(price.cache_read_input.unwrap_or(price.input))
            + usage.output_tokens as f64 * per_token(price.output);
        (cost * NANOS).round().max(0.0) as u64
    }

    pub(crate) fn currency_label(&self) -> Arc<str> {
        self.currency.clone()
    }
}
