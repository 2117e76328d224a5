//! The pieces of JSON the OTLP/JSON encoders write, without `format!`: an
//! export thread writes a dozen of them per span, and formatting machinery
//! would cost more than the rest of the encoding.

use std::io::Write as _;
use std::time::SystemTime;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::{Array, KeyValue, Value};

use crate::record::raw::Attr;
use crate::record::time::Rfc3339;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appending text to the bytes of a line: the encoders write UTF-8 only,
/// into bytes, so that nothing is checked twice on the way to the file.
pub(crate) trait PushStr {
    fn push_str(&mut self, text: &str);
}

impl PushStr for Vec<u8> {
    fn push_str(&mut self, text: &str) {
        self.extend_from_slice(text.as_bytes());
    }
}

/// Writes `"name":value` pairs with the commas between them.
pub(super) struct Fields<'a> {
    pub(super) out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Fields<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>) -> Self {
        Fields { out, first: true }
    }

    pub(super) fn key(&mut self, name: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.push_str(name);
        self.out.push_str("\":");
    }

    pub(super) fn string(&mut self, name: &str, value: &str) {
        self.key(name);
        string(self.out, value);
    }

    pub(super) fn number(&mut self, name: &str, value: i64) {
        self.key(name);
        integer(self.out, value.unsigned_abs(), value < 0);
    }

    pub(super) fn trace_id(&mut self, name: &str, id: TraceId) {
        self.key(name);
        quoted_hex(self.out, &id.to_bytes());
    }

    pub(super) fn span_id(&mut self, name: &str, id: SpanId) {
        self.key(name);
        quoted_hex(self.out, &id.to_bytes());
    }

    /// A time as its nanoseconds since the epoch, a 64-bit integer: quoted.
    pub(super) fn time(&mut self, name: &str, time: SystemTime) {
        self.unix_nanos(name, crate::record::ids::unix_nanos(time));
    }

    /// [`Fields::time`] of a time already in nanoseconds since the epoch.
    pub(super) fn unix_nanos(&mut self, name: &str, nanos: u64) {
        self.key(name);
        self.out.push(b'"');
        integer(self.out, nanos, false);
        self.out.push(b'"');
    }
}

/// Lowercase hex of `bytes` (an id: at most 16), in quotes: how the JSON
/// mapping writes ids.
pub(crate) fn quoted_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut text = [b'"'; 34];
    let bytes = &bytes[..bytes.len().min(16)];
    for (at, byte) in bytes.iter().enumerate() {
        text[1 + 2 * at] = HEX[usize::from(byte >> 4)];
        text[2 + 2 * at] = HEX[usize::from(byte & 0xf)];
    }
    out.extend_from_slice(&text[..2 + 2 * bytes.len()]);
}

/// The decimal digits of `magnitude`, after a minus sign if `negative`; two
/// at a time, as timestamps have 19.
pub(crate) fn integer(out: &mut Vec<u8>, magnitude: u64, negative: bool) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut digits = [b'-'; 21];
    let mut at = digits.len();
    let mut rest = magnitude;
    while rest >= 100 {
        let pair = (rest % 100) as usize * 2;
        rest /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if rest >= 10 {
        let pair = rest as usize * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + rest as u8;
    }
    if negative {
        at -= 1;
    }
    out.extend_from_slice(&digits[at..]);
}

pub(super) fn attribute_list<'k>(
    out: &mut Vec<u8>,
    attributes: impl Iterator<Item = &'k KeyValue>,
) {
    out.push(b'[');
    for (index, attribute) in attributes.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        key_value(out, attribute.key.as_str(), &attribute.value);
    }
    out.push(b']');
}

pub(super) fn key_value(out: &mut Vec<u8>, key: &str, value: &Value) {
    key_head(out, key);
    any_value(out, value);
    out.push(b'}');
}

