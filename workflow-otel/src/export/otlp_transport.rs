//! Sending one OTLP request, over gRPC, HTTP/protobuf or HTTP/JSON, with
//! gzip, headers, TLS and a timeout: what the span exporter and the metrics
//! exporter share. The request is built by the caller: a protobuf message
//! for gRPC and HTTP/protobuf, or the JSON bytes for HTTP/JSON.

use std::error::Error;
use std::fmt::Write as _;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use http::uri::PathAndQuery;
use tonic::client::Grpc;
use tonic::transport::Channel;

use crate::error::SetupError;
use crate::export::{OtlpProtocol, OtlpSettings};

/// gRPC method of the trace service.
pub(crate) const TRACE_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// gRPC method of the metrics service.
pub(crate) const METRICS_EXPORT: &str =
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// An OTLP endpoint and the connection to it, on a one-thread runtime of its
/// own, so that sending works the same from sync code and from inside any
/// async runtime.
pub(crate) struct OtlpTransport {
    runtime: Option<tokio::runtime::Runtime>,
    kind: Kind,
    settings: OtlpSettings,
}

enum Kind {
    Grpc(Grpc<Channel>),
    Http(reqwest::Client),
}

/// What one request carries.
pub(crate) enum Payload<M> {
    /// For gRPC and HTTP/protobuf.
    Message(M),
    /// For gRPC and HTTP/protobuf: the message already encoded.
    Encoded(Vec<u8>),
    /// For HTTP/JSON: the request's OTLP/JSON.
    Json(Vec<u8>),
}

impl OtlpTransport {
    /// A transport for `settings`; `setting` names where they came from in
    /// errors. Fails on a header that is not a valid HTTP header or an
    /// endpoint that is not a URL; the endpoint is reached only when sending.
    pub(crate) fn new(
        settings: &OtlpSettings,
        thread_name: &str,
        setting: &str,
    ) -> Result<OtlpTransport, SetupError> {
        let fail = |reason: String| {
            SetupError::new(
                setting,
                &crate::setup::env::without_credentials(&settings.endpoint),
                reason,
            )
        };
        let runtime = crate::export::otlp::exporter_runtime(thread_name, settings)?;
        crate::export::otlp::header_map(settings)?;
        let tls = crate::export::otlp::tls_for(settings)?;
        let kind = match settings.protocol {
            OtlpProtocol::Grpc => {
                let endpoint = tonic::transport::Endpoint::from_shared(settings.endpoint.clone())
                    .map_err(|error| fail(format!("not a gRPC endpoint: {error}")))?
                    .timeout(settings.timeout)
                    .connect_timeout(settings.timeout);
                #[cfg(feature = "tls")]
                let endpoint = match &tls {
                    Some(tls) => endpoint
                        .tls_config(crate::export::tls::tonic_config(tls))
                        .map_err(|error| fail(format!("cannot set TLS up: {error}")))?,
                    None => endpoint,
                };
                // The channel connects on the runtime it is made on.
                let _entered = runtime.enter();
                let mut grpc = Grpc::new(endpoint.connect_lazy());
                if settings.gzip {
                    grpc = grpc.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                }
                Kind::Grpc(grpc)
            }
            OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => Kind::Http(match &tls {
                #[cfg(feature = "tls")]
                Some(tls) => crate::export::tls::reqwest_client(tls, settings)?,
                _ => reqwest::Client::builder()
                    .timeout(settings.timeout)
                    .build()
                    .map_err(|error| fail(format!("cannot build the HTTP client: {error}")))?,
            }),
        };
        #[cfg(not(feature = "tls"))]
        let _ = tls;
        Ok(OtlpTransport {
            runtime: Some(runtime),
            kind,
            settings: settings.clone(),
        })
    }

    pub(crate) fn settings(&self) -> &OtlpSettings {
        &self.settings
    }

    /// Whether requests go as OTLP/JSON ([`Payload::Json`]).
    pub(crate) fn sends_json(&self) -> bool {
        self.settings.protocol == OtlpProtocol::HttpJson
    }

