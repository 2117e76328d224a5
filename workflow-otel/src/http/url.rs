//! `url.full` and `url.query` without secrets, as the conventions say:
//! credentials in the authority and the values of signature parameters
//! become `REDACTED`.

use std::borrow::Cow;

/// Query parameters whose values are signatures or credentials (the
/// conventions' list).
const SECRET_PARAMETERS: &[&str] = &[
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "AWSAccessKeyId",
    "Signature",
    "sig",
    "X-Goog-Signature",
];

/// `url` as `url.full` records it: `user:password@` becomes
/// `REDACTED:REDACTED@`, and the values of the query parameters that carry
/// signatures (`X-Amz-Signature`, `sig`, ...) become `REDACTED`, keys kept.
///
/// ```
/// use workflow_otel::http::redact_url;
///
/// assert_eq!(
///     redact_url("https://alice:s3cret@example.com/report?day=3&sig=abc#top"),
///     "https://REDACTED:REDACTED@example.com/report?day=3&sig=REDACTED#top",
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((head, fragment)) => (head, Some(fragment)),
        None => (url, None),
    };
    let (before_query, query) = match before_fragment.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (before_fragment, None),
    };
    let mut out = String::with_capacity(url.len() + 16);
    match before_query.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            out.push_str(scheme);
            out.push_str("://");
            match authority.rsplit_once('@') {
                Some((_credentials, host)) => {
                    out.push_str("REDACTED:REDACTED@");
                    out.push_str(host);
                }
                None => out.push_str(authority),
            }
            out.push_str(path);
        }
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        out.push('?');
        out.push_str(&redact_query(query));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// A query string with the values of signature parameters `REDACTED`.
pub(crate) fn redact_query(query: &str) -> Cow<'_, str> {
    let secret = |pair: &str| {
        let key = pair.split_once('=').map_or(pair, |(key, _)| key);
        SECRET_PARAMETERS.contains(&key)
    };
    if !query.split('&').any(secret) {
        return Cow::Borrowed(query);
    }
    let pairs: Vec<Cow<'_, str>> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if secret(pair) => Cow::Owned(format!("{key}=REDACTED")),
            _ => Cow::Borrowed(pair),
        })
        .collect();
    Cow::Owned(pairs.join("&"))
}
