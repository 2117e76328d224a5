//! The future of a traced request, on either side: the span's context is
//! current while the inner service runs; the answer's status is judged by
//! the side's rule; the body then carries the span to its end.

use std::borrow::Cow;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use ::http::{HeaderMap, Response};

use crate::http::body::TracedBody;
use crate::http::grpc::{self, Side};
use crate::http::open::OpenSpan;

pin_project_lite::pin_project! {
    /// What [`ServerService`](super::ServerService) and
    /// [`ClientService`](super::ClientService) return: the inner service's
    /// future, with the request's span current while it runs.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        open: Option<OpenSpan>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(mut open) = this.project().open.take() {
                if std::thread::panicking() {
                    open.failure(
                        Cow::Borrowed(crate::record::raw::PANIC),
                        "the handler panicked".to_owned(),
                    );
                    open.end();
                } else {
                    // Dropped unfinished (the peer went away): no status.
                    open.abandon();
                }
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, open: OpenSpan) -> ResponseFuture<F> {
        ResponseFuture {
            inner,
            open: Some(open),
        }
    }
}

/// Records an answer on its span: the status code, `Error` for 5xx on a
/// server and for 4xx and 5xx on a client; for gRPC, the status in the
/// headers (a trailers-only answer) and any HTTP status but 200.
pub(crate) fn record_response(open: &mut OpenSpan, status: u16, headers: &HeaderMap) {
    if open.grpc.is_some() {
        grpc::record_status(open, headers);
        if status != 200 {
            open.status_code(status, true);
        }
    } else {
        let failed = match open.side {
            Side::Server => status >= 500,
            Side::Client => status >= 400,
        };
        open.status_code(status, failed);
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    E: Display,
{
    type Output = Result<Response<TracedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = match this.open.as_ref() {
            Some(open) => {
                let _attached = open.cx.clone().attach();
                this.inner.poll(task)
            }
            None => this.inner.poll(task),
        };
        let Poll::Ready(result) = polled else {
            return Poll::Pending;
        };
        let Some(mut open) = this.open.take() else {
            // Polled again after it completed: the inner future decides.
            return Poll::Ready(result.map(|response| response.map(TracedBody::done)));
        };
        Poll::Ready(match result {
            Ok(response) => {
                record_response(&mut open, response.status().as_u16(), response.headers());
                Ok(response.map(|body| TracedBody::new(body, open)))
            }
            Err(error) => {
                open.failure(
                    Cow::Borrowed(crate::record::probe::type_label::<E>()),
                    error.to_string(),
                );
                open.end();
                Err(error)
            }
        })
    }
}
