use workflow_otel::child_workflow;

#[child_workflow(name = "charge card")]
fn charge() {}

fn main() {}
