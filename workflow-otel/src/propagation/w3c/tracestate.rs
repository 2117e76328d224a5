//! `tracestate`: vendors' key-value members, by the Level 2 grammar.

use opentelemetry::trace::TraceState;

use super::{HeaderError, error, optional_whitespace};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
