// `install()` as a statement drops the guard at once: telemetry is shut down
// before the first workflow runs. The compiler says so.
#![deny(unused_must_use)]

fn main() {
    workflow_otel::setup().install();
}
