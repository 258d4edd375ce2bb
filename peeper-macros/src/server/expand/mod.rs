//! Code generation: one method per emitted item, joined in one `ToTokens`, so that the methods of
//! [`Expansion`] read as the table of contents of the output (the layout of tarpc's service
//! macro).
//!
//! Every path is absolute (`::core::..`, `#krate::..`, with `krate` the runtime crate's path), so
//! the output compiles whatever the user has in scope, under `#![no_implicit_prelude]` too.
//! Local names start with `__` so that they cannot capture the user's constants.

mod client;
mod messages;
mod server;

use std::collections::HashSet;

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{Attribute, GenericParam, Generics, ImplItem, ItemImpl, Lifetime, LifetimeParam, Path};

use super::ast::{Handler, Param, Server};
use super::attr::{Args, Kind};
use crate::case;

/// Everything `#[peeper::server]` emits for one `impl` block.
pub(crate) struct Expansion<'a> {
    server: &'a Server<'a>,
    krate: &'a Path,
    keep: Ident,
    /// `#[peeper::server(remote)]`: serde on the messages, `impl peeper::Remote`.
    remote: bool,
    /// The `impl`'s generics for the generated items, where `Self` would mean the item itself:
    /// with `Self` replaced by the server's type.
    generics: Generics,
    /// The server's name, as a string for docs.
    name: String,
    call: Ident,
    reply: Ident,
    cast: Ident,
    info: Ident,
    client: Ident,
    with_timeout: Ident,
    after: Ident,
    idempotent: Ident,
}

impl<'a> Expansion<'a> {
    /// `server` must have passed validation: it has a name.
    pub(crate) fn new(args: &'a Args, server: &'a Server<'a>, name: &'a Ident) -> Self {
        Expansion {
            server,
            krate: &args.krate,
            keep: Ident::new(args.keep.type_name(), Span::call_site()),
            remote: args.remote,
            generics: server.generics_without_self(),
            name: syn::ext::IdentExt::unraw(name).to_string(),
            call: Self::item(server, name, "Call"),
            reply: Self::item(server, name, "Reply"),
            cast: Self::item(server, name, "Cast"),
            info: Self::item(server, name, "Info"),
            client: Self::item(server, name, "Client"),
            with_timeout: Self::item(server, name, "WithTimeout"),
            after: Self::item(server, name, "After"),
            idempotent: Self::item(server, name, "Idempotent"),
        }
    }
}

impl Expansion<'_> {
    fn item(server: &Server<'_>, name: &Ident, suffix: &str) -> Ident {
        server
            .item(suffix)
            .unwrap_or_else(|| case::item(name, suffix))
    }
}

impl ToTokens for Expansion<'_> {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.extend(user_impl(self.server.item));
        // The `impl` block's own `#[cfg]`s apply to everything generated from it.
        let cfgs = &self.server.cfgs;
        for item in [
            self.call_enum(),
            self.reply_enum(),
            self.cast_enum(),
            self.info_enum(),
            self.info_from_impls(),
            self.server_impl(),
            self.server_inherent_impl(),
            self.remote_impl(),
            self.client_struct(),
            self.client_trait_impls(),
            self.client_impl(),
            self.with_timeout_builder(),
            self.after_builder(),
            self.idempotent_builder(),
            self.registration(),
        ] {
            if !item.is_empty() {
                tokens.extend(quote!(#(#cfgs)* #item));
            }
        }
    }
}

