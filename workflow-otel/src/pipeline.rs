//! The export pipeline: a bounded queue from every calling thread to one
//! worker thread that turns records into `SpanData`, batches them and hands the
//! batches to any `opentelemetry_sdk` [`SpanExporter`].
//!
//! The calling thread only moves a small record into the queue: no lock, no
//! allocation, no syscall (the worker is woken once per batch, not per span).
//! When the queue is full the span is dropped and counted, never waited for,
//! so a slow or dead backend cannot slow the program down. Spans that other
//! code opens through the OpenTelemetry SDK join the same queue through
//! [`Pipeline::span_processor`].

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use crate::record::RawSpan;
use crate::redact::ErrorText;
use crate::span::Recording;

/// Queue length, batch size and timings of a [`Pipeline`]. The defaults are
/// those of OpenTelemetry's batch span processor (`OTEL_BSP_*`), and of its
/// SDK's flush and shutdown timeout.
#[derive(Clone)]
pub struct PipelineConfig {
    /// Spans the queue holds before new ones are dropped (2048; at most
    /// [`MAX_QUEUE_SIZE`]). Memory is taken as spans arrive, not up front.
    pub max_queue_size: usize,
    /// Spans per export call; a full batch also wakes the worker early (512).
    pub max_export_batch_size: usize,
    /// How long the worker waits between exports when batches stay small (5 s;
    /// zero exports as soon as spans arrive).
    pub scheduled_delay: Duration,
    /// How long one export may take before its batch is given up (30 s).
    pub export_timeout: Duration,
    /// The most that [`Pipeline::force_flush`] and [`Pipeline::shutdown`]
    /// take, whatever the backend does (5 s): what is not exported by then is
    /// counted as dropped.
    pub shutdown_timeout: Duration,
    /// How often, at most, lost spans are reported (10 s).
    pub drop_report_interval: Duration,
    /// Where lost spans are reported: by default a line on stderr.
    pub drop_report: fn(&DropReport),
    /// What error text (status messages, exception messages and stack traces)
    /// may leave the process; see [`ErrorText`].
    pub error_text: ErrorText,
}

/// The largest `max_queue_size` accepted: 2^31 - 1, the largest integer the
/// OpenTelemetry specification asks SDKs to support.
pub const MAX_QUEUE_SIZE: usize = (1 << 31) - 1;

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_queue_size: 2048,
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_secs(5),
            export_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
            drop_report_interval: Duration::from_secs(10),
            drop_report: report_to_stderr,
            error_text: ErrorText::default(),
        }
    }
}

impl fmt::Debug for PipelineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineConfig")
            .field("max_queue_size", &self.max_queue_size)
            .field("max_export_batch_size", &self.max_export_batch_size)
            .field("scheduled_delay", &self.scheduled_delay)
            .field("export_timeout", &self.export_timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("drop_report_interval", &self.drop_report_interval)
            .field("error_text", &self.error_text)
            .finish_non_exhaustive()
    }
}

/// Spans lost since the last report, given to [`PipelineConfig::drop_report`]
/// at most once per [`PipelineConfig::drop_report_interval`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropReport {
    /// Spans lost since the previous report.
    pub dropped: u64,
    /// Spans lost since the pipeline started.
    pub dropped_total: u64,
    /// Spans exported since the pipeline started.
    pub exported_total: u64,
}

/// The default [`PipelineConfig::drop_report`]: one line on stderr.
pub fn report_to_stderr(report: &DropReport) {
    eprintln!(
        "workflow-otel: {} spans dropped (queue full, export failed or timed out); \
         {} dropped and {} exported in all",
        report.dropped, report.dropped_total, report.exported_total
    );
}

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

/// Spans a thread buffers before it hands them to the queue in one message.
const LOCAL_BATCH: usize = 64;

/// What a thread keeps between spans: the recording whose body runs now, and
/// finished spans not yet handed to the queue.
struct Local {
    current: Cell<*const Recording>,
    buffer: RefCell<Buffer>,
}

#[derive(Default)]
struct Buffer {
    spans: Vec<RawSpan>,
    pipeline: Option<Pipeline>,
}

impl Buffer {
    fn flush(&mut self) {
        if let Some(pipeline) = &self.pipeline
            && !self.spans.is_empty()
        {
            pipeline.send_batch(std::mem::take(&mut self.spans));
        }
    }
}

impl Drop for Buffer {
    // A thread that exits hands over what it still holds.
    fn drop(&mut self) {
        self.flush();
    }
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            current: Cell::new(std::ptr::null()),
            buffer: RefCell::new(Buffer { spans: Vec::new(), pipeline: None }),
        }
    };
}

