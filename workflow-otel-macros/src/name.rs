//! Compile-time validation of span names.
//!
//! Span names are low-cardinality identifiers (OpenTelemetry's guidance), and a
//! workflow's name also becomes a segment of `relationship.hierarchy_path`, whose
//! separator is `/`. So a name is 1 to 128 characters from `A-Z a-z 0-9 _ - . :`.

pub(crate) const MAX_LEN: usize = 128;

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

/// `Ok(())` for a valid name, else the sentence to show the user.
pub(crate) fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the span name is empty; give a name such as `charge_card`".to_owned());
    }
    if name.chars().any(char::is_whitespace) {
        return Err(format!(
            "the span name {name:?} contains whitespace; use `_`, `-`, `.` or `:` between \
             words, e.g. {:?}",
            name.split_whitespace().collect::<Vec<_>>().join("_")
        ));
    }
    if let Some(bad) = name.chars().find(|&c| !allowed(c)) {
        return Err(format!(
            "the span name {name:?} contains {bad:?}; span names may use only ASCII letters, \
             digits, `_`, `-`, `.` and `:`"
        ));
    }
    if name.len() > MAX_LEN {
        return Err(format!(
            "the span name is {} characters long; the limit is {MAX_LEN}",
            name.len()
        ));
    }
    Ok(())
}

/// `.with_genai(role, span name, provider)` for a site with `genai = ..`:
/// the conventions' span name, `invoke_agent {name}`, is known at compile
/// time; the workflow keeps its own name for the lineage and the metrics.
pub(crate) fn genai_site(
    private: &proc_macro2::TokenStream,
    options: &crate::args::Options,
    span_name: &str,
) -> Option<proc_macro2::TokenStream> {
    let variant = options.genai.as_ref()?;
    let operation = match variant.to_string().as_str() {
        "Workflow" => "invoke_workflow",
        "Agent" => "invoke_agent",
        _ => "execute_tool",
    };
    let shown = format!("{operation} {span_name}");
    let provider = match &options.genai_provider {
        Some(provider) => quote::quote!(::core::option::Option::Some(#provider)),
        None => quote::quote!(::core::option::Option::None),
    };
    Some(quote::quote!(.with_genai(#private::GenAiRole::#variant, #shown, #provider)))
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_documented_character_set() {
        for name in [
            "a",
            "charge_card",
            "billing.charge",
            "Order::validate",
            "v2-load",
            "x".repeat(128).as_str(),
        ] {
            assert_eq!(validate(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_each_rule_with_its_reason() {
        let cases = [
            ("", "empty"),
            ("charge card", "whitespace"),
            ("tab\tname", "whitespace"),
            ("a/b", "contains '/'"),
            ("caf\u{e9}", "contains 'é'"),
            (&*"x".repeat(129), "129 characters"),
        ];
        for (name, reason) in cases {
            let message = validate(name).expect_err(name);
            assert!(message.contains(reason), "{name:?}: {message}");
        }
    }
}
