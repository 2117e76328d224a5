use workflow_otel::step;

struct Credentials {
    _token: String,
}

#[step(args(credentials))]
fn login(credentials: Credentials) -> bool {
    credentials._token.is_empty()
}

#[step(fields(user = credentials))]
fn logout(credentials: &Credentials) {}

fn main() {}
