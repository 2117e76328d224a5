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
    if number.is_nan() {
        return "nan".to_owned();
    }
    if number.is_infinite() {
        return if number > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if number == 0.0 {
        return if number.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_owned();
    }
    let scientific = format!("{number:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exponent) {
        let before_point = exponent + 1;
        if before_point <= 0 {
            format!(
                "{sign}0.{}{digits}",
                "0".repeat(before_point.unsigned_abs() as usize)
            )
        } else if before_point as usize >= digits.len() {
            let zeros = "0".repeat(before_point as usize - digits.len());
            format!("{sign}{digits}{zeros}.0")
        } else {
            let (whole, fraction) = digits.split_at(before_point as usize);
            format!("{sign}{whole}.{fraction}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let point = if rest.is_empty() { "" } else { "." };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{sign}{first}{point}{rest}e{exponent_sign}{:02}",
            exponent.unsigned_abs()
        )
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
