//! The `/metrics` endpoint against careless and hostile clients, over real
//! sockets on loopback: a client dripping its request a byte at a time and
//! hundreds of idle connections hold up neither a scrape nor the shutdown;
//! connections past the cap wait their turn; keep-alive, the absolute-form
//! target and `q=0` are honoured. Each test starts an endpoint of its own.
//! The timing checks are the endpoint's documented bounds
//! (`metrics::CLIENT_TIMEOUT`, the shutdown bound), with room for a loaded
//! machine.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use workflow_otel::TelemetryGuard;
use workflow_otel::metrics::{CLIENT_TIMEOUT, MAX_CONNECTIONS};

fn endpoint() -> (TelemetryGuard, SocketAddr) {
    let telemetry = workflow_otel::setup()
        .environment_from(|name| (name == "OTEL_TRACES_EXPORTER").then(|| "none".into()))
        .prometheus_address("127.0.0.1:0")
        .try_install()
        .expect("the endpoint starts");
    let address = telemetry.prometheus_address().expect("listening");
    (telemetry, address)
}

/// Sends `request` and reads the answer to the end (the request asks to
/// close); the status line, the whole answer, and how long it took.
fn exchange(address: SocketAddr, request: &str) -> (String, String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    (status, answer, started.elapsed())
}

fn scrape(address: SocketAddr) -> (String, String, Duration) {
    exchange(
        address,
        &format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"),
    )
}

/// A client that sends a request head one byte every 100 ms (at most 60
/// bytes); says how long after its first byte the endpoint closed it, if
/// it did within the 6 s that takes.
fn drip(address: SocketAddr) -> mpsc::Receiver<Option<Duration>> {
    let (closed, when) = mpsc::channel();
    let mut stream = TcpStream::connect(address).unwrap();
    std::thread::spawn(move || {
        let head =
            b"GET /metrics HTTP/1.1\r\nHost: drip\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let started = Instant::now();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        for byte in head.iter().take(60) {
            if stream.write_all(&[*byte]).is_err() {
                let _ = closed.send(Some(started.elapsed()));
                return;
            }
            let mut buffer = [0_u8; 256];
            match stream.read(&mut buffer) {
                // Closed (or answered and closed) by the endpoint.
                Ok(_) => {
                    let _ = closed.send(Some(started.elapsed()));
                    return;
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => {
                    let _ = closed.send(Some(started.elapsed()));
                    return;
                }
            }
        }
        let _ = closed.send(None);
    });
    when
}

#[test]
fn a_slow_drip_and_500_idle_connections_hold_up_neither_a_scrape_nor_the_shutdown() {
    let (telemetry, address) = endpoint();
    let dripping = drip(address);
    let idle: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect();
    let (status, answer, took) = scrape(address);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(answer.contains("target_info"), "{answer}");
    assert!(
        took < CLIENT_TIMEOUT,
        "a scrape took {took:?} beside the attack"
    );
    // The drip is closed once its head is overdue, however often it sends.
    let closed = dripping
        .recv()
        .unwrap()
        .expect("the dripping client was never closed");
    assert!(
        closed >= CLIENT_TIMEOUT / 2 && closed < CLIENT_TIMEOUT + Duration::from_secs(2),
        "closed after {closed:?}"
    );
    // The guard drops at once while both attacks go on.
    let _dripping = drip(address);
    let more_idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect();
    let started = Instant::now();
    drop(telemetry);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the guard took {took:?} to drop"
    );
    // And the port is closed.
    assert!(TcpStream::connect(address).is_err());
    drop((idle, more_idle));
}

#[test]
fn past_the_connection_cap_new_connections_wait_for_a_free_one() {
    let (_telemetry, address) = endpoint();
    let extra = 10;
    let started = Instant::now();
    let connections: Vec<TcpStream> = (0..MAX_CONNECTIONS + extra)
        .map(|_| {
            let stream = TcpStream::connect(address).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            stream
        })
        .collect();
    // Each silent connection is closed when its head is overdue: the
    // accepted ones after CLIENT_TIMEOUT, the ones past the cap only once
    // a slot freed, a CLIENT_TIMEOUT later.
    let closed: Vec<Duration> = std::thread::scope(|scope| {
        let waits: Vec<_> = connections
            .iter()
            .map(|connection| {
                scope.spawn(move || {
                    let mut buffer = [0_u8; 64];
                    let mut connection = connection;
                    let _ = connection.read(&mut buffer);
                    started.elapsed()
                })
            })
            .collect();
        waits.into_iter().map(|wait| wait.join().unwrap()).collect()
    });
    let first_round = closed
        .iter()
        .filter(|took| **took < CLIENT_TIMEOUT + CLIENT_TIMEOUT / 2)
        .count();
    assert_eq!(first_round, MAX_CONNECTIONS, "{closed:?}");
    assert!(
        closed
            .iter()
            .all(|took| *took < 2 * CLIENT_TIMEOUT + Duration::from_secs(2)),
        "{closed:?}"
    );
}

#[test]
fn keep_alive_absolute_form_and_refused_formats_are_honoured() {
    let (_telemetry, address) = endpoint();
    // Two requests on one connection, the first kept alive.
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes())
        .unwrap();
    let mut first = Vec::new();
    let mut chunk = [0_u8; 65536];
    while !String::from_utf8_lossy(&first).contains("# TYPE target_info") {
        let read = stream.read(&mut chunk).unwrap();
        assert!(read > 0, "closed after the first answer");
        first.extend_from_slice(&chunk[..read]);
    }
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut rest = String::new();
    stream.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("HTTP/1.1 200 OK"), "{rest}");

    // The absolute form, which servers must accept.
    let (status, _, _) = exchange(
        address,
        &format!(
            "GET http://{address}/metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    let (status, _, _) = exchange(
        address,
        &format!(
            "GET http://{address}/other HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    // `q=0` refuses OpenMetrics.
    let content_type = |accept: &str| {
        let (_, answer, _) = exchange(
            address,
            &format!(
                "GET /metrics HTTP/1.1\r\nHost: {address}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
            ),
        );
        answer
            .lines()
            .find_map(|line| line.strip_prefix("Content-Type: "))
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        content_type("application/openmetrics-text;q=0"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        content_type("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
}
