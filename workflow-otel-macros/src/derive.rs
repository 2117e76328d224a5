//! `#[derive(Carried)]`: a message type that carries a trace context in the
//! field marked `#[trace_context]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{Data, DeriveInput, Fields, Member, Path, Token};

pub(crate) fn carried(input: TokenStream) -> TokenStream {
    match expand(input) {
        Ok(tokens) => tokens,
        Err(error) => error.to_compile_error(),
    }
}

fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let mut krate: Path = syn::parse_quote!(::workflow_otel);
    for attr in input
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("trace_context"))
    {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                meta.input.parse::<Token![=]>()?;
                krate = meta.input.call(Path::parse_mod_style)?;
                Ok(())
            } else {
                Err(meta.error("expected `crate = path` here; mark the carrier field itself with `#[trace_context]`"))
            }
        })?;
    }
    let fields = match &input.data {
        Data::Struct(data) => &data.fields,
        Data::Enum(data) => {
            return Err(syn::Error::new_spanned(
                data.enum_token,
                "`#[derive(Carried)]` works on structs: give the enum's variants a shared struct that carries the context",
            ));
        }
        Data::Union(data) => {
            return Err(syn::Error::new_spanned(
                data.union_token,
                "`#[derive(Carried)]` works on structs, not unions",
            ));
        }
    };
    let mut marked = Vec::new();
    let mut errors: Option<syn::Error> = None;
    let mut push = |error: syn::Error| match &mut errors {
        Some(errors) => errors.combine(error),
        None => errors = Some(error),
    };
    let members: Vec<(Member, &syn::Field)> = match fields {
        Fields::Named(named) => named
            .named
            .iter()
            .map(|field| {
                (
                    Member::Named(field.ident.clone().expect("named field")),
                    field,
                )
            })
            .collect(),
        Fields::Unnamed(unnamed) => unnamed
            .unnamed
            .iter()
            .enumerate()
            .map(|(index, field)| (Member::Unnamed(index.into()), field))
            .collect(),
        Fields::Unit => Vec::new(),
    };
    for (member, field) in &members {
        for attr in field
            .attrs
            .iter()
            .filter(|attr| attr.path().is_ident("trace_context"))
        {
            if !matches!(attr.meta, syn::Meta::Path(_)) {
                push(syn::Error::new_spanned(
                    attr,
                    "write the field attribute as plain `#[trace_context]`",
                ));
            }
            if marked.is_empty() {
                marked.push((member.clone(), *field));
            } else {
                push(syn::Error::new_spanned(
                    attr,
                    "only one field can carry the trace context; remove `#[trace_context]` from all but one",
                ));
            }
        }
    }
    if let Some(errors) = errors {
        return Err(errors);
    }
    let Some((member, field)) = marked.pop() else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            format!(
                "`{}` has no field marked `#[trace_context]`; add one, e.g. \
                 `#[trace_context] context: workflow_otel::propagation::TraceCarrier`",
                input.ident
            ),
        ));
    };
    let name = &input.ident;
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    let carrier = quote!(#krate::propagation::TraceCarrier);
    // Spanned at the field's type, so a wrong type is reported there.
    let ty_span = field.ty.span();
    let shared = quote_spanned!(ty_span=> &self.#member);
    let exclusive = quote_spanned!(ty_span=> &mut self.#member);
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::propagation::Carried for #name #type_generics #where_clause {
            fn trace_carrier(&self) -> &#carrier {
                #shared
            }

            fn trace_carrier_mut(&mut self) -> &mut #carrier {
                #exclusive
            }
        }

        #[automatically_derived]
        impl #impl_generics #krate::propagation::ParentSource for #name #type_generics #where_clause {
            fn parent_context(&self) -> #krate::__private::Context {
                #krate::propagation::extract(#krate::propagation::Carried::trace_carrier(self))
            }
        }
    })
}
