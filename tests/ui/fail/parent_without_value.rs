use workflow_otel::{step, workflow};

#[workflow(parent)]
fn handle() {}

#[step(name)]
fn validate() {}

fn main() {}
