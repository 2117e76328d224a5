//! The export pipeline: a bounded queue from every calling thread to one
//! worker thread that batches the records and exports them: the built-in
//! exporters encode them as they are, any other `opentelemetry_sdk`
//! [`SpanExporter`] gets them as `SpanData`.
//!
//! The calling thread only moves a small record into the queue: no lock, no
//! allocation, no syscall (the worker is woken once per batch, not per span).
//! When the queue is full the span is dropped and counted, never waited for,
//! so a slow or dead backend cannot slow the program down. Spans that other
//! code opens through the OpenTelemetry SDK join the same queue through
//! [`Pipeline::span_processor`].

mod batch;
mod buffer;
mod config;
pub(crate) mod error_text;
pub(crate) mod limits;
pub(crate) mod tail;
mod worker;

pub(crate) use batch::{ExportFuture, Item, NativeExport, Records, native_of};
use buffer::SpareBuffers;
pub(crate) use buffer::{flush_thread_buffer, submit};
pub use config::{DropReport, MAX_QUEUE_SIZE, PipelineConfig, report_to_stderr};
pub use limits::SpanLimits;
pub use tail::{SAMPLING_REASON, TailSampling};
use worker::Worker;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use crate::record::raw::RawSpan;

/// A batch in the queue. It counts itself as dropped if it is discarded
/// without being taken, so every way a queued span can be lost (a channel
/// closed at shutdown, a pipeline abandoned past its deadline) is counted.
struct Queued {
    message: Option<Message>,
    counters: Arc<Counters>,
}

enum Message {
    Ours(Vec<RawSpan>),
    Foreign(Box<SpanData>),
}

impl Message {
    fn len(&self) -> usize {
        match self {
            Message::Ours(spans) => spans.len(),
            Message::Foreign(_) => 1,
        }
    }
}

impl Queued {
    /// Takes the spans out of the queue's count; the taker now accounts for them.
    fn take(mut self) -> Option<Message> {
        let message = self.message.take()?;
        self.counters
            .pending
            .fetch_sub(message.len(), Ordering::Relaxed);
        Some(message)
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        if let Some(message) = self.message.take() {
            let count = message.len();
            self.counters.pending.fetch_sub(count, Ordering::Relaxed);
            self.counters
                .dropped
                .fetch_add(count as u64, Ordering::Relaxed);
        }
    }
}

/// A flush or shutdown asked of the worker, with the time by which the
/// caller stops waiting for its answer.
enum Control {
    Flush(SyncSender<OTelSdkResult>, Instant),
    Shutdown(SyncSender<OTelSdkResult>, Instant),
}

impl Control {
    fn deadline(&self) -> Instant {
        match self {
            Control::Flush(_, deadline) | Control::Shutdown(_, deadline) => *deadline,
        }
    }
}

/// Counters shared by the callers and the worker. Every span recorded is in
/// exactly one place: `pending` (queued), `in_flight` (taken by the worker,
/// not yet settled), `exported` or `dropped`.
#[derive(Debug, Default)]
struct Counters {
    pending: AtomicUsize,
    in_flight: AtomicU64,
    dropped: AtomicU64,
    exported: AtomicU64,
    /// A flush or shutdown is waiting: the worker takes its deadline at the
    /// next batch, even in the middle of exporting a long queue.
    urgent: AtomicBool,
    /// Times the worker woke up: an idle worker must not spin.
    wakeups: AtomicU64,
    /// Drops already reported (by the worker, or by a shutdown that gave up
    /// waiting for it).
    reported: AtomicU64,
    /// Spans tail sampling decided not to keep: not losses, not reported.
    tail_dropped: AtomicU64,
}

impl Counters {
    /// The worker settles `count` spans that tail sampling dropped.
    fn settle_tail_dropped(&self, count: u64) {
        if count == 0 {
            return;
        }
        let taken = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |in_flight| {
                in_flight.checked_sub(count)
            });
        if taken.is_ok() {
            self.tail_dropped.fetch_add(count, Ordering::Relaxed);
        }
    }

    /// The worker settles `count` spans it took, unless a shutdown that gave
    /// up waiting has already counted them as dropped.
    fn settle(&self, count: u64, exported: bool) {
        let taken = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |in_flight| {
                in_flight.checked_sub(count)
            });
        if taken.is_ok() {
            let counter = if exported {
                &self.exported
            } else {
                &self.dropped
            };
            counter.fetch_add(count, Ordering::Relaxed);
        }
    }
}

