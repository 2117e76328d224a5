//! `retry(..)` on a step: the checks that its body can run again, and the
//! expansion into a loop of attempts, each with a span of its own.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Ident, Type};

use crate::args::Retry;
use crate::expand::{UnrawString, fake_return_edge};
use crate::item::InstrumentedFn;

/// How each argument reaches a new attempt of a retried step.
enum RetryPass {
    /// A shared reference or `&self`: copied.
    Copied,
    /// `&mut T`: reborrowed (sync steps only).
    Reborrowed(Ident),
    /// Owned: a clone per attempt.
    Cloned(Ident, bool),
}

fn retry_passes(function: &InstrumentedFn) -> Vec<RetryPass> {
    function
        .sig
        .inputs
        .iter()
        .map(|input| match input {
            syn::FnArg::Receiver(_) => RetryPass::Copied,
            syn::FnArg::Typed(typed) => {
                let syn::Pat::Ident(pat) = &*typed.pat else {
                    return RetryPass::Copied;
                };
                match &*typed.ty {
                    Type::Reference(reference) if reference.mutability.is_some() => {
                        RetryPass::Reborrowed(pat.ident.clone())
                    }
                    Type::Reference(_) => RetryPass::Copied,
                    _ => RetryPass::Cloned(pat.ident.clone(), pat.mutability.is_some()),
                }
            }
        })
        .collect()
}

/// A retried body runs again: every argument must be re-usable.
pub(crate) fn check_arguments(function: &InstrumentedFn, errors: &mut Vec<syn::Error>) {
    let is_async = function.sig.asyncness.is_some();
    for input in &function.sig.inputs {
        match input {
            syn::FnArg::Receiver(receiver)
                if receiver.reference.is_none() || (is_async && receiver.mutability.is_some()) =>
            {
                errors.push(syn::Error::new_spanned(
                    receiver,
                    "a retried step runs its body again, so it cannot consume `self` (or hold \
                     `&mut self` across attempts of an async step): take `&self`, or retry \
                     a free function",
                ));
            }
            syn::FnArg::Typed(typed) => {
                if !matches!(&*typed.pat, syn::Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none())
                {
                    errors.push(syn::Error::new_spanned(
                        &typed.pat,
                        "a retried step gives each attempt its own copy of each argument, \
                         which needs a plain name here, e.g. `order: Order`",
                    ));
                }
                if is_async
                    && let Type::Reference(reference) = &*typed.ty
                    && reference.mutability.is_some()
                {
                    errors.push(syn::Error::new_spanned(
                        &typed.ty,
                        "an async retried step cannot lend `&mut` to each attempt's future: \
                         take the value by reference (`&T`) or by value (`T: Clone`)",
                    ));
                }
            }
            _ => {}
        }
    }
}

/// A retried step: the step's span around a loop of attempts, each with a
/// span of its own (`<name>.attempt`, `retry.attempt = n`) and fresh copies
/// of the arguments.
pub(crate) fn call(
    private: &TokenStream,
    function: &InstrumentedFn,
    retry: &Retry,
    (span, return_type): (&Ident, &TokenStream),
    (probe, line, err_debug): (&TokenStream, &TokenStream, bool),
    (span_name, returns_opaque): (&str, bool),
) -> TokenStream {
    let InstrumentedFn { sig, body, .. } = function;
    let (policy, policy_static, when) = policy(private, retry);
    let attempt_site = Ident::new("__WFO_ATTEMPT", Span::mixed_site());
    let number = Ident::new("__wfo_attempt", Span::mixed_site());
    let attempt_name = format!("{span_name}.attempt");
    let function_name = sig.ident.unraw_string();
    let copies: Vec<TokenStream> = copies(private, function).collect();
    let statics = quote! {
        #policy_static
        static #attempt_site: #private::Site = #private::Site::new(
            #private::Kind::Step,
            #attempt_name,
            ::core::concat!(::core::module_path!(), "::", #function_name),
            ::core::file!(),
            #line,
            #err_debug,
            false,
        );
    };

    if sig.asyncness.is_some() {
        let fake_return = fake_return_edge(&sig.output, returns_opaque);
        quote! {
            #private::instrument::<#return_type, _, _>(#span, async move {
                #statics
                #private::retry_async(&#policy, #when, |#number| {
                    #(#copies)*
                    #private::instrument::<#return_type, _, _>(
                        #private::start(&#attempt_site, #private::attempt_number(#number)),
                        async move { #fake_return #body },
                        #probe,
                    )
                }).await
            }, #probe).await
        }
    } else {
        quote! {
            #private::run::<#return_type, _, _>(#span, move || {
                #statics
                #private::retry(&#policy, #when, |#number| {
                    #(#copies)*
                    #private::run::<#return_type, _, _>(
                        #private::start(&#attempt_site, #private::attempt_number(#number)),
                        || #body,
                        #probe,
                    )
                })
            }, #probe)
        }
    }
}

/// A retried step with instrumentation switched off: retrying is behaviour,
/// not telemetry, so the loop stays and only the spans go.
pub(crate) fn uninstrumented(
    private: &TokenStream,
    function: &InstrumentedFn,
    retry: &Retry,
    returns_opaque: bool,
) -> TokenStream {
    let InstrumentedFn {
        attrs,
        vis,
        sig,
        body,
    } = function;
    let (policy, policy_static, when) = policy(private, retry);
    let result = Ident::new("__wfo_result", Span::mixed_site());
    let copies: Vec<TokenStream> = copies(private, function).collect();
    let output = match &sig.output {
        syn::ReturnType::Type(_, ty) if !returns_opaque => quote!(#ty),
        _ => quote!(_),
    };
    let attempts_loop = if sig.asyncness.is_some() {
        let fake_return = fake_return_edge(&sig.output, returns_opaque);
        quote! {
            #private::retry_async(&#policy, #when, |_| {
                #(#copies)*
                async move { #fake_return #body }
            }).await
        }
    } else {
        quote! {
            #private::retry(&#policy, #when, |_| {
                #(#copies)*
                // Called at once: `return` and `?` in the body end this attempt.
                #[allow(clippy::redundant_closure_call)]
                let #result: #output = (|| #body)();
                #result
            })
        }
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #policy_static
            #attempts_loop
        }
    }
}

/// The policy's name, its `static`, and the predicate deciding which errors
/// are retried (every one by default).
fn policy(private: &TokenStream, retry: &Retry) -> (Ident, TokenStream, TokenStream) {
    let name = Ident::new("__WFO_RETRY", Span::mixed_site());
    let (attempts, backoff, max_backoff, jitter) = (
        retry.attempts,
        retry.backoff_ms,
        retry.max_backoff_ms,
        retry.jitter,
    );
    let policy_static = quote! {
        static #name: #private::RetryPolicy =
            #private::RetryPolicy::new(#attempts, #backoff, #max_backoff, #jitter);
    };
    let when = match &retry.when {
        Some(path) => quote!(#path),
        None => quote!(#private::retry_always),
    };
    (name, policy_static, when)
}

/// Each attempt's own copies of the arguments.
fn copies<'a>(
    private: &'a TokenStream,
    function: &InstrumentedFn,
) -> impl Iterator<Item = TokenStream> + 'a {
    retry_passes(function)
        .into_iter()
        .map(move |pass| match pass {
            RetryPass::Copied => TokenStream::new(),
            RetryPass::Reborrowed(name) => quote!(let #name = &mut *#name;),
            RetryPass::Cloned(name, mutable) => {
                let mutable = mutable.then(|| quote!(mut));
                quote_spanned!(name.span()=> let #mutable #name = #private::retry_argument(&#name);)
            }
        })
}
