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

use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

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

fn error(reason: impl Into<String>) -> HeaderError {
    HeaderError(reason.into())
}

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

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn optional_whitespace(c: char) -> bool {
    c == ' ' || c == '\t'
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

/// At most this many `tracestate` list-members.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;

/// The longest `tracestate` value read (32 members of the largest size, with
/// room for spaces); a longer one is ignored whole.
pub const MAX_TRACESTATE_BYTES: usize = 32 * 1024;

/// `( lcalpha / DIGIT ) 0*255 ( keychar )`, keychar being lowercase letters,
/// digits, `_ - * / @`: the key grammar of Trace Context Level 2, which
/// replaced Level 1's split into simple and `tenant@system` keys.
fn valid_tracestate_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    (1..=256).contains(&bytes.len())
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|&b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
        })
}

/// 1 to 256 printable characters but `,` and `=`, not ending in a space.
fn valid_tracestate_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    (1..=256).contains(&bytes.len())
        && bytes
            .iter()
            .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && bytes[bytes.len() - 1] != b' '
}

/// A `tracestate` as received: its members in order, each valid by the
/// Level 2 grammar.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceStateList {
    members: Vec<(String, String)>,
}

impl TraceStateList {
    /// The members, in order.
    pub fn members(&self) -> &[(String, String)] {
        &self.members
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The header value: members joined by `,`, without the spaces and
    /// empty members the input may have had.
    pub fn header(&self) -> String {
        let mut out = String::new();
        for (index, (key, value)) in self.members.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push('=');
            out.push_str(value);
        }
        out
    }

    /// The members the `opentelemetry` crate's `TraceState` can hold. Its
    /// key check is stricter than the specification (it rejects a 14-letter
    /// system id after `@`, and keys with two `@`), so propagation keeps the
    /// whole list itself and this is what spans carry.
    pub fn to_trace_state(&self) -> TraceState {
        let representable = self
            .members
            .iter()
            .filter(|(key, value)| TraceState::from_key_value([(key, value)]).is_ok())
            .map(|(key, value)| (key, value));
        TraceState::from_key_value(representable).unwrap_or_default()
    }
}

/// Parses a `tracestate` value: comma-separated `key=value` members, empty
/// members and spaces around them allowed, at most 32 members, at most
/// [`MAX_TRACESTATE_BYTES`]. A key that appears again is dropped there (the
/// first position is the one that counts); any other violation rejects the
/// whole header, as the spec asks.
pub fn parse_tracestate(value: &str) -> Result<TraceStateList, HeaderError> {
    if value.len() > MAX_TRACESTATE_BYTES {
        return Err(error(format!(
            "tracestate is longer than {MAX_TRACESTATE_BYTES} bytes"
        )));
    }
    let mut members: Vec<(String, String)> = Vec::new();
    for member in value.split(',') {
        let member = member.trim_matches(optional_whitespace);
        if member.is_empty() {
            continue;
        }
        let Some((key, member_value)) = member.split_once('=') else {
            return Err(error(format!("tracestate member {member:?} has no `=`")));
        };
        if !valid_tracestate_key(key) {
            return Err(error(format!("tracestate key {key:?} is not a valid key")));
        }
        if !valid_tracestate_value(member_value) {
            return Err(error(format!(
                "tracestate value of {key:?} is not a valid value"
            )));
        }
        if members.iter().any(|(existing, _)| existing == key) {
            continue;
        }
        members.push((key.to_owned(), member_value.to_owned()));
        if members.len() > MAX_TRACESTATE_MEMBERS {
            return Err(error("tracestate has more than 32 members"));
        }
    }
    Ok(TraceStateList { members })
}

/// At most this many baggage list-members are read or written.
pub const MAX_BAGGAGE_MEMBERS: usize = 180;
/// At most this many bytes of baggage are read or written.
pub const MAX_BAGGAGE_BYTES: usize = 8192;

