//! The push side: a thread that sends the totals every export interval (over
//! OTLP, or printed to the console), once more when asked to flush, and a
//! last time at shutdown, each bounded by a timeout.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::KeyValue;

use crate::metrics::encode::{self, Format, Snapshot};

/// Where pushed metrics go.
#[derive(Debug)]
pub(crate) enum PushTarget {
    #[cfg(feature = "otlp")]
    Otlp(Box<crate::metrics::otlp::OtlpMetricsExporter>),
    /// The Prometheus text, printed to stdout.
    Console(Vec<KeyValue>),
}

impl PushTarget {
    fn push(
        &self,
        snapshot: &Snapshot,
        started: SystemTime,
        timeout: Duration,
    ) -> Result<(), String> {
        match self {
            #[cfg(feature = "otlp")]
            PushTarget::Otlp(exporter) => exporter.export(snapshot, started, timeout),
            PushTarget::Console(resource) => {
                let _ = (started, timeout);
                use std::io::Write as _;
                let text = encode::encode(snapshot, Format::Prometheus, resource);
                std::io::stdout()
                    .lock()
                    .write_all(text.as_bytes())
                    .map_err(|error| error.to_string())
            }
        }
    }

    fn name(&self) -> String {
        match self {
            #[cfg(feature = "otlp")]
            PushTarget::Otlp(exporter) => format!("OTLP metrics export to {}", exporter.endpoint()),
            PushTarget::Console(_) => "metrics export to the console".to_owned(),
        }
    }
}

#[derive(Debug, Default)]
struct Control {
    stop: bool,
    /// Flushes asked for, and done: a flush waits until `done` reaches its number.
    asked: u64,
    done: u64,
    /// The thread has returned (after its last push, or a panic).
    ended: bool,
}

/// Counts of pushes, for the shutdown report and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PushCounts {
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
}

#[derive(Debug)]
struct Shared {
    control: Mutex<Control>,
    wake: Condvar,
    counts: Mutex<PushCounts>,
}

/// The running push thread; a last push, then stops, when dropped.
#[derive(Debug)]
pub(crate) struct PeriodicExport {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// How long a flush waits: the push timeout, within the shutdown bound.
    flush_timeout: Duration,
    shutdown_timeout: Duration,
}

/// How often a failing push is reported on stderr, at most.
const REPORT_INTERVAL: Duration = Duration::from_secs(60);

impl PeriodicExport {
    /// Pushes to `targets` every `interval`, each push within `timeout`.
    /// The last push, at shutdown, gets `shutdown_timeout` at most.
    pub(crate) fn start(
        targets: Vec<PushTarget>,
        interval: Duration,
        timeout: Duration,
        shutdown_timeout: Duration,
    ) -> std::io::Result<PeriodicExport> {
        let shared = Arc::new(Shared {
            control: Mutex::new(Control::default()),
            wake: Condvar::new(),
            counts: Mutex::new(PushCounts::default()),
        });
        let thread = std::thread::Builder::new()
            .name("workflow-otel-metrics".to_owned())
            .spawn({
                let shared = shared.clone();
                move || {
                    let _ended = Ended(&shared);
                    run(&shared, &targets, interval, timeout, shutdown_timeout);
                }
            })?;
        let flush_timeout = timeout.min(shutdown_timeout);
        *lock(&CURRENT) = (Arc::downgrade(&shared), flush_timeout);
        Ok(PeriodicExport {
            shared,
            thread: Some(thread),
            flush_timeout,
            shutdown_timeout,
        })
    }

    /// Pushes now and waits for it, at most the push timeout and the
    /// shutdown bound: a push that hangs holds up no flush past it.
    pub(crate) fn flush(&self) {
        flush_shared(&self.shared, self.flush_timeout);
    }

    /// Stops the thread after a last push, without waiting for it.
    pub(crate) fn stop(&self) {
        lock(&self.shared.control).stop = true;
        self.shared.wake.notify_all();
    }

