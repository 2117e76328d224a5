//! The guard `setup()` returns: what it keeps running (the pipeline, the
//! tracer provider, the metrics endpoint and push thread, the log provider)
//! and how it stops them, within the shutdown timeout.

use std::time::Duration;

use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::pipeline::Pipeline;
use crate::record::instrumentation::Instrumentation;
#[cfg(feature = "logs")]
use crate::setup::logs;
use crate::setup::metrics;

/// Exports what is left and shuts the pipeline down when dropped, within the
/// pipeline's shutdown timeout (5 s by default) whatever the backend does.
///
/// Keep it for as long as the program runs workflows: `let _telemetry =
/// setup().install();` in `main`. Dropped at once (`let _ = ...` or a bare
/// statement), it shuts telemetry down before anything is recorded, and the
/// first workflow that runs afterwards says so on stderr. Kept where it is
/// never dropped (a `static`), or left behind by [`std::process::exit`], its
/// pipeline is flushed when the process exits; [`crate::flush`] does the same
/// on demand.
#[derive(Debug)]
#[must_use = "dropping the guard shuts telemetry down at once and nothing is exported: \
              keep it alive with `let _telemetry = ...` until the program ends"]
pub struct TelemetryGuard {
    pub(super) pipeline: Pipeline,
    pub(super) provider: SdkTracerProvider,
    pub(super) metrics: metrics::RunningMetrics,
    #[cfg(feature = "logs")]
    pub(super) logs: logs::RunningLogs,
    pub(super) shutdown_timeout: Duration,
}

impl TelemetryGuard {
    /// Exports every span ended so far (with the console exporter: prints the
    /// trees of finished traces now) and waits for the exporter, at most the
    /// pipeline's shutdown timeout.
    /// Pushed metrics (OTLP, console) are sent now as well.
    ///
    /// The three signals flush at once, each within the shutdown timeout:
    /// a backend that hangs holds up the flush no longer than that.
    pub fn flush(&self) {
        std::thread::scope(|scope| {
            if let Some(push) = &self.metrics.push {
                scope.spawn(|| push.flush());
            }
            #[cfg(feature = "logs")]
            scope.spawn(|| self.logs.flush());
            if let Err(error) = self.pipeline.force_flush() {
                eprintln!("workflow-otel: flushing the pipeline failed: {error}");
            }
        });
    }

    /// Log records emitted and not exported so far (OTLP logs): dropped by a
    /// full queue, a failed export, or the shutdown deadline.
    #[cfg(feature = "logs")]
    #[cfg_attr(docsrs, doc(cfg(feature = "logs")))]
    pub fn lost_log_records(&self) -> u64 {
        self.logs.lost()
    }

    /// Where the Prometheus endpoint listens, if it was asked for.
    pub fn prometheus_address(&self) -> Option<std::net::SocketAddr> {
        self.metrics.prometheus_address()
    }

    /// The pipeline spans go to.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The SDK provider installed as OpenTelemetry's global provider; its
    /// spans go to the same pipeline.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if Instrumentation::uninstall_if_for(&self.pipeline) {
            crate::record::instrumentation::guard_dropped();
        }
        // The provider first: its spans still flow into the pipeline. Its
        // processors hold nothing (ours forwards each span at once), so this
        // takes no time; the pipeline's shutdown is what is bounded.
        // The last metrics push runs on its own thread while the pipeline
        // shuts down: both within the shutdown timeout, not one after the other.
        if let Some(push) = &self.metrics.push {
            push.stop();
        }
        let _ = self.provider.shutdown();
        let timeout = self.shutdown_timeout;
        #[cfg(feature = "logs")]
        let logs = &mut self.logs;
        let pipeline = &self.pipeline;
        let metrics = std::mem::take(&mut self.metrics);
        std::thread::scope(|scope| {
            // Log records and the last metrics push go out while the
            // pipeline shuts down, each within the same bound.
            #[cfg(feature = "logs")]
            scope.spawn(move || logs.shutdown(timeout));
            // Waits for the push thread (at most the bound) and closes the endpoint.
            scope.spawn(move || drop(metrics));
            let _ = timeout;
            if let Err(error) = pipeline.shutdown() {
                eprintln!("workflow-otel: shutting the pipeline down failed: {error}");
            }
        });
    }
}
