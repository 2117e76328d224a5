//! Parsing of the attribute's options: `#[step(name = "..", args(..), fields(..), err, ret, crate = ..)]`.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitStr, Path, Token, parenthesized};

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(args);
    syn::custom_keyword!(fields);
    syn::custom_keyword!(err);
    syn::custom_keyword!(ret);
    syn::custom_keyword!(Display);
    syn::custom_keyword!(Debug);
    syn::custom_keyword!(skip);
    syn::custom_keyword!(skip_all);
    syn::custom_keyword!(parent);
    syn::custom_keyword!(detached);
}

/// How a value is turned into an attribute string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Display,
    Debug,
}

/// How a `fields(key = value)` value is recorded: `%value` uses Display, `?value`
/// Debug, a plain value keeps its type (integers, floats, bools, strings).
#[derive(Clone, Copy, Debug)]
pub(crate) enum FieldFormat {
    Typed,
    Display,
    Debug,
}

pub(crate) struct Field {
    pub(crate) key: String,
    pub(crate) key_span: Span,
    pub(crate) format: FieldFormat,
    pub(crate) value: Expr,
}

#[derive(Default)]
pub(crate) struct Options {
    pub(crate) name: Option<LitStr>,
    pub(crate) args: Vec<Ident>,
    pub(crate) fields: Vec<Field>,
    pub(crate) err: Option<Format>,
    pub(crate) ret: Option<Format>,
    pub(crate) krate: Option<Path>,
    /// `parent = expr`: the context the workflow continues from.
    pub(crate) parent: Option<(Span, Expr)>,
    /// `detached`: the child starts a trace of its own, linked to its parent.
    pub(crate) detached: Option<Span>,
    /// Mistakes that do not stop parsing (a duplicated option), reported together.
    pub(crate) errors: Vec<syn::Error>,
}

/// One check for every option given twice, keyed by the option's name, so the
/// message and the span it points at are the same for all of them.
#[derive(Default)]
struct Seen(Vec<&'static str>);

impl Seen {
    fn first_time(&mut self, option: &'static str, span: Span, errors: &mut Vec<syn::Error>) {
        if self.0.contains(&option) {
            errors.push(syn::Error::new(
                span,
                format!("`{option}` is given twice; keep only one"),
            ));
        } else {
            self.0.push(option);
        }
    }
}

impl Parse for Options {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut options = Options::default();
        let mut seen = Seen::default();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::name) {
                let keyword: kw::name = input.parse()?;
                seen.first_time("name", keyword.span, &mut options.errors);
                input.parse::<Token![=]>()?;
                options.name = Some(input.parse()?);
            } else if lookahead.peek(kw::args) {
                let keyword: kw::args = input.parse()?;
                seen.first_time("args", keyword.span, &mut options.errors);
                let content;
                parenthesized!(content in input);
                let names = Punctuated::<Ident, Token![,]>::parse_terminated_with(
                    &content,
                    Ident::parse_any,
                )?;
                options.args = names.into_iter().collect();
            } else if lookahead.peek(kw::fields) {
                let keyword: kw::fields = input.parse()?;
                seen.first_time("fields", keyword.span, &mut options.errors);
                let content;
                parenthesized!(content in input);
                let fields = Punctuated::<Field, Token![,]>::parse_terminated(&content)?;
                options.fields = fields.into_iter().collect();
            } else if lookahead.peek(kw::err) {
                let keyword: kw::err = input.parse()?;
                seen.first_time("err", keyword.span, &mut options.errors);
                options.err = Some(parse_format(input, Format::Display)?);
            } else if lookahead.peek(kw::ret) {
                let keyword: kw::ret = input.parse()?;
                seen.first_time("ret", keyword.span, &mut options.errors);
                options.ret = Some(parse_format(input, Format::Debug)?);
            } else if lookahead.peek(kw::parent) {
                let keyword: kw::parent = input.parse()?;
                seen.first_time("parent", keyword.span, &mut options.errors);
                input.parse::<Token![=]>()?;
                options.parent = Some((keyword.span, input.parse()?));
            } else if lookahead.peek(kw::detached) {
                let keyword: kw::detached = input.parse()?;
                seen.first_time("detached", keyword.span, &mut options.errors);
                options.detached = Some(keyword.span);
            } else if lookahead.peek(Token![crate]) {
                let keyword: Token![crate] = input.parse()?;
                seen.first_time("crate", keyword.span, &mut options.errors);
                input.parse::<Token![=]>()?;
                options.krate = Some(input.call(Path::parse_mod_style)?);
            } else if input.peek(kw::skip) || input.peek(kw::skip_all) {
                let option: Ident = input.parse()?;
                return Err(syn::Error::new(
                    option.span(),
                    format!(
                        "`{option}` is not needed: arguments are never recorded unless you list \
                         them with `args(..)`, e.g. `args(order_id)`"
                    ),
                ));
            } else {
                return Err(lookahead.error());
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(options)
    }
}

/// `err`, `err(Display)` or `err(Debug)`; likewise for `ret`.
fn parse_format(input: ParseStream<'_>, default: Format) -> syn::Result<Format> {
    if !input.peek(syn::token::Paren) {
        return Ok(default);
    }
    let content;
    parenthesized!(content in input);
    let lookahead = content.lookahead1();
    let format = if lookahead.peek(kw::Display) {
        content.parse::<kw::Display>()?;
        Format::Display
    } else if lookahead.peek(kw::Debug) {
        content.parse::<kw::Debug>()?;
        Format::Debug
    } else {
        return Err(lookahead.error());
    };
    if !content.is_empty() {
        return Err(content.error("expected `)` after the format"));
    }
    Ok(format)
}

impl Parse for Field {
    /// `key = value`, `key = %value`, `key = ?value`; the key is a dotted name
    /// (`order.id`) or a string literal (`"http.request.method"`).
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let (key, key_span) = if input.peek(LitStr) {
            let literal: LitStr = input.parse()?;
            (literal.value(), literal.span())
        } else {
            let first = Ident::parse_any(input)?;
            let mut key = first.unraw().to_string();
            let mut span = first.span();
            while input.peek(Token![.]) {
                input.parse::<Token![.]>()?;
                let part = Ident::parse_any(input)?;
                key.push('.');
                key.push_str(&part.unraw().to_string());
                span = span.join(part.span()).unwrap_or(span);
            }
            (key, span)
        };
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(syn::Error::new(
                key_span,
                "an attribute key must be non-empty and contain no whitespace",
            ));
        }
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(
                key_span,
                format!("the field `{key}` needs a value: write `{key} = <expression>`"),
            ));
        }
        input.parse::<Token![=]>()?;
        let format = if input.peek(Token![%]) {
            input.parse::<Token![%]>()?;
            FieldFormat::Display
        } else if input.peek(Token![?]) {
            input.parse::<Token![?]>()?;
            FieldFormat::Debug
        } else {
            FieldFormat::Typed
        };
        let value = input.parse()?;
        Ok(Field {
            key,
            key_span,
            format,
            value,
        })
    }
}
