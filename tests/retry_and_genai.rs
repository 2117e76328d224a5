//! Agent workflows: model calls with the GenAI conventions, costs from a
//! price table, totals rolled up exactly under `join!` and spawned tasks,
//! GenAI roles on the attributes, and retries as attempts.

use std::sync::atomic::{AtomicU32, Ordering};

use opentelemetry::Value;
use workflow_otel::genai::{ModelCall, Price, PriceTable, Usage};
use workflow_otel::testing::Capture;
use workflow_otel::{SpanNode, current_workflow, step, workflow};

fn attribute<'a>(node: &'a SpanNode, key: &str) -> &'a Value {
    node.attribute(key)
        .unwrap_or_else(|| panic!("{} has no {key}", node.span.name))
}

static FLAKY: AtomicU32 = AtomicU32::new(0);

#[derive(Debug)]
struct Unavailable(u32);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unavailable on call {}", self.0)
    }
}

#[step(retry(attempts = 4, backoff_ms = 1, max_backoff_ms = 2))]
fn fetch(query: String) -> Result<String, Unavailable> {
    let call = FLAKY.fetch_add(1, Ordering::SeqCst) + 1;
    if call < 3 {
        Err(Unavailable(call))
    } else {
        Ok(query)
    }
}

#[workflow]
fn search() -> Result<String, Unavailable> {
    fetch("rust".to_owned())
}

