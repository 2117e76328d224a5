//! OTLP over TLS against receivers on loopback, with certificates made in
//! the test from a throw-away CA (rcgen): server authentication and mutual
//! TLS deliver every span, over gRPC and HTTP; a server whose certificate
//! another CA signed is refused, the spans counted as dropped with the
//! reason, within the export timeout; bad certificate files are setup errors.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use support::{GrpcReceiver, MetricsReceived, MetricsReceiver, Received, serve_grpc, span_count};
use workflow_otel::{
    DropReport, Instrumentation, OtlpExporter, OtlpProtocol, OtlpSettings, OtlpTls, Pipeline,
    PipelineConfig,
};

/// PEM files of one test's certificates.
struct Certificates {
    dir: PathBuf,
    ca: PathBuf,
    other_ca: PathBuf,
    server_certificate: String,
    server_key: String,
    ca_pem: String,
    client_certificate: PathBuf,
    client_key: PathBuf,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let pem = params.self_signed(&key).unwrap().pem();
    (params, key, pem)
}

fn certificates(test: &str) -> Certificates {
    let dir = std::env::temp_dir().join(format!("workflow-otel-tls-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca_params, ca_key, ca_pem) = ca("workflow-otel test CA");
    let (_, _, other_pem) = ca("some other CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "workflow-otel client");
    let client = client_params.signed_by(&client_key, &issuer).unwrap();
    let write = |name: &str, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    Certificates {
        ca: write("ca.pem", &ca_pem),
        other_ca: write("other-ca.pem", &other_pem),
        client_certificate: write("client.pem", &client.pem()),
        client_key: write("client-key.pem", &client_key.serialize_pem()),
        server_certificate: server.pem(),
        server_key: server_key.serialize_pem(),
        ca_pem,
        dir,
    }
}

/// A gRPC OTLP receiver over TLS; with `client_ca`, it requires a client
/// certificate signed by it.
fn grpc_receiver(
    runtime: &tokio::runtime::Runtime,
    certificates: &Certificates,
    client_ca: bool,
) -> (SocketAddr, Received) {
    let received = Received::default();
    let mut tls =
        tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(
            &certificates.server_certificate,
            &certificates.server_key,
        ));
    if client_ca {
        tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(
            &certificates.ca_pem,
        ));
    }
    let address = serve_grpc(
        runtime,
        tonic::transport::Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(TraceServiceServer::new(GrpcReceiver(received.clone()))),
    );
    (address, received)
}

/// An OTLP/HTTP receiver over TLS (rustls), requiring a client certificate
/// signed by the test CA when `client_ca` is set.
fn http_receiver(
    runtime: &tokio::runtime::Runtime,
    certificates: &Certificates,
    client_ca: bool,
) -> (SocketAddr, Received) {
    let received = Received::default();
    let plain = {
        let received = received.clone();
        move |listener| support::http_receiver(listener, received)
    };
    (tls_relay(runtime, certificates, client_ca, plain), received)
}

/// Terminates TLS on a loopback port and relays the bytes to the plain
/// receiver `serve` runs on another.
fn tls_relay<F: std::future::Future<Output = ()> + Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    certificates: &Certificates,
    client_ca: bool,
    serve: impl FnOnce(tokio::net::TcpListener) -> F,
) -> SocketAddr {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain =
        vec![CertificateDer::from_pem_slice(certificates.server_certificate.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(certificates.server_key.as_bytes()).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if client_ca {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(certificates.ca_pem.as_bytes()).unwrap())
            .unwrap();
        builder.with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap(),
        )
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let inner = plain.local_addr().unwrap();
        tokio::spawn(serve(plain));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(inner).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                });
            }
        });
        address
    })
}

fn settings(protocol: OtlpProtocol, address: SocketAddr, tls: OtlpTls) -> OtlpSettings {
    let endpoint = match protocol {
        OtlpProtocol::Grpc => format!("https://localhost:{}", address.port()),
        _ => format!("https://localhost:{}/v1/traces", address.port()),
    };
    OtlpSettings {
        endpoint,
        protocol,
        headers: vec![],
        timeout: Duration::from_secs(5),
        gzip: false,
        tls,
    }
}

