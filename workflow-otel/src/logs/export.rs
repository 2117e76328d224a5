//! OpenTelemetry log records: an OTLP log exporter driven by a runtime of
//! its own (like the span exporter), and the accounts of what was emitted,
//! exported and lost, so that a failing backend is never silent.

use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(feature = "otlp")]
use std::{
    fmt,
    future::{Future, ready},
    sync::Arc,
    time::Duration,
};

#[cfg(feature = "otlp")]
use opentelemetry::InstrumentationScope;
#[cfg(feature = "otlp")]
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    logs::{LogBatch, LogExporter, LogProcessor, SdkLogRecord},
};

/// Log records emitted, exported, and given up on.
#[derive(Debug, Default)]
pub(crate) struct LogAccounts {
    pub(crate) emitted: AtomicU64,
    pub(crate) exported: AtomicU64,
}

impl LogAccounts {
    /// Records emitted and not exported: dropped by a full queue, a failed
    /// export, or shutdown's deadline.
    pub(crate) fn lost(&self) -> u64 {
        self.emitted
            .load(Ordering::Relaxed)
            .saturating_sub(self.exported.load(Ordering::Relaxed))
    }
}

/// Counts what goes into the SDK's batch processor.
#[cfg(feature = "otlp")]
#[derive(Debug)]
pub(crate) struct CountingProcessor<P> {
    pub(crate) inner: P,
    pub(crate) accounts: Arc<LogAccounts>,
}

#[cfg(feature = "otlp")]
impl<P: LogProcessor> LogProcessor for CountingProcessor<P> {
    fn emit(&self, data: &mut SdkLogRecord, instrumentation: &InstrumentationScope) {
        self.accounts.emitted.fetch_add(1, Ordering::Relaxed);
        self.inner.emit(data, instrumentation);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Counts what an exporter delivered.
#[cfg(feature = "otlp")]
#[derive(Debug)]
pub(crate) struct CountingExporter<E> {
    pub(crate) inner: E,
    pub(crate) accounts: Arc<LogAccounts>,
}

#[cfg(feature = "otlp")]
impl<E: LogExporter> LogExporter for CountingExporter<E> {
    fn export(&self, batch: LogBatch<'_>) -> impl Future<Output = OTelSdkResult> + Send {
        let count = batch.iter().count() as u64;
        let accounts = self.accounts.clone();
        let export = self.inner.export(batch);
        async move {
            let result = export.await;
            if result.is_ok() {
                accounts.exported.fetch_add(count, Ordering::Relaxed);
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// `builder` set up for `settings` over gRPC.
#[cfg(feature = "otlp")]
fn with_tonic<B: opentelemetry_otlp::WithExportConfig + opentelemetry_otlp::WithTonicConfig>(
    builder: B,
    settings: &crate::export::OtlpSettings,
    headers: http::HeaderMap,
    tls: Option<&crate::export::tls::LoadedTls>,
) -> B {
    #[cfg(feature = "tls")]
    let builder = match tls {
        Some(tls) => builder.with_tls_config(crate::export::tls::tonic_config(tls)),
        None => builder,
    };
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    let mut builder = builder
        .with_endpoint(settings.endpoint.clone())
        .with_timeout(settings.timeout)
        .with_metadata(
            opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers),
        );
    if settings.gzip {
        builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    builder
}

/// `builder` set up for `settings` over HTTP, protobuf or JSON.
#[cfg(feature = "otlp")]
fn with_http<B: opentelemetry_otlp::WithExportConfig + opentelemetry_otlp::WithHttpConfig>(
    builder: B,
    settings: &crate::export::OtlpSettings,
    tls: Option<&crate::export::tls::LoadedTls>,
) -> Result<B, crate::SetupError> {
    #[cfg(feature = "tls")]
    let builder = match tls {
        Some(tls) => builder.with_http_client(crate::export::tls::reqwest_client(tls, settings)?),
        None => builder,
    };
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    let protocol = if settings.protocol == crate::export::OtlpProtocol::HttpJson {
        opentelemetry_otlp::Protocol::HttpJson
    } else {
        opentelemetry_otlp::Protocol::HttpBinary
    };
    let headers: std::collections::HashMap<String, String> =
        settings.headers.iter().cloned().collect();
    let mut builder = builder
        .with_protocol(protocol)
        .with_endpoint(settings.endpoint.clone())
        .with_timeout(settings.timeout)
        .with_headers(headers);
    if settings.gzip {
        builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    Ok(builder)
}

/// Sends log records to an OTLP endpoint over gRPC, HTTP/protobuf or
/// HTTP/JSON, from a one-thread runtime of its own, each export within the
/// settings' timeout.
#[cfg(feature = "otlp")]
pub(crate) struct OtlpLogExporter {
    runtime: Option<tokio::runtime::Runtime>,
    inner: opentelemetry_otlp::LogExporter,
    timeout: Duration,
    endpoint: String,
}

#[cfg(feature = "otlp")]
impl OtlpLogExporter {
    pub(crate) fn new(
        settings: &crate::export::OtlpSettings,
    ) -> Result<OtlpLogExporter, crate::SetupError> {
        use crate::export::OtlpProtocol;
        use crate::export::otlp::{ENDPOINT_SETTING, exporter_runtime, header_map, tls_for};
        let runtime = exporter_runtime("workflow-otel-otlp-logs", settings)?;
        let headers = header_map(settings)?;
        let tls = tls_for(settings)?;
        let entered = runtime.enter();
        let built = match settings.protocol {
            OtlpProtocol::Grpc => with_tonic(
                opentelemetry_otlp::LogExporter::builder().with_tonic(),
                settings,
                headers,
                tls.as_ref(),
            )
            .build(),
            OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => with_http(
                opentelemetry_otlp::LogExporter::builder().with_http(),
                settings,
                tls.as_ref(),
            )?
            .build(),
        };
        drop(entered);
        let inner = built.map_err(|error| {
            crate::SetupError::new(
                ENDPOINT_SETTING,
                &settings.endpoint,
                format!("cannot build the OTLP log exporter: {error}"),
            )
        })?;
        Ok(OtlpLogExporter {
            runtime: Some(runtime),
            inner,
            timeout: settings.timeout,
            endpoint: settings.endpoint.clone(),
        })
    }
}

#[cfg(feature = "otlp")]
impl LogExporter for OtlpLogExporter {
    fn export(&self, batch: LogBatch<'_>) -> impl Future<Output = OTelSdkResult> + Send {
        let timeout = self.timeout;
        let result = match &self.runtime {
            Some(runtime) => runtime.block_on(async {
                match tokio::time::timeout(timeout, self.inner.export(batch)).await {
                    Ok(result) => result,
                    Err(_) => Err(OTelSdkError::Timeout(timeout)),
                }
            }),
            None => Err(OTelSdkError::AlreadyShutdown),
        };
        ready(result)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _entered = self.runtime.as_ref().map(|runtime| runtime.enter());
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(feature = "otlp")]
impl Drop for OtlpLogExporter {
    fn drop(&mut self) {
        // Never blocks: pending connections are abandoned.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(feature = "otlp")]
impl fmt::Debug for OtlpLogExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpLogExporter")
            .field(
                "endpoint",
                &crate::setup::env::without_credentials(&self.endpoint),
            )
            .finish_non_exhaustive()
    }
}
