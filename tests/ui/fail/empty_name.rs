use workflow_otel::workflow;

#[workflow(name = "")]
fn checkout() {}

fn main() {}