/// `{"key":"…","value":` — the caller writes the value and the closing brace.
pub(super) fn key_head(out: &mut Vec<u8>, key: &str) {
    out.push_str(r#"{"key":"#);
    string(out, key);
    out.push_str(r#","value":"#);
}

/// [`key_head`] for a key of ours: a constant with nothing to escape.
pub(super) fn static_key_head(out: &mut Vec<u8>, key: &'static str) {
    debug_assert!(!needs_escape(key));
    out.push_str(r#"{"key":""#);
    out.push_str(key);
    out.push_str(r#"","value":"#);
}

/// One of our attribute values, as [`any_value`] writes the `Value` the
/// SDK path would make of it.
pub(super) fn attr_value(out: &mut Vec<u8>, value: Attr<'_>) {
    match value {
        Attr::Static(text) | Attr::Text(text) => string_value(out, text),
        Attr::Shared(text) => string_value(out, text.as_str()),
        Attr::Int(number) => int_value(out, number),
        Attr::Float(number) => {
            out.push_str(r#"{"doubleValue":"#);
            double(out, number);
            out.push(b'}');
        }
        Attr::Bool(flag) => bool_value(out, flag),
        Attr::Seconds(length) => {
            out.push_str(r#"{"doubleValue":"#);
            seconds(out, length);
            out.push(b'}');
        }
        Attr::TraceId(id) => {
            out.push_str(r#"{"stringValue":"#);
            quoted_hex(out, &id.to_bytes());
            out.push(b'}');
        }
        Attr::SpanId(id) => {
            out.push_str(r#"{"stringValue":"#);
            quoted_hex(out, &id.to_bytes());
            out.push(b'}');
        }
        Attr::Time(time) => {
            out.push_str(r#"{"stringValue":""#);
            let _ = write!(out, "{}", Rfc3339(time));
            out.push_str("\"}");
        }
    }
}

pub(super) fn string_value(out: &mut Vec<u8>, text: &str) {
    out.push_str(r#"{"stringValue":"#);
    string(out, text);
    out.push(b'}');
}

fn int_value(out: &mut Vec<u8>, value: i64) {
    out.push_str(r#"{"intValue":""#);
    integer(out, value.unsigned_abs(), value < 0);
    out.push_str("\"}");
}

fn bool_value(out: &mut Vec<u8>, value: bool) {
    out.push_str(if value {
        r#"{"boolValue":true}"#
    } else {
        r#"{"boolValue":false}"#
    });
}

pub(super) fn any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(value) => bool_value(out, *value),
        Value::I64(value) => int_value(out, *value),
        Value::F64(value) => {
            out.push_str(r#"{"doubleValue":"#);
            double(out, *value);
            out.push(b'}');
        }
        Value::String(value) => string_value(out, value.as_str()),
        Value::Array(array) => {
            out.push_str(r#"{"arrayValue":{"values":["#);
            match array {
                Array::Bool(values) => list(out, values, |out, value| bool_value(out, *value)),
                Array::I64(values) => list(out, values, |out, value| int_value(out, *value)),
                Array::F64(values) => list(out, values, |out, value| {
                    out.push_str(r#"{"doubleValue":"#);
                    double(out, *value);
                    out.push(b'}');
                }),
                Array::String(values) => {
                    list(out, values, |out, value| string_value(out, value.as_str()))
                }
                // `Array` is non-exhaustive: a kind added later is sent as its text.
                other => string_value(out, &other.to_string()),
            }
            out.push_str("]}}");
        }
        // `Value` is non-exhaustive: a kind added later is sent as its text.
        other => string_value(out, other.as_str().as_ref()),
    }
}

fn list<T>(out: &mut Vec<u8>, values: &[T], mut each: impl FnMut(&mut Vec<u8>, &T)) {
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        each(out, value);
    }
}

/// `length.as_secs_f64()` as [`double`] writes it. Under a second the
/// double is the nanoseconds divided by 10⁹, correctly rounded, and its
/// shortest form is those nanoseconds' own decimal digits: written as they
/// are, without formatting a float. Longer ones take the general way.
pub(super) fn seconds(out: &mut Vec<u8>, length: std::time::Duration) {
    if length.as_secs() != 0 {
        return double(out, length.as_secs_f64());
    }
    let nanos = length.subsec_nanos();
    if nanos == 0 {
        out.push(b'0');
        return;
    }
    let mut digits = [b'0'; 11];
    digits[1] = b'.';
    let mut rest = nanos;
    for at in (2..11).rev() {
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let end = digits
        .iter()
        .rposition(|digit| *digit != b'0')
        .map_or(1, |at| at + 1);
    out.extend_from_slice(&digits[..end]);
}

pub(super) fn double(out: &mut Vec<u8>, value: f64) {
    if value.is_nan() {
        out.push_str("\"NaN\"");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else {
        // Rust prints finite doubles without exponent and with enough digits
        // to read back the same value: a valid JSON number.
        let _ = write!(out, "{value}");
    }
}

fn needs_escape(text: &str) -> bool {
    text.bytes()
        .any(|byte| byte < 0x20 || byte == b'"' || byte == b'\\')
}

/// A JSON string literal (RFC 8259): quotes, backslashes and control
/// characters escaped, everything else written as UTF-8.
pub(crate) fn string(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    // Most texts (names, ids, paths) need no escape: copy them whole.
    if !needs_escape(value) {
        out.push_str(value);
        out.push(b'"');
        return;
    }
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                out.push_str("\\u00");
                let byte = u32::from(c) as usize;
                out.push(HEX[byte >> 4]);
                out.push(HEX[byte & 0xf]);
            }
            c => out.push_str(c.encode_utf8(&mut [0; 4])),
        }
    }
    out.push(b'"');
}
