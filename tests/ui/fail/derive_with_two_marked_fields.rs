use workflow_otel::Carried;
use workflow_otel::propagation::TraceCarrier;

#[derive(Carried)]
struct Job {
    #[trace_context]
    context: TraceCarrier,
    #[trace_context]
    backup: TraceCarrier,
}

fn main() {}
