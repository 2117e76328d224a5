//! The one thread that exports: it takes batches from the queue and hands
//! them to the exporter, within the export timeout, or the deadline of a
//! flush or shutdown waiting for it. A built-in exporter encodes our records
//! as they are; any other gets them as the SDK's `SpanData`.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::task::{Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::SpanExporter;

use super::batch::{Item, Records, native_of};
use super::buffer::SpareBuffers;
use super::tail::Out;
use super::{Control, Counters, DropReport, Message, SharedReceiver};
use crate::pipeline::error_text::ErrorText;
use crate::record::ids::Calibration;
use crate::record::raw::Extras;

/// The most spans a batch holds room for before it fills.
const MAX_PREALLOCATED_BATCH: usize = 8192;

/// How long an idle worker with no export delay sleeps before it looks again
/// (senders wake it as soon as a span arrives).
pub(super) const IDLE_WAIT: Duration = Duration::from_secs(1);
/// How long a worker that was woken but found nothing waits before it looks
/// again: a sender between reserving and sending wakes it anyway.
const RETRY_WAIT: Duration = Duration::from_millis(1);

pub(super) struct Worker<E> {
    pub(super) drop_report: fn(&DropReport),
    pub(super) drop_report_interval: Duration,
    /// When drops were last reported.
    pub(super) last_report: Instant,
    pub(super) exporter: E,
    pub(super) data: SharedReceiver,
    pub(super) control: Receiver<Control>,
    /// Flushes and shutdowns taken from `control`, answered after the drain.
    pub(super) requests: Vec<Control>,
    /// The earliest deadline of `requests`.
    pub(super) deadline: Option<Instant>,
    pub(super) counters: Arc<Counters>,
    /// Where emptied thread buffers go back.
    pub(super) spare: Arc<SpareBuffers>,
    pub(super) scope: InstrumentationScope,
    pub(super) batch_size: usize,
    pub(super) scheduled_delay: Duration,
    pub(super) export_timeout: Duration,
    pub(super) error_text: ErrorText,
    pub(super) limits: super::SpanLimits,
    /// Why the last failed export failed, until the next drop report.
    pub(super) last_error: Option<String>,
    /// The traces held for tail sampling, if it is on.
    pub(super) tail: Option<super::tail::Tail>,
}

