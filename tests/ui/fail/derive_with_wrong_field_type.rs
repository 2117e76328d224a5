use workflow_otel::Carried;

#[derive(Carried)]
struct Job {
    payload: u32,
    #[trace_context]
    context: String,
}

fn main() {}
