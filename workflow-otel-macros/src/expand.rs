//! Code generation: a `static` site descriptor plus two calls into the runtime's
//! hidden `__private` module. Everything that happens per call lives there.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Path, ReturnType, Type};

use crate::SpanKind;
use crate::args::{Field, FieldFormat, Format, Options};
use crate::item::{self, InstrumentedFn};
use crate::name;

/// Whether the attributes instrument at all: the `instrument` feature, on by
/// default. Off, they still check their arguments (so that code stays valid
/// for when it is turned back on) and then leave the function as written.
const INSTRUMENT: bool = cfg!(feature = "instrument");

pub(crate) fn instrument(kind: SpanKind, attr: TokenStream, item: TokenStream) -> TokenStream {
    instrument_if(INSTRUMENT, kind, attr, item)
}

fn instrument_if(
    enabled: bool,
    kind: SpanKind,
    attr: TokenStream,
    item: TokenStream,
) -> TokenStream {
    let attribute = kind.attribute_name();
    let function = match item::parse(item.clone(), attribute) {
        Ok(function) => function,
        // Re-emit the item untouched so the user sees this error and no cascade of
        // "cannot find function" errors from its callers.
        Err(error) => return with_errors(item, vec![error]),
    };
    let parser = |input: syn::parse::ParseStream<'_>| Options::parse_for(input, kind);
    let mut options = match syn::parse::Parser::parse2(parser, attr) {
        Ok(options) => options,
        Err(error) => return with_errors(function.to_tokens_unchanged(), vec![error]),
    };
    let mut errors = std::mem::take(&mut options.errors);
    if let (SpanKind::Step, Some((span, _))) = (kind, &options.parent) {
        errors.push(syn::Error::new(
            *span,
            "`parent` is for `#[workflow]` and `#[child_workflow]`: a step runs inside the current workflow",
        ));
    }
    if let (SpanKind::Workflow | SpanKind::Step, Some(span)) = (kind, options.detached) {
        errors.push(syn::Error::new(
            span,
            "`detached` is for `#[child_workflow]`: it starts the child's own trace, linked to its parent",
        ));
    }
    if let Some(retry) = &options.retry {
        if kind != SpanKind::Step {
            errors.push(syn::Error::new(
                retry.span,
                "`retry` is for `#[step]`: retry the steps inside a workflow, not the workflow",
            ));
        }
        crate::retry::check_arguments(&function, &mut errors);
    }
    let span_name = checked_name(&function, &options, &mut errors);
    check_args(&function, &options, &mut errors);
    let returns_opaque = contains_impl_trait(function.sig.output.to_token_stream());
    if let (Some(_), true) = (options.ret, returns_opaque) {
        errors.push(syn::Error::new_spanned(
            &function.sig.output,
            "`ret` cannot record an `impl Trait` return value; remove `ret` or return a named type",
        ));
    }
    if !errors.is_empty() {
        return with_errors(function.to_tokens_unchanged(), errors);
    }
    if !enabled {
        return match &options.retry {
            Some(retry) => {
                crate::retry::uninstrumented(&private(&options), &function, retry, returns_opaque)
            }
            None => item,
        };
    }
    expand(kind, &function, &options, &span_name, returns_opaque)
}

/// The runtime's hidden module, through `crate = ..` if the crate is renamed.
fn private(options: &Options) -> TokenStream {
    let krate: Path = options
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::workflow_otel));
    quote!(#krate::__private)
}