impl<E: SpanExporter + 'static> Worker<E> {
    /// Exports until shut down; returns the shutdown's answer, to be sent
    /// once the exporter is dropped (files closed, connections ended).
    pub(super) fn run(mut self) -> Option<(SyncSender<OTelSdkResult>, OTelSdkResult)> {
        let mut batch = Vec::with_capacity(self.batch_capacity());
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
            if stopping {
                // Nothing held outlives the worker: every trace is decided.
                self.decide_held(&mut batch, true);
            }
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

    /// Room for a batch up front, so it never grows by copying, but never
    /// more than a few MB, whatever the batch size.
    fn batch_capacity(&self) -> usize {
        self.batch_size.min(MAX_PREALLOCATED_BATCH)
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
        if !due || dropped_total <= self.counters.reported.load(Ordering::Acquire) {
            return;
        }
        let reported = self
            .counters
            .reported
            .fetch_max(dropped_total, Ordering::AcqRel);
        if dropped_total > reported {
            (self.drop_report)(&DropReport {
                dropped: dropped_total - reported,
                dropped_total,
                exported_total: self.counters.exported.load(Ordering::Relaxed),
                last_error: self.last_error.take(),
            });
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
    fn drain(&mut self, batch: &mut Vec<Item>) -> (usize, bool) {
        let clock = Calibration::now();
        let mut taken = 0;
        loop {
            let disconnected = loop {
                match self.receive() {
                    Ok(Some(Message::Ours(mut spans))) => {
                        taken += spans.len();
                        for mut raw in spans.drain(..) {
                            raw.settle();
                            self.push(batch, Item::Ours(raw), &clock);
                        }
                        self.spare.give(spans);
                    }
                    Ok(Some(Message::Foreign(mut span))) => {
                        taken += 1;
                        self.error_text.apply(&mut span);
                        self.limits.apply_to(&mut span);
                        self.push(batch, Item::Foreign(span), &clock);
                    }
                    Ok(None) => break false,
                    Err(()) => break true,
                }
            };
            let requests = self.requests.len();
            self.decide_held(batch, false);
            if !batch.is_empty() {
                self.export(batch, &clock);
            }
            // A flush or shutdown taken during these last exports waits for
            // what was queued before it, which may have come after the
            // queue looked empty: look again.
            if disconnected || self.requests.len() == requests {
                return (taken, disconnected);
            }
        }
    }

    /// Adds a span to the batch (or to the held traces), exporting a full batch.
    fn push(&mut self, batch: &mut Vec<Item>, item: Item, clock: &Calibration) {
        match self.tail.as_mut() {
            None => batch.push(item),
            Some(tail) => {
                let records = Records {
                    items: &[],
                    scope: &self.scope,
                    clock,
                    error_text: &self.error_text,
                    limits: &self.limits,
                };
                let to_span_data = |item: &Item| records.span_data_of(item);
                let mut out = Out {
                    kept: batch,
                    dropped: 0,
                };
                tail.offer(item, clock, &to_span_data, &mut out);
                self.counters.settle_tail_dropped(out.dropped);
            }
        }
        if batch.len() >= self.batch_size {
            self.export(batch, clock);
        }
    }

    /// Decides the held traces past their hold time (`all`: every one), and
    /// exports what is kept.
    fn decide_held(&mut self, batch: &mut Vec<Item>, all: bool) {
        // Also when nothing is held: old decisions are forgotten here.
        let Some(tail) = self.tail.as_mut() else {
            return;
        };
        let clock = Calibration::now();
        let records = Records {
            items: &[],
            scope: &self.scope,
            clock: &clock,
            error_text: &self.error_text,
            limits: &self.limits,
        };
        let to_span_data = |item: &Item| records.span_data_of(item);
        let mut out = Out {
            kept: batch,
            dropped: 0,
        };
        tail.expire(all, &to_span_data, &mut out);
        self.counters.settle_tail_dropped(out.dropped);
        if !batch.is_empty() {
            self.export(batch, &clock);
        }
    }

    fn export(&mut self, batch: &mut Vec<Item>, clock: &Calibration) {
        let count = batch.len() as u64;
        // A flush or shutdown asked for while this drain is under way.
        if self.counters.urgent.load(Ordering::Acquire) {
            self.take_requests();
        }
        let timeout = match self.deadline {
            None => self.export_timeout,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    batch.clear();
                    self.counters.settle(count, false);
                    return;
                }
                left.min(self.export_timeout)
            }
        };
        let answer = match native_of(&self.exporter) {
            Some(native) => {
                let records = Records {
                    items: batch,
                    scope: &self.scope,
                    clock,
                    error_text: &self.error_text,
                    limits: &self.limits,
                };
                block_on_with_timeout(native.export_records(&records), timeout)
            }
            None => {
                let spans = Records::take_span_data(
                    batch,
                    &self.scope,
                    clock,
                    &self.error_text,
                    &self.limits,
                );
                block_on_with_timeout(self.exporter.export(spans), timeout)
            }
        };
        // The records go on the worker, not in the exporter: the batch
        // keeps its room for the next one, their extras go back to callers.
        recycle(batch);
        let exported = match answer {
            Some(Ok(())) => true,
            Some(Err(error)) => {
                // Exporters name the URL in their errors: never its credentials.
                self.last_error = Some(crate::setup::env::without_credentials(&error.to_string()));
                false
            }
            None => {
                self.last_error = Some(format!("no answer within {timeout:?}"));
                false
            }
        };
        self.counters.settle(count, exported);
    }
}

/// Empties `batch`, giving our records' extras back to callers.
fn recycle(batch: &mut Vec<Item>) {
    for item in batch.drain(..) {
        if let Item::Ours(mut raw) = item
            && let Some(extras) = raw.extras.take()
        {
            Extras::recycle(extras);
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
fn block_on_with_timeout<F: Future>(future: F, timeout: Duration) -> Option<F::Output> {
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
