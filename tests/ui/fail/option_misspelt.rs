use workflow_otel::{child_workflow, step};

#[step(field(order = 7))]
fn validate() {}

#[child_workflow(detach)]
fn cleanup() {}

fn main() {}
