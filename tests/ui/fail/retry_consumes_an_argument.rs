use workflow_otel::step;

// Not `Clone`: a retried step cannot give each attempt its own.
struct Upload {
    bytes: Vec<u8>,
}

#[step(retry(attempts = 3))]
fn store(upload: Upload) -> Result<usize, String> {
    Ok(upload.bytes.len())
}

struct Client;

impl Client {
    #[step(retry)]
    fn close(self) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
