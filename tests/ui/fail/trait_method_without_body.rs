use workflow_otel::step;

trait Store {
    #[step]
    fn load(&self, key: u32) -> String;
}

fn main() {}
