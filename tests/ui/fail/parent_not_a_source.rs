use workflow_otel::child_workflow;

#[child_workflow(parent = job_id)]
fn process(job_id: u64) -> u64 {
    job_id
}

fn main() {}
