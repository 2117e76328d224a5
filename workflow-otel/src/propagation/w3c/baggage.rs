//! `baggage`: key-value members with properties, values percent-encoded.

use super::{HeaderError, error, optional_whitespace, percent_decode_bytes};

/// At most this many baggage list-members are read or written.
pub const MAX_BAGGAGE_MEMBERS: usize = 180;
/// At most this many bytes of baggage are read or written.
pub const MAX_BAGGAGE_BYTES: usize = 8192;

/// Most bytes of a `baggage` header read (whitespace and empty members
/// included): four times what can be propagated; the rest is ignored.
pub const MAX_BAGGAGE_HEADER_BYTES: usize = 4 * MAX_BAGGAGE_BYTES;

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
/// (the others still count). The limits are counted as the specification
/// counts them, on the members as they are propagated (trimmed, joined by
/// commas): past 180 members, or a member that would take the written form
/// past 8192 bytes, is dropped whole, never cut. Optional whitespace and
/// empty members cost nothing there; of the header itself at most
/// [`MAX_BAGGAGE_HEADER_BYTES`] are read.
pub fn parse_baggage(value: &str) -> (Vec<BaggageEntry>, Vec<HeaderError>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let mut read = 0;
    let mut written = 0;
    for member in value.split(',') {
        read += member.len() + 1;
        if read > MAX_BAGGAGE_HEADER_BYTES + 1 {
            problems.push(error(format!(
                "the baggage header is longer than {MAX_BAGGAGE_HEADER_BYTES} bytes; the rest is \
                 not read"
            )));
            break;
        }
        let trimmed = member.trim_matches(optional_whitespace);
        if trimmed.is_empty() {
            continue;
        }
        if entries.len() == MAX_BAGGAGE_MEMBERS {
            problems.push(error(
                "baggage has more than 180 members; the rest are dropped",
            ));
            break;
        }
        match parse_member(trimmed) {
            Ok(entry) => {
                // Counted as written again, where a decoded U+FFFD takes
                // nine bytes for the three it replaced.
                let needed = written_len(&entry) + usize::from(written > 0);
                if written + needed > MAX_BAGGAGE_BYTES {
                    problems.push(error(format!(
                        "baggage member {:?} would take the baggage past 8192 bytes; dropped",
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// 63 members of 129 bytes take 8 189 bytes written: they fit, however
    /// much optional whitespace and how many empty members surround them; a
    /// 64th does not.
    #[test]
    fn whitespace_and_empty_members_do_not_count_toward_the_limit() {
        let members: Vec<String> = (0..63)
            .map(|i| format!("k{i:02}={}", "v".repeat(125)))
            .collect();
        assert!(members.iter().all(|member| member.len() == 129));
        let padded = members
            .iter()
            .map(|member| format!(" \t {member} \t "))
            .collect::<Vec<_>>()
            .join(", ,");
        assert!(padded.len() > MAX_BAGGAGE_BYTES);
        let (entries, problems) = parse_baggage(&padded);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(entries.len(), 63);
        let written = format_baggage(&entries);
        assert_eq!(written.len(), 63 * 129 + 62);
        assert_eq!(written, members.join(","));
        // One more member does not fit; it alone is dropped.
        let (entries, problems) = parse_baggage(&format!("{padded}, k63=vvvv"));
        assert_eq!(entries.len(), 63);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].0.contains("k63"), "{problems:?}");
        // The header itself is read up to its own bound.
        let (entries, problems) =
            parse_baggage(&format!("a=1,{},b=2", " ".repeat(MAX_BAGGAGE_HEADER_BYTES)));
        assert_eq!(entries.len(), 1);
        assert!(problems[0].0.contains("not read"), "{problems:?}");
    }
}
