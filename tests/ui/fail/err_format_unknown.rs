use workflow_otel::step;

#[step(err(Json))]
fn parse() -> Result<(), String> {
    Ok(())
}

fn main() {}
