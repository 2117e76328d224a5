use super::url::redact_query;
use super::*;

#[test]
fn credentials_and_signatures_are_redacted() {
    assert_eq!(
        redact_url("https://u:p@h.example:8443/a/b?X-Amz-Signature=1&x=2&sig=3&sig"),
        "https://REDACTED:REDACTED@h.example:8443/a/b?X-Amz-Signature=REDACTED&x=2&sig=REDACTED&sig"
    );
    assert_eq!(redact_url("http://h/p?q=1"), "http://h/p?q=1");
    assert_eq!(
        redact_url("/relative?Signature=x"),
        "/relative?Signature=REDACTED"
    );
    assert_eq!(redact_query("a=1&b"), "a=1&b");
}

#[test]
fn hosts_and_ports_from_authorities() {
    assert_eq!(
        host_and_port("example.com", Some("https")),
        Some(("example.com".into(), Some(443)))
    );
    assert_eq!(
        host_and_port("example.com:8080", None),
        Some(("example.com".into(), Some(8080)))
    );
    assert_eq!(
        host_and_port("[::1]:3000", None),
        Some(("::1".into(), Some(3000)))
    );
    assert_eq!(
        host_and_port("u:p@[::1]", Some("http")),
        Some(("::1".into(), Some(80)))
    );
    assert_eq!(host_and_port("h:notaport", None), Some(("h".into(), None)));
    assert_eq!(host_and_port("", None), None);
}

#[test]
fn unknown_methods_are_other_with_the_original_kept() {
    let mut attributes = Vec::new();
    let name = method_attributes(
        &::http::Method::from_bytes(b"PURGE").unwrap(),
        &mut attributes,
    );
    assert_eq!(name, "HTTP");
    assert_eq!(
        attributes,
        vec![
            KeyValue::new("http.request.method", "_OTHER"),
            KeyValue::new("http.request.method_original", "PURGE"),
        ]
    );
    attributes.clear();
    assert_eq!(
        method_attributes(&::http::Method::GET, &mut attributes),
        "GET"
    );
    assert_eq!(
        attributes,
        vec![KeyValue::new("http.request.method", "GET")]
    );
}

#[test]
fn grpc_methods_are_read_from_paths() {
    assert_eq!(
        grpc::method("/shop.Billing/Charge"),
        Some("shop.Billing/Charge")
    );
    assert_eq!(grpc::method("/shop.Billing"), None);
    assert_eq!(grpc::method("/a/b/c"), None);
    assert_eq!(grpc::method("//b"), None);
}

#[test]
fn long_peer_text_is_cut_at_a_character_boundary() {
    let text = "é".repeat(MAX_ATTRIBUTE_BYTES);
    let kept = cut(&text);
    assert!(kept.len() <= MAX_ATTRIBUTE_BYTES && kept.len() >= MAX_ATTRIBUTE_BYTES - 1);
    assert!(text.starts_with(kept));
}
