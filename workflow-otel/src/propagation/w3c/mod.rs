//! Strict parsers and writers for the W3C headers: Trace Context Level 2
//! (`traceparent`, `tracestate`) and Baggage.
//!
//! Written here rather than taken from the SDK's propagators because those
//! are lenient where the specifications are not (they accept uppercase hex in
//! some versions, and parse tracestate members they should reject), stricter
//! where they should not be (the SDK's `TraceState` refuses some Level 2
//! keys), and give no reason when they drop a header; here every rejection
//! says why. A `traceparent` accepted is written back byte for byte (version
//! `00`), a `tracestate` member by member; baggage values are decoded and
//! encoded again (uppercase escapes, only where needed).

use std::fmt;

mod baggage;
mod traceparent;
mod tracestate;

pub(crate) use baggage::percent_encode;
pub use baggage::{
    BaggageEntry, MAX_BAGGAGE_BYTES, MAX_BAGGAGE_HEADER_BYTES, MAX_BAGGAGE_MEMBERS, format_baggage,
    parse_baggage,
};
pub use traceparent::TraceParent;
pub use tracestate::{
    MAX_TRACESTATE_BYTES, MAX_TRACESTATE_MEMBERS, TraceStateList, parse_tracestate,
};

/// Why a header was ignored. Per the specifications an invalid `traceparent`
/// starts a new trace, an invalid `tracestate` is dropped (the `traceparent`
/// still counts), and an invalid baggage member is skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderError(pub(crate) String);

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HeaderError {}

pub(crate) fn error(reason: impl Into<String>) -> HeaderError {
    HeaderError(reason.into())
}

pub(crate) fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub(crate) fn optional_whitespace(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Decodes `%XX` escapes; `None` for a `%` not followed by two hex digits
/// or a result that is not UTF-8.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    String::from_utf8(percent_decode_bytes(text)?).ok()
}

pub(crate) fn percent_decode_bytes(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    Some(out)
}