/// The receiving end of the queue, shared so that a shutdown past its
/// deadline can close it (and so count what is left) while the worker is
/// stuck in an export.
type SharedReceiver = Arc<Mutex<Option<Receiver<Queued>>>>;

struct Shared {
    data: Sender<Queued>,
    receiver: SharedReceiver,
    control: Mutex<Sender<Control>>,
    counters: Arc<Counters>,
    capacity: usize,
    wake_at: usize,
    shutdown_timeout: Duration,
    worker: Thread,
    shut_down: AtomicBool,
    /// Whether spans ended after shutdown were reported once on stderr.
    reported_late: AtomicBool,
    spare: Arc<SpareBuffers>,
    drop_report: fn(&DropReport),
    limits: SpanLimits,
}

/// Where finished spans go: a queue and a worker thread in front of one
/// [`SpanExporter`]. Cheap to clone; all clones feed the same worker.
///
/// ```
/// use workflow_otel::{ConsoleExporter, Instrumentation, Pipeline, step};
///
/// #[step]
/// fn resize(width: u32) -> u32 { width / 2 }
///
/// let pipeline = Pipeline::new(ConsoleExporter::new());
/// Instrumentation::new(&pipeline).run(|| resize(640));
/// pipeline.shutdown().unwrap(); // exports what is queued, then stops the worker
/// assert_eq!(pipeline.exported_spans() + pipeline.dropped_spans(), 1);
/// ```
#[derive(Clone)]
pub struct Pipeline {
    shared: Arc<Shared>,
}

