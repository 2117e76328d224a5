//! An in-test Zipkin receiver: answers `POST /api/v2/spans` (and any other
//! path) with 202, as a Zipkin server does, keeping each body (gunzipped)
//! with its path and content type.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt as _;

/// One request: path, content type, content encoding, body.
pub type Posted = (String, String, String, Vec<u8>);

/// What the receiver was sent.
pub type Posts = Arc<Mutex<Vec<Posted>>>;

/// Starts the receiver on a loopback port of `runtime`.
pub fn start(runtime: &tokio::runtime::Runtime) -> (SocketAddr, Posts) {
    let posts = Posts::default();
    let kept = posts.clone();
    let address = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let kept = kept.clone();
                            async move {
                                let header = |name: &str| {
                                    request
                                        .headers()
                                        .get(name)
                                        .and_then(|value| value.to_str().ok())
                                        .unwrap_or_default()
                                        .to_owned()
                                };
                                let (content_type, encoding) =
                                    (header("content-type"), header("content-encoding"));
                                let path = request.uri().path().to_owned();
                                let body = request.into_body().collect().await.unwrap();
                                let mut body = body.to_bytes().to_vec();
                                if encoding == "gzip" {
                                    let mut plain = Vec::new();
                                    std::io::Read::read_to_end(
                                        &mut flate2::read::GzDecoder::new(&body[..]),
                                        &mut plain,
                                    )
                                    .unwrap();
                                    body = plain;
                                }
                                kept.lock()
                                    .unwrap()
                                    .push((path, content_type, encoding, body));
                                let mut response = hyper::Response::new(http_body_util::Full::new(
                                    hyper::body::Bytes::new(),
                                ));
                                *response.status_mut() = hyper::StatusCode::ACCEPTED;
                                Ok::<_, std::convert::Infallible>(response)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        address
    });
    (address, posts)
}

/// Every span posted to `path`, in the order they arrived.
pub fn spans_posted_to(posts: &Posts, path: &str) -> Vec<serde_json::Value> {
    posts
        .lock()
        .unwrap()
        .iter()
        .filter(|(posted_path, ..)| posted_path == path)
        .flat_map(|(.., body)| {
            let spans: Vec<serde_json::Value> =
                serde_json::from_slice(body).expect("a JSON array of spans");
            spans
        })
        .collect()
}
