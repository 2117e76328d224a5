//! Carrying the current span and workflow into new tasks and threads.
//!
//! A spawned task or thread starts with an empty OpenTelemetry context, so a
//! step inside it would become a new root. These helpers capture the caller's
//! context (span, workflow and instrumentation) and attach it in the new task.
//! For other executors, wrap the future with
//! `opentelemetry::context::FutureExt::with_current_context`, which is what
//! [`spawn`] does.

use std::thread;

use opentelemetry::Context;

/// `tokio::spawn` that runs the future in the caller's current context, so its
/// spans nest under the caller's span.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use workflow_otel::{step, workflow};
///
/// #[step]
/// async fn resize(image: u32) -> u32 { image / 2 }
///
/// #[workflow]
/// async fn thumbnails() -> u32 {
///     let task = workflow_otel::spawn(resize(512));
///     task.await.expect("task panicked")
/// }
/// assert_eq!(thumbnails().await, 256);
/// # }
/// ```
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    use opentelemetry::context::FutureExt as _;
    tokio::spawn(future.with_current_context())
}

/// `std::thread::spawn` that runs `f` in the caller's current context.
pub fn spawn_thread<F, T>(f: F) -> thread::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let cx = Context::current();
    thread::spawn(move || {
        let _guard = cx.attach();
        f()
    })
}

/// Wraps `f` so that it runs in the caller's current context wherever it is
/// called: for `std::thread::scope`, thread pools and callbacks.
///
/// ```
/// use workflow_otel::{in_current_context, step, workflow};
///
/// #[step]
/// fn checksum(part: &[u8]) -> u32 { part.iter().map(|&b| u32::from(b)).sum() }
///
/// #[workflow]
/// fn verify(data: &[u8]) -> u32 {
///     let (left, right) = data.split_at(data.len() / 2);
///     std::thread::scope(|scope| {
///         let left = scope.spawn(in_current_context(|| checksum(left)));
///         let right = scope.spawn(in_current_context(|| checksum(right)));
///         left.join().unwrap() + right.join().unwrap()
///     })
/// }
/// assert_eq!(verify(&[1, 2, 3, 4]), 10);
/// ```
pub fn in_current_context<F, T>(f: F) -> impl FnOnce() -> T
where
    F: FnOnce() -> T,
{
    let cx = Context::current();
    move || {
        let _guard = cx.attach();
        f()
    }
}
