use workflow_otel::step;

#[step]
struct Order {
    id: u64,
}

fn main() {}
