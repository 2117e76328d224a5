//! The server layer: a `SERVER` span per request, continuing the caller's
//! trace and workflow.

use std::borrow::Cow;
use std::fmt::Display;
use std::task::{Context as TaskContext, Poll};

use ::http::{HeaderMap, Request, Response};
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use tower_layer::Layer;
use tower_service::Service;

use crate::http::body::TracedBody;
use crate::http::future::ResponseFuture;
use crate::http::grpc::{self, Side};
use crate::http::open::{Duration, Measure, OpenSpan};
use crate::http::{Tracers, cut};

/// A tower [`Layer`] that opens a `SERVER` span for every request; see the
/// [module](crate::http) for what the span carries.
///
/// With axum, add it with `Router::layer` (or `route_layer`), so that it
/// runs after routing and names spans by the matched route; a layer around
/// the whole router sees no route, and names spans by the method alone.
/// With tonic, `Server::builder().layer(ServerLayer::new())`.
#[derive(Clone, Debug)]
pub struct ServerLayer {
    tracers: Tracers,
    scheme: &'static str,
}

impl Default for ServerLayer {
    fn default() -> Self {
        ServerLayer::new()
    }
}

impl ServerLayer {
    /// Spans through the global tracer provider, looked up at each request.
    pub fn new() -> ServerLayer {
        ServerLayer {
            tracers: Tracers::Global,
            scheme: "http",
        }
    }

    /// Spans through `provider` instead of the global one.
    pub fn tracer_provider<P>(mut self, provider: &P) -> ServerLayer
    where
        P: opentelemetry::global::ObjectSafeTracerProvider,
    {
        self.tracers = Tracers::given(provider);
        self
    }

    /// The `url.scheme` of requests whose URI does not say (an HTTP/1.1
    /// request line has only the path): `"https"` behind TLS. `"http"` by default.
    pub fn scheme(mut self, scheme: &'static str) -> ServerLayer {
        self.scheme = scheme;
        self
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = ServerService<S>;

    fn layer(&self, inner: S) -> ServerService<S> {
        ServerService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`ServerLayer`] wraps around yours.
#[derive(Clone, Debug)]
pub struct ServerService<S> {
    inner: S,
    layer: ServerLayer,
}

impl<S, B, ResBody> Service<Request<B>> for ServerService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Error: Display,
{
    type Response = Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let parent = crate::propagation::extract(request.headers());
        let mut attributes = Vec::with_capacity(16);
        let (name, call) = if grpc::is_grpc(request.headers()) {
            let (name, call) = grpc::start(request.uri().path(), Side::Server, &mut attributes);
            server_address(&request, &mut attributes);
            (name, Some(call))
        } else {
            (
                http_attributes(&request, self.layer.scheme, &mut attributes),
                None,
            )
        };
        let measure = Measure::start(Duration::of(Side::Server, call.is_some()), &attributes);
        let cx = self
            .layer
            .tracers
            .start(name, SpanKind::Server, attributes, &parent);
        let inner = {
            let _attached = cx.clone().attach();
            self.inner.call(request)
        };
        ResponseFuture::new(
            inner,
            OpenSpan {
                cx,
                grpc: call,
                side: Side::Server,
                measure,
            },
        )
    }
}

/// The attributes of an HTTP request as its server sees it; the span name.
fn http_attributes<B>(
    request: &Request<B>,
    default_scheme: &'static str,
    attributes: &mut Vec<KeyValue>,
) -> Cow<'static, str> {
    let method = super::method_attributes(request.method(), attributes);
    let uri = request.uri();
    attributes.push(KeyValue::new("url.path", cut(uri.path()).to_owned()));
    if let Some(query) = uri.query() {
        attributes.push(KeyValue::new(
            "url.query",
            super::url::redact_query(cut(query)).into_owned(),
        ));
    }
    attributes.push(KeyValue::new(
        "url.scheme",
        match uri.scheme_str() {
            Some("https") => "https",
            Some("http") => "http",
            _ => default_scheme,
        },
    ));
    server_address(request, attributes);
    if let Some(version) = super::protocol_version(request.version()) {
        attributes.push(KeyValue::new("network.protocol.version", version));
    }
    let headers = request.headers();
    if let Some(agent) = header_text(headers, ::http::header::USER_AGENT.as_str()) {
        attributes.push(KeyValue::new("user_agent.original", cut(agent).to_owned()));
    }
    let peer = peer_address(request);
    if let Some(client) = forwarded_client(headers) {
        attributes.push(KeyValue::new("client.address", cut(client).to_owned()));
    } else if let Some(peer) = peer {
        attributes.push(KeyValue::new("client.address", peer.ip().to_string()));
    }
    if let Some(peer) = peer {
        attributes.push(KeyValue::new("network.peer.address", peer.ip().to_string()));
        attributes.push(KeyValue::new("network.peer.port", i64::from(peer.port())));
    }
    match route(request) {
        Some(route) => {
            let name = format!("{method} {route}");
            attributes.push(KeyValue::new("http.route", route));
            Cow::Owned(name)
        }
        None => method,
    }
}

/// `server.address` and `server.port`: the `Host` header, or the URI's
/// authority (HTTP/2's `:authority`).
fn server_address<B>(request: &Request<B>, attributes: &mut Vec<KeyValue>) {
    let authority = request
        .uri()
        .authority()
        .map(|authority| authority.as_str())
        .or_else(|| header_text(request.headers(), ::http::header::HOST.as_str()));
    if let Some((host, port)) = authority.and_then(|text| super::host_and_port(text, None)) {
        attributes.push(KeyValue::new("server.address", host));
        if let Some(port) = port {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The original client behind proxies: `Forwarded: for=..` (RFC 7239), or
/// the first address of `X-Forwarded-For`.
fn forwarded_client(headers: &HeaderMap) -> Option<&str> {
    if let Some(forwarded) = header_text(headers, "forwarded") {
        let first = forwarded.split(',').next().unwrap_or_default();
        for pair in first.split(';') {
            let pair = pair.trim();
            if let Some(value) = pair
                .get(..4)
                .filter(|key| key.eq_ignore_ascii_case("for="))
                .and(pair.get(4..))
            {
                let value = value.trim_matches('"');
                // `for="[2001:db8::1]:4711"`: the address without brackets or port.
                let value = match value.strip_prefix('[') {
                    Some(rest) => rest.split(']').next().unwrap_or(rest),
                    None => value.split(':').next().unwrap_or(value),
                };
                if !value.is_empty() {
                    return Some(value);
                }
            }
        }
    }
    header_text(headers, "x-forwarded-for")
        .and_then(|list| list.split(',').next())
        .map(str::trim)
        .filter(|first| !first.is_empty())
}

#[cfg(feature = "axum")]
fn route<B>(request: &Request<B>) -> Option<String> {
    request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|path| path.as_str().to_owned())
}

#[cfg(not(feature = "axum"))]
fn route<B>(_: &Request<B>) -> Option<String> {
    None
}

#[cfg(feature = "axum")]
fn peer_address<B>(request: &Request<B>) -> Option<std::net::SocketAddr> {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0)
}

#[cfg(not(feature = "axum"))]
fn peer_address<B>(_: &Request<B>) -> Option<std::net::SocketAddr> {
    None
}
