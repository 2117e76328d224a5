use workflow_otel::step;

#[step(fields(order.id))]
fn ship() {}

fn main() {}