/// One baggage entry: the decoded key and value, and its properties as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaggageEntry {
    /// The key (an RFC 7230 token).
    pub key: String,
    /// The value, percent-decoded.
    pub value: String,
    /// The properties after the value (`;key=value;flag`), as received.
    pub properties: String,
}

fn token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

fn valid_property(property: &str) -> bool {
    match property.split_once('=') {
        None => !property.is_empty() && property.bytes().all(token_char),
        Some((key, value)) => {
            let (key, value) = (
                key.trim_matches(optional_whitespace),
                value.trim_matches(optional_whitespace),
            );
            !key.is_empty() && key.bytes().all(token_char) && value.bytes().all(baggage_octet)
        }
    }
}

fn parse_member(member: &str) -> Result<BaggageEntry, HeaderError> {
    let mut parts = member.split(';');
    let pair = parts.next().unwrap_or_default();
    let Some((key, value)) = pair.split_once('=') else {
        return Err(error(format!("baggage member {member:?} has no `=`")));
    };
    let (key, value) = (
        key.trim_matches(optional_whitespace),
        value.trim_matches(optional_whitespace),
    );
    if key.is_empty() || !key.bytes().all(token_char) {
        return Err(error(format!("baggage key {key:?} is not a token")));
    }
    if !value.bytes().all(baggage_octet) {
        return Err(error(format!(
            "baggage value of {key:?} has a character that must be percent-encoded"
        )));
    }
    // Escapes that do not decode to UTF-8 become U+FFFD, as the Baggage
    // specification requires; a `%` not followed by two hex digits is no
    // escape at all, and the member is skipped.
    let value = percent_decode_bytes(value)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .ok_or_else(|| error(format!("baggage value of {key:?} has a bad %-escape")))?;
    let mut properties = Vec::new();
    for property in parts {
        let property = property.trim_matches(optional_whitespace);
        if !valid_property(property) {
            return Err(error(format!(
                "baggage property {property:?} of {key:?} is malformed"
            )));
        }
        properties.push(property);
    }
    Ok(BaggageEntry {
        key: key.to_owned(),
        value,
        properties: properties.join(";"),
    })
}

/// Parses a `baggage` value. A malformed member is skipped with its reason
/// (the others still count); members past 180, or past 8192 bytes of header
/// (spaces and empty members included), are dropped whole, never cut.
pub fn parse_baggage(value: &str) -> (Vec<BaggageEntry>, Vec<HeaderError>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let mut size = 0;
    let mut written = 0;
    for member in value.split(',') {
        let trimmed = member.trim_matches(optional_whitespace);
        if trimmed.is_empty() {
            size += member.len() + 1;
            if size > MAX_BAGGAGE_BYTES {
                problems.push(error(
                    "baggage is longer than 8192 bytes; the rest is dropped",
                ));
                break;
            }
            continue;
        }
        if entries.len() == MAX_BAGGAGE_MEMBERS {
            problems.push(error(
                "baggage has more than 180 members; the rest are dropped",
            ));
            break;
        }
        size += member.len() + usize::from(size > 0);
        if size > MAX_BAGGAGE_BYTES {
            problems.push(error(
                "baggage is longer than 8192 bytes; the rest is dropped",
            ));
            break;
        }
        match parse_member(trimmed) {
            Ok(entry) => {
                // What is accepted must also fit when written again, where
                // a decoded U+FFFD takes nine bytes for the three it replaced.
                let needed = written_len(&entry) + usize::from(written > 0);
                if written + needed > MAX_BAGGAGE_BYTES {
                    problems.push(error(format!(
                        "baggage member {:?} would pass 8192 bytes when written; dropped",
                        entry.key
                    )));
                    continue;
                }
                written += needed;
                entries.push(entry);
            }
            Err(problem) => problems.push(problem),
        }
    }
    (entries, problems)
}