/// Makes `recording` the one whose body runs on this thread; returns the
/// previous one, to give back to [`leave_recording`].
pub(crate) fn enter_recording(recording: &Recording) -> *const Recording {
    LOCAL
        .try_with(|local| local.current.replace(recording))
        .unwrap_or(std::ptr::null())
}

/// Restores the previous recording; leaving the outermost one hands the
/// thread's finished spans to the queue, so none wait on an idle thread.
pub(crate) fn leave_recording(previous: *const Recording) {
    let _ = LOCAL.try_with(|local| {
        local.current.set(previous);
        if previous.is_null() {
            local.buffer.borrow_mut().flush();
        }
    });
}

/// The recording whose body runs on this thread, if any.
pub(crate) fn current_recording() -> *const Recording {
    LOCAL
        .try_with(|local| local.current.get())
        .unwrap_or(std::ptr::null())
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
}

impl Counters {
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
        crate::ids::init_clock();
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
        let worker = Worker {
            drop_report: config.drop_report,
            drop_report_interval: config.drop_report_interval,
            reported: 0,
            last_report: Instant::now(),
            exporter,
            data: receiver.clone(),
            control: control_rx,
            requests: Vec::new(),
            deadline: None,
            counters: counters.clone(),
            scope: crate::instrumentation::scope(),
            batch_size,
            scheduled_delay: config.scheduled_delay,
            export_timeout: config.export_timeout,
            error_text: config.error_text,
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
            }),
        }
    }

    /// Takes a finished span: into the thread's buffer, which goes to the
    /// queue when full, or now if no body of ours runs on this thread.
    pub(crate) fn submit(&self, span: RawSpan) {
        let mut span = Some(span);
        let _ = LOCAL.try_with(|local| {
            let mut buffer = local.buffer.borrow_mut();
            let same = buffer
                .pipeline
                .as_ref()
                .is_some_and(|pipeline| Arc::ptr_eq(&pipeline.shared, &self.shared));
            if !same {
                buffer.flush();
                buffer.pipeline = Some(self.clone());
            }
            if let Some(span) = span.take() {
                buffer.spans.push(span);
            }
            if buffer.spans.len() >= LOCAL_BATCH || local.current.get().is_null() {
                buffer.flush();
            }
        });
        // The thread is exiting and its buffer is gone: send the span alone.
        if let Some(span) = span {
            self.send_batch(vec![span]);
        }
    }

    /// Queues spans in one message, or drops and counts them all if the queue
    /// would hold more than its limit. Never blocks.
    fn send_batch(&self, spans: Vec<RawSpan>) {
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

    /// Counts everything the worker did not settle in time as dropped.
    fn abandon(&self) {
        self.close_queue();
        let counters = &self.shared.counters;
        let unsettled = counters.in_flight.swap(0, Ordering::AcqRel);
        counters.dropped.fetch_add(unsettled, Ordering::Relaxed);
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

/// How long an idle worker with no export delay sleeps before it looks again
/// (senders wake it as soon as a span arrives).
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// How long a worker that was woken but found nothing waits before it looks
/// again: a sender between reserving and sending wakes it anyway.
const RETRY_WAIT: Duration = Duration::from_millis(1);

struct Worker<E> {
    drop_report: fn(&DropReport),
    drop_report_interval: Duration,
    /// Drops already reported, and when.
    reported: u64,
    last_report: Instant,
    exporter: E,
    data: SharedReceiver,
    control: Receiver<Control>,
    /// Flushes and shutdowns taken from `control`, answered after the drain.
    requests: Vec<Control>,
    /// The earliest deadline of `requests`.
    deadline: Option<Instant>,
    counters: Arc<Counters>,
    scope: InstrumentationScope,
    batch_size: usize,
    scheduled_delay: Duration,
    export_timeout: Duration,
    error_text: ErrorText,
}

impl<E: SpanExporter> Worker<E> {
    /// Exports until shut down; returns the shutdown's answer, to be sent
    /// once the exporter is dropped (files closed, connections ended).
    fn run(mut self) -> Option<(SyncSender<OTelSdkResult>, OTelSdkResult)> {
        let mut batch = Vec::new();
        let mut received = true;
        loop {
            self.wait(received);
            self.counters.wakeups.fetch_add(1, Ordering::Relaxed);
            self.take_requests();
            let (taken, disconnected) = self.drain(&mut batch);
            received = taken > 0;
            let requests = std::mem::take(&mut self.requests);
            let deadline = self.deadline.take();
            let stopping = disconnected
                || requests
                    .iter()
                    .any(|request| matches!(request, Control::Shutdown(..)));
            self.report_drops(stopping);
            for request in requests {
                match request {
                    Control::Flush(reply, _) => {
                        let _ = reply.send(self.exporter.force_flush());
                    }
                    Control::Shutdown(reply, _) => {
                        let left = deadline.map_or(self.export_timeout, |deadline| {
                            deadline.saturating_duration_since(Instant::now())
                        });
                        let result = self.exporter.shutdown_with_timeout(left);
                        return Some((reply, result));
                    }
                }
            }
            if disconnected {
                // Every handle is gone, or a shutdown gave up on us.
                let _ = self.exporter.shutdown_with_timeout(self.export_timeout);
                return None;
            }
        }
    }

    /// Sleeps until there is work: a full batch, the scheduled delay, or a
    /// flush or shutdown. Never spins: a wake-up that finds nothing sleeps
    /// again.
    fn wait(&self, received_last_time: bool) {
        if self.counters.urgent.load(Ordering::Acquire) {
            return;
        }
        let pending = self.counters.pending.load(Ordering::Relaxed);
        let wait = if pending >= self.batch_size || (pending > 0 && self.scheduled_delay.is_zero())
        {
            if received_last_time {
                return;
            }
            RETRY_WAIT
        } else if pending == 0 && self.scheduled_delay.is_zero() {
            IDLE_WAIT
        } else {
            self.scheduled_delay
        };
        thread::park_timeout(wait);
    }

    /// Takes the flushes and shutdowns asked for so far and adopts the
    /// earliest of their deadlines.
    fn take_requests(&mut self) {
        self.counters.urgent.store(false, Ordering::Release);
        for request in self.control.try_iter() {
            let deadline = request.deadline();
            self.deadline = Some(
                self.deadline
                    .map_or(deadline, |current| current.min(deadline)),
            );
            self.requests.push(request);
        }
    }

    /// Reports spans lost since the last report, once per interval (and a
    /// last time when stopping), so a dead backend is never silent and never
    /// floods the log.
    fn report_drops(&mut self, stopping: bool) {
        let dropped_total = self.counters.dropped.load(Ordering::Relaxed);
        let due = stopping || self.last_report.elapsed() >= self.drop_report_interval;
        if dropped_total > self.reported && due {
            (self.drop_report)(&DropReport {
                dropped: dropped_total - self.reported,
                dropped_total,
                exported_total: self.counters.exported.load(Ordering::Relaxed),
            });
            self.reported = dropped_total;
            self.last_report = Instant::now();
        }
    }

    /// Takes one batch from the queue; `Err` once the queue is closed.
    fn receive(&self) -> Result<Option<Message>, ()> {
        let guard = self
            .data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(receiver) = guard.as_ref() else {
            return Err(());
        };
        match receiver.try_recv() {
            Ok(queued) => {
                let message = queued.take();
                if let Some(message) = &message {
                    // Under the lock, so a shutdown that gives up sees it.
                    self.counters
                        .in_flight
                        .fetch_add(message.len() as u64, Ordering::AcqRel);
                }
                Ok(message)
            }
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(()),
        }
    }

    /// Exports everything queued; returns how many spans it took and whether
    /// the queue is closed.
    fn drain(&mut self, batch: &mut Vec<SpanData>) -> (usize, bool) {
        let clock = crate::ids::Calibration::now();
        let mut taken = 0;
        let disconnected = loop {
            match self.receive() {
                Ok(Some(Message::Ours(spans))) => {
                    taken += spans.len();
                    for raw in spans {
                        batch.push(
                            self.error_text
                                .apply(raw.into_span_data(&self.scope, &clock)),
                        );
                        if batch.len() >= self.batch_size {
                            self.export(batch);
                        }
                    }
                }
                Ok(Some(Message::Foreign(span))) => {
                    taken += 1;
                    batch.push(self.error_text.apply(*span));
                    if batch.len() >= self.batch_size {
                        self.export(batch);
                    }
                }
                Ok(None) => break false,
                Err(()) => break true,
            }
        };
        if !batch.is_empty() {
            self.export(batch);
        }
        (taken, disconnected)
    }

    fn export(&mut self, batch: &mut Vec<SpanData>) {
        let spans = std::mem::take(batch);
        let count = spans.len() as u64;
        // A flush or shutdown asked for while this drain is under way.
        if self.counters.urgent.load(Ordering::Acquire) {
            self.take_requests();
        }
        let timeout = match self.deadline {
            None => self.export_timeout,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    self.counters.settle(count, false);
                    return;
                }
                left.min(self.export_timeout)
            }
        };
        let exported = matches!(
            block_on_with_timeout(self.exporter.export(spans), timeout),
            Some(Ok(()))
        );
        self.counters.settle(count, exported);
    }
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread until it is ready or `timeout` passes; a
/// future still pending then is dropped, which cancels it.
pub(crate) fn block_on_with_timeout<F: Future>(future: F, timeout: Duration) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut task = std::task::Context::from_waker(&waker);
    let mut future = pin!(future);
    let deadline = Instant::now() + timeout;
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut task) {
            return Some(output);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::park_timeout(deadline - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
