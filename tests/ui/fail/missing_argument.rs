use workflow_otel::step;

#[step(args(order_id))]
fn ship(_order: u64, _address: &str) {}

fn main() {}
