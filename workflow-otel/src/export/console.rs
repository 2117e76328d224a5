//! The console exporter: prints each trace as a tree once its root span ends.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::{Future, ready};
use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::view::tree::SpanTree;

/// How many finished spans wait for their root before the oldest trace is dropped.
pub const DEFAULT_MAX_PENDING_SPANS: usize = 4096;

/// A [`SpanExporter`] that prints a readable tree per trace:
///
/// ```text
/// trace 5b8aa5a2d2c872e8321cf37308d69df2
/// workflow handle_order [12.3ms] ✓
/// ├── step validate [1.2ms] ✓
/// ├── workflow bill [5.0ms] ✗ card declined
/// │   └── step charge [4.9ms] ✗ card declined
/// └── step notify [310µs] ✓
/// ```
///
/// Spans arrive children first; they wait (up to
/// [`DEFAULT_MAX_PENDING_SPANS`]) until their trace's root ends, then the whole
/// tree is printed at once. The parts of a trace whose root is in another
/// process are printed half a second after their last span came (at the next
/// export). Spans still waiting at flush or shutdown are printed as they are. When the limit is reached the oldest waiting trace is
/// dropped, counted in [`dropped_spans`](Self::dropped_spans), and reported on
/// stderr at shutdown: never silently.
pub struct ConsoleExporter {
    writer: Mutex<Box<dyn Write + Send>>,
    /// Traces printed lately, to mark spans that end after their root as a
    /// late part of a trace already shown.
    printed: Mutex<RecentTraces>,
    pending: Mutex<Pending>,
    max_pending: usize,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Pending {
    spans: HashMap<TraceId, Vec<SpanData>>,
    arrival: VecDeque<TraceId>,
    /// Traces of which only parts with a remote parent are here (this process
    /// serves another's trace), with when their last span came.
    remote_only: HashMap<TraceId, Instant>,
    count: usize,
}

/// How long a trace with no root of its own here waits for more spans before
/// it is printed: a service handling remote calls never sees the root.
const REMOTE_TRACE_HOLD: Duration = Duration::from_millis(500);

impl ConsoleExporter {
    /// Prints to standard output.
    pub fn new() -> Self {
        Self::with_writer(io::stdout())
    }

    /// Prints to `writer`.
    pub fn with_writer(writer: impl Write + Send + 'static) -> Self {
        ConsoleExporter {
            writer: Mutex::new(Box::new(writer)),
            printed: Mutex::new(RecentTraces::default()),
            pending: Mutex::new(Pending::default()),
            max_pending: DEFAULT_MAX_PENDING_SPANS,
            dropped: AtomicU64::new(0),
        }
    }

    /// Sets how many spans may wait for their root (at least 1).
    pub fn max_pending_spans(mut self, limit: usize) -> Self {
        self.max_pending = limit.max(1);
        self
    }

    /// Spans dropped because too many were waiting for their root.
    pub fn dropped_spans(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn accept(&self, batch: Vec<SpanData>) -> io::Result<()> {
        let mut complete = Vec::new();
        {
            let mut guard = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let pending = &mut *guard;
            let now = Instant::now();
            for span in batch {
                let trace_id = span.span_context.trace_id();
                let is_root = span.parent_span_id == SpanId::INVALID;
                if span.parent_span_is_remote {
                    pending.remote_only.insert(trace_id, now);
                }
                let waiting = pending.spans.entry(trace_id).or_default();
                if waiting.is_empty() {
                    pending.arrival.push_back(trace_id);
                }
                waiting.push(span);
                pending.count += 1;
                // The whole trace is here once its root is: print it at once.
                if is_root && let Some(spans) = pending.take(trace_id) {
                    complete.push(spans);
                }
            }
            let idle: Vec<TraceId> = pending
                .remote_only
                .iter()
                .filter(|(_, seen)| now.duration_since(**seen) >= REMOTE_TRACE_HOLD)
                .map(|(trace_id, _)| *trace_id)
                .collect();
            for trace_id in idle {
                if let Some(spans) = pending.take(trace_id) {
                    complete.push(spans);
                }
            }
            while pending.count > self.max_pending {
                match pending.arrival.front().copied() {
                    Some(oldest) => {
                        let dropped = pending.take(oldest).map_or(0, |spans| spans.len());
                        self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
                    }
                    None => break,
                }
            }
        }
        for spans in complete {
            self.print(spans)?;
        }
        Ok(())
    }

    fn print(&self, spans: Vec<SpanData>) -> io::Result<()> {
        let trace_id = spans.first().map(|span| span.span_context.trace_id());
        let tree = SpanTree::from_spans(spans);
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(trace_id) = trace_id {
            let seen = self
                .printed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(trace_id);
            if seen {
                writeln!(
                    writer,
                    "trace {trace_id} (late part: spans that ended after the tree above was printed)"
                )?;
            } else {
                writeln!(writer, "trace {trace_id}")?;
            }
        }
        writer.write_all(tree.render_console().as_bytes())?;
        writer.flush()
    }

    fn print_waiting(&self) -> io::Result<()> {
        let waiting: Vec<Vec<SpanData>> = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let order: Vec<TraceId> = pending.arrival.iter().copied().collect();
            order
                .into_iter()
                .filter_map(|trace| pending.take(trace))
                .collect()
        };
        for spans in waiting {
            self.print(spans)?;
        }
        Ok(())
    }
}

/// How many printed traces are remembered for marking late parts.
const REMEMBERED_TRACES: usize = 1024;

#[derive(Default)]
struct RecentTraces {
    order: VecDeque<TraceId>,
    set: HashSet<TraceId>,
}

impl RecentTraces {
    /// Remembers `trace_id`; whether it was printed before.
    fn insert(&mut self, trace_id: TraceId) -> bool {
        if self.set.contains(&trace_id) {
            return true;
        }
        if self.order.len() == REMEMBERED_TRACES
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        self.order.push_back(trace_id);
        self.set.insert(trace_id);
        false
    }
}

impl Pending {
    fn take(&mut self, trace_id: TraceId) -> Option<Vec<SpanData>> {
        self.remote_only.remove(&trace_id);
        let spans = self.spans.remove(&trace_id)?;
        self.arrival.retain(|waiting| *waiting != trace_id);
        self.count -= spans.len();
        Some(spans)
    }
}

impl Default for ConsoleExporter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ConsoleExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleExporter")
            .field("max_pending", &self.max_pending)
            .field("dropped", &self.dropped_spans())
            .finish_non_exhaustive()
    }
}

fn io_error(error: io::Error) -> opentelemetry_sdk::error::OTelSdkError {
    opentelemetry_sdk::error::OTelSdkError::InternalFailure(format!("console exporter: {error}"))
}

impl SpanExporter for ConsoleExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        ready(self.accept(batch).map_err(io_error))
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.print_waiting().map_err(io_error)
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        let printed = self.print_waiting().map_err(io_error);
        let dropped = self.dropped_spans();
        if dropped > 0 {
            eprintln!(
                "workflow-otel console exporter: dropped {dropped} spans whose trace root did not \
                 end while {} spans were waiting",
                self.max_pending
            );
        }
        printed
    }
}
