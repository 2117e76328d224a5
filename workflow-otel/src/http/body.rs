//! The response body of a traced request: it ends the span when the body
//! has been read to its end or dropped, and reads a gRPC status from the
//! trailers on the way.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use crate::http::grpc;
use crate::http::open::OpenSpan;
use bytes::Buf;
use http_body::{Body, Frame, SizeHint};

pin_project_lite::pin_project! {
    /// A response body that ends its request's span when it ends. What
    /// [`ServerService`](super::ServerService) and
    /// [`ClientService`](super::ClientService) answer with.
    #[derive(Debug)]
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        open: Option<OpenSpan>,
    }

    impl<B> PinnedDrop for TracedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(open) = this.project().open.take() {
                open.end();
            }
        }
    }
}

impl<B> TracedBody<B> {
    pub(crate) fn new(inner: B, open: OpenSpan) -> TracedBody<B> {
        TracedBody {
            inner,
            open: Some(open),
        }
    }

    /// A body whose span has ended already.
    pub(crate) fn done(inner: B) -> TracedBody<B> {
        TracedBody { inner, open: None }
    }
}

impl<B: Body> Body for TracedBody<B>
where
    B::Data: Buf,
    B::Error: std::fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(trailers), Some(open)) = (frame.trailers_ref(), this.open.as_mut())
                    && open.grpc.as_ref().is_some_and(|call| !call.seen)
                {
                    grpc::record_status(open, trailers);
                }
            }
            Poll::Ready(Some(Err(error))) => {
                if let Some(mut open) = this.open.take() {
                    open.failure(
                        crate::record::probe::type_label::<B::Error>().into(),
                        error.to_string(),
                    );
                    open.end();
                }
            }
            Poll::Ready(None) => {
                if let Some(open) = this.open.take() {
                    open.end();
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