/// The user's `impl` block as it would be without the macro: handler attributes removed.
///
/// Handlers with message arguments also get `#[allow(clippy::needless_pass_by_value)]`: the
/// macro is what requires their arguments to be owned (a message outlives its sender's borrows),
/// so the lint would blame the user for a rule that is not theirs.
pub(crate) fn user_impl(item: &ItemImpl) -> TokenStream {
    let mut item = item.clone();
    for impl_item in &mut item.items {
        let attrs = match impl_item {
            ImplItem::Fn(method) => {
                let is_message = method
                    .attrs
                    .iter()
                    .any(|attr| Kind::of(attr).is_some_and(Kind::is_message));
                let owned_args = method.sig.inputs.iter().any(|input| {
                    matches!(input, syn::FnArg::Typed(arg) if !matches!(*arg.ty, syn::Type::Reference(_)))
                });
                if is_message && owned_args {
                    method
                        .attrs
                        .push(syn::parse_quote!(#[allow(clippy::needless_pass_by_value)]));
                }
                &mut method.attrs
            }
            ImplItem::Const(inner) => &mut inner.attrs,
            ImplItem::Type(inner) => &mut inner.attrs,
            ImplItem::Macro(inner) => &mut inner.attrs,
            _ => continue,
        };
        attrs.retain(|attr| Kind::of(attr).is_none());
    }
    item.into_token_stream()
}

const CALL_ERRORS: &str = "\n# Errors\n\n`peeper::CallError::Crashed` if the handler panicked or the \
                           worker was killed while handling it (the state is then the one before this call), \
                           `Timeout` if no reply came within 5 s, `Stopped` if the server has stopped, `Store` \
                           if a durable server could not store the new state, `CallingSelf` if called from a \
                           handler of this very server (see `peeper::CallError`).";
const TIMEOUT_ERRORS: &str = "\n# Errors\n\n`peeper::CallError::Crashed` if the handler panicked or the \
                              worker was killed while handling it (the state is then the one before this call), \
                              `Timeout` if no reply came within the timeout, `Stopped` if the server has stopped, \
                              `Store` if a durable server could not store the new state, `CallingSelf` if called \
                              from a handler of this very server (see `peeper::CallError`).";
const KEYED_ERRORS: &str = "\n# Errors\n\nAs the call without a key, and `peeper::CallError::KeyReused` \
                            if the key was used before with a different message (nothing was applied). \
                            A `Timeout` may have been applied: retry with the same key to find out.";
const CAST_ERRORS: &str = "\n# Errors\n\n`peeper::SendError::Stopped` if the server has stopped.";
const AFTER_ERRORS: &str = "\n# Errors\n\n`peeper::SendError::Stopped` if the server has already \
                            stopped; a server that stops during the delay drops the message.";

/// Pieces shared by the generators.
impl Expansion<'_> {
    /// The handler's doc comments, or `default` when it has none.
    fn handler_docs(&self, handler: &Handler<'_>, default: &str) -> Vec<TokenStream> {
        if handler.docs.is_empty() {
            vec![quote!(#[doc = #default])]
        } else {
            handler
                .docs
                .iter()
                .map(|attr: &&Attribute| attr.to_token_stream())
                .collect()
        }
    }

    /// A method of the client or of its timeout builder for a `#[call]` handler: the call, as a
    /// `peeper::Call` that unpacks the handler's reply.
    ///
    /// Not an `async fn`: each would be a future type of its own for the compiler to check, for
    /// every call of every server.
    fn call_method(
        &self,
        handler: &Handler<'_>,
        client: &TokenStream,
        timeout: &TokenStream,
        errors: &str,
    ) -> TokenStream {
        let krate = self.krate;
        let reply = &self.reply;
        let self_ty = &self.server.item.self_ty;
        let docs = self.handler_docs(
            handler,
            &format!("Calls `{}` and waits for its reply.", handler.name()),
        );
        let (cfgs, method, params) = (&handler.cfgs, handler.name(), self.client_params(handler));
        let variant = case::variant(handler.name());
        let message = self.message(&self.call, handler);
        let ty = reply_type(handler);
        quote! {
            #(#docs)*
            #[doc = #errors]
            #(#cfgs)*
            #[inline]
            // A single `#[call]` makes the other arm unreachable.
            #[allow(unreachable_patterns)]
            pub fn #method(&self, #(#params),*) -> #krate::Call<'_, #self_ty, #ty> {
                #client.__call(#message, #timeout, |__reply| match __reply {
                    #reply::#variant(__reply) => ::core::option::Option::Some(__reply),
                    _ => ::core::option::Option::None,
                })
            }
        }
    }

    /// `name: Type` for each message argument, for a client method's signature.
    fn client_params(&self, handler: &Handler<'_>) -> Vec<TokenStream> {
        handler
            .args()
            .filter_map(|arg| {
                let (name, ty) = (arg.name()?, &arg.ty);
                Some(quote!(#name: #ty))
            })
            .collect()
    }

    /// `CounterCall::Add { by }`, built from a client method's parameters.
    fn message(&self, enum_ident: &Ident, handler: &Handler<'_>) -> TokenStream {
        let variant = case::variant(handler.name());
        let names: Vec<_> = handler.args().filter_map(|arg| arg.name()).collect();
        if names.is_empty() {
            quote!(#enum_ident::#variant)
        } else {
            quote!(#enum_ident::#variant { #(#names),* })
        }
    }

    /// `CounterCall::Add { by: __arg0 }`, to match a message in the dispatch.
    fn pattern(&self, enum_ident: &Ident, handler: &Handler<'_>) -> TokenStream {
        let variant = case::variant(handler.name());
        let fields: Vec<_> = handler
            .args()
            .enumerate()
            .filter_map(|(index, arg)| {
                let binding = format_ident!("__arg{index}");
                let name = arg.name()?;
                Some(quote!(#name: #binding))
            })
            .collect();
        if fields.is_empty() {
            quote!(#enum_ident::#variant)
        } else {
            quote!(#enum_ident::#variant { #(#fields),* })
        }
    }

    /// The call of the user's method: `Self::add(&mut **__state, __arg0, __ctx).await`.
    ///
    /// `&self` handlers get the state through `Deref` (`&**__state`), which does not mark it
    /// changed, so the keep strategy never copies after them: that is how "`&self` never copies"
    /// holds whatever the strategy. `&mut self` handlers get it through `DerefMut`, which marks it.
    fn invoke(&self, handler: &Handler<'_>, state: &TokenStream) -> TokenStream {
        let method = handler.name();
        let receiver = match (handler.kind, handler.mutates()) {
            (Kind::Terminate, true) => quote!(#state),
            (Kind::Terminate, false) => quote!(&*#state),
            (_, true) => quote!(&mut **#state),
            (_, false) => quote!(&**#state),
        };
        let mut index = 0;
        let params = handler.params.iter().map(|param| match param {
            Param::Context(_) => quote!(__ctx),
            Param::Reply(_) => quote!(__reply_to),
            Param::Arg(_) if handler.kind == Kind::Terminate => quote!(__reason),
            Param::Arg(_) => {
                let binding = format_ident!("__arg{index}");
                index += 1;
                quote!(#binding)
            }
        });
        let params: Vec<_> = params.collect();
        let await_ = handler.is_async().then(|| quote!(.await));
        quote!(Self::#method(#receiver #(, #params)*) #await_)
    }

    /// A match arm of `handle_cast` or `handle_info`.
    fn no_reply_arm(&self, enum_ident: &Ident, handler: &Handler<'_>) -> TokenStream {
        let pattern = self.pattern(enum_ident, handler);
        let invoke = self.invoke(handler, &quote!(__state));
        let cfgs = &handler.cfgs;
        let body = self.no_reply_body(handler, &invoke);
        quote!(#(#cfgs)* #pattern => #body,)
    }

    /// The body that runs a handler nobody waits for: an `Err` it returns is a crash.
    fn no_reply_body(&self, handler: &Handler<'_>, invoke: &TokenStream) -> TokenStream {
        let krate = self.krate;
        match &handler.output {
            Some(output) => {
                let name = handler.name().to_string();
                let output_trait = quote_spanned!(output.span()=> #krate::__private::CastOutput);
                quote!(<#output as #output_trait>::finish(#invoke, #name))
            }
            None => quote!({ #invoke; }),
        }
    }

    /// The arm for the hidden phantom variant, if the enum has one.
    fn phantom_arm(&self, enum_ident: &Ident, kind: Kind) -> TokenStream {
        if self.unused_type_params(self.arg_types(kind)).is_empty() {
            return TokenStream::new();
        }
        quote!(#enum_ident::__Phantom(_, __never) => match __never {},)
    }

    /// A hidden, uninhabited variant that uses the type parameters no field uses (an enum must
    /// use each of its parameters).
    fn phantom_variant(&self, types: impl Iterator<Item = TokenStream>) -> TokenStream {
        let unused = self.unused_type_params(types);
        if unused.is_empty() {
            return TokenStream::new();
        }
        let skip = self.remote.then(|| quote!(#[serde(skip)]));
        quote! {
            #[doc(hidden)]
            #skip
            __Phantom(::core::marker::PhantomData<fn() -> (#(#unused,)*)>, ::core::convert::Infallible),
        }
    }

    /// The argument types of the handlers of `kind` that are always compiled (no `#[cfg]`):
    /// what the message enum's fields are made of, for the phantom variant's decision.
    fn arg_types(&self, kind: Kind) -> impl Iterator<Item = TokenStream> + '_ {
        self.server
            .handlers(kind)
            .filter(|handler| handler.cfgs.is_empty())
            .flat_map(|handler| {
                handler
                    .args()
                    .map(|arg| arg.ty.to_token_stream())
                    .collect::<Vec<_>>()
            })
    }

    fn unused_type_params(&self, types: impl Iterator<Item = TokenStream>) -> Vec<&Ident> {
        let used: HashSet<String> = types.flat_map(idents).collect();
        self.type_params()
            .filter(|param| !used.contains(&param.to_string()))
            .collect()
    }

    fn type_params(&self) -> impl Iterator<Item = &Ident> {
        self.server
            .item
            .generics
            .params
            .iter()
            .filter_map(|param| match param {
                GenericParam::Type(param) => Some(&param.ident),
                _ => None,
            })
    }

    /// The server's generic arguments, `T, N`, to follow a lifetime in `Builder<'_, T, N>`.
    fn ty_args(&self) -> Vec<&Ident> {
        self.server
            .item
            .generics
            .params
            .iter()
            .filter_map(|param| match param {
                GenericParam::Type(param) => Some(&param.ident),
                GenericParam::Const(param) => Some(&param.ident),
                GenericParam::Lifetime(_) => None,
            })
            .collect()
    }
}

/// What the caller of a `#[call]` gets: its return type, or the `T` of its `ReplyTo<T>`.
fn reply_type(handler: &Handler<'_>) -> TokenStream {
    if let Some(reply) = handler.reply_to() {
        return match &reply.ty {
            Some(ty) => ty.to_token_stream(),
            None => quote!(()),
        };
    }
    match &handler.output {
        Some(ty) => ty.to_token_stream(),
        None => quote!(()),
    }
}

/// The server's generics with `'client` in front, for the borrowing builders.
fn with_lifetime(generics: &Generics) -> Generics {
    let mut generics = generics.clone();
    let lifetime = Lifetime::new("'client", Span::call_site());
    generics
        .params
        .insert(0, GenericParam::Lifetime(LifetimeParam::new(lifetime)));
    generics
}

/// Every identifier in `tokens`, at any depth.
fn idents(tokens: TokenStream) -> Vec<String> {
    let mut found = Vec::new();
    for token in tokens {
        match token {
            TokenTree::Ident(ident) => found.push(ident.to_string()),
            TokenTree::Group(group) => found.extend(idents(group.stream())),
            TokenTree::Punct(_) | TokenTree::Literal(_) => {}
        }
    }
    found
}

/// Whether `tokens` mention one of `params`.
fn mentions(tokens: TokenStream, params: &HashSet<String>) -> bool {
    idents(tokens).iter().any(|ident| params.contains(ident))
}
