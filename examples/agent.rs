//! A small agent loop: a planner step asks a model what to do, tool steps do
//! it (one of them flaky: it succeeds on its third attempt), a final model
//! call writes the answer. Model calls use canned usage numbers, so nothing
//! leaves the machine; the price table turns them into a cost, and the
//! workflow's span carries the totals. Spans follow the OpenTelemetry GenAI
//! conventions (and OpenInference's span kinds), so Phoenix, Langfuse or
//! Datadog LLM Observability read them as an agent.
//!
//! `cargo run --example agent`; `OTEL_TRACES_EXPORTER=otlp` sends it to a
//! collector, `OTEL_TRACES_EXPORTER=jsonl` to a file.

use std::sync::atomic::{AtomicU32, Ordering};

use workflow_otel::genai::{ModelCall, Price, PriceTable, Usage};
use workflow_otel::{current_workflow, step, workflow};

/// What the planner decided to do.
#[derive(Debug, Clone)]
enum Action {
    Search(String),
    Weather(String),
}

#[derive(Debug)]
struct ToolError(String);

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Asks the model for a plan (a canned one, with the usage a real call reports).
#[step]
fn plan(question: &str) -> Vec<Action> {
    let mut call = ModelCall::chat("openai", "gpt-4o").start();
    call.input_text(question);
    call.finish(
        Usage::tokens(850, 120)
            .cached_input(512)
            .response_model("gpt-4o-2024-08-06")
            .finish_reasons(["tool_calls"]),
    );
    vec![
        Action::Search("rust observability".to_owned()),
        Action::Weather("Lisbon".to_owned()),
    ]
}

/// A search tool: embeds the query, then looks it up.
#[step(genai = tool, args(query))]
fn search(query: String) -> Result<String, ToolError> {
    ModelCall::embeddings("openai", "text-embedding-3-small").record(Usage::tokens(6, 0));
    Ok(format!("3 results for {query:?}"))
}

static WEATHER_CALLS: AtomicU32 = AtomicU32::new(0);

/// A flaky weather service: times out twice, answers on the third attempt.
#[step(genai = tool, args(city), retry(attempts = 4, backoff_ms = 20, max_backoff_ms = 100))]
fn weather(city: String) -> Result<String, ToolError> {
    match WEATHER_CALLS.fetch_add(1, Ordering::SeqCst) {
        0 | 1 => Err(ToolError(format!("weather service timed out for {city}"))),
        _ => Ok(format!("{city}: 19°C, clear")),
    }
}

/// Writes the answer from what the tools found.
#[step]
fn answer(findings: &[String]) -> String {
    let mut call = ModelCall::chat("anthropic", "claude-sonnet-4").start();
    call.output_text(findings.join("; "));
    call.finish(
        Usage::tokens(1_400, 310)
            .reasoning(90)
            .response_model("claude-sonnet-4-20250514")
            .finish_reasons(["stop"]),
    );
    format!(
        "Based on {} findings: {}",
        findings.len(),
        findings.join("; ")
    )
}

#[workflow(genai = agent("openai"))]
fn travel_agent(question: &str) -> Result<String, ToolError> {
    let mut findings = Vec::new();
    for action in plan(question) {
        findings.push(match action {
            Action::Search(query) => search(query)?,
            Action::Weather(city) => weather(city)?,
        });
    }
    let reply = answer(&findings);
    let usage = current_workflow().map(|workflow| workflow.gen_ai_usage());
    if let Some(usage) = usage {
        let (cost, currency) = usage.cost.unwrap_or((0.0, "USD".into()));
        println!(
            "=> {} model calls, {} tool calls, {} input + {} output tokens, {cost:.6} {currency}",
            usage.model_calls, usage.tool_calls, usage.input_tokens, usage.output_tokens
        );
    }
    Ok(reply)
}

fn prices() -> PriceTable {
    // Illustrative prices per million tokens.
    PriceTable::new("USD")
        .model("gpt-4o", Price::per_million(2.50, 10.00).cached_input(1.25))
        .model("text-embedding-3-small", Price::per_million(0.02, 0.0))
        .model("claude-sonnet-4", Price::per_million(3.00, 15.00))
}

fn main() {
    let telemetry = workflow_otel::setup()
        .default_service_name("agent")
        .prices(prices())
        // OpenInference's names too, so that Arize Phoenix shows the model,
        // tokens and cost of each call.
        .openinference(true)
        .install();
    let outcome = travel_agent("Is it a good day to walk around Lisbon?");
    telemetry.flush();
    match outcome {
        Ok(reply) => println!("=> {reply}"),
        Err(error) => {
            println!("=> failed: {error}");
            std::process::exit(1);
        }
    }
}
