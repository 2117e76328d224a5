//! The ends of a program's telemetry that no destructor sees: a guard kept in
//! a `static`, `std::process::exit`, or a guard dropped at once by mistake.
//!
//! `setup()` registers one C `atexit` handler per process, which flushes the
//! installed pipeline (bounded by its shutdown timeout) when the process
//! exits normally, whether `main` returned or `std::process::exit` was
//! called. A program whose guard is gone but whose workflows still run is
//! told so once on stderr, instead of exporting nothing in silence.

use std::sync::Once;

use crate::record::instrumentation::Instrumentation;

static AT_EXIT: Once = Once::new();

unsafe extern "C" {
    /// From the C library every Rust program on a hosted target links.
    fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
}

extern "C" fn flush_at_exit() {
    // Never unwind into C.
    let _ = std::panic::catch_unwind(flush);
}

/// `setup()` installed a pipeline as the default.
pub(crate) fn installed() {
    AT_EXIT.call_once(|| {
        // SAFETY: `flush_at_exit` is an `extern "C" fn()` that never unwinds;
        // registering it has no other precondition.
        let registered = unsafe { atexit(flush_at_exit) };
        if registered != 0 {
            eprintln!(
                "workflow-otel: cannot register the exit flush; call workflow_otel::flush() \
                 before std::process::exit"
            );
        }
    });
}

/// Exports every span ended so far through the installed pipeline (and pushes
/// metrics and log records, if they are exported) and waits
/// for the exporter, at most the pipeline's shutdown timeout (5 s by
/// default). For programs that keep the guard where it is never dropped (a
/// `static`) or that leave through [`std::process::exit`]: both are flushed
/// at exit automatically, and this makes it explicit, e.g. before `exit` in
/// a signal handler's thread. Does nothing when no pipeline is installed.
///
/// ```
/// let telemetry = workflow_otel::setup().console().install();
/// // ... workflows ...
/// workflow_otel::flush();
/// # drop(telemetry);
/// ```
pub fn flush() {
    if let Some(instrumentation) = Instrumentation::installed() {
        let pipeline = instrumentation.pipeline();
        if let Err(error) = pipeline.force_flush() {
            eprintln!("workflow-otel: flush failed: {error}");
        }
        // What could not be exported is said now: at exit, the worker's
        // own report (once per interval) may never come.
        pipeline.report_drops(None);
    }
    crate::metrics::periodic::flush_current();
    #[cfg(feature = "logs")]
    crate::setup::logs::flush_current();
}
