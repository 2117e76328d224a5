use workflow_otel::Carried;
use workflow_otel::propagation::TraceCarrier;

#[derive(Carried)]
struct Job {
    payload: u32,
    context: TraceCarrier,
}

fn main() {}
