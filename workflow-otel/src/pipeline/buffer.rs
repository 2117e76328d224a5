//! Each thread's buffer of finished spans: handed to the queue in one
//! message per 64 spans, or when the thread's outermost span ends, so the
//! queue is touched once per batch rather than once per span. The worker
//! gives the emptied buffers back, so a thread's next one is ready, with
//! its room, instead of allocated (and freed on another thread).

use std::cell::RefCell;
use std::sync::Mutex;

use crate::pipeline::Pipeline;
use crate::record::raw::RawSpan;

/// Spans a thread buffers before it hands them to the queue in one message.
const LOCAL_BATCH: usize = 64;

/// Emptied buffers kept for the threads: at most this many, 8 KiB each.
const MAX_SPARE_BUFFERS: usize = 32;

/// Room a new buffer starts with when none is spare: little, since a
/// thread that hands over one span at a time keeps it in the queue.
const NEW_BUFFER_ROOM: usize = 4;

/// Buffers the worker emptied, for threads to fill again. Neither side ever
/// waits for the other: a thread that finds it taken allocates, a worker
/// that finds it taken frees.
#[derive(Debug, Default)]
pub(super) struct SpareBuffers(Mutex<Vec<Vec<RawSpan>>>);

impl SpareBuffers {
    fn take(&self) -> Vec<RawSpan> {
        self.0
            .try_lock()
            .ok()
            .and_then(|mut spare| spare.pop())
            .unwrap_or_else(|| Vec::with_capacity(NEW_BUFFER_ROOM))
    }

    /// Keeps `buffer`, emptied, if it is a thread buffer's size.
    pub(super) fn give(&self, mut buffer: Vec<RawSpan>) {
        if buffer.capacity() > LOCAL_BATCH {
            return;
        }
        buffer.clear();
        if let Ok(mut spare) = self.0.try_lock()
            && spare.len() < MAX_SPARE_BUFFERS
        {
            spare.push(buffer);
        }
    }
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
            // A batch that fills little of its buffer (the end of a short
            // workflow) goes out in a copy of its own size, and the thread
            // keeps its room: the queue's memory then stays within a few
            // times the records it holds, whoever filled it.
            let batch = if self.spans.len() * 4 <= self.spans.capacity() {
                self.spans.drain(..).collect()
            } else {
                std::mem::replace(&mut self.spans, pipeline.spare_buffers().take())
            };
            pipeline.send_batch(batch);
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
    static BUFFER: RefCell<Buffer> = const {
        RefCell::new(Buffer { spans: Vec::new(), pipeline: None })
    };
}

/// Hands this thread's finished spans to the queue, so none wait on an idle
/// thread.
pub(crate) fn flush_thread_buffer() {
    let _ = BUFFER.try_with(|buffer| buffer.borrow_mut().flush());
}

/// Takes a finished span out of `record`: into the thread's buffer, which
/// goes to the queue when full, or now unless `hold` (a body of ours still
/// runs on this thread and will flush the buffer when the outermost one
/// ends). The span goes to `pipeline`, or to its workflow's. It is taken
/// straight from where the caller holds it: a move is a 130-byte copy.
pub(crate) fn submit(pipeline: Option<&Pipeline>, record: &mut Option<RawSpan>, hold: bool) {
    let _ = BUFFER.try_with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        let Some(target) = pipeline.or_else(|| record.as_ref().and_then(RawSpan::pipeline)) else {
            return;
        };
        // A clone only when the thread's spans change pipeline.
        if !buffer
            .pipeline
            .as_ref()
            .is_some_and(|current| current.same_as(target))
        {
            let target = target.clone();
            buffer.flush();
            buffer.pipeline = Some(target);
        }
        if let Some(span) = record.take() {
            buffer.spans.push(span);
        }
        if buffer.spans.len() >= LOCAL_BATCH || !hold {
            buffer.flush();
        }
    });
    // The thread is exiting and its buffer is gone: send the span alone.
    if let Some(span) = record.take()
        && let Some(target) = pipeline.or_else(|| span.pipeline()).cloned()
    {
        target.send_batch(vec![span]);
    }
}
