//! Each thread's buffer of finished spans: handed to the queue in one
//! message per 64 spans, or when the thread's outermost span ends, so the
//! queue is touched once per batch rather than once per span.

use std::cell::RefCell;

use crate::pipeline::Pipeline;
use crate::record::raw::RawSpan;

/// Spans a thread buffers before it hands them to the queue in one message.
const LOCAL_BATCH: usize = 64;

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
            // After a full batch the next one starts with room for a whole
            // one (growing from empty reallocates five times on the way to
            // 64); after a partial one, with none, so that queued batches
            // never hold much more memory than their spans.
            let room = if self.spans.len() >= LOCAL_BATCH {
                LOCAL_BATCH
            } else {
                0
            };
            let batch = std::mem::replace(&mut self.spans, Vec::with_capacity(room));
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
