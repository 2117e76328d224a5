use workflow_otel::workflow;

#[workflow(name = "billing/charge")]
fn charge() {}

fn main() {}
