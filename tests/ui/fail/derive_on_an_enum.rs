use workflow_otel::Carried;

#[derive(Carried)]
enum Message {
    Start,
    Stop,
}

fn main() {}
