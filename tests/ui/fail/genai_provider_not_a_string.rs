use workflow_otel::workflow;

#[workflow(genai = agent(openai))]
fn assistant() {}

fn main() {}
