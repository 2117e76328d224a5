//! Retrying a fallible step (`#[step(retry(..))]`): each attempt is a span of
//! its own under the step, numbered in `retry.attempt`; the step ends with
//! the last attempt's outcome and `retry.count`, the number of retries.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;

use crate::record::attributes as attr;
use crate::record::ids;

/// How often and how patiently a step is retried; built by the macro from
/// `retry(attempts = 3, backoff_ms = 100, max_backoff_ms = 10000, jitter = true)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    attempts: u32,
    backoff: Duration,
    max_backoff: Duration,
    jitter: bool,
}

impl RetryPolicy {
    /// At most `attempts` runs (at least 1); before retry `n` (from 1) it
    /// waits `backoff_ms × 2^(n-1)`, at most `max_backoff_ms`, or with
    /// `jitter` a random time up to that ("full jitter").
    pub const fn new(attempts: u32, backoff_ms: u64, max_backoff_ms: u64, jitter: bool) -> Self {
        RetryPolicy {
            attempts: if attempts == 0 { 1 } else { attempts },
            backoff: Duration::from_millis(backoff_ms),
            max_backoff: Duration::from_millis(max_backoff_ms),
            jitter,
        }
    }

    /// How long to wait before another attempt after attempt `number` gave
    /// `result`; `None` when it succeeded, its error is not to be retried,
    /// or the attempts are spent.
    fn wait_after<R: Retryable>(
        &self,
        number: u32,
        result: &R,
        when: &impl Fn(&R::Error) -> bool,
    ) -> Option<Duration> {
        let error = result.failure()?;
        (number < self.attempts && when(error)).then(|| self.delay(number))
    }

    /// The wait before retry `retry` (1 for the second attempt).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let ceiling = self
            .backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff);
        if !self.jitter || ceiling.is_zero() {
            return ceiling;
        }
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(ids::random_u64() % nanos.saturating_add(1))
    }
}

/// What a retried step returns: a `Result`, whose `Err` decides a retry.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `Result`, so `retry` has nothing to retry on",
    label = "a retried step must return a `Result`",
    note = "`retry(..)` runs the step again when it returns `Err`; return `Result<T, E>` or remove `retry`"
)]
pub trait Retryable {
    /// The error type.
    type Error;
    /// The error, if this is one.
    fn failure(&self) -> Option<&Self::Error>;
}

impl<T, E> Retryable for Result<T, E> {
    type Error = E;
    fn failure(&self) -> Option<&E> {
        self.as_ref().err()
    }
}

/// An argument of a retried step: every attempt gets a copy of its own.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be given to every attempt of a retried step",
    label = "each attempt needs its own `{Self}`",
    note = "`retry` runs the body again, so by-value arguments must be `Clone`: derive `Clone`, or take the argument by reference (`&{Self}`)"
)]
pub trait RetryArgument {
    /// A copy for the next attempt.
    fn for_attempt(&self) -> Self;
}

impl<T: Clone> RetryArgument for T {
    fn for_attempt(&self) -> T {
        self.clone()
    }
}

/// A copy of `value` for the next attempt.
pub fn retry_argument<T: RetryArgument>(value: &T) -> T {
    value.for_attempt()
}

/// Retries every error.
pub fn retry_always<E>(_: &E) -> bool {
    true
}

/// Runs `attempt(n)` for n = 1, 2, .. until it succeeds, `when` refuses its
/// error, or the attempts are spent; sleeps between attempts.
pub fn retry<R: Retryable>(
    policy: &RetryPolicy,
    when: impl Fn(&R::Error) -> bool,
    mut attempt: impl FnMut(u32) -> R,
) -> R {
    let mut number = 1;
    loop {
        let result = attempt(number);
        match policy.wait_after(number, &result, &when) {
            Some(wait) => std::thread::sleep(wait),
            None => return finished(number, result),
        }
        number += 1;
    }
}

/// [`retry`] for async steps; waits without blocking the executor, on any
/// runtime.
pub async fn retry_async<R: Retryable, F: Future<Output = R>>(
    policy: &RetryPolicy,
    when: impl Fn(&R::Error) -> bool,
    mut attempt: impl FnMut(u32) -> F,
) -> R {
    let mut number = 1;
    loop {
        let result = attempt(number).await;
        match policy.wait_after(number, &result, &when) {
            Some(wait) => Delay::new(wait).await,
            None => return finished(number, result),
        }
        number += 1;
    }
}

/// The step's result, with `retry.count` on the step (the current span once
/// the attempts are done).
fn finished<R>(attempts: u32, result: R) -> R {
    crate::set_attribute(KeyValue::new(attr::RETRY_COUNT, i64::from(attempts - 1)));
    result
}

/// The attempt number, on the attempt's span.
pub fn attempt_number(number: u32) -> impl FnOnce(&mut crate::record::span::Fields<'_>) {
    move |fields| fields.value(attr::RETRY_ATTEMPT, i64::from(number).into())
}

/// A timer that needs no runtime: a short-lived thread wakes the task when
/// the time is up. Retries are rare and slow by nature, so a thread per wait
/// costs nothing that matters, and any executor works.
struct Delay {
    until: Instant,
    shared: Option<Arc<Mutex<Option<Waker>>>>,
}

impl Delay {
    fn new(duration: Duration) -> Delay {
        Delay {
            until: Instant::now() + duration,
            shared: None,
        }
    }
}

impl Future for Delay {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, task: &mut std::task::Context<'_>) -> Poll<()> {
        let until = self.until;
        if Instant::now() >= until {
            return Poll::Ready(());
        }
        match &self.shared {
            Some(shared) => {
                *shared.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.waker().clone());
            }
            None => {
                let shared = Arc::new(Mutex::new(Some(task.waker().clone())));
                let waker = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name("workflow-otel-retry".to_owned())
                    .spawn(move || {
                        std::thread::sleep(until.saturating_duration_since(Instant::now()));
                        if let Some(waker) = waker.lock().unwrap_or_else(|p| p.into_inner()).take()
                        {
                            waker.wake();
                        }
                    });
                if spawned.is_err() {
                    // No thread to wait with: wait on this one rather than spin.
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                    return Poll::Ready(());
                }
                self.shared = Some(shared);
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let policy = RetryPolicy::new(10, 100, 1_000, false);
        let delays: Vec<u64> = (1..=6)
            .map(|n| policy.delay(n).as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(policy.delay(200), Duration::from_millis(1_000));
        let jittered = RetryPolicy::new(10, 100, 1_000, true);
        for n in 1..=6 {
            assert!(jittered.delay(n) <= policy.delay(n));
        }
        assert_eq!(RetryPolicy::new(0, 1, 1, false).attempts, 1);
    }
}
