//! reqwest clients, through reqwest-middleware: a `CLIENT` span per request
//! sent (each resend its own, with `http.request.resend_count`).

use std::borrow::Cow;

use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue};
use reqwest_middleware::{Middleware, Next};

use crate::http::Tracers;
use crate::http::grpc::Side;
use crate::http::open::{Duration, Measure, OpenSpan};

/// A [`Middleware`] for `reqwest_middleware::ClientBuilder`: every request
/// sent gets a `CLIENT` span under the current span, and carries
/// `traceparent`, `tracestate`, `baggage` and the workflow lineage. Put it
/// after a retry middleware, so that each attempt is a span of its own,
/// numbered by `http.request.resend_count`.
///
/// ```
/// use workflow_otel::http::ReqwestMiddleware;
/// # // With `tls` on, reqwest's rustls has no crypto provider of its own.
/// # #[cfg(feature = "tls")]
/// # let _ = rustls::crypto::ring::default_provider().install_default();
///
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(ReqwestMiddleware::new())
///     .build();
/// # drop(client);
/// ```
///
/// `error.type` of a request that got no answer: `timeout`, `connect`,
/// `redirect`, `body`, `decode`, `request`, or `_OTHER` (an error of another
/// middleware).
#[derive(Clone, Debug)]
pub struct ReqwestMiddleware {
    tracers: Tracers,
}

impl Default for ReqwestMiddleware {
    fn default() -> Self {
        ReqwestMiddleware::new()
    }
}

impl ReqwestMiddleware {
    /// Spans through the global tracer provider, looked up at each request.
    pub fn new() -> ReqwestMiddleware {
        ReqwestMiddleware {
            tracers: Tracers::Global,
        }
    }

    /// Spans through `provider` instead of the global one.
    pub fn tracer_provider<P>(mut self, provider: &P) -> ReqwestMiddleware
    where
        P: opentelemetry::global::ObjectSafeTracerProvider,
    {
        self.tracers = Tracers::given(provider);
        self
    }
}

/// How many times the request in these extensions was sent already.
#[derive(Clone, Copy, Debug)]
struct Sent(u32);

#[async_trait::async_trait]
impl Middleware for ReqwestMiddleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut ::http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let resends = extensions.get::<Sent>().map_or(0, |sent| sent.0);
        extensions.insert(Sent(resends + 1));
        let mut open = start(&self.tracers, &mut request, resends);
        let result = {
            let sent = next.run(request, extensions);
            opentelemetry::context::FutureExt::with_context(sent, open.cx.clone()).await
        };
        match &result {
            Ok(response) => super::future::record_response(
                &mut open,
                response.status().as_u16(),
                response.headers(),
            ),
            Err(error) => open.failure(Cow::Borrowed(error_type(error)), error.to_string()),
        }
        // The span ends at the answer's head: reqwest reads the body later,
        // in code of the caller's.
        open.end();
        result
    }
}

fn start(tracers: &Tracers, request: &mut reqwest::Request, resends: u32) -> OpenSpan {
    let mut attributes = Vec::with_capacity(8);
    let name = super::method_attributes(request.method(), &mut attributes);
    let url = request.url();
    attributes.push(KeyValue::new("url.full", super::redact_url(url.as_str())));
    if let Some(host) = url.host_str() {
        attributes.push(KeyValue::new("server.address", host.to_owned()));
    }
    if let Some(port) = url.port_or_known_default() {
        attributes.push(KeyValue::new("server.port", i64::from(port)));
    }
    if resends > 0 {
        attributes.push(KeyValue::new(
            "http.request.resend_count",
            i64::from(resends),
        ));
    }
    let measure = Measure::start(Duration::HttpClient, &attributes);
    let cx =
        Context::map_current(|parent| tracers.start(name, SpanKind::Client, attributes, parent));
    crate::propagation::inject(&cx, request.headers_mut());
    OpenSpan {
        cx,
        grpc: None,
        side: Side::Client,
        measure,
    }
}

/// A low-cardinality name for a request that got no answer.
fn error_type(error: &reqwest_middleware::Error) -> &'static str {
    let reqwest_middleware::Error::Reqwest(error) = error else {
        return crate::record::probe::OTHER_ERROR;
    };
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_redirect() {
        "redirect"
    } else if error.is_body() {
        "body"
    } else if error.is_decode() {
        "decode"
    } else if error.is_request() {
        "request"
    } else {
        crate::record::probe::OTHER_ERROR
    }
}
