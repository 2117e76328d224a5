//! Parsing and checking the annotated item: it must be a non-`const` fn with a body.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Attribute, Block, FnArg, Ident, Item, Pat, Signature, TraitItemFn, Visibility};

pub(crate) struct InstrumentedFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) body: Block,
}

pub(crate) fn parse(item: TokenStream, attribute: &str) -> syn::Result<InstrumentedFn> {
    let parsed = match syn::parse2::<Item>(item.clone()) {
        Ok(parsed) => parsed,
        // A method declared in a trait without a body is not an item on its own.
        Err(error) => {
            if let Ok(declaration) = syn::parse2::<TraitItemFn>(item)
                && declaration.default.is_none()
            {
                return Err(no_body(declaration.semi_token, attribute));
            }
            return Err(error);
        }
    };
    let function = match parsed {
        Item::Fn(function) => function,
        Item::Verbatim(tokens) => {
            return Err(match syn::parse2::<TraitItemFn>(tokens.clone()) {
                Ok(declaration) => no_body(declaration.semi_token, attribute),
                Err(_) => syn::Error::new_spanned(
                    tokens,
                    format!("`#[{attribute}]` can only be used on functions and methods"),
                ),
            });
        }
        other => {
            let (tokens, what) = describe(&other);
            return Err(syn::Error::new_spanned(
                tokens,
                format!(
                    "`#[{attribute}]` can only be used on functions and methods, not on {what}"
                ),
            ));
        }
    };
    if let Some(constness) = &function.sig.constness {
        return Err(syn::Error::new_spanned(
            constness,
            format!(
                "`#[{attribute}]` cannot be used on a `const fn`: spans are recorded when the \
                 function runs, which a `const fn` may not do at compile time"
            ),
        ));
    }
    Ok(InstrumentedFn {
        attrs: function.attrs,
        vis: function.vis,
        sig: function.sig,
        body: *function.block,
    })
}

fn no_body(semi: Option<syn::Token![;]>, attribute: &str) -> syn::Error {
    syn::Error::new_spanned(
        semi,
        format!(
            "`#[{attribute}]` needs a function body to instrument; put it on the \
             implementations of this trait method, or give the method a default body"
        ),
    )
}

/// The token to point at and a newcomer's name for an item that is not a function.
fn describe(item: &Item) -> (TokenStream, &'static str) {
    match item {
        Item::Struct(item) => (item.struct_token.to_token_stream(), "a struct"),
        Item::Enum(item) => (item.enum_token.to_token_stream(), "an enum"),
        Item::Union(item) => (item.union_token.to_token_stream(), "a union"),
        Item::Impl(item) => (
            item.impl_token.to_token_stream(),
            "an impl block; put it on the methods inside",
        ),
        Item::Trait(item) => (
            item.trait_token.to_token_stream(),
            "a trait; put it on the methods inside",
        ),
        Item::Mod(item) => (item.mod_token.to_token_stream(), "a module"),
        Item::Const(item) => (item.const_token.to_token_stream(), "a const item"),
        Item::Static(item) => (item.static_token.to_token_stream(), "a static item"),
        Item::Type(item) => (item.type_token.to_token_stream(), "a type alias"),
        Item::Use(item) => (item.use_token.to_token_stream(), "a use declaration"),
        Item::ForeignMod(item) => (item.abi.to_token_stream(), "an extern block"),
        other => (other.to_token_stream(), "this item"),
    }
}

/// The names of the function's arguments that `args(..)` may name.
pub(crate) fn argument_names(sig: &Signature) -> Vec<Ident> {
    sig.inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Receiver(receiver) => Some(Ident::new("self", receiver.self_token.span)),
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(pat) => Some(pat.ident.clone()),
                _ => None,
            },
        })
        .collect()
}
