//! Runs the `agent` example with the JSON-lines exporter and checks its
//! output against the OpenTelemetry GenAI conventions: for each span role,
//! the attributes the conventions require (or recommend, where a backend
//! needs them), the span kind and name, and the totals and retries.
//!
//! Not part of `cargo test`: it runs the example binary, which `scripts/test`
//! builds first (`cargo build --examples`).

#[path = "support/examples.rs"]
mod examples;

use std::io::BufReader;
use std::process::Command;

use examples::example_binary;
use opentelemetry::Value;
use opentelemetry::trace::SpanKind;
use workflow_otel::{SpanNode, SpanTree, read_json_lines};

/// Per role: the span name's form, the kind, and the attributes it must carry.
struct Role {
    operation: &'static str,
    kind: SpanKind,
    required: &'static [&'static str],
}

const ROLES: &[Role] = &[
    Role {
        operation: "invoke_agent",
        kind: SpanKind::Internal,
        required: &[
            "gen_ai.operation.name",
            "gen_ai.agent.name",
            "gen_ai.provider.name",
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.output_tokens",
            "openinference.span.kind",
        ],
    },
    Role {
        operation: "execute_tool",
        kind: SpanKind::Internal,
        required: &[
            "gen_ai.operation.name",
            "gen_ai.tool.name",
            "openinference.span.kind",
        ],
    },
    Role {
        operation: "chat",
        kind: SpanKind::Client,
        required: &[
            "gen_ai.operation.name",
            "gen_ai.provider.name",
            "gen_ai.request.model",
            "gen_ai.response.model",
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.output_tokens",
            "gen_ai.response.finish_reasons",
            "openinference.span.kind",
            // OpenInference, which Phoenix reads for model, tokens and cost.
            "llm.system",
            "llm.provider",
            "llm.model_name",
            "llm.token_count.prompt",
            "llm.token_count.completion",
            "llm.token_count.total",
            "llm.cost.total",
        ],
    },
    Role {
        operation: "embeddings",
        kind: SpanKind::Client,
        required: &[
            "gen_ai.operation.name",
            "gen_ai.provider.name",
            "gen_ai.request.model",
            "gen_ai.usage.input_tokens",
            "openinference.span.kind",
        ],
    },
];

fn text(node: &SpanNode, key: &str) -> String {
    node.attribute(key)
        .map(|value| value.as_str().into_owned())
        .unwrap_or_default()
}

#[test]
fn the_agent_example_follows_the_genai_conventions() {
    let file =
        std::env::temp_dir().join(format!("workflow-otel-agent-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let output = Command::new(example_binary("agent"))
        .env("OTEL_TRACES_EXPORTER", "jsonl")
        .env("WORKFLOW_OTEL_FILE", &file)
        .output()
        .expect("the example runs");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(
            "=> 3 model calls, 2 tool calls, 2256 input + 430 output tokens, 0.011535 USD"
        ),
        "{stdout}"
    );
    let spans = read_json_lines(BufReader::new(std::fs::File::open(&file).unwrap())).unwrap();
    let _ = std::fs::remove_file(&file);
    let tree = SpanTree::from_spans(spans);
    assert_eq!(tree.roots().len(), 1, "one trace");

    let mut seen = Vec::new();
    for node in tree.nodes() {
        let Some(operation) = node.attribute("gen_ai.operation.name") else {
            continue;
        };
        let operation = operation.as_str().into_owned();
        let role = ROLES
            .iter()
            .find(|role| role.operation == operation)
            .unwrap_or_else(|| panic!("unknown operation {operation}"));
        for key in role.required {
            assert!(
                node.attribute(key).is_some(),
                "{} lacks {key}",
                node.span.name
            );
        }
        assert_eq!(node.span.span_kind, role.kind, "{}", node.span.name);
        // `{operation} {model}` for inference, `{operation} {agent or
        // tool name}` for the others, as the conventions name them.
        let subject = match operation.as_str() {
            "invoke_agent" => "gen_ai.agent.name",
            "execute_tool" => "gen_ai.tool.name",
            _ => "gen_ai.request.model",
        };
        assert_eq!(
            node.span.name,
            format!("{operation} {}", text(node, subject))
        );
        if operation != "invoke_agent" && operation != "execute_tool" {
            // The agent's provider, given once on the agent.
            assert_eq!(
                text(node, "gen_ai.provider.name"),
                text(node, "llm.provider")
            );
        }
        seen.push(operation);
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "chat",
            "chat",
            "embeddings",
            "execute_tool",
            "execute_tool",
            "invoke_agent"
        ]
    );

    let agent = tree.find("invoke_agent travel_agent").unwrap();
    assert_eq!(text(agent, "gen_ai.provider.name"), "openai");
    assert_eq!(text(agent, "openinference.span.kind"), "AGENT");
    assert_eq!(
        agent.attribute("workflow.gen_ai.model_calls"),
        Some(&Value::I64(3))
    );
    assert_eq!(
        agent.attribute("workflow.gen_ai.tool_calls"),
        Some(&Value::I64(2))
    );
    assert_eq!(
        agent.attribute("gen_ai.usage.input_tokens"),
        Some(&Value::I64(2256))
    );
    let Some(Value::F64(cost)) = agent.attribute("workflow.gen_ai.usage.cost") else {
        panic!("no cost on the agent span");
    };
    // gpt-4o: 338 uncached + 512 cached in, 120 out; the embedding: 6 in;
    // claude: 1400 in, 310 out; at the example's prices per million.
    let expected =
        (338.0 * 2.50 + 512.0 * 1.25 + 120.0 * 10.00 + 6.0 * 0.02 + 1_400.0 * 3.00 + 310.0 * 15.00)
            / 1e6;
    assert!((cost - expected).abs() < 1e-12, "{cost} != {expected}");

    // The flaky tool: three attempts, two failed, the step itself fine.
    let weather = tree.find("execute_tool weather").unwrap();
    assert_eq!(weather.attribute("retry.count"), Some(&Value::I64(2)));
    assert!(!matches!(
        weather.span.status,
        opentelemetry::trace::Status::Error { .. }
    ));
    let attempts: Vec<(i64, bool)> = weather
        .children
        .iter()
        .map(|attempt| {
            let Some(Value::I64(number)) = attempt.attribute("retry.attempt") else {
                panic!("an attempt without its number");
            };
            let failed = matches!(
                attempt.span.status,
                opentelemetry::trace::Status::Error { .. }
            );
            (*number, failed)
        })
        .collect();
    assert_eq!(attempts, [(1, true), (2, true), (3, false)]);
}