    /// Sends one request and waits for its answer, within `timeout` (and
    /// the settings' own). `R` is the service's response message; `path`
    /// its gRPC method.
    pub(crate) fn send<M, R>(
        &self,
        payload: Payload<M>,
        path: &'static str,
        timeout: Duration,
    ) -> Result<(), String>
    where
        M: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        let timeout = timeout.min(self.settings.timeout);
        self.block_on(async {
            match tokio::time::timeout(timeout, self.send_now::<M, R>(payload, path)).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            }
        })
    }

    fn block_on<T>(&self, work: impl Future<Output = Result<T, String>>) -> Result<T, String> {
        match &self.runtime {
            Some(runtime) => runtime.block_on(work),
            None => Err("the exporter is shut down".to_owned()),
        }
    }

    async fn send_now<M, R>(&self, payload: Payload<M>, path: &'static str) -> Result<(), String>
    where
        M: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        match (&self.kind, payload) {
            (Kind::Grpc(grpc), Payload::Message(message)) => {
                let codec = tonic_prost::ProstCodec::<M, R>::default();
                self.unary(grpc, message, path, codec).await
            }
            (Kind::Grpc(grpc), Payload::Encoded(bytes)) => {
                self.unary(grpc, bytes, path, Encoded::<R>::default()).await
            }
            (Kind::Http(client), payload) => {
                let (body, content_type) = match payload {
                    Payload::Json(body) => (body, "application/json"),
                    Payload::Encoded(body) => (body, "application/x-protobuf"),
                    Payload::Message(message) => {
                        (message.encode_to_vec(), "application/x-protobuf")
                    }
                };
                self.post(client, body, content_type).await
            }
            (Kind::Grpc(_), Payload::Json(_)) => Err("OTLP/JSON cannot go over gRPC".to_owned()),
        }
    }

    async fn unary<C>(
        &self,
        grpc: &Grpc<Channel>,
        message: C::Encode,
        path: &'static str,
        codec: C,
    ) -> Result<(), String>
    where
        C: tonic::codec::Codec,
        C::Encode: Sync,
        C::Decode: Sync,
    {
        let mut call = tonic::Request::new(message);
        for (name, value) in &self.settings.headers {
            if let (Ok(name), Ok(value)) = (
                tonic::metadata::MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes()),
                value.parse(),
            ) {
                call.metadata_mut().insert(name, value);
            }
        }
        let mut grpc = grpc.clone();
        grpc.ready()
            .await
            .map_err(|error| format!("cannot connect: {}", crate::export::error_chain(&error)))?;
        grpc.unary(call, PathAndQuery::from_static(path), codec)
            .await
            .map(|_| ())
            .map_err(|status| {
                let mut text = format!("gRPC status {:?}: {}", status.code(), status.message());
                if let Some(source) = status.source() {
                    let _ = write!(text, " ({})", crate::export::error_chain(source));
                }
                text
            })
    }

    async fn post(
        &self,
        client: &reqwest::Client,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), String> {
        let mut post = client
            .post(&self.settings.endpoint)
            .header("content-type", content_type);
        let body = if self.settings.gzip {
            post = post.header("content-encoding", "gzip");
            crate::export::gzip(&body).map_err(|error| error.to_string())?
        } else {
            body
        };
        for (name, value) in &self.settings.headers {
            post = post.header(name.as_str(), value.as_str());
        }
        crate::export::send_post(post.body(body)).await
    }
}

/// A gRPC codec that sends a message already encoded, and decodes the
/// answer `R`.
struct Encoded<R>(PhantomData<R>);

impl<R> Default for Encoded<R> {
    fn default() -> Self {
        Encoded(PhantomData)
    }
}

impl<R: prost::Message + Default + Send + Sync + 'static> tonic::codec::Codec for Encoded<R> {
    type Encode = Vec<u8>;
    type Decode = R;
    type Encoder = EncodedEncoder;
    type Decoder = EncodedDecoder<R>;

    fn encoder(&mut self) -> EncodedEncoder {
        EncodedEncoder
    }

    fn decoder(&mut self) -> EncodedDecoder<R> {
        EncodedDecoder(PhantomData)
    }
}

struct EncodedEncoder;

impl tonic::codec::Encoder for EncodedEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut as _;
        dst.put_slice(&item);
        Ok(())
    }
}

struct EncodedDecoder<R>(PhantomData<R>);

impl<R: prost::Message + Default> tonic::codec::Decoder for EncodedDecoder<R> {
    type Item = R;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<R>, tonic::Status> {
        R::decode(src)
            .map(Some)
            .map_err(|error| tonic::Status::internal(error.to_string()))
    }
}

impl Drop for OtlpTransport {
    fn drop(&mut self) {
        // Never blocks and never panics, even when dropped inside another
        // runtime; pending connections are abandoned.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
