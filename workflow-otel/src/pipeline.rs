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
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use crate::record::RawSpan;
use crate::span::Recording;

/// Queue length, batch size and timings of a [`Pipeline`]. The defaults are
/// those of OpenTelemetry's batch span processor (`OTEL_BSP_*`).
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Spans the queue holds before new ones are dropped (2048).
    pub max_queue_size: usize,
    /// Spans per export call; a full batch also wakes the worker early (512).
    pub max_export_batch_size: usize,
    /// How long the worker sleeps between exports when batches stay small (5 s).
    pub scheduled_delay: Duration,
    /// How long one export may take before its batch is given up (30 s).
    pub export_timeout: Duration,
    /// How often, at most, lost spans are reported (10 s).
    pub drop_report_interval: Duration,
    /// Where lost spans are reported: by default a line on stderr.
    pub drop_report: fn(&DropReport),
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_queue_size: 2048,
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_secs(5),
            export_timeout: Duration::from_secs(30),
            drop_report_interval: Duration::from_secs(10),
            drop_report: report_to_stderr,
        }
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

enum Message {
    Ours(Vec<RawSpan>),
    Foreign(Box<SpanData>),
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

enum Control {
    Flush(SyncSender<OTelSdkResult>),
    Shutdown(SyncSender<OTelSdkResult>),
}

/// Counters shared by the callers and the worker.
#[derive(Debug, Default)]
struct Counters {
    pending: AtomicUsize,
    dropped: AtomicU64,
    exported: AtomicU64,
    /// A flush or shutdown waits: finish what is queued within one export
    /// timeout, giving up batches that would take longer.
    urgent: AtomicBool,
}

struct Shared {
    data: Sender<Message>,
    control: Mutex<Sender<Control>>,
    counters: Arc<Counters>,
    capacity: usize,
    wake_at: usize,
    export_timeout: Duration,
    worker: Thread,
    handle: Mutex<Option<JoinHandle<()>>>,
    shut_down: AtomicBool,
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
    pub fn with_config<E: SpanExporter + 'static>(
        mut exporter: E,
        config: PipelineConfig,
        resource: Option<Resource>,
    ) -> Pipeline {
        crate::ids::init_clock();
        if let Some(resource) = &resource {
            exporter.set_resource(resource);
        }
        let capacity = config.max_queue_size.max(1);
        // Unbounded channel, bounded by the `pending` count in `send_batch`:
        // the bound is in spans, while messages carry batches of them.
        let (data, data_rx) = mpsc::channel();
        let (control, control_rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            drop_report: config.drop_report,
            drop_report_interval: config.drop_report_interval,
            reported: 0,
            last_report: Instant::now(),
            exporter,
            data: data_rx,
            control: control_rx,
            counters: counters.clone(),
            scope: crate::instrumentation::scope(),
            batch_size: config.max_export_batch_size.max(1),
            scheduled_delay: config.scheduled_delay,
            export_timeout: config.export_timeout,
        };
        let spawned = thread::Builder::new()
            .name("workflow-otel-export".to_owned())
            .spawn(move || worker.run());
        let (worker, handle) = match spawned {
            Ok(handle) => (handle.thread().clone(), Some(handle)),
            Err(error) => {
                // The receiver went with the failed closure: every span will be
                // counted as dropped, and the program goes on.
                eprintln!(
                    "workflow-otel: cannot start the export thread ({error}); spans will be dropped"
                );
                (thread::current(), None)
            }
        };
        Pipeline {
            shared: Arc::new(Shared {
                data,
                control: Mutex::new(control),
                counters,
                capacity,
                wake_at: config.max_export_batch_size.clamp(1, capacity),
                export_timeout: config.export_timeout,
                worker,
                handle: Mutex::new(handle),
                shut_down: AtomicBool::new(false),
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
        let count = spans.len();
        if self.reserve(count) && self.shared.data.send(Message::Ours(spans)).is_err() {
            self.unreserve(count);
        }
    }

    fn reserve(&self, count: usize) -> bool {
        let shared = &*self.shared;
        let before = shared.counters.pending.fetch_add(count, Ordering::Relaxed);
        if before + count > shared.capacity {
            self.unreserve(count);
            return false;
        }
        // One wake-up per batch: the worker drains everything it finds.
        if before < shared.wake_at && before + count >= shared.wake_at {
            shared.worker.unpark();
        }
        true
    }

    fn unreserve(&self, count: usize) {
        let counters = &self.shared.counters;
        counters.pending.fetch_sub(count, Ordering::Relaxed);
        counters.dropped.fetch_add(count as u64, Ordering::Relaxed);
    }

    fn send_foreign(&self, span: SpanData) {
        if self.reserve(1)
            && self
                .shared
                .data
                .send(Message::Foreign(Box::new(span)))
                .is_err()
        {
            self.unreserve(1);
        }
    }

    /// Whether both handles feed the same worker.
    pub(crate) fn same_as(&self, other: &Pipeline) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Spans lost so far: dropped because the queue was full or the pipeline
    /// was shut down, or in a batch the exporter failed or timed out on.
    pub fn dropped_spans(&self) -> u64 {
        self.shared.counters.dropped.load(Ordering::Relaxed)
    }

    /// Spans the exporter accepted so far.
    pub fn exported_spans(&self) -> u64 {
        self.shared.counters.exported.load(Ordering::Relaxed)
    }

    /// Exports everything queued before this call and waits for the exporter
    /// to flush, at most the export timeout (plus that again for the flush).
    pub fn force_flush(&self) -> OTelSdkResult {
        self.request(Control::Flush)
    }

    /// Exports what is queued, shuts the exporter down and stops the worker.
    /// Spans ended afterwards are dropped and counted. Calling it again is an error.
    pub fn shutdown(&self) -> OTelSdkResult {
        if self.shared.shut_down.swap(true, Ordering::AcqRel) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let result = self.request(Control::Shutdown);
        let handle = self
            .shared
            .handle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        // Join only a worker that answered; a hung exporter must not hang us.
        if result.is_ok()
            && let Some(handle) = handle
        {
            let _ = handle.join();
        }
        result
    }

    fn request(&self, make: fn(SyncSender<OTelSdkResult>) -> Control) -> OTelSdkResult {
        let (reply, answer) = mpsc::sync_channel(1);
        let sent = self
            .shared
            .control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .send(make(reply));
        if sent.is_err() {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        self.shared.worker.unpark();
        // The worker may be in an export that is itself bounded by the timeout.
        match answer.recv_timeout(self.shared.export_timeout * 2) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => {
                Err(OTelSdkError::Timeout(self.shared.export_timeout * 2))
            }
            Err(RecvTimeoutError::Disconnected) => Err(OTelSdkError::AlreadyShutdown),
        }
    }

    /// A `SpanProcessor` for an `SdkTracerProvider`, so that spans other code
    /// opens through the OpenTelemetry API (or `tracing` with
    /// tracing-opentelemetry) are exported by this pipeline too, in the same
    /// batches. Its `shutdown` only flushes: the pipeline's owner shuts it down.
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
        self.pipeline.send_foreign(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.pipeline.force_flush()
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.pipeline.force_flush()
    }
}

struct Worker<E> {
    drop_report: fn(&DropReport),
    drop_report_interval: Duration,
    /// Drops already reported, and when.
    reported: u64,
    last_report: Instant,
    exporter: E,
    data: Receiver<Message>,
    control: Receiver<Control>,
    counters: Arc<Counters>,
    scope: InstrumentationScope,
    batch_size: usize,
    scheduled_delay: Duration,
    export_timeout: Duration,
}

impl<E: SpanExporter> Worker<E> {
    fn run(mut self) {
        let mut batch = Vec::with_capacity(self.batch_size);
        loop {
            if self.counters.pending.load(Ordering::Relaxed) == 0
                && !self.counters.urgent.load(Ordering::Acquire)
            {
                thread::park_timeout(self.scheduled_delay);
            }
            // Requests first: spans queued before a flush was asked for are
            // already in the queue, so draining it below covers them.
            let requests: Vec<Control> = self.control.try_iter().collect();
            let mut deadline = None;
            if !requests.is_empty() {
                self.counters.urgent.store(false, Ordering::Release);
                deadline = Some(Instant::now() + self.export_timeout);
            }
            let disconnected = self.drain(&mut batch, deadline);
            let stopping = disconnected
                || requests
                    .iter()
                    .any(|request| matches!(request, Control::Shutdown(_)));
            self.report_drops(stopping);
            for request in requests {
                match request {
                    Control::Flush(reply) => {
                        let _ = reply.send(self.exporter.force_flush());
                    }
                    Control::Shutdown(reply) => {
                        let _ =
                            reply.send(self.exporter.shutdown_with_timeout(self.export_timeout));
                        return;
                    }
                }
            }
            if disconnected {
                // Every handle is gone: nobody can flush or shut down any more.
                let _ = self.exporter.shutdown_with_timeout(self.export_timeout);
                return;
            }
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

    /// Exports everything queued, by `deadline` if there is one; returns
    /// whether every sender is gone.
    fn drain(&mut self, batch: &mut Vec<SpanData>, mut deadline: Option<Instant>) -> bool {
        let clock = crate::ids::Calibration::now();
        let mut disconnected = false;
        loop {
            match self.data.try_recv() {
                Ok(Message::Ours(spans)) => {
                    self.counters
                        .pending
                        .fetch_sub(spans.len(), Ordering::Relaxed);
                    for raw in spans {
                        batch.push(raw.into_span_data(&self.scope, &clock));
                        if batch.len() >= self.batch_size {
                            self.export(batch, &mut deadline);
                        }
                    }
                }
                Ok(Message::Foreign(span)) => {
                    self.counters.pending.fetch_sub(1, Ordering::Relaxed);
                    batch.push(*span);
                    if batch.len() >= self.batch_size {
                        self.export(batch, &mut deadline);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    disconnected = true;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            self.export(batch, &mut deadline);
        }
        disconnected
    }

    fn export(&mut self, batch: &mut Vec<SpanData>, deadline: &mut Option<Instant>) {
        let spans = std::mem::replace(batch, Vec::with_capacity(self.batch_size));
        let count = spans.len() as u64;
        // A flush or shutdown asked for while this drain was under way.
        if deadline.is_none() && self.counters.urgent.load(Ordering::Acquire) {
            *deadline = Some(Instant::now() + self.export_timeout);
        }
        let timeout = match *deadline {
            None => self.export_timeout,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    self.counters.dropped.fetch_add(count, Ordering::Relaxed);
                    return;
                }
                left.min(self.export_timeout)
            }
        };
        match block_on_with_timeout(self.exporter.export(spans), timeout) {
            Some(Ok(())) => {
                self.counters.exported.fetch_add(count, Ordering::Relaxed);
            }
            Some(Err(_)) | None => {
                self.counters.dropped.fetch_add(count, Ordering::Relaxed);
            }
        }
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