impl Pipeline {
    /// A pipeline with the default [`PipelineConfig`] and an empty resource.
    pub fn new<E: SpanExporter + 'static>(exporter: E) -> Pipeline {
        Self::with_config(exporter, PipelineConfig::default(), None)
    }

    /// A pipeline with explicit settings; `resource` is handed to the exporter.
    /// Sizes are clamped to what works: at least 1, a queue of at most
    /// [`MAX_QUEUE_SIZE`], a batch no larger than the queue.
    pub fn with_config<E: SpanExporter + 'static>(
        mut exporter: E,
        config: PipelineConfig,
        resource: Option<Resource>,
    ) -> Pipeline {
        crate::record::ids::init_clock();
        if let Some(resource) = &resource {
            exporter.set_resource(resource);
        }
        let capacity = config.max_queue_size.clamp(1, MAX_QUEUE_SIZE);
        let batch_size = config.max_export_batch_size.clamp(1, capacity);
        // Unbounded channel, bounded by the `pending` count in `send_batch`:
        // the bound is in spans, while messages carry batches of them.
        let (data, data_rx) = mpsc::channel();
        let receiver: SharedReceiver = Arc::new(Mutex::new(Some(data_rx)));
        let (control, control_rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let spare = Arc::new(SpareBuffers::default());
        let worker = Worker {
            drop_report: config.drop_report,
            drop_report_interval: config.drop_report_interval,
            last_report: Instant::now(),
            exporter,
            data: receiver.clone(),
            control: control_rx,
            requests: Vec::new(),
            deadline: None,
            counters: counters.clone(),
            spare: spare.clone(),
            scope: crate::record::raw::scope(),
            batch_size,
            scheduled_delay: config.scheduled_delay,
            export_timeout: config.export_timeout,
            error_text: config.error_text,
            limits: config.span_limits,
            last_error: None,
            tail: config.tail_sampling.map(tail::Tail::new),
        };
        let spawned = thread::Builder::new()
            .name("workflow-otel-export".to_owned())
            .spawn(move || {
                if let Some((reply, result)) = worker.run() {
                    let _ = reply.send(result);
                }
            });
        let worker = match spawned {
            // Never joined: a shutdown's answer comes after the exporter is
            // dropped, and a hung exporter must not hang the caller.
            Ok(handle) => handle.thread().clone(),
            Err(error) => {
                // The receiver went with the failed closure: every span will be
                // counted as dropped, and the program goes on.
                eprintln!(
                    "workflow-otel: cannot start the export thread ({error}); spans will be dropped"
                );
                thread::current()
            }
        };
        Pipeline {
            shared: Arc::new(Shared {
                data,
                receiver,
                control: Mutex::new(control),
                counters,
                capacity,
                // With no delay, every span that finds the queue empty wakes
                // the worker; otherwise a full batch does.
                wake_at: if config.scheduled_delay.is_zero() {
                    1
                } else {
                    batch_size
                },
                shutdown_timeout: config.shutdown_timeout,
                worker,
                shut_down: AtomicBool::new(false),
                reported_late: AtomicBool::new(false),
                spare,
                drop_report: config.drop_report,
                limits: config.span_limits,
            }),
        }
    }

    /// What each span may carry: the caller applies the count limits as
    /// attributes and events are added, so memory stays bounded.
    pub(crate) fn limits(&self) -> &SpanLimits {
        &self.shared.limits
    }

    /// Queues spans in one message, or drops and counts them all if the queue
    /// would hold more than its limit. Never blocks.
    pub(crate) fn send_batch(&self, spans: Vec<RawSpan>) {
        self.send(Message::Ours(spans));
    }

    fn send(&self, message: Message) {
        let shared = &*self.shared;
        let count = message.len();
        let counters = &shared.counters;
        if shared.shut_down.load(Ordering::Acquire) {
            counters.dropped.fetch_add(count as u64, Ordering::Relaxed);
            if !shared.reported_late.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "workflow-otel: spans ended after the pipeline was shut down are dropped \
                     (counted in dropped_spans); keep the telemetry guard alive until the \
                     program's last workflow ends"
                );
            }
            return;
        }
        let before = counters.pending.fetch_add(count, Ordering::Relaxed);
        let queued = Queued {
            message: Some(message),
            counters: counters.clone(),
        };
        if before + count > shared.capacity {
            // Counted as dropped by its own drop.
            drop(queued);
            return;
        }
        // A failed send hands the batch back, which counts itself as dropped.
        if shared.data.send(queued).is_ok()
            && before < shared.wake_at
            && before + count >= shared.wake_at
        {
            // After the send: a worker woken earlier would find nothing and spin.
            shared.worker.unpark();
        }
    }

    /// Queues a span built as `SpanData` (model calls, other libraries').
    pub(crate) fn submit_foreign(&self, span: SpanData) {
        self.send(Message::Foreign(Box::new(span)));
    }

    /// Emptied thread buffers, given back by the worker.
    fn spare_buffers(&self) -> &SpareBuffers {
        &self.shared.spare
    }

    /// Whether both handles feed the same worker.
    pub(crate) fn same_as(&self, other: &Pipeline) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Spans lost so far: dropped because the queue was full or the pipeline
    /// was shut down, in a batch the exporter failed or timed out on, or left
    /// unexported when a flush or shutdown ran out of time.
    pub fn dropped_spans(&self) -> u64 {
        self.shared.counters.dropped.load(Ordering::Relaxed)
    }

    /// Spans the exporter accepted so far. After [`shutdown`](Self::shutdown)
    /// returns, `exported_spans() + dropped_spans()` is every span recorded.
    pub fn exported_spans(&self) -> u64 {
        self.shared.counters.exported.load(Ordering::Relaxed)
    }

    /// Spans tail sampling chose not to keep (see [`TailSampling`]); not
    /// counted in [`dropped_spans`](Self::dropped_spans), which are losses.
    /// Once everything is settled, `exported + dropped + tail-dropped` is
    /// every span the pipeline took.
    pub fn tail_dropped_spans(&self) -> u64 {
        self.shared.counters.tail_dropped.load(Ordering::Relaxed)
    }

    /// Exports everything queued before this call and flushes the exporter.
    /// Returns within [`PipelineConfig::shutdown_timeout`], with
    /// `Err(Timeout)` if the backend did not finish by then; batches the
    /// deadline leaves no time for are dropped and counted.
    pub fn force_flush(&self) -> OTelSdkResult {
        if self.shared.shut_down.load(Ordering::Acquire) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        self.request(Control::Flush)
    }

    /// Exports what is queued, shuts the exporter down and stops the worker,
    /// within [`PipelineConfig::shutdown_timeout`] whatever the backend does.
    /// Everything not exported by then is counted as dropped before this
    /// returns. Spans ended afterwards are dropped and counted. Calling it
    /// again is an error.
    pub fn shutdown(&self) -> OTelSdkResult {
        if self.shared.shut_down.swap(true, Ordering::AcqRel) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let result = self.request(Control::Shutdown);
        if matches!(
            result,
            Err(OTelSdkError::Timeout(_) | OTelSdkError::AlreadyShutdown)
        ) {
            // No answer in time: settle the accounts now and leave the worker
            // to end when the exporter lets go of it.
            self.abandon();
        }
        // Anything sent from now on fails, and counts itself as dropped.
        self.close_queue();
        result
    }

    /// Closes the queue: the batches still in it count themselves as dropped.
    fn close_queue(&self) {
        let receiver = self
            .shared
            .receiver
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        drop(receiver);
    }

    /// Counts everything the worker did not settle in time as dropped, and
    /// reports it now: the worker, stuck in its exporter, may never do so
    /// before the process exits.
    fn abandon(&self) {
        self.close_queue();
        let shared = &*self.shared;
        let counters = &shared.counters;
        let unsettled = counters.in_flight.swap(0, Ordering::AcqRel);
        counters.dropped.fetch_add(unsettled, Ordering::Relaxed);
        self.report_drops(Some(format!(
            "the exporter did not finish within the shutdown timeout ({:?})",
            shared.shutdown_timeout
        )));
    }

    /// Reports the drops not reported yet, now: at exit, or when a shutdown
    /// gave up waiting for the worker, which reports only every interval.
    pub(crate) fn report_drops(&self, last_error: Option<String>) {
        let shared = &*self.shared;
        let counters = &shared.counters;
        let dropped_total = counters.dropped.load(Ordering::Acquire);
        let reported = counters.reported.fetch_max(dropped_total, Ordering::AcqRel);
        if dropped_total > reported {
            (shared.drop_report)(&DropReport {
                dropped: dropped_total - reported,
                dropped_total,
                exported_total: counters.exported.load(Ordering::Relaxed),
                last_error,
            });
        }
    }

    fn request(&self, make: fn(SyncSender<OTelSdkResult>, Instant) -> Control) -> OTelSdkResult {
        let shared = &*self.shared;
        let deadline = Instant::now() + shared.shutdown_timeout;
        let (reply, answer) = mpsc::sync_channel(1);
        let sent = shared
            .control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .send(make(reply, deadline));
        if sent.is_err() {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        shared.counters.urgent.store(true, Ordering::Release);
        shared.worker.unpark();
        match answer.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(OTelSdkError::Timeout(shared.shutdown_timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(OTelSdkError::AlreadyShutdown),
        }
    }

    /// A `SpanProcessor` for an `SdkTracerProvider`, so that spans other code
    /// opens through the OpenTelemetry API (or `tracing` with
    /// tracing-opentelemetry) are exported by this pipeline too, in the same
    /// batches. Its `shutdown` does nothing: the pipeline's owner shuts it down.
    pub fn span_processor(&self) -> PipelineProcessor {
        PipelineProcessor {
            pipeline: self.clone(),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The sender goes with this struct; wake the worker to notice and stop.
        self.worker.unpark();
    }
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("counters", &self.shared.counters)
            .finish_non_exhaustive()
    }
}

/// Feeds spans from an `SdkTracerProvider` into a [`Pipeline`]; see
/// [`Pipeline::span_processor`].
#[derive(Debug, Clone)]
pub struct PipelineProcessor {
    pipeline: Pipeline,
}

impl SpanProcessor for PipelineProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        self.pipeline.send(Message::Foreign(Box::new(span)));
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.pipeline.force_flush()
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use opentelemetry::InstrumentationScope;

    use super::*;
    use crate::pipeline::worker::IDLE_WAIT;

    #[derive(Debug)]
    struct Accepts;

    impl SpanExporter for Accepts {
        fn export(&self, _batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
            std::future::ready(Ok(()))
        }
    }

    fn foreign_span() -> SpanData {
        use opentelemetry::trace::{SpanContext, SpanKind, Status};
        use std::time::SystemTime;
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: opentelemetry::trace::SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "foreign".into(),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    /// With no export delay, an idle worker sleeps until a span arrives, and
    /// each span wakes it about once: it never spins.
    #[test]
    fn a_worker_with_no_delay_sleeps_while_idle() {
        let pipeline = Pipeline::with_config(
            Accepts,
            PipelineConfig {
                scheduled_delay: Duration::ZERO,
                ..PipelineConfig::default()
            },
            None,
        );
        let counters = pipeline.shared.counters.clone();
        let started = Instant::now();
        // Idle wake-ups: one per IDLE_WAIT at most.
        let idle = |started: Instant| 2 + started.elapsed().as_secs() / IDLE_WAIT.as_secs();
        // Idle: a spinning worker would wake millions of times here.
        thread::sleep(Duration::from_millis(300));
        assert!(counters.wakeups.load(Ordering::Relaxed) <= idle(started));
        for _ in 0..200 {
            pipeline.send(Message::Foreign(Box::new(foreign_span())));
            // Let the worker take each span before the next one.
            thread::sleep(Duration::from_millis(1));
        }
        pipeline.force_flush().unwrap();
        let wakeups = counters.wakeups.load(Ordering::Relaxed);
        assert!(
            wakeups <= 2 * 200 + idle(started),
            "{wakeups} wake-ups for 200 spans"
        );
        assert_eq!(pipeline.exported_spans(), 200);
    }
}
