use workflow_otel::step;

#[step(genai = tool("openai"))]
fn search() {}

fn main() {}
