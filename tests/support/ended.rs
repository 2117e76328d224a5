//! Waiting for spans that end on another task: a server span ends when its
//! body has been sent, which may be just after the client has read it.

#![allow(unreachable_pub)]

use std::time::{Duration, Instant};

use opentelemetry_sdk::trace::SpanData;
use workflow_otel::testing::Capture;

/// The spans once `count` of them ended, or what there is after 10 s (the
/// assertion that follows then says what is missing).
pub fn spans_when(capture: &Capture, count: usize) -> Vec<SpanData> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans = capture.spans();
        if spans.len() >= count || Instant::now() > deadline {
            return spans;
        }
        std::thread::yield_now();
    }
}
