//! Text forms the seed's attributes use, written without `format!`: they are
//! made for every workflow span, where `format!` machinery costs thousands of
//! instructions each.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `value`'s low `digits` nibbles, most significant first.
fn push_hex(out: &mut Vec<u8>, value: u128, digits: u32) {
    for shift in (0..digits).rev() {
        out.push(HEX[((value >> (shift * 4)) & 0xf) as usize]);
    }
}

fn into_string(bytes: Vec<u8>) -> String {
    // Only ASCII digits, letters and punctuation were pushed.
    String::from_utf8(bytes).unwrap_or_default()
}

/// 32 lowercase hex digits, as W3C Trace Context writes a trace id.
pub(crate) fn trace_id_hex(id: opentelemetry::trace::TraceId) -> String {
    let mut out = Vec::with_capacity(32);
    push_hex(&mut out, u128::from_be_bytes(id.to_bytes()), 32);
    into_string(out)
}

/// 16 lowercase hex digits, as W3C Trace Context writes a span id.
pub(crate) fn span_id_hex(id: opentelemetry::trace::SpanId) -> String {
    let mut out = Vec::with_capacity(16);
    push_hex(&mut out, u128::from(u64::from_be_bytes(id.to_bytes())), 16);
    into_string(out)
}

/// The hyphenated form of a UUID: `8-4-4-4-12` lowercase hex digits, made
/// on the stack and shared: one allocation, where a `String` turned into an
/// `Arc<str>` would be two.
pub(crate) fn uuid_text(uuid: uuid::Uuid) -> Arc<str> {
    let mut buffer = uuid::Uuid::encode_buffer();
    Arc::from(&*uuid.hyphenated().encode_lower(&mut buffer))
}

/// Writes `value`'s last `digits` decimal digits at `out[at..]`; returns the
/// position after them.
fn put_digits(out: &mut [u8], at: usize, value: u64, digits: u32) -> usize {
    for position in 0..digits {
        let power = 10_u64.pow(digits - 1 - position);
        out[at + position as usize] = b'0' + ((value / power) % 10) as u8;
    }
    at + digits as usize
}

/// `2026-11-22T09:30:05.123456Z`: UTC, microsecond precision.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    Rfc3339(time).to_string()
}

/// [`rfc3339`] as `Display`, written from a stack buffer: log lines format
/// one per event.
pub(crate) struct Rfc3339(pub(crate) SystemTime);

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let since_epoch = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let seconds = since_epoch.as_secs();
        let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
        let in_day = seconds % 86_400;
        let mut out = *b"0000-00-00T00:00:00.000000Z";
        put_digits(&mut out, 0, year.clamp(0, 9999) as u64, 4);
        put_digits(&mut out, 5, u64::from(month), 2);
        put_digits(&mut out, 8, u64::from(day), 2);
        put_digits(&mut out, 11, in_day / 3600, 2);
        put_digits(&mut out, 14, in_day % 3600 / 60, 2);
        put_digits(&mut out, 17, in_day % 60, 2);
        put_digits(&mut out, 20, u64::from(since_epoch.subsec_micros()), 6);
        // Only ASCII digits and punctuation are in the buffer.
        f.write_str(std::str::from_utf8(&out).unwrap_or_default())
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01, by counting
/// 400-year eras (146 097 days each) with years that start on March 1st, so
/// the leap day falls at the end of the year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceId};
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        let cases = [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, 0, "2000-02-29T00:00:00.000000Z"),
            (1_709_251_199, 999_999_000, "2024-02-29T23:59:59.999999Z"),
            (1_795_315_805, 123_456_789, "2026-11-22T02:50:05.123456Z"),
            (4_107_542_400, 0, "2100-03-01T00:00:00.000000Z"),
        ];
        for (seconds, nanos, expected) in cases {
            let time = UNIX_EPOCH + Duration::new(seconds, nanos);
            assert_eq!(rfc3339(time), expected, "{seconds}");
        }
    }

    #[test]
    fn ids_match_the_standard_text_forms() {
        let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(trace_id_hex(trace), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace_id_hex(trace), trace.to_string());
        let span = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        assert_eq!(span_id_hex(span), "00f067aa0ba902b7");
        let uuid = uuid::Uuid::from_u128(0x0192_3e4f_5a6b_7c8d_9eaf_b0c1_d2e3_f405);
        assert_eq!(*uuid_text(uuid), uuid.to_string());
        assert_eq!(&*uuid_text(uuid), "01923e4f-5a6b-7c8d-9eaf-b0c1d2e3f405");
    }
}
