//! What to emit when there are mistakes: the errors, the user's item as it would be without the
//! attribute (so that the rest of the crate still sees its methods, and an IDE keeps completing
//! them, while the errors are fixed: tokio-macros' `entry.rs` does the same), and stubs of
//! everything else the crate may name, so that a mistake in the macro's input is the only error
//! the user sees: a `Server` impl (without it every `ctx: &mut Context<Self>` in the block would
//! add an error of its own, since `Context<S>` needs `S: Server`), the message enums (with the
//! fields whose types are valid), `start`, `builder` and `whereis`, and the typed client with a
//! method per handler. The stubs are never run: the crate does not compile.

use proc_macro2::{Ident, TokenStream};
use quote::{ToTokens, quote};
use syn::{GenericParam, Item, ItemImpl, Type};

use super::ast::Server;
use super::attr::{Args, Kind};
use super::expand::user_impl;
use super::valid;
use crate::case;

pub(crate) fn expand(args: &Args, item: &Item, error: &syn::Error) -> TokenStream {
    let mut tokens = error.to_compile_error();
    match item {
        Item::Impl(item) => {
            tokens.extend(user_impl(item));
            tokens.extend(stubs(args, item));
        }
        other => other.to_tokens(&mut tokens),
    }
    tokens
}

/// The stubs of a named, inherent, non-borrowing `impl` block; nothing for the others (their
/// mistake is in the block's header, and nothing generated would make sense).
fn stubs(args: &Args, item: &ItemImpl) -> TokenStream {
    // Generic servers get the `Server` stub only: their client and enums would need the generics.
    if !can_be_a_server(item) || !item.generics.params.is_empty() {
        return stub_server(args, item, None);
    }
    let mut server = Server::from_syn(item);
    server.prefix.clone_from(&args.prefix);
    server.client.clone_from(&args.client);
    let Some(names) = Names::of(&server) else {
        return stub_server(args, item, None);
    };
    let mut tokens = stub_server(args, item, Some(&names));
    tokens.extend(stub_enums(&server, &names));
    tokens.extend(stub_client(args, &server, &names));
    tokens
}

/// Whether the block could implement a server at all: inherent, for a named type, borrowing
/// nothing. (The others were reported; a stub would only add errors.)
fn can_be_a_server(item: &ItemImpl) -> bool {
    let is_inherent = item.trait_.is_none();
    let is_named = matches!(&*item.self_ty, Type::Path(path) if path.qself.is_none());
    let borrows = item
        .generics
        .params
        .iter()
        .any(|param| matches!(param, GenericParam::Lifetime(_)));
    is_inherent && is_named && !borrows
}

/// The generated types' names.
struct Names {
    call: Ident,
    cast: Ident,
    info: Ident,
    client: Ident,
}

impl Names {
    fn of(server: &Server<'_>) -> Option<Names> {
        Some(Names {
            call: server.item("Call")?,
            cast: server.item("Cast")?,
            info: server.item("Info")?,
            client: server.item("Client")?,
        })
    }
}

