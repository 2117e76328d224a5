//! HTTP and gRPC services and clients, traced by the semantic conventions
//! that backends read (feature `tower`; `axum` for axum's route templates,
//! `reqwest` for reqwest clients).
//!
//! - [`ServerLayer`]: a tower layer for axum, hyper and tonic services. Each
//!   request gets a `SERVER` span that continues the caller's trace and
//!   workflow lineage from the W3C headers, named `{method} {route}` (the
//!   route template, never the raw path) or, for gRPC, `{package.Service}/{Method}`.
//! - [`ClientLayer`]: a tower layer for clients that send `http::Request`s
//!   (hyper-util's client, a tonic channel): a `CLIENT` span per request,
//!   with the context injected into its headers.
//! - [`ReqwestMiddleware`] (feature `reqwest`): the same for reqwest, through
//!   reqwest-middleware, counting resends.
//!
//! A `#[workflow]` handler inside the server layer is that request's
//! workflow, nested under the `SERVER` span: the span says what the request
//! was (method, route, status), the workflow what the service did with it,
//! and a caller's workflow lineage (received in the headers) continues into
//! the handler's workflow, so `parent = headers` is not needed (if written,
//! it finds the trace already continued and nests the same way).
//!
//! ```
//! use axum::{Router, routing::get};
//! use workflow_otel::http::ServerLayer;
//! use workflow_otel::workflow;
//!
//! #[workflow]
//! async fn show_order() -> &'static str { "order 7" }
//!
//! let app: Router = Router::new()
//!     .route("/orders/{id}", get(|| show_order()))
//!     .layer(ServerLayer::new()); // inside the router: the route is known
//! ```
//!
//! # What the spans carry
//!
//! | span | name | attributes | status `Error` when |
//! |---|---|---|---|
//! | HTTP server | `{method} {http.route}`, or `{method}` with no route | `http.request.method` (`_OTHER` + `http.request.method_original` for a method not known), `url.path`, `url.scheme`, `url.query`, `http.route`, `http.response.status_code`, `server.address`, `server.port` (from `Host`), `network.protocol.version`, `user_agent.original`, `client.address` (the first `Forwarded`/`X-Forwarded-For` hop, else the peer), `network.peer.address`/`.port` (axum's `ConnectInfo`) | 5xx, the service's error, a panic |
//! | HTTP client | `{method}` | `http.request.method`, `server.address`, `server.port`, `url.full` (credentials and signature query values `REDACTED`), `http.response.status_code`, `http.request.resend_count` | 4xx, 5xx, a transport error |
//! | gRPC server / client | `{rpc.method}`, or `grpc` for a method the server does not have | `rpc.system.name = grpc`, `rpc.method`, `rpc.status_code` (`OK`, `NOT_FOUND`, ...), `server.address`, `server.port` | server: `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`; client: any code but `OK` |
//!
//! `error.type` is the status code (`"503"`, `"UNAVAILABLE"`) or, for a
//! failure without one, a short name (`timeout`, `connect`) or the error's
//! type (see [`ErrorType`](crate::ErrorType)). A span ends when the response
//! body has been sent (or received) to its end, or dropped, so streaming
//! responses are timed whole. A request whose future is dropped unfinished
//! (the client went away) ends its span with no status.
//!
//! Known methods are the conventions' (`GET`, `HEAD`, `POST`, `PUT`,
//! `DELETE`, `CONNECT`, `OPTIONS`, `TRACE`, `PATCH`, `QUERY`), or the list in
//! `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS` (comma-separated, a full
//! override). Text that comes from a peer (`url.path`, `url.query`,
//! `user_agent.original`, a forwarded address) is cut to
//! [`MAX_ATTRIBUTE_BYTES`].
//!
//! With metrics on, each request also adds its duration to
//! `http.server.request.duration`, `http.client.request.duration`,
//! `rpc.server.call.duration` or `rpc.client.call.duration` (seconds, the
//! conventions' buckets and attributes, an exemplar of its span).
//!
//! Spans are opened through the OpenTelemetry API, with the global tracer
//! provider (the one [`setup()`](crate::setup()) installs) unless
//! `tracer_provider(..)` names another, so the pipeline, the sampler and the
//! exporters are the ones the rest of the program uses.

mod body;
mod client;
mod future;
mod grpc;
mod open;
#[cfg(feature = "reqwest")]
mod reqwest;
mod server;
mod url;

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use opentelemetry::global::{BoxedTracer, ObjectSafeTracerProvider};
use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};

pub use body::TracedBody;
pub use client::{ClientLayer, ClientService};
pub use future::ResponseFuture;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use reqwest::ReqwestMiddleware;
pub use server::{ServerLayer, ServerService};
pub use url::redact_url;

