use workflow_otel::{step, workflow};

#[step(retry(attempts = 2))]
fn count() -> usize {
    3
}

#[workflow(retry)]
fn nightly() {}

#[step(retry(attempts = 0, tries = 2))]
fn bad_settings() -> Result<(), String> {
    Ok(())
}

fn main() {}