/// The length of `entry` as [`format_baggage`] writes it.
fn written_len(entry: &BaggageEntry) -> usize {
    let value: usize = entry
        .value
        .bytes()
        .map(|b| if baggage_octet(b) && b != b'%' { 1 } else { 3 })
        .sum();
    let properties = if entry.properties.is_empty() {
        0
    } else {
        1 + entry.properties.len()
    };
    entry.key.len() + 1 + value + properties
}

/// Writes baggage entries, values percent-encoded; entries that would pass
/// the member or byte limits are left out whole.
pub fn format_baggage<'a>(entries: impl IntoIterator<Item = &'a BaggageEntry>) -> String {
    let mut out = String::new();
    for (count, entry) in entries.into_iter().enumerate() {
        if count == MAX_BAGGAGE_MEMBERS
            || entry.key.is_empty()
            || !entry.key.bytes().all(token_char)
        {
            continue;
        }
        let mut member = format!("{}={}", entry.key, percent_encode(&entry.value));
        if !entry.properties.is_empty() {
            member.push(';');
            member.push_str(&entry.properties);
        }
        let needed = member.len() + usize::from(!out.is_empty());
        if out.len() + needed > MAX_BAGGAGE_BYTES {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&member);
    }
    out
}

/// Percent-encodes what a baggage value may not hold (and `%` itself).
pub(crate) fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if baggage_octet(b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` for a `%` not followed by two hex digits
/// or a result that is not UTF-8.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    String::from_utf8(percent_decode_bytes(text)?).ok()
}

fn percent_decode_bytes(text: &str) -> Option<Vec<u8>> {
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

    #[test]
    fn tracestate_accepts_the_grammar_and_writes_it_back() {
        let rows = [
            (
                "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
                "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
            ),
            (
                "rojo=00f067aa0ba902b7 , ,\tcongo=t61rcWkgMzE",
                "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
            ),
            ("tenant-1@vendor=x y", "tenant-1@vendor=x y"),
            ("1tenant@sys=v", "1tenant@sys=v"),
            ("a*b/c_d-e=~!", "a*b/c_d-e=~!"),
            ("", ""),
        ];
        for (header, written) in rows {
            let state = parse_tracestate(header).expect(header);
            assert_eq!(state.header(), written, "{header:?}");
        }
        let full: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            parse_tracestate(&full.join(",")).unwrap().header(),
            full.join(",")
        );
    }

    #[test]
    fn tracestate_rejects_every_invalid_form_with_its_reason() {
        let too_many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        let too_many = too_many.join(",");
        let long_key = format!("{}=v", "a".repeat(257));
        let long_value = format!("k={}", "v".repeat(257));
        let huge = ",".repeat(MAX_TRACESTATE_BYTES + 1);
        let rows: [(&str, &str); 12] = [
            ("novalue", "no `=`"),
            ("Upper=v", "not a valid key"),
            ("_under=v", "not a valid key"),
            ("@vendor=v", "not a valid key"),
            ("a@Vendor=v", "not a valid key"),
            ("a.b=v", "not a valid key"),
            ("k=", "not a valid value"),
            ("k=tab\tinside", "not a valid value"),
            ("k=a=b", "not a valid value"),
            (&too_many, "more than 32"),
            (&long_key, "not a valid key"),
            (&huge, "longer than"),
        ];
        for (header, reason) in rows {
            let problem = parse_tracestate(header).expect_err(header);
            assert!(problem.0.contains(reason), "{header:?}: {problem}");
        }
        assert!(
            parse_tracestate(&long_value)
                .unwrap_err()
                .0
                .contains("not a valid value")
        );
    }

    #[test]
    fn tracestate_keys_follow_the_level_2_grammar() {
        // Level 2: a key starts with a lowercase letter or digit and holds
        // up to 256 of `a-z 0-9 _ - * / @`, `@` anywhere.
        let tenant = format!("{}@{}", "t".repeat(241), "s".repeat(14));
        for key in [
            "1digit",
            "foo@",
            "foo@@bar",
            "a@1",
            "a@vendorvendorvend",
            &tenant,
        ] {
            let header = format!("{key}=v");
            let state = parse_tracestate(&header).expect(&header);
            assert_eq!(state.header(), header);
        }
        // The SDK's TraceState rejects some of these: spans carry what it
        // can hold, and propagation keeps the whole list (tests/propagation.rs).
        let state = parse_tracestate(&format!("{tenant}=v,rojo=1")).unwrap();
        assert_eq!(state.to_trace_state().header(), "rojo=1");
    }

    #[test]
    fn a_repeated_tracestate_key_drops_the_repeat_not_the_header() {
        let state = parse_tracestate("congo=1,rojo=2,congo=3").unwrap();
        assert_eq!(state.header(), "congo=1,rojo=2");
    }

    #[test]
    fn baggage_reads_members_properties_and_percent_encoding() {
        let (entries, problems) = parse_baggage(
            "userId=alice , serverNode = DF%2028,isProduction=false;ttl=60;sensitive, empty=",
        );
        assert_eq!(problems, []);
        let expect = |key: &str, value: &str, properties: &str| BaggageEntry {
            key: key.into(),
            value: value.into(),
            properties: properties.into(),
        };
        assert_eq!(
            entries,
            [
                expect("userId", "alice", ""),
                expect("serverNode", "DF 28", ""),
                expect("isProduction", "false", "ttl=60;sensitive"),
                expect("empty", "", ""),
            ]
        );
        assert_eq!(
            format_baggage(&entries),
            "userId=alice,serverNode=DF%2028,isProduction=false;ttl=60;sensitive,empty="
        );
        let unicode = [expect("city", "Zürich, \"Altstadt\"", "")];
        let written = format_baggage(&unicode);
        assert_eq!(written, "city=Z%C3%BCrich%2C%20%22Altstadt%22");
        assert_eq!(parse_baggage(&written).0, unicode);
    }

    #[test]
    fn baggage_skips_each_malformed_member_with_its_reason() {
        let (entries, problems) =
            parse_baggage("ok=1,novalue,bad key=2,k=with space,k2=%zz,k3=%ff,k4=v;=p,ok2=2");
        let keys: Vec<&str> = entries.iter().map(|entry| entry.key.as_str()).collect();
        assert_eq!(keys, ["ok", "k3", "ok2"]);
        // An escape that is not UTF-8 becomes U+FFFD (Baggage: MUST).
        assert_eq!(entries[1].value, "\u{FFFD}");
        let reasons: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let expected = [
            "no `=`",
            "not a token",
            "must be percent-encoded",
            "bad %-escape",
            "malformed",
        ];
        assert_eq!(reasons.len(), expected.len(), "{reasons:?}");
        for (reason, fragment) in reasons.iter().zip(expected) {
            assert!(reason.contains(fragment), "{reason} should say {fragment}");
        }
    }

    #[test]
    fn baggage_limits_drop_whole_members() {
        let many: Vec<String> = (0..200).map(|i| format!("k{i}=v")).collect();
        let (entries, problems) = parse_baggage(&many.join(","));
        assert_eq!(entries.len(), MAX_BAGGAGE_MEMBERS);
        assert!(problems[0].0.contains("180"));
        let big = format!("a={},b={}", "x".repeat(5000), "y".repeat(5000));
        let (entries, problems) = parse_baggage(&big);
        assert_eq!(entries.len(), 1);
        assert!(problems[0].0.contains("8192"));
        let written = format_baggage(&[
            BaggageEntry {
                key: "a".into(),
                value: "x".repeat(5000),
                properties: String::new(),
            },
            BaggageEntry {
                key: "b".into(),
                value: "y".repeat(5000),
                properties: String::new(),
            },
        ]);
        assert_eq!(written.len(), 5002);
    }
}