fn with_errors(item: TokenStream, errors: Vec<syn::Error>) -> TokenStream {
    let errors = errors.into_iter().map(|error| error.to_compile_error());
    quote!(#item #(#errors)*)
}

impl InstrumentedFn {
    fn to_tokens_unchanged(&self) -> TokenStream {
        let InstrumentedFn {
            attrs,
            vis,
            sig,
            body,
        } = self;
        quote!(#(#attrs)* #vis #sig #body)
    }
}

fn checked_name(
    function: &InstrumentedFn,
    options: &Options,
    errors: &mut Vec<syn::Error>,
) -> String {
    match &options.name {
        Some(literal) => {
            let value = literal.value();
            if let Err(message) = name::validate(&value) {
                errors.push(syn::Error::new_spanned(literal, message));
            }
            value
        }
        // An identifier always satisfies the character set; only its length can fail.
        None => {
            let value = function.sig.ident.unraw_string();
            if let Err(message) = name::validate(&value) {
                errors.push(syn::Error::new_spanned(&function.sig.ident, message));
            }
            value
        }
    }
}

fn check_args(function: &InstrumentedFn, options: &Options, errors: &mut Vec<syn::Error>) {
    let available = item::argument_names(&function.sig);
    let mut listed: Vec<String> = Vec::new();
    for arg in &options.args {
        let wanted = arg.unraw_string();
        if listed.contains(&wanted) {
            errors.push(syn::Error::new_spanned(
                arg,
                format!("`{wanted}` is listed twice in `args(..)`"),
            ));
            continue;
        }
        listed.push(wanted.clone());
        if !available
            .iter()
            .any(|candidate| candidate.unraw_string() == wanted)
        {
            let names: Vec<String> = available
                .iter()
                .map(|name| format!("`{}`", name.unraw_string()))
                .collect();
            let hint = if names.is_empty() {
                "it takes no arguments that can be recorded".to_owned()
            } else {
                format!("its arguments are {}", names.join(", "))
            };
            errors.push(syn::Error::new_spanned(
                arg,
                format!(
                    "`{}` has no argument named `{wanted}`; {hint}",
                    function.sig.ident
                ),
            ));
        }
    }
}

pub(crate) trait UnrawString {
    fn unraw_string(&self) -> String;
}

impl UnrawString for Ident {
    fn unraw_string(&self) -> String {
        let text = self.to_string();
        text.strip_prefix("r#").map(str::to_owned).unwrap_or(text)
    }
}

/// Whether a return type mentions `impl Trait`: then the macro cannot name it in
/// the generated code and lets the compiler infer it.
fn contains_impl_trait(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => ident == "impl",
        TokenTree::Group(group) => contains_impl_trait(group.stream()),
        _ => false,
    })
}

