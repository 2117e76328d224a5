//! rotel (a real OpenTelemetry collector, from PyPI), started on free
//! loopback ports, forwarding everything over gRPC to `forward_to`, and
//! stopped by its PID when dropped.

#![allow(dead_code, unreachable_pub)]

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// rotel, running until dropped; stopped by its PID.
pub struct Rotel {
    pub child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub fn start_rotel(forward_to: SocketAddr) -> Rotel {
    let agent = std::env::var("ROTEL_AGENT")
        .expect("ROTEL_AGENT must point at rotel's rotel-agent binary: run ./scripts/test, which installs it");
    let (grpc, http) = (free_port(), free_port());
    let log = std::env::temp_dir().join(format!("workflow-otel-rotel-{}.log", std::process::id()));
    let child = Command::new(agent)
        .arg("start")
        .args(["--otlp-grpc-endpoint", &grpc.to_string()])
        .args(["--otlp-http-endpoint", &http.to_string()])
        .args(["--exporter", "otlp"])
        .args(["--otlp-exporter-endpoint", &format!("http://{forward_to}")])
        .args(["--otlp-exporter-protocol", "grpc"])
        .args(["--batch-timeout", "20ms"])
        .args(["--debug-log", "traces"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("rotel-agent starts");
    let rotel = Rotel { child, grpc, http };
    // Ready when both receivers accept connections.
    let deadline = Instant::now() + Duration::from_secs(20);
    while [grpc, http]
        .iter()
        .any(|address| TcpStream::connect_timeout(address, Duration::from_millis(100)).is_err())
    {
        assert!(
            Instant::now() < deadline,
            "rotel did not listen within 20 s; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    rotel
}
