use workflow_otel::propagation::TraceCarrier;
use workflow_otel::step;

#[step(parent = job)]
fn handle(job: &TraceCarrier) {
    let _ = job;
}

fn main() {}
