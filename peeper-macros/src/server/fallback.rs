//! What to emit when there are mistakes: the errors, the user's item as it would be without the
//! attribute (so that the rest of the crate still sees its methods, and an IDE keeps completing
//! them, while the errors are fixed: tokio-macros' `entry.rs` does the same), and a stub
//! `Server` impl, without which every `ctx: &mut Context<Self>` in the block would add an error
//! of its own (`Context<S>` needs `S: Server`).

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{GenericParam, Item, ItemImpl, Type};

use super::attr::Args;
use super::expand::user_impl;

pub(crate) fn expand(args: &Args, item: &Item, error: &syn::Error) -> TokenStream {
    let mut tokens = error.to_compile_error();
    match item {
        Item::Impl(item) => {
            tokens.extend(user_impl(item));
            tokens.extend(stub_server(args, item));
        }
        other => other.to_tokens(&mut tokens),
    }
    tokens
}

fn stub_server(args: &Args, item: &ItemImpl) -> TokenStream {
    let is_inherent = item.trait_.is_none();
    let is_named = matches!(&*item.self_ty, Type::Path(path) if path.qself.is_none());
    let borrows = item
        .generics
        .params
        .iter()
        .any(|param| matches!(param, GenericParam::Lifetime(_)));
    if !is_inherent || !is_named || borrows {
        return TokenStream::new();
    }
    let krate = &args.krate;
    let self_ty = &item.self_ty;
    let mut generics = item.generics.clone();
    generics
        .make_where_clause()
        .predicates
        .push(syn::parse_quote!(
            #self_ty: ::core::marker::Send + 'static
        ));
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    quote! {
        #[doc(hidden)]
        impl #impl_generics #krate::Server for #self_ty #where_clause {
            type Call = ::core::convert::Infallible;
            type Reply = ::core::convert::Infallible;
            type Cast = ::core::convert::Infallible;
            type Info = ::core::convert::Infallible;
            type Keep = #krate::keep::InPlace;

            async fn handle_call(
                _: &mut #krate::Tracked<Self>,
                __call: ::core::convert::Infallible,
                _: &mut #krate::Context<Self>,
            ) -> ::core::convert::Infallible {
                match __call {}
            }

            async fn handle_cast(
                _: &mut #krate::Tracked<Self>,
                __cast: ::core::convert::Infallible,
                _: &mut #krate::Context<Self>,
            ) {
                match __cast {}
            }
        }
    }
}
