use workflow_otel::step;

struct Job {
    doc_id: u64,
}

#[step(args(doc_id = job.doc_id))]
fn index(job: &Job) -> u64 {
    job.doc_id
}

fn main() {}
