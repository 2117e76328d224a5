use workflow_otel::step;

#[step]
const fn answer() -> u32 {
    42
}

fn main() {}