/// Records three spans through a pipeline exporting with `settings`; returns
/// it after shutdown.
fn export(settings: &OtlpSettings, report: fn(&DropReport)) -> Pipeline {
    let exporter = OtlpExporter::new(settings).expect("the exporter is built");
    let config = PipelineConfig {
        drop_report: report,
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::with_config(exporter, config, None);
    Instrumentation::new(&pipeline).run(|| {
        let _ = support::checkout();
    });
    let _ = pipeline.shutdown();
    pipeline
}

fn ignore(_: &DropReport) {}

fn delivered(received: &Received, spans: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while (span_count(received) as u64) < spans {
        assert!(
            Instant::now() < deadline,
            "{} of {spans} spans arrived",
            span_count(received)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn server_authentication_with_a_private_ca() {
    let certificates = certificates("server-auth");
    let runtime = runtime();
    let trust = OtlpTls {
        certificate: Some(certificates.ca.clone()),
        ..OtlpTls::default()
    };
    let (grpc, grpc_received) = grpc_receiver(&runtime, &certificates, false);
    let (http, http_received) = http_receiver(&runtime, &certificates, false);
    for (protocol, address, received) in [
        (OtlpProtocol::Grpc, grpc, &grpc_received),
        (OtlpProtocol::HttpProtobuf, http, &http_received),
        (OtlpProtocol::HttpJson, http, &http_received),
    ] {
        let before = span_count(received) as u64;
        let pipeline = export(&settings(protocol, address, trust.clone()), ignore);
        assert_eq!(
            (pipeline.exported_spans(), pipeline.dropped_spans()),
            (3, 0),
            "{protocol:?}"
        );
        delivered(received, before + 3);
    }
    let _ = std::fs::remove_dir_all(&certificates.dir);
}

#[test]
fn mutual_tls_with_a_client_certificate() {
    let certificates = certificates("mutual");
    let runtime = runtime();
    let identity = OtlpTls {
        certificate: Some(certificates.ca.clone()),
        client_certificate: Some(certificates.client_certificate.clone()),
        client_key: Some(certificates.client_key.clone()),
    };
    let (grpc, grpc_received) = grpc_receiver(&runtime, &certificates, true);
    let (http, http_received) = http_receiver(&runtime, &certificates, true);
    for (protocol, address, received) in [
        (OtlpProtocol::Grpc, grpc, &grpc_received),
        (OtlpProtocol::HttpProtobuf, http, &http_received),
    ] {
        let pipeline = export(&settings(protocol, address, identity.clone()), ignore);
        assert_eq!(
            (pipeline.exported_spans(), pipeline.dropped_spans()),
            (3, 0),
            "{protocol:?}"
        );
        delivered(received, 3);
        // Without the client certificate the server refuses the connection.
        let anonymous = OtlpTls {
            client_certificate: None,
            client_key: None,
            ..identity.clone()
        };
        let refused = export(&settings(protocol, address, anonymous), ignore);
        assert_eq!(
            (refused.exported_spans(), refused.dropped_spans()),
            (0, 3),
            "{protocol:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&certificates.dir);
}

static REPORTS: std::sync::Mutex<Vec<DropReport>> = std::sync::Mutex::new(Vec::new());

fn keep(report: &DropReport) {
    REPORTS.lock().unwrap().push(report.clone());
}

#[test]
fn a_server_signed_by_another_ca_is_refused_counted_and_explained() {
    let certificates = certificates("wrong-ca");
    let runtime = runtime();
    let (grpc, _) = grpc_receiver(&runtime, &certificates, false);
    let (http, _) = http_receiver(&runtime, &certificates, false);
    let wrong = OtlpTls {
        certificate: Some(certificates.other_ca.clone()),
        ..OtlpTls::default()
    };
    for (protocol, address) in [
        (OtlpProtocol::Grpc, grpc),
        (OtlpProtocol::HttpProtobuf, http),
    ] {
        REPORTS.lock().unwrap().clear();
        let started = Instant::now();
        let pipeline = export(&settings(protocol, address, wrong.clone()), keep);
        // A handshake refused at once, not a hang until the 5 s export timeout.
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{protocol:?}: {:?}",
            started.elapsed()
        );
        assert_eq!(
            (pipeline.exported_spans(), pipeline.dropped_spans()),
            (0, 3),
            "{protocol:?}"
        );
        let reports = REPORTS.lock().unwrap();
        let error = reports
            .iter()
            .find_map(|report| report.last_error.clone())
            .unwrap_or_else(|| panic!("{protocol:?}: no error reported: {reports:?}"));
        // The cause is named, over every protocol.
        assert!(error.contains("UnknownIssuer"), "{protocol:?}: {error}");
    }
    let _ = std::fs::remove_dir_all(&certificates.dir);
}

#[test]
fn bad_certificate_files_are_setup_errors() {
    let certificates = certificates("bad-files");
    let not_pem = certificates.dir.join("not.pem");
    std::fs::write(&not_pem, "this is not a certificate").unwrap();
    let missing = certificates.dir.join("missing.pem");
    // A valid key, of another certificate.
    let other_key = certificates.dir.join("other-key.pem");
    std::fs::write(&other_key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let mismatch = format!(
        "the key does not belong to the client certificate {}",
        certificates.client_certificate.display()
    );
    let cases: [(OtlpTls, &str, &Path, &str); 5] = [
        (
            OtlpTls {
                client_certificate: Some(certificates.client_certificate.clone()),
                client_key: Some(other_key.clone()),
                ..OtlpTls::default()
            },
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            &other_key,
            &mismatch,
        ),
        (
            OtlpTls {
                certificate: Some(not_pem.clone()),
                ..OtlpTls::default()
            },
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            &not_pem,
            "no PEM certificate",
        ),
        (
            OtlpTls {
                certificate: Some(missing.clone()),
                ..OtlpTls::default()
            },
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            &missing,
            "cannot read the file",
        ),
        (
            OtlpTls {
                client_certificate: Some(certificates.client_certificate.clone()),
                client_key: Some(not_pem.clone()),
                ..OtlpTls::default()
            },
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            &not_pem,
            "no PEM private key",
        ),
        (
            OtlpTls {
                client_certificate: Some(certificates.client_certificate.clone()),
                ..OtlpTls::default()
            },
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            &certificates.client_certificate,
            "needs its key",
        ),
    ];
    for (tls, setting, path, reason) in cases {
        let address: SocketAddr = "127.0.0.1:4317".parse().unwrap();
        // Over every protocol: the files are checked before any transport.
        for protocol in [
            OtlpProtocol::Grpc,
            OtlpProtocol::HttpProtobuf,
            OtlpProtocol::HttpJson,
        ] {
            let error =
                OtlpExporter::new(&settings(protocol, address, tls.clone())).expect_err(reason);
            assert_eq!(error.setting, setting, "{protocol:?}");
            assert_eq!(error.value, path.display().to_string(), "{protocol:?}");
            assert!(error.reason.contains(reason), "{protocol:?}: {error}");
        }
    }
    let _ = std::fs::remove_dir_all(&certificates.dir);
}

#[workflow_otel::workflow]
fn tls_metered() {}

/// Metrics have a transport of their own: the same certificates must work
/// there too, over gRPC and HTTP.
#[test]
fn metrics_are_pushed_over_mutual_tls() {
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsServiceServer;
    let certificates = certificates("metrics");
    let runtime = runtime();
    let received = MetricsReceived::default();
    let tls = tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(
            &certificates.server_certificate,
            &certificates.server_key,
        ))
        .client_ca_root(tonic::transport::Certificate::from_pem(
            &certificates.ca_pem,
        ));
    let grpc = serve_grpc(
        &runtime,
        tonic::transport::Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(MetricsServiceServer::new(MetricsReceiver(received.clone()))),
    );
    let http = {
        let received = received.clone();
        tls_relay(&runtime, &certificates, true, move |listener| {
            support::http_receiver_of(listener, received, "/v1/metrics")
        })
    };
    for (protocol, endpoint) in [
        ("grpc", format!("https://localhost:{}", grpc.port())),
        (
            "http/protobuf",
            format!("https://localhost:{}/v1/metrics", http.port()),
        ),
    ] {
        let before = received.lock().unwrap().len();
        let settings = [
            ("OTEL_TRACES_EXPORTER", "none".to_owned()),
            ("OTEL_METRICS_EXPORTER", "otlp".to_owned()),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", protocol.to_owned()),
            (
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                certificates.ca.display().to_string(),
            ),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                certificates.client_certificate.display().to_string(),
            ),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                certificates.client_key.display().to_string(),
            ),
        ];
        let telemetry = workflow_otel::setup()
            .environment_from(support::environment(settings))
            .try_install()
            .unwrap();
        workflow_otel::testing::Capture::new().run(tls_metered);
        telemetry.flush();
        let arrived = received.lock().unwrap()[before..].to_vec();
        assert_eq!(arrived.len(), 1, "{protocol}: one push");
        assert!(
            format!("{:?}", arrived[0].1).contains("tls_metered"),
            "{protocol}"
        );
        drop(telemetry);
    }
    let _ = std::fs::remove_dir_all(&certificates.dir);
}

/// The system's root certificates are trusted with no certificate given:
/// a second process of this test binary, whose system roots
/// (`SSL_CERT_FILE`, which rustls-native-certs reads) are the test's CA,
/// exports to both receivers.
#[test]
fn system_roots_are_trusted() {
    let certificates = certificates("system-roots");
    let runtime = runtime();
    let (grpc, grpc_received) = grpc_receiver(&runtime, &certificates, false);
    let (http, http_received) = http_receiver(&runtime, &certificates, false);
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "exports_trusting_the_system_roots_alone",
        ])
        .env("SSL_CERT_FILE", &certificates.ca)
        .env("TLS_TEST_GRPC", grpc.to_string())
        .env("TLS_TEST_HTTP", http.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    delivered(&grpc_received, 3);
    delivered(&http_received, 3);
    let _ = std::fs::remove_dir_all(&certificates.dir);
}

#[test]
#[ignore = "run by `system_roots_are_trusted`, in a process whose system roots are the test CA"]
fn exports_trusting_the_system_roots_alone() {
    for (protocol, variable) in [
        (OtlpProtocol::Grpc, "TLS_TEST_GRPC"),
        (OtlpProtocol::HttpProtobuf, "TLS_TEST_HTTP"),
    ] {
        let address: SocketAddr = std::env::var(variable).unwrap().parse().unwrap();
        let pipeline = export(&settings(protocol, address, OtlpTls::default()), ignore);
        assert_eq!(
            (pipeline.exported_spans(), pipeline.dropped_spans()),
            (3, 0),
            "{protocol:?}"
        );
    }
}
