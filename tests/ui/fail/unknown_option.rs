use workflow_otel::step;

#[step(level = "info")]
fn validate() {}

fn main() {}
