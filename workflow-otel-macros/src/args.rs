//! Parsing of the attribute's options: `#[step(name = "..", args(..), fields(..), err, ret, crate = ..)]`.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitStr, Path, Token, parenthesized};

use crate::SpanKind;

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
    syn::custom_keyword!(kind);
    syn::custom_keyword!(genai);
    syn::custom_keyword!(retry);
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
    /// `kind = server`: the OpenTelemetry span kind (the variant's name).
    pub(crate) kind: Option<Ident>,
    /// `genai = tool`: the GenAI conventions' role (the variant's name).
    pub(crate) genai: Option<Ident>,
    /// `genai = agent("openai")`: the agent's `gen_ai.provider.name`.
    pub(crate) genai_provider: Option<syn::LitStr>,
    /// `retry(..)`: run the step again when it returns `Err`.
    pub(crate) retry: Option<Retry>,
    /// Mistakes that do not stop parsing (a duplicated option), reported together.
    pub(crate) errors: Vec<syn::Error>,
}

/// `retry(attempts = 3, backoff_ms = 100, max_backoff_ms = 10000, jitter = true, when = path)`.
pub(crate) struct Retry {
    pub(crate) span: Span,
    pub(crate) attempts: u32,
    pub(crate) backoff_ms: u64,
    pub(crate) max_backoff_ms: u64,
    pub(crate) jitter: bool,
    pub(crate) when: Option<Path>,
}

impl Retry {
    fn parse(keyword: Span, input: ParseStream<'_>) -> syn::Result<Retry> {
        let mut retry = Retry {
            span: keyword,
            attempts: 3,
            backoff_ms: 100,
            max_backoff_ms: 10_000,
            jitter: true,
            when: None,
        };
        if !input.peek(syn::token::Paren) {
            return Ok(retry);
        }
        let content;
        parenthesized!(content in input);
        while !content.is_empty() {
            let setting = Ident::parse_any(&content)?;
            expect_value(&content, setting.span(), &format!("`{setting} = ...`"))?;
            match setting.to_string().as_str() {
                "attempts" => {
                    let value: syn::LitInt = content.parse()?;
                    retry.attempts = value.base10_parse()?;
                    if !(1..=100).contains(&retry.attempts) {
                        return Err(syn::Error::new(
                            value.span(),
                            "`attempts` counts every run, the first included: 1 to 100",
                        ));
                    }
                }
                "backoff_ms" => {
                    retry.backoff_ms = content.parse::<syn::LitInt>()?.base10_parse()?
                }
                "max_backoff_ms" => {
                    retry.max_backoff_ms = content.parse::<syn::LitInt>()?.base10_parse()?;
                }
                "jitter" => retry.jitter = content.parse::<syn::LitBool>()?.value,
                "when" => retry.when = Some(content.parse()?),
                other => {
                    return Err(syn::Error::new(
                        setting.span(),
                        format!(
                            "`retry(..)` has no setting `{other}`; it takes `attempts`, \
                             `backoff_ms`, `max_backoff_ms`, `jitter` and `when` (a fn(&E) -> bool)"
                        ),
                    ));
                }
            }
            if content.is_empty() {
                break;
            }
            content.parse::<Token![,]>()?;
        }
        Ok(retry)
    }
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

/// The options each attribute takes, in the order error messages list them.
fn options_of(kind: SpanKind) -> &'static [&'static str] {
    match kind {
        SpanKind::Workflow => &[
            "name", "args", "fields", "err", "ret", "kind", "genai", "parent", "crate",
        ],
        SpanKind::ChildWorkflow => &[
            "name", "args", "fields", "err", "ret", "kind", "genai", "parent", "detached", "crate",
        ],
        SpanKind::Step => &[
            "name", "args", "fields", "err", "ret", "kind", "genai", "retry", "crate",
        ],
    }
}

