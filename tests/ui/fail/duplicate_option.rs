use workflow_otel::workflow;

#[workflow(name = "checkout", name = "checkout_v2")]
fn checkout() {}

fn main() {}
