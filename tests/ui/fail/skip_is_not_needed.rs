use workflow_otel::step;

#[step(skip(password))]
fn login(_user: &str, _password: &str) {}

fn main() {}
