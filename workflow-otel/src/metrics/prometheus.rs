//! The `/metrics` endpoint: a small HTTP/1.1 server on a thread of its own,
//! answering one scrape at a time. Scrapes are rare (seconds apart) and an
//! answer is a few kilobytes, so one thread and `std::net` are enough, and
//! the endpoint works the same in sync programs and under any async runtime.
//!
//! Everything a client sends is bounded: the request head is read up to
//! [`MAX_REQUEST_HEAD`] bytes, within [`CLIENT_TIMEOUT`], and the connection
//! is closed after each answer.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use opentelemetry::KeyValue;

use crate::error::SetupError;
use crate::metrics::encode::{self, Format};

/// Longest request head (request line and headers) read from a scraper.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// How long a scraper may take to send its request or read the answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// A running endpoint; stops, and frees its port, when dropped.
#[derive(Debug)]
pub(crate) struct PrometheusServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PrometheusServer {
    /// Listens on `address` (`host:port`); `setting` names where the address
    /// came from, for the error.
    pub(crate) fn start(
        address: &str,
        setting: &str,
        resource: Vec<KeyValue>,
    ) -> Result<PrometheusServer, SetupError> {
        let fail = |reason: String| SetupError::new(setting, address, reason);
        let candidates: Vec<SocketAddr> = address
            .to_socket_addrs()
            .map_err(|error| fail(format!("not a host and port to listen on: {error}")))?
            .collect();
        let mut last_error = None;
        let listener = candidates
            .iter()
            .find_map(|candidate| match TcpListener::bind(candidate) {
                Ok(listener) => Some(listener),
                Err(error) => {
                    last_error = Some(error);
                    None
                }
            })
            .ok_or_else(|| {
                let reason = match last_error {
                    Some(error) if error.kind() == io::ErrorKind::AddrInUse => format!(
                        "the Prometheus endpoint cannot listen there, the port is in use ({error}); \
                         choose another with OTEL_EXPORTER_PROMETHEUS_PORT"
                    ),
                    Some(error) => {
                        format!("the Prometheus endpoint cannot listen there: {error}")
                    }
                    None => "the host resolves to no address".to_owned(),
                };
                fail(reason)
            })?;
        let bound = listener
            .local_addr()
            .map_err(|error| fail(format!("cannot read the bound address: {error}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("workflow-otel-prometheus".to_owned())
            .spawn({
                let stop = stop.clone();
                move || serve(listener, &stop, &resource)
            })
            .map_err(|error| fail(format!("cannot start the endpoint's thread: {error}")))?;
        Ok(PrometheusServer {
            address: bound,
            stop,
            thread: Some(thread),
        })
    }

    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the thread from `accept`; it sees `stop` and returns. A scrape
        // under way finishes first, within `CLIENT_TIMEOUT`.
        let _ = TcpStream::connect_timeout(&self.address, CLIENT_TIMEOUT);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: TcpListener, stop: &AtomicBool, resource: &[KeyValue]) {
    for connection in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut stream) = connection else {
            continue;
        };
        // A client that misbehaves costs at most its timeouts; nothing it
        // sends can stop the endpoint.
        let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
        let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
        let answer = match read_head(&mut stream) {
            Ok(head) => respond(&head, resource),
            Err(status) => Answer::status(status),
        };
        let _ = answer.write_to(&mut stream);
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
}

/// The request head, or the status that answers a bad one.
fn read_head(stream: &mut TcpStream) -> Result<String, u16> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0_u8; 1024];
    loop {
        if head.windows(4).any(|window| window == b"\r\n\r\n") {
            break;
        }
        if head.len() >= MAX_REQUEST_HEAD {
            return Err(431);
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => head.extend_from_slice(&chunk[..read]),
            Err(_) => return Err(408),
        }
    }
    head.truncate(MAX_REQUEST_HEAD);
    String::from_utf8(head).map_err(|_| 400)
}

struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
    head_only: bool,
}

impl Answer {
    fn status(status: u16) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{}\n", reason(status)),
            head_only: false,
        }
    }

    fn write_to(&self, stream: &mut TcpStream) -> io::Result<()> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        if self.status == 405 {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        stream.write_all(out.as_bytes())?;
        if !self.head_only {
            stream.write_all(self.body.as_bytes())?;
        }
        stream.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

fn respond(head: &str, resource: &[KeyValue]) -> Answer {
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Answer::status(400);
    };
    if !version.starts_with("HTTP/1.") {
        return Answer::status(400);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Answer::status(405),
    };
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return Answer::status(404);
    }
    let accept = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("accept"))
        .map(|(_, value)| value.trim())
        .unwrap_or_default();
    let format = Format::from_accept(accept);
    Answer {
        status: 200,
        content_type: format.content_type(),
        body: encode::encode(&encode::snapshot(), format, resource),
        head_only,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_scrapes_of_metrics() {
        let scrape = respond("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &[]);
        assert_eq!(scrape.status, 200);
        assert_eq!(scrape.content_type, Format::Prometheus.content_type());
        let open_metrics = respond(
            "GET /metrics?x=1 HTTP/1.1\r\naccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n",
            &[],
        );
        assert_eq!(
            open_metrics.content_type,
            Format::OpenMetrics.content_type()
        );
        assert!(open_metrics.body.ends_with("# EOF\n"));
        assert!(respond("HEAD /metrics HTTP/1.0\r\n\r\n", &[]).head_only);
        assert_eq!(respond("GET / HTTP/1.1\r\n\r\n", &[]).status, 404);
        assert_eq!(respond("POST /metrics HTTP/1.1\r\n\r\n", &[]).status, 405);
        assert_eq!(respond("GET /metrics\r\n\r\n", &[]).status, 400);
        assert_eq!(respond("\u{0}\u{1}", &[]).status, 400);
    }
}