/// The option a mistyped one was probably meant to be: one edit away, or
/// the singular of a plural.
fn closest(typed: &str, options: &[&'static str]) -> Option<&'static str> {
    options.iter().copied().find(|option| {
        let (a, b): (Vec<char>, Vec<char>) = (typed.chars().collect(), option.chars().collect());
        let distance = edit_distance(&a, &b);
        distance == 1 || (distance == 2 && a.len() > 4) || format!("{typed}s") == *option
    })
}

fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The OpenTelemetry `SpanKind` variant a `kind = ..` value names.
fn span_kind_variant(value: &Ident) -> Option<&'static str> {
    Some(match value.to_string().to_ascii_lowercase().as_str() {
        "server" => "Server",
        "client" => "Client",
        "producer" => "Producer",
        "consumer" => "Consumer",
        "internal" => "Internal",
        _ => return None,
    })
}

/// `=` after an option that needs a value, or a message naming the option
/// and showing how it is written.
fn expect_value(input: ParseStream<'_>, option: Span, example: &str) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        return Ok(());
    }
    Err(syn::Error::new(
        option,
        format!("this option needs a value: {example}"),
    ))
}

impl Options {
    /// Parses the options of `#[workflow]`, `#[child_workflow]` or `#[step]`.
    pub(crate) fn parse_for(input: ParseStream<'_>, kind: SpanKind) -> syn::Result<Self> {
        let mut options = Options::default();
        let mut seen = Seen::default();
        while !input.is_empty() {
            if input.peek(kw::name) {
                let keyword: kw::name = input.parse()?;
                seen.first_time("name", keyword.span, &mut options.errors);
                expect_value(input, keyword.span, "`name = \"checkout\"`")?;
                options.name = Some(input.parse()?);
            } else if input.peek(kw::args) {
                let keyword: kw::args = input.parse()?;
                seen.first_time("args", keyword.span, &mut options.errors);
                let content;
                parenthesized!(content in input);
                options.args = parse_arg_names(&content)?;
            } else if input.peek(kw::fields) {
                let keyword: kw::fields = input.parse()?;
                seen.first_time("fields", keyword.span, &mut options.errors);
                let content;
                parenthesized!(content in input);
                let fields = Punctuated::<Field, Token![,]>::parse_terminated(&content)?;
                options.fields = fields.into_iter().collect();
            } else if input.peek(kw::err) {
                let keyword: kw::err = input.parse()?;
                seen.first_time("err", keyword.span, &mut options.errors);
                options.err = Some(parse_format(input, Format::Display)?);
            } else if input.peek(kw::ret) {
                let keyword: kw::ret = input.parse()?;
                seen.first_time("ret", keyword.span, &mut options.errors);
                options.ret = Some(parse_format(input, Format::Debug)?);
            } else if input.peek(kw::parent) {
                let keyword: kw::parent = input.parse()?;
                seen.first_time("parent", keyword.span, &mut options.errors);
                expect_value(
                    input,
                    keyword.span,
                    "`parent = msg`, where `msg` is a message with `#[derive(Carried)]`, \
                     headers, a `TraceCarrier` or a `Context`",
                )?;
                options.parent = Some((keyword.span, input.parse()?));
            } else if input.peek(kw::kind) {
                let keyword: kw::kind = input.parse()?;
                seen.first_time("kind", keyword.span, &mut options.errors);
                expect_value(input, keyword.span, "`kind = server`")?;
                let value = Ident::parse_any(input)?;
                match span_kind_variant(&value) {
                    Some(variant) => options.kind = Some(Ident::new(variant, value.span())),
                    None => {
                        return Err(syn::Error::new(
                            value.span(),
                            format!(
                                "`{value}` is not a span kind; use `server` (handles a request), \
                                 `client` (makes one), `producer`, `consumer` or `internal`"
                            ),
                        ));
                    }
                }
            } else if input.peek(kw::retry) {
                let keyword: kw::retry = input.parse()?;
                seen.first_time("retry", keyword.span, &mut options.errors);
                options.retry = Some(Retry::parse(keyword.span, input)?);
            } else if input.peek(kw::genai) {
                let keyword: kw::genai = input.parse()?;
                seen.first_time("genai", keyword.span, &mut options.errors);
                expect_value(
                    input,
                    keyword.span,
                    "`genai = tool` (or `agent`, `workflow`)",
                )?;
                let value = Ident::parse_any(input)?;
                let variant = match value.to_string().as_str() {
                    "workflow" => "Workflow",
                    "agent" => "Agent",
                    "tool" => "Tool",
                    _ => {
                        return Err(syn::Error::new(
                            value.span(),
                            format!(
                                "`{value}` is not a GenAI role; use `workflow` (invoke_workflow), \
                                 `agent` (invoke_agent) or `tool` (execute_tool)"
                            ),
                        ));
                    }
                };
                if input.peek(syn::token::Paren) {
                    let inside;
                    syn::parenthesized!(inside in input);
                    if variant == "Tool" {
                        return Err(syn::Error::new(
                            value.span(),
                            "a tool has no provider: write `genai = tool`, and give the \
                             provider to the agent (`genai = agent(\"openai\")`)",
                        ));
                    }
                    let provider: syn::LitStr = inside.parse().map_err(|error| {
                        syn::Error::new(
                            error.span(),
                            "expected the provider as a string: `genai = agent(\"openai\")`",
                        )
                    })?;
                    if provider.value().is_empty() {
                        return Err(syn::Error::new(
                            provider.span(),
                            "the provider name is empty: `genai = agent(\"openai\")`",
                        ));
                    }
                    options.genai_provider = Some(provider);
                }
                options.genai = Some(Ident::new(variant, value.span()));
            } else if input.peek(kw::detached) {
                let keyword: kw::detached = input.parse()?;
                seen.first_time("detached", keyword.span, &mut options.errors);
                options.detached = Some(keyword.span);
            } else if input.peek(Token![crate]) {
                let keyword: Token![crate] = input.parse()?;
                seen.first_time("crate", keyword.span, &mut options.errors);
                expect_value(input, keyword.span, "`crate = my_workflow_otel`")?;
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
                return Err(unknown_option(input, kind));
            }
            if input.is_empty() {
                break;
            }
            if !input.peek(Token![,]) {
                return Err(input.error("expected `,` between options"));
            }
            input.parse::<Token![,]>()?;
        }
        Ok(options)
    }
}

