//! gRPC over the same layers: a request with `content-type:
//! application/grpc...` is an RPC, named and judged by the RPC conventions.

use std::borrow::Cow;

use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt as _;

use crate::http::open::OpenSpan;

/// Which end of the call a span is: the codes that count as errors differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

/// Whether a request's headers say it is gRPC.
pub(crate) fn is_grpc(headers: &::http::HeaderMap) -> bool {
    headers
        .get(::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

/// `rpc.method` from a request path `/package.Service/Method`, if it has
/// that form.
pub(crate) fn method(path: &str) -> Option<&str> {
    let method = path.strip_prefix('/')?;
    let (service, name) = method.split_once('/')?;
    (!service.is_empty() && !name.is_empty() && !name.contains('/')).then_some(method)
}

/// An RPC in flight: whether its status was seen, and (on the
/// server, which learns only from the answer whether it has the method)
/// the `rpc.method` to record with the status.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) seen: bool,
    method: Option<Box<str>>,
}

/// The span name and attributes of an RPC at `path`, and the call to carry
/// to its end.
pub(crate) fn start(
    path: &str,
    side: Side,
    attributes: &mut Vec<KeyValue>,
) -> (Cow<'static, str>, Call) {
    attributes.push(KeyValue::new("rpc.system.name", "grpc"));
    let mut call = Call {
        seen: false,
        method: None,
    };
    let name = match method(path) {
        Some(method) => {
            let method = super::cut(method).to_owned();
            match side {
                Side::Client => attributes.push(KeyValue::new("rpc.method", method.clone())),
                Side::Server => call.method = Some(method.clone().into()),
            }
            Cow::Owned(method)
        }
        None => {
            attributes.push(KeyValue::new("rpc.method", "_OTHER"));
            attributes.push(KeyValue::new(
                "rpc.method_original",
                super::cut(path).to_owned(),
            ));
            Cow::Borrowed("grpc")
        }
    };
    (name, call)
}

/// The names of gRPC's status codes, by number.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

const UNIMPLEMENTED: usize = 12;

/// The codes a server counts as its own failure (the conventions' list).
fn server_error(code: usize) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

/// Records the `grpc-status` in `headers` (the trailers, or the headers of
/// a trailers-only answer); whether there was one.
pub(crate) fn record_status(open: &mut OpenSpan, headers: &::http::HeaderMap) {
    let Some(value) = headers.get("grpc-status") else {
        return;
    };
    // A code gRPC does not define is UNKNOWN, as its spec says.
    let code = value
        .to_str()
        .ok()
        .and_then(|text| text.parse::<usize>().ok())
        .filter(|code| *code < CODES.len())
        .unwrap_or(2);
    let message = headers
        .get("grpc-message")
        .and_then(|value| value.to_str().ok())
        .map(|text| super::cut(text).to_owned())
        .unwrap_or_default();
    record_code(open, code, message);
}

fn record_code(open: &mut OpenSpan, code: usize, message: String) {
    let Some(call) = open.grpc.as_mut() else {
        return;
    };
    call.seen = true;
    let method = call.method.take();
    let name = CODES[code];
    open.attribute(KeyValue::new("rpc.status_code", name), true);
    if let Some(method) = method {
        if code == UNIMPLEMENTED {
            // The server has no such method: the name the client sent must
            // not become a span name or a method of its own.
            open.cx.span().update_name(Cow::Borrowed("grpc"));
            open.attribute(KeyValue::new("rpc.method", "_OTHER"), true);
            open.attribute(
                KeyValue::new("rpc.method_original", String::from(method)),
                false,
            );
        } else {
            open.attribute(KeyValue::new("rpc.method", String::from(method)), true);
        }
    }
    let failed = match open.side {
        Side::Server => server_error(code),
        Side::Client => code != 0,
    };
    if failed {
        open.failure(Cow::Borrowed(name), message);
    }
}

/// A body that ended with no status: the call did not complete.
pub(crate) fn record_missing_status(open: &mut OpenSpan) {
    record_code(open, 2, "the stream ended without a grpc-status".to_owned());
}