fn expand(
    kind: SpanKind,
    function: &InstrumentedFn,
    options: &Options,
    span_name: &str,
    returns_opaque: bool,
) -> TokenStream {
    let private = private(options);
    let InstrumentedFn {
        attrs,
        vis,
        sig,
        body,
    } = function;

    let site = Ident::new("__WFO_SITE", Span::mixed_site());
    let span = Ident::new("__wfo_span", Span::mixed_site());
    let kind_variant = match kind {
        SpanKind::Workflow => quote!(Workflow),
        SpanKind::ChildWorkflow => quote!(ChildWorkflow),
        SpanKind::Step => quote!(Step),
    };
    let function_name = function.sig.ident.unraw_string();
    // `line!()` spanned at the function's name reports the `fn` line, not the attribute's.
    let line = quote_spanned!(sig.ident.span()=> ::core::line!());
    let err_debug = options.err == Some(Format::Debug);
    let detached = options.detached.is_some();

    let span_kind = options
        .kind
        .as_ref()
        .map(|variant| quote!(.with_span_kind(#private::SpanKind::#variant)));
    let genai = crate::name::genai_site(&private, options, span_name);
    let fields = fields_closure(&private, options);
    let literal_fields = literal_fields(&private, options);
    let start = match &options.parent {
        None => quote!(#private::start(&#site, #fields)),
        // A call with a bound, spanned at the expression: a value that cannot
        // be a parent is reported there, with `ParentSource`'s message.
        // References work: `ParentSource` is implemented for `&T`.
        Some((_, parent)) => {
            let context = quote_spanned!(parent.span()=> #private::parent_context(&(#parent)));
            quote!(#private::start_from(&#site, #context, #fields))
        }
    };
    let start_separately = !(options.args.is_empty()
        && (options.fields.is_empty() || literal_fields.is_some()))
        || options.parent.is_some()
        || options.retry.is_some()
        || sig.asyncness.is_some();
    let probe = probe_closure(&private, options, returns_opaque);
    let return_type: TokenStream = match (&sig.output, returns_opaque) {
        (_, true) => quote!(_),
        (ReturnType::Default, false) => quote!(()),
        (ReturnType::Type(_, ty), false) => ty.to_token_stream(),
    };

    let call = match &options.retry {
        Some(retry) => crate::retry::call(
            &private,
            function,
            retry,
            (&span, &return_type),
            (&probe, &line, err_debug),
            (span_name, returns_opaque),
        ),
        None if sig.asyncness.is_some() => {
            let fake_return = fake_return_edge(&sig.output, returns_opaque);
            quote! {
                #private::instrument::<#return_type, _, _>(#span, async move { #fake_return #body }, #probe).await
            }
        }
        None if start_separately => quote! {
            #private::run::<#return_type, _, _>(#span, move || #body, #probe)
        },
        None => quote! {
            #private::run_at::<#return_type, _, _>(&#site, move || #body, #probe)
        },
    };
    // A sync call without fields has the runtime start its span, in place,
    // after a quick look for nothing to do. Otherwise the span starts first:
    // arguments are read before the body takes them, the parent is given,
    // a retry loop owns the call, or a future holds the span.
    let start = start_separately.then(|| quote!(let #span = #start;));

    quote! {
        #(#attrs)*
        #vis #sig {
            static #site: #private::Site = #private::Site::new(
                #private::Kind::#kind_variant,
                #span_name,
                ::core::concat!(::core::module_path!(), "::", #function_name),
                ::core::file!(),
                #line,
                #err_debug,
                #detached,
            )#span_kind #genai #literal_fields;
            #start
            #call
        }
    }
}

/// The closure that records `args(..)` and `fields(..)`; the runtime calls it only
/// for a span that is recording, before the body runs (so before arguments move).
/// Fields that are all literals are in the site instead (see [`literal_fields`]).
fn fields_closure(private: &TokenStream, options: &Options) -> TokenStream {
    let fields: &[Field] = if literal_fields(private, options).is_some() {
        &[]
    } else {
        &options.fields
    };
    if options.args.is_empty() && fields.is_empty() {
        return quote!(#private::no_fields);
    }
    let recorder = Ident::new("__wfo_fields", Span::mixed_site());
    let args = options.args.iter().map(|arg| {
        let key = format!("arg.{}", arg.unraw_string());
        typed_field(private, &recorder, &key, arg.to_token_stream(), arg.span())
    });
    let fields = fields.iter().map(|Field { key, format, value }| {
        match (format, literal(private, value)) {
            // A literal is kept as the value it is: a string is not copied.
            (FieldFormat::Typed, Some(literal)) => quote!(#recorder.literal(#key, #literal);),
            (FieldFormat::Typed, None) => typed_field(
                private,
                &recorder,
                key,
                value.to_token_stream(),
                value.span(),
            ),
            (FieldFormat::Display, _) => quote!(#recorder.display(#key, &(#value));),
            (FieldFormat::Debug, _) => quote!(#recorder.debug(#key, &(#value));),
        }
    });
    quote! {
        |#recorder: &mut #private::Fields| { #(#args)* #(#fields)* }
    }
}

/// `fields(..)` when every one is a literal: the same for every call, so
/// they go in the site, and a call records nothing for them.
fn literal_fields(private: &TokenStream, options: &Options) -> Option<TokenStream> {
    if options.fields.is_empty() {
        return None;
    }
    let fields = options
        .fields
        .iter()
        .map(|Field { key, format, value }| match format {
            FieldFormat::Typed => literal(private, value).map(|literal| quote!((#key, #literal))),
            FieldFormat::Display | FieldFormat::Debug => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(quote!(.with_literal_fields(&[#(#fields),*])))
}

/// A literal's value as the runtime keeps it, if `value` is one of the
/// kinds a typed field keeps as they are.
fn literal(private: &TokenStream, value: &syn::Expr) -> Option<TokenStream> {
    let syn::Expr::Lit(syn::ExprLit { lit, .. }) = value else {
        return None;
    };
    match lit {
        syn::Lit::Str(text) => Some(quote!(#private::Literal::Str(#text))),
        syn::Lit::Bool(flag) => Some(quote!(#private::Literal::Bool(#flag))),
        syn::Lit::Int(number) => {
            // What the typed path would record: the value as an i64.
            let number: i64 = number.base10_parse().ok()?;
            Some(quote!(#private::Literal::Int(#number)))
        }
        syn::Lit::Float(number) => {
            let number: f64 = number.base10_parse().ok()?;
            number
                .is_finite()
                .then(|| quote!(#private::Literal::Float(#number)))
        }
        _ => None,
    }
}

/// Typed values (integers, floats, bools, strings) keep their type; anything else
/// is recorded with `Debug`. Chosen by the compiler through autoref specialisation.
fn typed_field(
    private: &TokenStream,
    recorder: &Ident,
    key: &str,
    value: TokenStream,
    span: Span,
) -> TokenStream {
    quote_spanned! {span=>
        {
            #[allow(unused_imports)]
            use #private::{TypedField as _, DebugField as _};
            (&&#private::Probe(&(#value))).__wfo_record(#recorder, #key);
        }
    }
}

/// The closure that reads the outcome of a call: `Err` of any `Result` (through
/// aliases too, since the compiler resolves the type) and, with `ret`, the value.
fn probe_closure(private: &TokenStream, options: &Options, returns_opaque: bool) -> TokenStream {
    if returns_opaque {
        return quote!(#private::no_probe);
    }
    let output = Ident::new("__wfo_output", Span::mixed_site());
    let finish = Ident::new("__wfo_finish", Span::mixed_site());
    let ret = options.ret.map(|format| match format {
        Format::Debug => quote!(#finish.return_debug(#output);),
        Format::Display => quote!(#finish.return_display(#output);),
    });
    quote! {
        |#output, #finish: &mut #private::Finish| {
            #[allow(unused_imports)]
            use #private::{ResultError as _, ResultDebugError as _, ResultOpaqueError as _, NotAResult as _, NamedError as _, UnnamedError as _};
            (&&&&#private::Probe(#output)).__wfo_outcome(#finish);
            (&&#private::Probe(#output)).__wfo_error_type(#finish);
            #ret
        }
    }
}

/// An unreachable `return` of the declared type at the top of the async block, so
/// the compiler knows the block's output type before it checks `?` and `.into()`
/// in the body, and type errors keep pointing at the user's signature.
pub(crate) fn fake_return_edge(output: &ReturnType, returns_opaque: bool) -> TokenStream {
    let ty: Type = match (output, returns_opaque) {
        (_, true) => return TokenStream::new(),
        (ReturnType::Default, false) => syn::parse_quote!(()),
        (ReturnType::Type(_, ty), false) => (**ty).clone(),
    };
    let fake = Ident::new("__wfo_declared_return", Span::mixed_site());
    quote! {
        #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::let_unit_value, clippy::empty_loop, clippy::needless_return)]
        if false {
            let #fake: #ty = loop {};
            return #fake;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole expansion of a typical step, to keep it small on purpose: a
    /// static descriptor and two calls into the runtime.
    #[test]
    fn a_step_expands_to_a_static_and_two_runtime_calls() {
        let expanded = instrument(
            SpanKind::Step,
            quote!(args(order)),
            quote! {
                fn validate(order: &Order) -> Result<(), Error> { check(order) }
            },
        );
        let expected = quote! {
            fn validate(order: &Order) -> Result<(), Error> {
                static __WFO_SITE: ::workflow_otel::__private::Site = ::workflow_otel::__private::Site::new(
                    ::workflow_otel::__private::Kind::Step,
                    "validate",
                    ::core::concat!(::core::module_path!(), "::", "validate"),
                    ::core::file!(),
                    ::core::line!(),
                    false,
                    false,
                );
                let __wfo_span = ::workflow_otel::__private::start(&__WFO_SITE, |__wfo_fields: &mut ::workflow_otel::__private::Fields| {
                    {
                        #[allow(unused_imports)]
                        use ::workflow_otel::__private::{TypedField as _, DebugField as _};
                        (&&::workflow_otel::__private::Probe(&(order))).__wfo_record(__wfo_fields, "arg.order");
                    }
                });
                ::workflow_otel::__private::run::<Result<(), Error>, _, _>(__wfo_span, move || { check(order) }, |__wfo_output, __wfo_finish: &mut ::workflow_otel::__private::Finish| {
                    #[allow(unused_imports)]
                    use ::workflow_otel::__private::{ResultError as _, ResultDebugError as _, ResultOpaqueError as _, NotAResult as _, NamedError as _, UnnamedError as _};
                    (&&&&::workflow_otel::__private::Probe(__wfo_output)).__wfo_outcome(__wfo_finish);
                    (&&::workflow_otel::__private::Probe(__wfo_output)).__wfo_error_type(__wfo_finish);
                })
            }
        };
        assert_eq!(expanded.to_string(), expected.to_string());
    }

    /// Without arguments to read first, the runtime starts the span itself.
    #[test]
    fn a_step_without_fields_is_one_runtime_call() {
        let expanded = instrument(
            SpanKind::Step,
            quote!(),
            quote! {
                fn tick() -> u32 { 1 }
            },
        );
        let expected = quote! {
            fn tick() -> u32 {
                static __WFO_SITE: ::workflow_otel::__private::Site = ::workflow_otel::__private::Site::new(
                    ::workflow_otel::__private::Kind::Step,
                    "tick",
                    ::core::concat!(::core::module_path!(), "::", "tick"),
                    ::core::file!(),
                    ::core::line!(),
                    false,
                    false,
                );
                ::workflow_otel::__private::run_at::<u32, _, _>(&__WFO_SITE, move || { 1 }, |__wfo_output, __wfo_finish: &mut ::workflow_otel::__private::Finish| {
                    #[allow(unused_imports)]
                    use ::workflow_otel::__private::{ResultError as _, ResultDebugError as _, ResultOpaqueError as _, NotAResult as _, NamedError as _, UnnamedError as _};
                    (&&&&::workflow_otel::__private::Probe(__wfo_output)).__wfo_outcome(__wfo_finish);
                    (&&::workflow_otel::__private::Probe(__wfo_output)).__wfo_error_type(__wfo_finish);
                })
            }
        };
        assert_eq!(expanded.to_string(), expected.to_string());
    }

    /// Literal fields are the same for every call: they go in the site, and
    /// the call has nothing to read first.
    #[test]
    fn literal_fields_go_in_the_site() {
        let expanded = instrument(
            SpanKind::Step,
            quote!(fields(region = "eu", retries = 3)),
            quote! {
                fn tick() {}
            },
        )
        .to_string();
        let site = quote!(
            . with_literal_fields (&[
                ("region", ::workflow_otel::__private::Literal::Str("eu")),
                ("retries", ::workflow_otel::__private::Literal::Int(3i64))
            ]);
        )
        .to_string();
        assert!(expanded.contains(&site), "{expanded}");
        assert!(expanded.contains("run_at"), "{expanded}");
        assert!(!expanded.contains("__wfo_fields"), "{expanded}");
    }

    #[test]
    fn with_instrumentation_off_the_function_is_left_exactly_as_written() {
        let item = quote! {
            /// Docs stay.
            #[inline]
            pub async fn load(&self, key: u32) -> Result<String, Error> { self.get(key).await }
        };
        let output = instrument_if(false, SpanKind::Step, quote!(args(key), err), item.clone());
        assert_eq!(output.to_string(), item.to_string());
    }

    #[test]
    fn with_instrumentation_off_a_retried_step_still_retries() {
        let output = instrument_if(
            false,
            SpanKind::Step,
            quote!(retry(attempts = 2)),
            quote!(
                fn fetch(url: String) -> Result<u8, E> {
                    get(url)
                }
            ),
        )
        .to_string();
        assert!(
            output.contains(&quote!(::workflow_otel::__private::retry).to_string()),
            "{output}"
        );
        assert!(!output.contains("start"), "no span: {output}");
    }

    #[test]
    fn with_instrumentation_off_mistakes_are_still_reported() {
        let output = instrument_if(
            false,
            SpanKind::Step,
            quote!(args(missing)),
            quote!(
                fn f() {}
            ),
        );
        assert!(output.to_string().contains("compile_error"), "{output}");
    }

    #[test]
    fn an_async_step_awaits_the_instrumented_body() {
        let expanded = instrument(
            SpanKind::Step,
            TokenStream::new(),
            quote!(
                async fn load() -> u8 {
                    1
                }
            ),
        )
        .to_string();
        let instrument_call =
            quote!(::workflow_otel::__private::instrument::<u8, _, _>).to_string();
        assert!(expanded.contains(&instrument_call), "{expanded}");
        assert!(expanded.ends_with(". await }"), "{expanded}");
    }
}
