//! TLS for the OTLP exporters (feature `tls`): rustls with the ring provider
//! through the transports' own features, the system's root certificates, an
//! optional private CA and a client certificate for mutual TLS. Certificate
//! files are read and parsed when the exporter is built, so a bad one is a
//! setup error naming the variable, not a failed export later.

use crate::error::SetupError;
use crate::export::OtlpSettings;

/// The PEM files of [`OtlpTls`](crate::export::OtlpTls), read and checked.
#[derive(Debug, Default)]
pub(crate) struct LoadedTls {
    pub(crate) ca: Option<Vec<u8>>,
    pub(crate) identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// Whether `settings` need TLS: an `https://` endpoint, or certificates.
pub(crate) fn wanted(settings: &OtlpSettings) -> bool {
    settings
        .endpoint
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
        || settings.tls != crate::export::OtlpTls::default()
}

/// Reads and checks the certificates of `settings`; the variables named in
/// errors are the general ones (`OTEL_EXPORTER_OTLP_CERTIFICATE`, ...), which
/// the per-signal ones override.
pub(crate) fn load(settings: &OtlpSettings) -> Result<LoadedTls, SetupError> {
    let tls = &settings.tls;
    let read = |setting: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|error| {
            SetupError::new(
                setting,
                &path.display().to_string(),
                format!("cannot read the file: {error}"),
            )
        })
    };
    let mut loaded = LoadedTls::default();
    if let Some(path) = &tls.certificate {
        let pem = read("OTEL_EXPORTER_OTLP_CERTIFICATE", path)?;
        check_certificates("OTEL_EXPORTER_OTLP_CERTIFICATE", path, &pem)?;
        loaded.ca = Some(pem);
    }
    match (&tls.client_certificate, &tls.client_key) {
        (Some(certificate), Some(key)) => {
            let certificate_pem = read("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", certificate)?;
            check_certificates(
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                certificate,
                &certificate_pem,
            )?;
            let key_pem = read("OTEL_EXPORTER_OTLP_CLIENT_KEY", key)?;
            check_key(key, &key_pem)?;
            check_identity((certificate, &certificate_pem), (key, &key_pem))?;
            loaded.identity = Some((certificate_pem, key_pem));
        }
        (Some(path), None) => {
            return Err(SetupError::new(
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                &path.display().to_string(),
                "a client certificate needs its key: set OTEL_EXPORTER_OTLP_CLIENT_KEY too",
            ));
        }
        (None, Some(path)) => {
            return Err(SetupError::new(
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                &path.display().to_string(),
                "a client key needs its certificate: set OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE too",
            ));
        }
        (None, None) => {}
    }
    if !cfg!(feature = "tls") {
        return Err(SetupError::new(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            &crate::setup::env::without_credentials(&settings.endpoint),
            "TLS (an https:// endpoint or certificates) needs the `tls` feature of workflow-otel",
        ));
    }
    Ok(loaded)
}

#[cfg(feature = "tls")]
fn check_certificates(setting: &str, path: &std::path::Path, pem: &[u8]) -> Result<(), SetupError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let mut count = 0;
    for certificate in CertificateDer::pem_slice_iter(pem) {
        certificate.map_err(|error| {
            SetupError::new(
                setting,
                &path.display().to_string(),
                format!("not a PEM certificate: {error}"),
            )
        })?;
        count += 1;
    }
    if count == 0 {
        return Err(SetupError::new(
            setting,
            &path.display().to_string(),
            "the file holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(())
}

#[cfg(not(feature = "tls"))]
fn check_certificates(_: &str, _: &std::path::Path, _: &[u8]) -> Result<(), SetupError> {
    Ok(())
}

#[cfg(feature = "tls")]
fn check_key(path: &std::path::Path, pem: &[u8]) -> Result<(), SetupError> {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject as _;
    // The error says what is wrong with the file, never what is in it.
    PrivateKeyDer::from_pem_slice(pem).map(|_| ()).map_err(|_| {
        SetupError::new(
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            &path.display().to_string(),
            "the file holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
        )
    })
}

#[cfg(not(feature = "tls"))]
fn check_key(_: &std::path::Path, _: &[u8]) -> Result<(), SetupError> {
    Ok(())
}

/// The client key belongs to the client certificate (their public keys are
/// the same), and rustls can use it: said at setup, naming both files, not
/// at the first export as a transport error.
#[cfg(feature = "tls")]
fn check_identity(
    (certificate_path, certificate_pem): (&std::path::Path, &[u8]),
    (key_path, key_pem): (&std::path::Path, &[u8]),
) -> Result<(), SetupError> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let fail = |reason: String| {
        SetupError::new(
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            &key_path.display().to_string(),
            reason,
        )
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(certificate_pem)
        .filter_map(Result::ok)
        .collect();
    let Ok(key) = PrivateKeyDer::from_pem_slice(key_pem) else {
        return Ok(());
    };
    let provider = rustls::crypto::ring::default_provider();
    match rustls::sign::CertifiedKey::from_der(chain, key, &provider) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(fail(format!(
                "the key does not belong to the client certificate {} \
                 (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE): their public keys differ",
                certificate_path.display()
            )))
        }
        // rustls names what it cannot use, never the key's bytes.
        Err(error) => Err(fail(format!(
            "the key cannot be used with the client certificate {}: {error}",
            certificate_path.display()
        ))),
    }
}

#[cfg(not(feature = "tls"))]
fn check_identity(
    _: (&std::path::Path, &[u8]),
    _: (&std::path::Path, &[u8]),
) -> Result<(), SetupError> {
    Ok(())
}

/// Makes ring the process's rustls provider, unless one is installed. With
/// this feature reqwest is built without a provider of its own, and building
/// any client, even for plain HTTP, needs one.
#[cfg(feature = "tls")]
pub(crate) fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The gRPC client's TLS: system roots, plus the CA and identity given.
#[cfg(feature = "tls")]
pub(crate) fn tonic_config(loaded: &LoadedTls) -> tonic::transport::ClientTlsConfig {
    install_provider();
    let mut config = tonic::transport::ClientTlsConfig::new().with_native_roots();
    if let Some(ca) = &loaded.ca {
        config = config.ca_certificate(tonic::transport::Certificate::from_pem(ca));
    }
    if let Some((certificate, key)) = &loaded.identity {
        config = config.identity(tonic::transport::Identity::from_pem(certificate, key));
    }
    config
}

/// An HTTP client with the system roots, plus the CA and identity given.
#[cfg(feature = "tls")]
pub(crate) fn reqwest_client(
    loaded: &LoadedTls,
    settings: &OtlpSettings,
) -> Result<reqwest::Client, SetupError> {
    install_provider();
    let fail = |reason: String| {
        SetupError::new(
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            &crate::setup::env::without_credentials(&settings.endpoint),
            reason,
        )
    };
    let mut builder = reqwest::Client::builder().timeout(settings.timeout);
    if let Some(ca) = &loaded.ca {
        for certificate in reqwest::Certificate::from_pem_bundle(ca)
            .map_err(|error| fail(format!("the CA certificate cannot be used: {error}")))?
        {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let Some((certificate, key)) = &loaded.identity {
        let mut pem = certificate.clone();
        pem.push(b'\n');
        pem.extend_from_slice(key);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|error| {
            fail(format!(
                "the client certificate and key cannot be used: {error}"
            ))
        })?;
        builder = builder.identity(identity);
    }
    builder
        .build()
        .map_err(|error| fail(format!("cannot build the TLS client: {error}")))
}
