//! The `/metrics` endpoint: hyper's HTTP/1.1 server on a runtime and thread
//! of its own, so that it works the same in sync programs and under any
//! async runtime, and no client can hold up the program or another client.
//!
//! What a client can cost is bounded: the whole request head must arrive
//! within [`CLIENT_TIMEOUT`] and fit in [`MAX_REQUEST_HEAD`] bytes (a client
//! that drips its head is closed when the deadline passes, however often it
//! sends a byte); a connection lives at most [`MAX_CONNECTION_TIME`], idle or
//! not; at most [`MAX_CONNECTIONS`] are open at once, and further ones wait
//! in the listen queue until one closes. Connections are kept alive between
//! requests, as HTTP/1.1 expects. Answers are encoded on a blocking thread,
//! so a slow scrape (an observable instrument's callback, within its
//! deadline) does not hold up the other connections. Dropping the server
//! closes every connection at once: shutdown never waits for a client.

use std::convert::Infallible;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use opentelemetry::KeyValue;
use tokio::sync::{Semaphore, watch};

use crate::error::SetupError;
use crate::metrics::encode::{self, Format};

/// Longest request head (request line and headers) a scraper may send; a
/// longer one is answered `431` and the connection closed.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// How long a scraper has to send a whole request head, from its first
/// byte; past it, the connection is closed.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Most connections open at once; further ones wait in the listen queue
/// until one closes.
pub const MAX_CONNECTIONS: usize = 512;

/// Longest a connection stays open, idle or not (a scraper reconnects).
pub const MAX_CONNECTION_TIME: Duration = Duration::from_secs(30);

/// A running endpoint; stops, and frees its port, when dropped.
#[derive(Debug)]
pub(crate) struct PrometheusServer {
    address: SocketAddr,
    stop: watch::Sender<bool>,
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
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .max_blocking_threads(2)
            .thread_name("workflow-otel-prometheus")
            .build()
            .map_err(|error| fail(format!("cannot start the endpoint's runtime: {error}")))?;
        // The listener belongs to the endpoint's runtime (entering it is
        // allowed inside another runtime; only blocking on it would not be).
        let entered = runtime.enter();
        let mut last_error = None;
        let listener = candidates
            .iter()
            .find_map(|candidate| match listen(*candidate) {
                Ok(listener) => Some(listener),
                Err(error) => {
                    last_error = Some(error);
                    None
                }
            })
            .ok_or_else(|| {
                let reason = match last_error {
                    Some(error) if error.kind() == std::io::ErrorKind::AddrInUse => format!(
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
        drop(entered);
        let bound = listener
            .local_addr()
            .map_err(|error| fail(format!("cannot read the bound address: {error}")))?;
        let (stop, stopped) = watch::channel(false);
        let resource = Arc::new(resource);
        let thread = std::thread::Builder::new()
            .name("workflow-otel-prometheus".to_owned())
            .spawn(move || {
                runtime.block_on(serve(listener, stopped, resource));
                // Open connections and encodes under way are dropped, not
                // waited for.
                runtime.shutdown_background();
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
        let _ = self.stop.send(true);
        // The accept loop returns at once; the runtime is then dropped
        // without waiting for its connections.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A listener on `address` whose queue holds a burst of connections as
/// large as the cap (the standard library's holds 128).
fn listen(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As the standard library's listeners do on Unix: a port left in
    // TIME_WAIT by an earlier run can be bound, one in use cannot.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(2 * MAX_CONNECTIONS as u32)
}

async fn serve(
    listener: tokio::net::TcpListener,
    mut stopped: watch::Receiver<bool>,
    resource: Arc<Vec<KeyValue>>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // Beyond the cap, nothing is accepted until a connection closes.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            _ = stopped.changed() => return,
        };
        let Ok(slot) = slot else { return };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors, most likely: wait rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let resource = resource.clone();
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(CLIENT_TIMEOUT)
                .max_buf_size(MAX_REQUEST_HEAD)
                .title_case_headers(true)
                .keep_alive(true)
                .serve_connection(
                    TokioIo::new(stream),
                    service_fn(move |request| answer(request, resource.clone())),
                );
            let _ = tokio::time::timeout(MAX_CONNECTION_TIME, connection).await;
            drop(slot);
        });
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Scrape { format: Format, head_only: bool },
    Status(StatusCode),
}

fn route(method: &Method, path: &str, accept: &str) -> Route {
    let head_only = match *method {
        Method::GET => false,
        Method::HEAD => true,
        _ => return Route::Status(StatusCode::METHOD_NOT_ALLOWED),
    };
    if path != "/metrics" {
        return Route::Status(StatusCode::NOT_FOUND);
    }
    Route::Scrape {
        format: Format::from_accept(accept),
        head_only,
    }
}

async fn answer(
    request: Request<Incoming>,
    resource: Arc<Vec<KeyValue>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let accept = request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    // An absolute-form target (`GET http://host/metrics`) has the same path.
    let route = route(request.method(), request.uri().path(), &accept);
    let (format, head_only) = match route {
        Route::Scrape { format, head_only } => (format, head_only),
        Route::Status(status) => return Ok(status_answer(status)),
    };
    let encoded =
        tokio::task::spawn_blocking(move || encode::encode(&encode::snapshot(), format, &resource))
            .await;
    let Ok(body) = encoded else {
        return Ok(status_answer(StatusCode::INTERNAL_SERVER_ERROR));
    };
    let length = body.len();
    let mut response = Response::new(Full::new(if head_only {
        Bytes::new()
    } else {
        Bytes::from(body)
    }));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(response)
}

fn status_answer(status: StatusCode) -> Response<Full<Bytes>> {
    let text = format!("{}\n", status.canonical_reason().unwrap_or("Error"));
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_scrapes_of_metrics() {
        assert_eq!(
            route(&Method::GET, "/metrics", ""),
            Route::Scrape {
                format: Format::Prometheus,
                head_only: false
            }
        );
        assert_eq!(
            route(
                &Method::GET,
                "/metrics",
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            ),
            Route::Scrape {
                format: Format::OpenMetrics,
                head_only: false
            }
        );
        assert_eq!(
            route(&Method::HEAD, "/metrics", ""),
            Route::Scrape {
                format: Format::Prometheus,
                head_only: true
            }
        );
        assert_eq!(
            route(&Method::GET, "/", ""),
            Route::Status(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            route(&Method::POST, "/metrics", ""),
            Route::Status(StatusCode::METHOD_NOT_ALLOWED)
        );
    }
}