    pub(crate) fn counts(&self) -> PushCounts {
        *lock(&self.shared.counts)
    }
}

/// The push thread `setup()` started last, for [`crate::flush`].
static CURRENT: Mutex<(std::sync::Weak<Shared>, Duration)> =
    Mutex::new((std::sync::Weak::new(), Duration::ZERO));

/// Pushes through the running push thread, if any, and waits for it.
pub(crate) fn flush_current() {
    let (shared, timeout) = {
        let current = lock(&CURRENT);
        (current.0.upgrade(), current.1)
    };
    if let Some(shared) = shared {
        flush_shared(&shared, timeout);
    }
}

fn flush_shared(shared: &Shared, timeout: Duration) {
    let mut control = lock(&shared.control);
    control.asked += 1;
    let ticket = control.asked;
    shared.wake.notify_all();
    let _ = shared
        .wake
        .wait_timeout_while(control, timeout + Duration::from_millis(100), |control| {
            control.done < ticket && !control.stop
        })
        .unwrap_or_else(|poisoned| poisoned.into_inner());
}

/// Marks the thread ended when it returns or unwinds.
struct Ended<'a>(&'a Shared);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        lock(&self.0.control).ended = true;
        self.0.wake.notify_all();
    }
}

impl Drop for PeriodicExport {
    fn drop(&mut self) {
        self.stop();
        // The last push is bounded by the shutdown timeout, but a push that
        // was already under way has its own (longer) one: wait for the
        // thread no longer than the bound, then let it go.
        let control = self
            .shared
            .wake
            .wait_timeout_while(
                lock(&self.shared.control),
                self.shutdown_timeout + Duration::from_millis(100),
                |control| !control.ended,
            )
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0;
        let ended = control.ended;
        drop(control);
        match self.thread.take() {
            Some(thread) if ended => {
                let _ = thread.join();
            }
            _ => eprintln!(
                "workflow-otel: a metrics push was still under way after the shutdown bound \
                 ({:?}); it is left to finish or time out on its own, and the totals since \
                 the last push that succeeded may not reach the backend",
                self.shutdown_timeout
            ),
        }
        let counts = self.counts();
        if counts.failed > 0 {
            eprintln!(
                "workflow-otel: {} of {} metric pushes failed",
                counts.failed,
                counts.failed + counts.succeeded
            );
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn run(
    shared: &Shared,
    targets: &[PushTarget],
    interval: Duration,
    timeout: Duration,
    shutdown_timeout: Duration,
) {
    let started =
        crate::metrics::series::state().map_or_else(SystemTime::now, |state| state.started);
    let mut next = Instant::now() + interval;
    let mut last_report: Option<Instant> = None;
    loop {
        let (stopping, ticket) = {
            let mut control = lock(&shared.control);
            loop {
                if control.stop || control.asked > control.done {
                    break;
                }
                let left = next.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                control = shared
                    .wake
                    .wait_timeout(control, left)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            }
            (control.stop, control.asked)
        };
        let snapshot = encode::snapshot();
        let timeout = if stopping {
            timeout.min(shutdown_timeout)
        } else {
            timeout
        };
        for target in targets {
            let result = target.push(&snapshot, started, timeout);
            let mut counts = lock(&shared.counts);
            match result {
                Ok(()) => counts.succeeded += 1,
                Err(error) => {
                    counts.failed += 1;
                    let due = last_report.is_none_or(|at| at.elapsed() >= REPORT_INTERVAL);
                    if due || stopping {
                        eprintln!(
                            "workflow-otel: {} failed ({} failed so far): {error}; \
                             the totals go out with the next export",
                            target.name(),
                            counts.failed,
                            error = crate::terminal_safe(&error),
                        );
                        last_report = Some(Instant::now());
                    }
                }
            }
        }
        next = Instant::now() + interval;
        let mut control = lock(&shared.control);
        control.done = control.done.max(ticket);
        shared.wake.notify_all();
        if stopping {
            return;
        }
    }
}
