//! Shared by the example programs: what two of them need alike.

use std::io::{Read as _, Write as _};

/// `GET /metrics` from `address` with a plain socket, answer read to its
/// end: what a scraper sees (head and body).
pub fn scrape(address: std::net::SocketAddr) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(address)?;
    // The endpoint keeps connections alive: ask it to close after this one.
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}
