use workflow_otel::step;

#[step(name = "two words", args(missing), err, err)]
fn charge(_cents: u64) {}

fn main() {}
