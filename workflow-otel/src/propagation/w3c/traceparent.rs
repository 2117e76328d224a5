//! `traceparent`: the version, trace id, parent id and flags.

use opentelemetry::trace::{SpanId, TraceFlags, TraceId};

use super::{HeaderError, error, is_lower_hex, optional_whitespace};

/// A parsed `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id (never all zeros).
    pub trace_id: TraceId,
    /// The parent span id (never all zeros).
    pub span_id: SpanId,
    /// All eight flag bits as received; bit 0 is `sampled`, bit 1 (Level 2)
    /// `random`, the others are kept but not interpreted.
    pub flags: TraceFlags,
}

impl TraceParent {
    /// Parses a `traceparent` value (surrounding spaces and tabs allowed, as
    /// HTTP allows them around any header value).
    ///
    /// Version `00` must be exactly `00-<32 hex>-<16 hex>-<2 hex>`, lowercase.
    /// A higher version is read the same way from its first 55 characters and
    /// must continue with `-` if longer (the spec's rule for future versions);
    /// version `ff` is invalid.
    pub fn parse(value: &str) -> Result<TraceParent, HeaderError> {
        let value = value.trim_matches(optional_whitespace);
        if !value.is_ascii() {
            return Err(error("traceparent is not ASCII"));
        }
        if value.len() < 55 {
            return Err(error(format!(
                "traceparent is {} characters; version 00 has 55",
                value.len()
            )));
        }
        let version = &value[..2];
        if !is_lower_hex(version) {
            return Err(error("the version is not two lowercase hex digits"));
        }
        if version == "ff" {
            return Err(error("version ff is invalid"));
        }
        if version == "00" && value.len() != 55 {
            return Err(error("version 00 must be exactly 55 characters"));
        }
        if value.len() > 55 && value.as_bytes()[55] != b'-' {
            return Err(error(
                "a future version must continue with `-` after 55 characters",
            ));
        }
        let bytes = value.as_bytes();
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return Err(error(
                "fields must be separated by `-` at positions 2, 35 and 52",
            ));
        }
        let (trace, span, flags) = (&value[3..35], &value[36..52], &value[53..55]);
        for (name, field) in [
            ("trace-id", trace),
            ("parent-id", span),
            ("trace-flags", flags),
        ] {
            if !is_lower_hex(field) {
                return Err(error(format!("{name} is not lowercase hex")));
            }
        }
        let trace_id = TraceId::from_hex(trace).map_err(|_| error("trace-id is not hex"))?;
        let span_id = SpanId::from_hex(span).map_err(|_| error("parent-id is not hex"))?;
        if trace_id == TraceId::INVALID {
            return Err(error("trace-id is all zeros"));
        }
        if span_id == SpanId::INVALID {
            return Err(error("parent-id is all zeros"));
        }
        let flags = u8::from_str_radix(flags, 16).map_err(|_| error("trace-flags is not hex"))?;
        Ok(TraceParent {
            trace_id,
            span_id,
            flags: TraceFlags::new(flags),
        })
    }

    /// The version-00 header value.
    pub fn to_header(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.span_id,
            self.flags.to_u8()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_accepts_the_specification_examples_and_writes_them_back() {
        for header in [
            VALID,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
            // Unknown flag bits are carried, not interpreted.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
        ] {
            let parsed = TraceParent::parse(header).expect(header);
            assert_eq!(parsed.to_header(), header);
        }
        let parsed = TraceParent::parse(VALID).unwrap();
        assert!(parsed.flags.is_sampled());
        assert_eq!(
            parsed.trace_id,
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736)
        );
        // Spaces and tabs around the value, as HTTP allows.
        assert_eq!(
            TraceParent::parse(&format!(" \t{VALID}\t ")).unwrap(),
            parsed
        );
    }

    #[test]
    fn traceparent_future_versions_are_read_as_version_00() {
        for header in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds",
        ] {
            let parsed = TraceParent::parse(header).expect(header);
            assert_eq!(parsed.to_header(), VALID);
        }
    }

    #[test]
    fn traceparent_rejects_every_invalid_form_with_its_reason() {
        let rows = [
            ("", "characters"),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                "characters",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
                "exactly 55",
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "version ff",
            ),
            (
                "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "version",
            ),
            (
                "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "version",
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.x",
                "continue with `-`",
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "trace-id is not lowercase hex",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
                "parent-id is not lowercase hex",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0G",
                "trace-flags is not lowercase hex",
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "trace-id is all zeros",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "parent-id is all zeros",
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "separated by `-`",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
                "separated by `-`",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
                "separated by `-`",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01é",
                "not ASCII",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736- 0f067aa0ba902b7-01",
                "parent-id is not lowercase hex",
            ),
        ];
        for (header, reason) in rows {
            let problem = TraceParent::parse(header).expect_err(header);
            assert!(problem.0.contains(reason), "{header:?}: {problem}");
        }
    }
}
