use workflow_otel::workflow;

#[workflow(detached)]
fn nightly() {}

fn main() {}
