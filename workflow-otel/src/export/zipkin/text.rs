//! Values as Zipkin writes them: tags as text, annotation values as JSON.

use std::fmt::Write as _;

use opentelemetry::{Array, Value};

use crate::export::otlp_json::write::string;

pub(super) fn json_string(json: &mut String, text: &str) {
    let mut bytes = Vec::with_capacity(text.len() + 2);
    string(&mut bytes, text);
    json.push_str(std::str::from_utf8(&bytes).unwrap_or_default());
}

/// `"key":value` with the value as JSON of its type.
pub(super) fn json_member(json: &mut String, key: &str, value: &Value) {
    json_string(json, key);
    json.push(':');
    json_value(json, value);
}

fn json_value(json: &mut String, value: &Value) {
    match value {
        Value::Bool(flag) => json.push_str(if *flag { "true" } else { "false" }),
        Value::I64(number) => {
            let _ = write!(json, "{number}");
        }
        Value::F64(number) => json.push_str(&json_float(*number)),
        Value::String(text) => json_string(json, text.as_str()),
        Value::Array(array) => json.push_str(&array_json(array)),
        other => json_string(json, &other.as_str()),
    }
}

/// A double as JSON: non-finite ones as the names JSON readers know.
fn json_float(number: f64) -> String {
    if number.is_nan() {
        "NaN".to_owned()
    } else if number.is_infinite() {
        if number > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }
        .to_owned()
    } else {
        float_text(number)
    }
}

/// An array as a JSON list, the form the mapping gives array tags.
fn array_json(array: &Array) -> String {
    let mut json = String::from("[");
    let mut each = |index: usize, member: &dyn Fn(&mut String)| {
        if index > 0 {
            json.push(',');
        }
        member(&mut json);
    };
    match array {
        Array::Bool(values) => {
            for (index, value) in values.iter().enumerate() {
                each(index, &|json| json_value(json, &Value::Bool(*value)));
            }
        }
        Array::I64(values) => {
            for (index, value) in values.iter().enumerate() {
                each(index, &|json| json_value(json, &Value::I64(*value)));
            }
        }
        Array::F64(values) => {
            for (index, value) in values.iter().enumerate() {
                each(index, &|json| json.push_str(&json_float(*value)));
            }
        }
        Array::String(values) => {
            for (index, value) in values.iter().enumerate() {
                each(index, &|json| json_string(json, value.as_str()));
            }
        }
        // `Array` is non-exhaustive: a kind added later is sent as its text.
        other => each(0, &|json| json_string(json, &other.to_string())),
    }
    json.push(']');
    json
}

/// A value as tag text.
/// A value as a tag's JSON string, written straight into `out`.
pub(super) fn write_tag_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(flag) => out.extend_from_slice(if *flag { b"\"true\"" } else { b"\"false\"" }),
        Value::I64(number) => {
            out.push(b'"');
            crate::export::otlp_json::write::integer(out, number.unsigned_abs(), *number < 0);
            out.push(b'"');
        }
        Value::F64(number) => {
            out.push(b'"');
            write_float(out, *number);
            out.push(b'"');
        }
        Value::String(text) => string(out, text.as_str()),
        other => string(out, &value_text(other)),
    }
}

pub(super) fn value_text(value: &Value) -> String {
    match value {
        Value::Bool(flag) => flag.to_string(),
        Value::I64(number) => number.to_string(),
        Value::F64(number) => float_text(*number),
        Value::String(text) => text.as_str().to_owned(),
        Value::Array(array) => array_json(array),
        other => other.as_str().into_owned(),
    }
}

/// A double as its shortest round-trip digits, in fixed notation from 1e-4
/// up to 1e16 and in scientific notation (`1e+20`, `1.5e-07`) outside it,
/// always with a point or an exponent: what Python, Java and JavaScript
/// readers print, so that `1.0` stays a double in Zipkin's tags.
pub(super) fn float_text(number: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_float(&mut out, number);
    String::from_utf8(out).unwrap_or_default()
}

/// [`float_text`] appended to `out`, with no allocation: the digits are
/// formatted on the stack (a tag's double is written once per span).
pub(super) fn write_float(out: &mut Vec<u8>, number: f64) {
    if number.is_nan() {
        return out.extend_from_slice(b"nan");
    }
    if number.is_infinite() {
        return out.extend_from_slice(if number > 0.0 { b"inf" } else { b"-inf" });
    }
    if number == 0.0 {
        return out.extend_from_slice(if number.is_sign_negative() {
            b"-0.0"
        } else {
            b"0.0"
        });
    }
    // `{:e}`: the shortest round-trip digits, `d.ddde-x`; at most 24 bytes.
    let mut buffer = [0_u8; 32];
    let written = {
        let mut cursor = std::io::Cursor::new(&mut buffer[..]);
        let _ = std::io::Write::write_fmt(&mut cursor, format_args!("{number:e}"));
        cursor.position() as usize
    };
    let scientific = &buffer[..written];
    let e = scientific
        .iter()
        .position(|byte| *byte == b'e')
        .unwrap_or(written);
    let exponent: i32 = std::str::from_utf8(&scientific[(e + 1).min(written)..])
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0);
    let mut mantissa = &scientific[..e];
    if let Some(rest) = mantissa.strip_prefix(b"-") {
        out.push(b'-');
        mantissa = rest;
    }
    let mut digits = [0_u8; 24];
    let mut count = 0;
    for digit in mantissa.iter().filter(|byte| **byte != b'.') {
        digits[count] = *digit;
        count += 1;
    }
    let digits = &digits[..count];
    if (-4..16).contains(&exponent) {
        let before_point = exponent + 1;
        if before_point <= 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(
                b'0',
                before_point.unsigned_abs() as usize,
            ));
            out.extend_from_slice(digits);
        } else if before_point as usize >= digits.len() {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(
                b'0',
                before_point as usize - digits.len(),
            ));
            out.extend_from_slice(b".0");
        } else {
            let (whole, fraction) = digits.split_at(before_point as usize);
            out.extend_from_slice(whole);
            out.push(b'.');
            out.extend_from_slice(fraction);
        }
    } else {
        let (first, rest) = digits.split_at(1);
        out.extend_from_slice(first);
        if !rest.is_empty() {
            out.push(b'.');
            out.extend_from_slice(rest);
        }
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push(b'0');
        }
        crate::export::otlp_json::write::integer(out, u64::from(magnitude), false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_are_written_as_python_and_java_write_them() {
        for (number, text) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (123_456.0, "123456.0"),
            (1.2753e-5, "1.2753e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1.5e20, "1.5e+20"),
            (9_999_999_999_999_998.0, "9999999999999998.0"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
            (-0.0, "-0.0"),
        ] {
            assert_eq!(float_text(number), text, "{number:e}");
        }
    }
}
