//! The client layer: a `CLIENT` span per request sent, with the context
//! injected into the request's headers.

use std::fmt::Display;
use std::task::{Context as TaskContext, Poll};

use ::http::{Request, Response};
use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue};
use tower_layer::Layer;
use tower_service::Service;

use crate::http::Tracers;
use crate::http::body::TracedBody;
use crate::http::future::ResponseFuture;
use crate::http::grpc::{self, Side};
use crate::http::open::{Duration, Measure, OpenSpan};

/// A tower [`Layer`] for clients of `http::Request`s (hyper-util's client,
/// a tonic `Channel`): every request gets a `CLIENT` span under the current
/// one, and carries `traceparent`, `tracestate`, `baggage` and the workflow
/// lineage in its headers. See the [module](crate::http) for the attributes.
///
/// ```
/// use tower_layer::Layer as _;
/// use workflow_otel::http::{ClientLayer, ClientService};
///
/// // `ServiceBuilder::new().layer(ClientLayer::new()).service(channel)` with tower.
/// fn traced<S>(channel: S) -> ClientService<S> {
///     ClientLayer::new().layer(channel)
/// }
/// # drop(traced(()));
/// ```
#[derive(Clone, Debug)]
pub struct ClientLayer {
    tracers: Tracers,
    server: Option<(String, Option<u16>)>,
}

impl Default for ClientLayer {
    fn default() -> Self {
        ClientLayer::new()
    }
}

impl ClientLayer {
    /// Spans through the global tracer provider, looked up at each request.
    pub fn new() -> ClientLayer {
        ClientLayer {
            tracers: Tracers::Global,
            server: None,
        }
    }

    /// The `server.address` and `server.port` of requests whose URI names
    /// no host: a tonic channel adds its endpoint's origin only inside, so
    /// a layer around it sees paths alone.
    pub fn server_address(mut self, host: impl Into<String>, port: Option<u16>) -> ClientLayer {
        self.server = Some((host.into(), port));
        self
    }

    /// Spans through `provider` instead of the global one.
    pub fn tracer_provider<P>(mut self, provider: &P) -> ClientLayer
    where
        P: opentelemetry::global::ObjectSafeTracerProvider,
    {
        self.tracers = Tracers::given(provider);
        self
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;

    fn layer(&self, inner: S) -> ClientService<S> {
        ClientService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`ClientLayer`] wraps around a client.
#[derive(Clone, Debug)]
pub struct ClientService<S> {
    inner: S,
    layer: ClientLayer,
}

impl<S, B, ResBody> Service<Request<B>> for ClientService<S>
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

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let open = start(&self.layer, &mut request);
        let inner = {
            let _attached = open.cx.clone().attach();
            self.inner.call(request)
        };
        ResponseFuture::new(inner, open)
    }
}

/// Opens the `CLIENT` span of `request` under the current context and
/// injects it.
fn start<B>(layer: &ClientLayer, request: &mut Request<B>) -> OpenSpan {
    let mut attributes = Vec::with_capacity(8);
    let (name, call) = if grpc::is_grpc(request.headers()) {
        let (name, call) = grpc::start(request.uri().path(), Side::Client, &mut attributes);
        (name, Some(call))
    } else {
        let method = super::method_attributes(request.method(), &mut attributes);
        attributes.push(KeyValue::new(
            "url.full",
            super::redact_url(&request.uri().to_string()),
        ));
        (method, None)
    };
    let target = request
        .uri()
        .authority()
        .and_then(|authority| super::host_and_port(authority.as_str(), request.uri().scheme_str()))
        .or_else(|| layer.server.clone());
    if let Some((host, port)) = target {
        attributes.push(KeyValue::new("server.address", host));
        if let Some(port) = port {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
    }
    let measure = Measure::start(Duration::of(Side::Client, call.is_some()), &attributes);
    let cx = Context::map_current(|parent| {
        layer
            .tracers
            .start(name, SpanKind::Client, attributes, parent)
    });
    crate::propagation::inject(&cx, request.headers_mut());
    OpenSpan {
        cx,
        grpc: call,
        side: Side::Client,
        measure,
    }
}