/// The longest text taken from a peer into an attribute (`url.path`,
/// `url.query`, `user_agent.original`, a forwarded client address), in
/// bytes: longer text is cut at a character boundary.
pub const MAX_ATTRIBUTE_BYTES: usize = 2048;

/// Where the layers get their tracer: the global provider at each request
/// (so a layer built before `setup()` still works), or one given.
#[derive(Clone)]
pub(crate) enum Tracers {
    Global,
    Given(Arc<BoxedTracer>),
}

impl Tracers {
    pub(crate) fn given<P>(provider: &P) -> Tracers
    where
        P: ObjectSafeTracerProvider,
    {
        Tracers::Given(Arc::new(BoxedTracer::new(
            provider.boxed_tracer(crate::record::raw::scope()),
        )))
    }

    /// Starts a span of `kind` named `name` under `parent` and returns the
    /// context that holds it.
    pub(crate) fn start(
        &self,
        name: Cow<'static, str>,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
        parent: &Context,
    ) -> Context {
        if !cfg!(feature = "instrument") {
            // The compile-time off switch: no span, and the parent passed on
            // as a span that records nothing (so nothing of the caller's own
            // span is touched or ended).
            return parent.with_remote_span_context(parent.span().span_context().clone());
        }
        let build = |tracer: &BoxedTracer| {
            tracer
                .span_builder(name)
                .with_kind(kind)
                .with_attributes(attributes)
                .start_with_context(tracer, parent)
        };
        let span = match self {
            Tracers::Global => build(&opentelemetry::global::tracer_with_scope(
                crate::record::raw::scope(),
            )),
            Tracers::Given(tracer) => build(tracer),
        };
        parent.with_span(span)
    }
}

impl std::fmt::Debug for Tracers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tracers::Global => "Global",
            Tracers::Given(_) => "Given",
        })
    }
}

/// The conventions' default known methods.
const KNOWN_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY",
];

fn known_methods() -> &'static [Box<str>] {
    static KNOWN: OnceLock<Vec<Box<str>>> = OnceLock::new();
    KNOWN.get_or_init(
        || match std::env::var("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS") {
            Ok(list) => list
                .split(',')
                .map(str::trim)
                .filter(|method| !method.is_empty())
                .map(Box::from)
                .collect(),
            Err(_) => KNOWN_METHODS
                .iter()
                .map(|method| Box::from(*method))
                .collect(),
        },
    )
}

/// `http.request.method` (and `http.request.method_original` when the
/// method is not known), and the method as the span name shows it (`HTTP`
/// for one not known).
pub(crate) fn method_attributes(
    method: &::http::Method,
    attributes: &mut Vec<KeyValue>,
) -> Cow<'static, str> {
    let text = method.as_str();
    if known_methods().iter().any(|known| &**known == text) {
        let name: Cow<'static, str> = match KNOWN_METHODS.iter().find(|known| **known == text) {
            Some(known) => Cow::Borrowed(known),
            None => Cow::Owned(text.to_owned()),
        };
        attributes.push(KeyValue::new("http.request.method", name.clone()));
        name
    } else {
        attributes.push(KeyValue::new("http.request.method", "_OTHER"));
        attributes.push(KeyValue::new(
            "http.request.method_original",
            cut(text).to_owned(),
        ));
        Cow::Borrowed("HTTP")
    }
}

/// `network.protocol.version` of a request.
pub(crate) fn protocol_version(version: ::http::Version) -> Option<&'static str> {
    Some(match version {
        ::http::Version::HTTP_09 => "0.9",
        ::http::Version::HTTP_10 => "1.0",
        ::http::Version::HTTP_11 => "1.1",
        ::http::Version::HTTP_2 => "2",
        ::http::Version::HTTP_3 => "3",
        _ => return None,
    })
}

/// `text` cut to [`MAX_ATTRIBUTE_BYTES`] at a character boundary.
pub(crate) fn cut(text: &str) -> &str {
    if text.len() <= MAX_ATTRIBUTE_BYTES {
        return text;
    }
    let mut end = MAX_ATTRIBUTE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The `(host, port)` an authority names; the port from the scheme when it
/// has none.
pub(crate) fn host_and_port(
    authority: &str,
    scheme: Option<&str>,
) -> Option<(String, Option<u16>)> {
    let authority = authority.rsplit('@').next()?;
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(port) => port.parse().ok(),
        None => match scheme {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        },
    };
    Some((cut(host).to_owned(), port))
}

#[cfg(test)]
mod tests;
