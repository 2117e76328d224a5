use workflow_otel::workflow;

#[workflow(kind = service)]
fn handle() {}

fn main() {}