/// The message for a token that is not an option of this attribute: what it
/// probably meant, and the options the attribute takes.
fn unknown_option(input: ParseStream<'_>, kind: SpanKind) -> syn::Error {
    let attribute = kind.attribute_name();
    let options = options_of(kind);
    let listed = options
        .iter()
        .map(|option| format!("`{option}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let Ok(token) = input.fork().call(Ident::parse_any) else {
        return input.error(format!("expected an option of `#[{attribute}]`: {listed}"));
    };
    let typed = token.to_string();
    let hint = match closest(&typed, options) {
        Some(meant) => format!("did you mean `{meant}`? It takes"),
        None => "it takes".to_owned(),
    };
    syn::Error::new(
        token.span(),
        format!("`#[{attribute}]` has no option `{typed}`; {hint} {listed}"),
    )
}

/// `args(a, b, c)`: names of the function's arguments. An expression gets a
/// pointer to `fields(..)`, which records expressions.
fn parse_arg_names(content: ParseStream<'_>) -> syn::Result<Vec<Ident>> {
    let mut names = Vec::new();
    while !content.is_empty() {
        let name = Ident::parse_any(content)?;
        if content.peek(Token![=]) || content.peek(Token![.]) || content.peek(syn::token::Paren) {
            let shown = name.unraw();
            return Err(syn::Error::new(
                name.span(),
                format!(
                    "`args(..)` takes argument names only, as in `args({shown})`; to record an \
                     expression, use `fields(key = expression)`, e.g. `fields({shown} = ...)`"
                ),
            ));
        }
        names.push(name);
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    Ok(names)
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
        Ok(Field { key, format, value })
    }
}