/// `CounterCall`, `CounterCast`, `CounterInfo`, with a variant per handler and the fields whose
/// types are valid.
fn stub_enums(server: &Server<'_>, names: &Names) -> TokenStream {
    let mut tokens = TokenStream::new();
    for (kind, ident) in [
        (Kind::Call, &names.call),
        (Kind::Cast, &names.cast),
        (Kind::Info, &names.info),
    ] {
        // Two handlers that become one variant were reported: the first one stands.
        let mut seen = std::collections::HashSet::new();
        let unique = server
            .handlers(kind)
            .filter(|handler| seen.insert(case::variant(handler.name()).to_string()));
        let variants = unique.map(|handler| {
            let variant = case::variant(handler.name());
            if handler.args().next().is_none() {
                return quote!(#variant,);
            }
            let fields = handler.args().filter_map(|arg| {
                let name = arg.name()?;
                let ty = &arg.ty;
                valid::is_owned(server, ty).then(|| quote!(#name: #ty))
            });
            quote!(#variant { #(#fields),* },)
        });
        tokens.extend(quote! {
            #[doc(hidden)]
            #[allow(dead_code, private_interfaces)]
            pub enum #ident { #(#variants)* }
        });
    }
    tokens
}

/// `start`, `builder`, `whereis`, and the client with a method per handler.
fn stub_client(args: &Args, server: &Server<'_>, names: &Names) -> TokenStream {
    let krate = &args.krate;
    let self_ty = &server.item.self_ty;
    let client = &names.client;
    let unreachable = quote!(::core::unreachable!("the server has compile errors"));
    // Those the block does not define itself (a clash that was reported).
    let defined = |name: &str| server.methods.iter().any(|method| method.sig.ident == name);
    let start = (!defined("start")).then(|| {
        quote! {
            pub async fn start(__state: Self) -> ::core::result::Result<#client, #krate::StartError> {
                #unreachable
            }
        }
    });
    let builder = (!defined("builder")).then(|| {
        quote! {
            pub fn builder(__state: Self) -> #krate::Builder<Self, #client> {
                #krate::Builder::new(__state)
            }
        }
    });
    let whereis = (!defined("whereis")).then(|| {
        quote! {
            pub fn whereis(__name: &str) -> ::core::option::Option<#client> {
                #unreachable
            }
        }
    });
    let server_functions = quote! {
        #[allow(dead_code, unused_variables, clippy::unused_async)]
        impl #self_ty {
            #start
            #builder
            #whereis
        }
    };
    // A handler named like a generated method was reported: the generated one stands.
    let methods = server
        .handlers
        .iter()
        .filter(|handler| handler.kind.is_message() && handler.method.sig.generics.params.is_empty())
        .filter(|handler| !valid::is_generated_name(handler.name()))
        .map(|handler| {
            let method = handler.name();
            let params = handler.args().filter_map(|arg| {
                let (name, ty) = (arg.name()?, &arg.ty);
                Some(quote!(#name: #ty))
            });
            match handler.kind {
                Kind::Call => {
                    let reply = match (handler.reply_to(), &handler.output) {
                        (Some(reply), _) => reply.ty.as_ref().map(ToTokens::to_token_stream),
                        (None, output) => output.as_ref().map(ToTokens::to_token_stream),
                    }
                    .unwrap_or_else(|| quote!(()));
                    quote! {
                        pub async fn #method(&self, #(#params),*) -> ::core::result::Result<#reply, #krate::CallError> {
                            #unreachable
                        }
                    }
                }
                _ => quote! {
                    pub fn #method(&self, #(#params),*) -> ::core::result::Result<(), #krate::SendError> {
                        #unreachable
                    }
                },
            }
        });
    quote! {
        #[doc(hidden)]
        #[allow(dead_code)]
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        pub struct #client(#krate::Client<#self_ty>);

        impl ::core::convert::From<#krate::Client<#self_ty>> for #client {
            fn from(__client: #krate::Client<#self_ty>) -> Self {
                Self(__client)
            }
        }

        #[allow(dead_code, unused_variables, clippy::unused_async)]
        impl #client {
            #(#methods)*

            pub fn send<__M>(&self, __message: __M) -> ::core::result::Result<(), #krate::SendError> {
                #unreachable
            }
            pub fn with_timeout(&self, __timeout: ::core::time::Duration) -> &Self { self }
            pub fn idempotent(&self, __key: impl ::core::convert::Into<#krate::IdempotencyKey>) -> &Self { self }
            pub fn after(&self, __delay: ::core::time::Duration) -> &Self { self }
            pub fn branch(&self) -> &#krate::Branch { self.0.branch() }
            pub async fn stop(&self) -> ::core::result::Result<(), #krate::StopError> { #unreachable }
            pub async fn stop_with(&self, __reason: impl ::core::convert::Into<::std::string::String>) -> ::core::result::Result<(), #krate::StopError> { #unreachable }
            pub fn inner(&self) -> &#krate::Client<#self_ty> { &self.0 }
            pub fn into_inner(self) -> #krate::Client<#self_ty> { self.0 }
            pub fn whereis(__name: &str) -> ::core::option::Option<Self> { #unreachable }
        }

        #server_functions
    }
}

/// The `Server` impl, on the stub enums when there are some (so that `ctx.continue_with(..)`
/// takes the cast enum), else on `Infallible`.
fn stub_server(args: &Args, item: &ItemImpl, names: Option<&Names>) -> TokenStream {
    if !can_be_a_server(item) {
        return TokenStream::new();
    }
    let infallible = quote!(::core::convert::Infallible);
    let (call, cast, info) = match names {
        Some(names) => (
            names.call.to_token_stream(),
            names.cast.to_token_stream(),
            names.info.to_token_stream(),
        ),
        None => (infallible.clone(), infallible.clone(), infallible.clone()),
    };
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
            type Call = #call;
            type Reply = ::core::convert::Infallible;
            type Cast = #cast;
            type Info = #info;
            type Keep = #krate::keep::InPlace;

            async fn handle_call(
                _: &mut #krate::Tracked<Self>,
                _: #call,
                _: &mut #krate::Context<Self>,
            ) -> ::core::convert::Infallible {
                ::core::unreachable!("the server has compile errors")
            }

            async fn handle_cast(
                _: &mut #krate::Tracked<Self>,
                _: #cast,
                _: &mut #krate::Context<Self>,
            ) {
                ::core::unreachable!("the server has compile errors")
            }
        }
    }
}