#[test]
fn a_step_that_succeeds_on_the_third_attempt_is_ok_with_two_retries() {
    let capture = Capture::new();
    assert_eq!(capture.run(search).unwrap(), "rust");
    let tree = capture.tree();
    assert_eq!(
        tree.render_with(|key| key.starts_with("retry.") || key == "error.type"),
        "\
search #1 [workflow] Unset
  fetch #2 [step] Unset
    | retry.count: 2
    fetch.attempt #3 [step] Error(\"unavailable on call 1\")
      | error.type: \"retry_and_genai::Unavailable\"
      | retry.attempt: 1
      | event exception {exception.message: \"unavailable on call 1\", exception.type: \"retry_and_genai::Unavailable\"}
    fetch.attempt #4 [step] Error(\"unavailable on call 2\")
      | error.type: \"retry_and_genai::Unavailable\"
      | retry.attempt: 2
      | event exception {exception.message: \"unavailable on call 2\", exception.type: \"retry_and_genai::Unavailable\"}
    fetch.attempt #5 [step] Unset
      | retry.attempt: 3
"
    );
}

#[derive(Debug, Clone)]
struct Job {
    id: u32,
}

static ALWAYS_FAILS: AtomicU32 = AtomicU32::new(0);

// A predicate takes `&E`, and `E` is `String` here.
#[allow(clippy::ptr_arg)]
fn is_retryable(error: &String) -> bool {
    !error.starts_with("fatal")
}

#[step(retry(attempts = 3, backoff_ms = 0, jitter = false, when = is_retryable))]
fn send(job: Job, fatal: bool) -> Result<u32, String> {
    let call = ALWAYS_FAILS.fetch_add(1, Ordering::SeqCst) + 1;
    if fatal {
        Err(format!("fatal: job {} rejected", job.id))
    } else {
        Err(format!("try {call}: job {} timed out", job.id))
    }
}

#[test]
fn exhausted_retries_fail_the_step_with_the_last_error_and_a_refused_error_stops_at_once() {
    let capture = Capture::new();
    ALWAYS_FAILS.store(0, Ordering::SeqCst);
    assert_eq!(
        capture.run(|| send(Job { id: 7 }, false)),
        Err("try 3: job 7 timed out".to_owned())
    );
    let keep = |key: &str| key == "retry.count" || key == "retry.attempt";
    assert_eq!(
        capture.tree().render_with(keep),
        "\
send #1 [step] Error(\"try 3: job 7 timed out\")
  | retry.count: 2
  | event exception {exception.message: \"try 3: job 7 timed out\", exception.type: \"_OTHER\"}
  send.attempt #2 [step] Error(\"try 1: job 7 timed out\")
    | retry.attempt: 1
    | event exception {exception.message: \"try 1: job 7 timed out\", exception.type: \"_OTHER\"}
  send.attempt #3 [step] Error(\"try 2: job 7 timed out\")
    | retry.attempt: 2
    | event exception {exception.message: \"try 2: job 7 timed out\", exception.type: \"_OTHER\"}
  send.attempt #4 [step] Error(\"try 3: job 7 timed out\")
    | retry.attempt: 3
    | event exception {exception.message: \"try 3: job 7 timed out\", exception.type: \"_OTHER\"}
"
    );
    capture.clear();
    assert!(capture.run(|| send(Job { id: 8 }, true)).is_err());
    assert_eq!(
        capture.tree().render_with(keep),
        "\
send #1 [step] Error(\"fatal: job 8 rejected\")
  | retry.count: 0
  | event exception {exception.message: \"fatal: job 8 rejected\", exception.type: \"_OTHER\"}
  send.attempt #2 [step] Error(\"fatal: job 8 rejected\")
    | retry.attempt: 1
    | event exception {exception.message: \"fatal: job 8 rejected\", exception.type: \"_OTHER\"}
"
    );
}

static ASYNC_CALLS: AtomicU32 = AtomicU32::new(0);
static FIRST_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static RAN_DURING_BACKOFF: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

#[step(retry(attempts = 2, backoff_ms = 20, jitter = false))]
async fn lookup(key: &str) -> Result<usize, std::io::Error> {
    if ASYNC_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        FIRST_FAILED.store(true, Ordering::SeqCst);
        return Err(std::io::Error::other("connection reset"));
    }
    // Only a wait that yields to the executor let the other task run.
    if !RAN_DURING_BACKOFF.load(Ordering::SeqCst) {
        return Err(std::io::Error::other("the backoff blocked the runtime"));
    }
    Ok(key.len())
}

#[tokio::test(flavor = "current_thread")]
async fn an_async_step_retries_without_blocking_its_runtime() {
    let capture = Capture::new();
    // On the same (only) thread: it can run during the backoff only if the
    // wait yields.
    let other = tokio::spawn(async {
        while !FIRST_FAILED.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        RAN_DURING_BACKOFF.store(true, Ordering::SeqCst);
    });
    assert_eq!(capture.scope(lookup("abc")).await.unwrap(), 3);
    other.await.unwrap();
    assert_eq!(
        capture
            .tree()
            .render_with(|key| key.starts_with("retry.")),
        "\
lookup #1 [step] Unset
  | retry.count: 1
  lookup.attempt #2 [step] Error(\"connection reset\")
    | retry.attempt: 1
    | event exception {exception.message: \"connection reset\", exception.type: \"std::io::error::Error\"}
  lookup.attempt #3 [step] Unset
    | retry.attempt: 2
"
    );
}

// ---------------------------------------------------------------- GenAI

fn prices() -> PriceTable {
    PriceTable::new("USD")
        .model("gpt-4o", Price::per_million(2.50, 10.00).cached_input(1.25))
        .model("text-embedding-3-small", Price::per_million(0.02, 0.0))
}

/// A chat call with canned usage: 1000 in (200 cached), 100 out (30 reasoning).
#[step(genai = tool)]
fn answer(question: &str) -> usize {
    let mut call = ModelCall::chat("openai", "gpt-4o").start();
    call.input_text(format!("Q: {question}"));
    call.output_text("A: 42");
    call.finish(
        Usage::tokens(1_000, 100)
            .cached_input(200)
            .reasoning(30)
            .response_model("gpt-4o-2024-08-06")
            .finish_reasons(["stop"]),
    );
    question.len()
}

#[workflow(genai = agent("openai"))]
fn assistant() {
    answer("why");
    // The provider comes from the agent.
    ModelCall::inherited("embeddings", "text-embedding-3-small").record(Usage::tokens(500, 0));
}

/// 800 uncached × 2.50 + 200 cached × 1.25 + 100 × 10.00, per million.
const CHAT_COST: f64 = (800.0 * 2.50 + 200.0 * 1.25 + 100.0 * 10.00) / 1e6;
const EMBEDDING_COST: f64 = 500.0 * 0.02 / 1e6;

#[test]
fn a_model_call_is_a_client_span_with_the_conventions_attributes_and_its_cost() {
    let capture = Capture::new().prices(prices()).openinference(true);
    capture.run(assistant);
    let keep = |key: &str| {
        key.starts_with("gen_ai.")
            || key.starts_with("llm.")
            || key.starts_with("openinference.")
            || key.starts_with("workflow.gen_ai.")
    };
    assert_eq!(
        capture.tree().render_with(keep),
        format!(
            "\
invoke_agent assistant #1 [workflow] Unset
  | gen_ai.agent.name: \"assistant\"
  | gen_ai.operation.name: \"invoke_agent\"
  | gen_ai.provider.name: \"openai\"
  | gen_ai.usage.input_tokens: 1500
  | gen_ai.usage.output_tokens: 100
  | openinference.span.kind: \"AGENT\"
  | workflow.gen_ai.model_calls: 2
  | workflow.gen_ai.tool_calls: 1
  | workflow.gen_ai.usage.cache_read.input_tokens: 200
  | workflow.gen_ai.usage.cost: {total}
  | workflow.gen_ai.usage.cost_currency: \"USD\"
  | workflow.gen_ai.usage.input_tokens: 1500
  | workflow.gen_ai.usage.output_tokens: 100
  | workflow.gen_ai.usage.reasoning.output_tokens: 30
  execute_tool answer #2 [step] Unset
    | gen_ai.operation.name: \"execute_tool\"
    | gen_ai.tool.name: \"answer\"
    | openinference.span.kind: \"TOOL\"
    chat gpt-4o #3 [span scope=workflow-otel] Unset
      | gen_ai.operation.name: \"chat\"
      | gen_ai.provider.name: \"openai\"
      | gen_ai.request.model: \"gpt-4o\"
      | gen_ai.response.finish_reasons: [\"stop\"]
      | gen_ai.response.model: \"gpt-4o-2024-08-06\"
      | gen_ai.usage.cache_read.input_tokens: 200
      | gen_ai.usage.input_tokens: 1000
      | gen_ai.usage.output_tokens: 100
      | gen_ai.usage.reasoning.output_tokens: 30
      | llm.cost.total: {CHAT_COST}
      | llm.model_name: \"gpt-4o-2024-08-06\"
      | llm.provider: \"openai\"
      | llm.system: \"openai\"
      | llm.token_count.completion: 100
      | llm.token_count.completion_details.reasoning: 30
      | llm.token_count.prompt: 1000
      | llm.token_count.prompt_details.cache_read: 200
      | llm.token_count.total: 1100
      | openinference.span.kind: \"LLM\"
      | workflow.gen_ai.usage.cost: {CHAT_COST}
      | workflow.gen_ai.usage.cost_currency: \"USD\"
  embeddings text-embedding-3-small #4 [span scope=workflow-otel] Unset
    | gen_ai.operation.name: \"embeddings\"
    | gen_ai.provider.name: \"openai\"
    | gen_ai.request.model: \"text-embedding-3-small\"
    | gen_ai.usage.input_tokens: 500
    | gen_ai.usage.output_tokens: 0
    | llm.cost.total: {EMBEDDING_COST}
    | llm.model_name: \"text-embedding-3-small\"
    | llm.provider: \"openai\"
    | llm.system: \"openai\"
    | llm.token_count.completion: 0
    | llm.token_count.prompt: 500
    | llm.token_count.total: 500
    | openinference.span.kind: \"EMBEDDING\"
    | workflow.gen_ai.usage.cost: {EMBEDDING_COST}
    | workflow.gen_ai.usage.cost_currency: \"USD\"
",
            total = CHAT_COST + EMBEDDING_COST
        )
    );
    let tree = capture.tree();
    let chat = tree.find("chat gpt-4o").unwrap();
    assert_eq!(chat.span.span_kind, opentelemetry::trace::SpanKind::Client);
    // The workflow the call ran in, as on every span of ours.
    assert_eq!(
        attribute(chat, "observability.workflow_name").as_str(),
        "assistant"
    );
    // Prompt and completion text stay out unless asked for.
    assert!(chat.attribute("gen_ai.input.messages").is_none());
}

#[test]
fn prompt_and_completion_text_are_recorded_only_when_asked_and_cut() {
    let capture = Capture::new().record_genai_content(6);
    capture.run(|| answer("a long question"));
    let tree = capture.tree();
    let chat = tree.find("chat gpt-4o").unwrap();
    assert_eq!(attribute(chat, "gen_ai.input.messages").as_str(), "Q: …");
    assert_eq!(attribute(chat, "gen_ai.output.messages").as_str(), "A: 42");
}

#[workflow]
fn research(branches: u32) -> workflow_otel::GenAiUsage {
    std::thread::scope(|scope| {
        for _ in 0..branches {
            let run = workflow_otel::in_current_context(|| {
                for _ in 0..25 {
                    answer("q");
                }
            });
            scope.spawn(run);
        }
    });
    summarise();
    current_workflow().unwrap().gen_ai_usage()
}

#[workflow_otel::child_workflow]
fn summarise() {
    ModelCall::chat("openai", "gpt-4o").record(Usage::tokens(10, 5));
}

#[test]
fn totals_are_exact_under_parallel_threads_and_include_child_workflows() {
    let capture = Capture::new().prices(prices());
    let usage = capture.run(|| research(8));
    assert_eq!(usage.model_calls, 8 * 25 + 1);
    assert_eq!(usage.tool_calls, 8 * 25);
    assert_eq!(usage.input_tokens, 8 * 25 * 1_000 + 10);
    assert_eq!(usage.output_tokens, 8 * 25 * 100 + 5);
    let (cost, currency) = usage.cost.unwrap();
    let summary_cost = (10.0 * 2.50 + 5.0 * 10.00) / 1e6;
    assert!(
        (cost - (200.0 * CHAT_COST + summary_cost)).abs() < 1e-9,
        "{cost}"
    );
    assert_eq!(&*currency, "USD");
    // The span says the same as the API.
    let tree = capture.tree();
    let workflow = tree.find("research").unwrap();
    assert_eq!(
        attribute(workflow, "workflow.gen_ai.model_calls"),
        &Value::I64(201)
    );
    let child = tree.find("summarise").unwrap();
    assert_eq!(
        attribute(child, "workflow.gen_ai.model_calls"),
        &Value::I64(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_are_exact_across_join_and_spawned_tasks() {
    #[step]
    async fn call_model() {
        tokio::task::yield_now().await;
        ModelCall::chat("anthropic", "claude").record(Usage::tokens(7, 3));
    }
    #[workflow]
    async fn fan_out() -> workflow_otel::GenAiUsage {
        let mut tasks = Vec::new();
        for _ in 0..20 {
            tasks.push(workflow_otel::spawn(call_model()));
        }
        tokio::join!(call_model(), call_model());
        for task in tasks {
            task.await.unwrap();
        }
        current_workflow().unwrap().gen_ai_usage()
    }
    let capture = Capture::new();
    let usage = capture.scope(fan_out()).await;
    assert_eq!(
        (usage.model_calls, usage.input_tokens, usage.output_tokens),
        (22, 22 * 7, 22 * 3)
    );
    assert_eq!(usage.cost, None, "no price table, no cost");
}
