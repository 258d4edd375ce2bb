//! Code generation: one method per emitted item, joined in one `ToTokens`, so that the methods of
//! [`Expansion`] read as the table of contents of the output (the layout of tarpc's service
//! macro).
//!
//! Every path is absolute (`::core::..`, `#krate::..`, with `krate` the runtime crate's path), so
//! the output compiles whatever the user has in scope, under `#![no_implicit_prelude]` too.
//! Local names start with `__` so that they cannot capture the user's constants.

use std::collections::{HashMap, HashSet};

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

/// Generators, one per emitted item.
impl Expansion<'_> {
    fn call_enum(&self) -> TokenStream {
        let doc = format!(
            "The calls `{name}` answers: one variant per `#[call]` handler, generated by \
             `#[peeper::server]`.\n\nEach has a method on [`{client}`] that sends it and waits for the \
             reply; it can also be sent with `peeper::Client::call`.",
            name = self.name,
            client = self.client,
        );
        self.message_enum(Kind::Call, &self.call, &doc)
    }

    fn cast_enum(&self) -> TokenStream {
        let doc = format!(
            "The casts `{name}` handles: one variant per `#[cast]` handler, generated by \
             `#[peeper::server]`.\n\nEach has a method on [`{client}`] that queues it without waiting; it \
             can also be sent with `peeper::Client::cast`.",
            name = self.name,
            client = self.client,
        );
        self.message_enum(Kind::Cast, &self.cast, &doc)
    }

    fn info_enum(&self) -> TokenStream {
        let doc = format!(
            "The raw (\"info\") messages `{name}` handles: one variant per `#[info]` handler, generated \
             by `#[peeper::server]`.\n\nSend them with [`{client}::send`], which takes anything that \
             converts into this type: every `#[info]` handler with a single argument gets a `From` \
             conversion from that argument's type (unless two handlers share the type, or it involves \
             a generic parameter of the server).",
            name = self.name,
            client = self.client,
        );
        self.message_enum(Kind::Info, &self.info, &doc)
    }

    fn message_enum(&self, kind: Kind, ident: &Ident, doc: &str) -> TokenStream {
        let generics = &self.generics;
        let where_clause = &generics.where_clause;
        let variants = self.server.handlers(kind).map(|handler| {
            let variant = case::variant(handler.name());
            let docs = self.handler_docs(
                handler,
                &format!("The message of the `{}` handler.", handler.name()),
            );
            let cfgs = &handler.cfgs;
            let fields = handler.args().map(|arg| {
                let name = arg.name();
                let ty = &arg.ty;
                let doc = format!(
                    "The `{}` argument of `{}`.",
                    syn::ext::IdentExt::unraw(name?),
                    handler.name()
                );
                Some(quote!(#[doc = #doc] #name: #ty))
            });
            let fields: Option<Vec<_>> = fields.collect();
            let fields = fields.unwrap_or_default();
            if fields.is_empty() {
                quote!(#(#docs)* #(#cfgs)* #variant,)
            } else {
                quote!(#(#docs)* #(#cfgs)* #variant { #(#fields,)* },)
            }
        });
        let types = self
            .server
            .handlers(kind)
            .filter(|handler| handler.cfgs.is_empty())
            .flat_map(|handler| {
                handler
                    .args()
                    .map(|arg| arg.ty.to_token_stream())
                    .collect::<Vec<_>>()
            });
        let phantom = self.phantom_variant(types);
        quote! {
            #[doc = #doc]
            #[allow(private_interfaces, private_bounds)]
            pub enum #ident #generics #where_clause {
                #(#variants)*
                #phantom
            }
        }
    }

    fn reply_enum(&self) -> TokenStream {
        let generics = &self.generics;
        let where_clause = &generics.where_clause;
        let doc = format!(
            "The replies of `{}`'s calls, one variant per `#[call]` handler (`peeper::Server::Reply` is \
             one type). [`{}`] unpacks them; nothing else needs to name this type.",
            self.name, self.client
        );
        let variants = self.server.handlers(Kind::Call).map(|handler| {
            let variant = case::variant(handler.name());
            let cfgs = &handler.cfgs;
            let doc = format!("The reply of `{}`.", handler.name());
            let ty = reply_type(handler);
            quote!(#[doc = #doc] #(#cfgs)* #variant(#ty),)
        });
        let types = self
            .server
            .handlers(Kind::Call)
            .filter(|handler| handler.cfgs.is_empty())
            .map(|handler| reply_type(handler));
        let phantom = self.phantom_variant(types);
        let deferred = self
            .server
            .handlers(Kind::Call)
            .any(|handler| handler.reply_to().is_some())
            .then(|| {
                quote! {
                    /// What a handler that took its reply handle returns: never sent.
                    __Deferred,
                }
            });
        let reply = &self.reply;
        quote! {
            #[doc = #doc]
            #[doc(hidden)]
            #[allow(private_interfaces, private_bounds)]
            pub enum #reply #generics #where_clause {
                #(#variants)*
                #deferred
                #phantom
            }
        }
    }

    /// `From<T>` for the info enum, for each `#[info]` handler with one argument of a type that is
    /// unique among them and names no generic parameter (two such impls could overlap).
    fn info_from_impls(&self) -> TokenStream {
        let single: Vec<_> = self
            .server
            .handlers(Kind::Info)
            .filter_map(|handler| match handler.args().collect::<Vec<_>>()[..] {
                [arg] => Some((handler, arg)),
                _ => None,
            })
            .collect();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (_, arg) in &single {
            *counts
                .entry(arg.ty.to_token_stream().to_string())
                .or_default() += 1;
        }
        let params: HashSet<String> = self.type_params().map(ToString::to_string).collect();
        let (impl_generics, ty_generics, where_clause) = self.generics.split_for_impl();
        let info = &self.info;
        let impls = single.iter().filter_map(|(handler, arg)| {
            let ty = &arg.ty;
            if counts[&ty.to_token_stream().to_string()] > 1 || mentions(ty.to_token_stream(), &params) {
                return None;
            }
            let name = arg.name()?;
            let variant = case::variant(handler.name());
            let cfgs = &handler.cfgs;
            Some(quote! {
                #(#cfgs)*
                impl #impl_generics ::core::convert::From<#ty> for #info #ty_generics #where_clause {
                    #[inline]
                    fn from(#name: #ty) -> Self {
                        Self::#variant { #name }
                    }
                }
            })
        });
        quote!(#(#impls)*)
    }

    fn server_impl(&self) -> TokenStream {
        let krate = self.krate;
        let item = self.server.item;
        let self_ty = &item.self_ty;
        let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
        let (call, reply, cast, info, keep) =
            (&self.call, &self.reply, &self.cast, &self.info, &self.keep);

        let call_arms = self.server.handlers(Kind::Call).map(|handler| {
            let pattern = self.pattern(call, handler);
            let invoke = self.invoke(handler, &quote!(__state));
            let variant = case::variant(handler.name());
            let cfgs = &handler.cfgs;
            let value = if handler.reply_to().is_some() {
                // The handler answers through the handle; the value returned here is dropped.
                quote!({
                    let __reply_to = __ctx.__reply_to(#reply::#variant);
                    #invoke;
                    #reply::__Deferred
                })
            } else if handler.output.is_some() {
                quote!(#reply::#variant(#invoke))
            } else {
                quote!({ #invoke; #reply::#variant(()) })
            };
            quote!(#(#cfgs)* #pattern => #value,)
        });
        let cast_arms = self
            .server
            .handlers(Kind::Cast)
            .map(|handler| self.no_reply_arm(cast, handler));
        let info_arms = self
            .server
            .handlers(Kind::Info)
            .map(|handler| self.no_reply_arm(info, handler));
        let call_phantom = self.phantom_arm(call, Kind::Call);
        let cast_phantom = self.phantom_arm(cast, Kind::Cast);
        let info_phantom = self.phantom_arm(info, Kind::Info);

        let init = self.server.handlers(Kind::Init).map(|handler| {
            let invoke = self.invoke(handler, &quote!(__state));
            let cfgs = &handler.cfgs;
            let body = match &handler.output {
                // Spanned on the return type, so that a wrong one is reported there.
                Some(output) => {
                    let output_trait =
                        quote_spanned!(output.span()=> #krate::__private::InitOutput);
                    quote!(<#output as #output_trait>::into_init_result(#invoke))
                }
                None => quote!(#invoke; ::core::result::Result::Ok(())),
            };
            quote! {
                #(#cfgs)*
                async fn init(
                    __state: &mut #krate::Tracked<Self>,
                    __ctx: &mut #krate::Context<Self>,
                ) -> ::core::result::Result<(), #krate::InitError> {
                    #body
                }
            }
        });
        // No `#[init]` at all (not even one behind a `cfg`): the default `init`, which a start
        // need not wait for.
        let init_is_default = self.server.handlers(Kind::Init).next().is_none().then(|| {
            quote!(
                const __INIT_IS_DEFAULT: bool = true;
            )
        });
        let timeout = self.server.handlers(Kind::Timeout).map(|handler| {
            let invoke = self.invoke(handler, &quote!(__state));
            let cfgs = &handler.cfgs;
            let body = self.no_reply_body(handler, &invoke);
            quote! {
                #(#cfgs)*
                async fn handle_timeout(
                    __state: &mut #krate::Tracked<Self>,
                    __ctx: &mut #krate::Context<Self>,
                ) {
                    #body
                }
            }
        });
        let terminate = self.server.handlers(Kind::Terminate).map(|handler| {
            let invoke = self.invoke(handler, &quote!(self));
            let cfgs = &handler.cfgs;
            quote! {
                #(#cfgs)*
                async fn terminate(&mut self, __reason: &#krate::Exit, __ctx: &mut #krate::Context<Self>) {
                    #invoke;
                }
            }
        });
        // Spanned on the server's type: a state the strategy cannot keep is reported there.
        let keep_item = quote_spanned!(self_ty.span()=> type Keep = #krate::keep::#keep;);
        let doc = format!(
            "Generated by `#[peeper::server]` from the handlers of `impl {}`.",
            self.name
        );
        quote! {
            #[doc = #doc]
            impl #impl_generics #krate::Server for #self_ty #where_clause {
                type Call = #call #ty_generics;
                type Reply = #reply #ty_generics;
                type Cast = #cast #ty_generics;
                type Info = #info #ty_generics;
                #keep_item

                #init_is_default
                #(#init)*

                async fn handle_call(
                    __state: &mut #krate::Tracked<Self>,
                    __call: #call #ty_generics,
                    __ctx: &mut #krate::Context<Self>,
                ) -> #reply #ty_generics {
                    match __call {
                        #(#call_arms)*
                        #call_phantom
                    }
                }

                async fn handle_cast(
                    __state: &mut #krate::Tracked<Self>,
                    __cast: #cast #ty_generics,
                    __ctx: &mut #krate::Context<Self>,
                ) {
                    match __cast {
                        #(#cast_arms)*
                        #cast_phantom
                    }
                }

                async fn handle_info(
                    __state: &mut #krate::Tracked<Self>,
                    __info: #info #ty_generics,
                    __ctx: &mut #krate::Context<Self>,
                ) {
                    match __info {
                        #(#info_arms)*
                        #info_phantom
                    }
                }

                #(#timeout)*

                #(#terminate)*
            }
        }
    }

    /// `Counter::start`, `Counter::builder` and `Counter::whereis`, returning the typed client.
    fn server_inherent_impl(&self) -> TokenStream {
        let krate = self.krate;
        let item = self.server.item;
        let self_ty = &item.self_ty;
        let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
        let client = &self.client;
        let start_doc = format!(
            "Starts a `{name}` server from `state` with the default options, and returns its typed \
             client once the first `#[init]` has completed.\n\nThe same as \
             `{name}::builder(state).start()`; generated by `#[peeper::server]`.\n\n# Errors\n\n\
             `peeper::StartError::Init` if `#[init]` failed or panicked.",
            name = self.name
        );
        let builder_doc = format!(
            "A `peeper::Builder` to start a `{name}` server from `state` with options (a name, \
             restart intensity, a listener, ...); its `start` returns a [`{client}`]. Generated by \
             `#[peeper::server]`.",
            name = self.name
        );
        let whereis_doc = format!(
            "The client of the running `{name}` registered as `name` (with `builder(..).name(..)`), \
             if any. Generated by `#[peeper::server]`.",
            name = self.name
        );
        quote! {
            impl #impl_generics #self_ty #where_clause {
                #[doc = #start_doc]
                pub async fn start(__state: Self) -> ::core::result::Result<#client #ty_generics, #krate::StartError> {
                    #krate::Builder::<Self, #client #ty_generics>::new(__state).start().await
                }

                #[doc = #builder_doc]
                pub fn builder(__state: Self) -> #krate::Builder<Self, #client #ty_generics> {
                    #krate::Builder::new(__state)
                }

                #[doc = #whereis_doc]
                #[must_use]
                pub fn whereis(__name: &str) -> ::core::option::Option<#client #ty_generics> {
                    ::core::option::Option::map(#krate::whereis::<Self>(__name), #client)
                }
            }
        }
    }

    fn client_struct(&self) -> TokenStream {
        let krate = self.krate;
        let generics = &self.generics;
        let where_clause = &generics.where_clause;
        let self_ty = &self.server.item.self_ty;
        let client = &self.client;
        let doc = format!(
            "The typed client of a running `{name}`, generated by `#[peeper::server]`: one method per \
             handler.\n\n- `#[call]` handlers: `async` methods that wait for the reply (up to 5 s; see \
             [`with_timeout`]({client}::with_timeout)) and return `Result<Reply, peeper::CallError>`;\n\
             - `#[cast]` handlers: plain methods that queue the message and return at once, \
             `Result<(), peeper::SendError>` (delayed: [`after`]({client}::after));\n\
             - `#[info]` handlers: [`send`]({client}::send).\n\n\
             Cheap to clone, `Send + Sync`, and valid across crashes and restarts of the server. It \
             wraps a `peeper::Client`, which [`inner`]({client}::inner) gives back, and adds nothing to \
             its cost.",
            name = self.name,
        );
        quote! {
            #[doc = #doc]
            #[allow(private_interfaces, private_bounds)]
            pub struct #client #generics (#krate::Client<#self_ty>) #where_clause;
        }
    }

    fn client_trait_impls(&self) -> TokenStream {
        let krate = self.krate;
        let self_ty = &self.server.item.self_ty;
        let (impl_generics, ty_generics, where_clause) = self.generics.split_for_impl();
        let client = &self.client;
        let client_name = client.to_string();
        quote! {
            impl #impl_generics ::core::clone::Clone for #client #ty_generics #where_clause {
                #[inline]
                fn clone(&self) -> Self {
                    Self(::core::clone::Clone::clone(&self.0))
                }
            }

            impl #impl_generics ::core::fmt::Debug for #client #ty_generics #where_clause {
                fn fmt(&self, __f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    __f.debug_tuple(#client_name).field(&self.0).finish()
                }
            }

            impl #impl_generics ::core::convert::From<#krate::Client<#self_ty>> for #client #ty_generics #where_clause {
                #[inline]
                fn from(__client: #krate::Client<#self_ty>) -> Self {
                    Self(__client)
                }
            }
        }
    }

    fn client_impl(&self) -> TokenStream {
        let krate = self.krate;
        let self_ty = &self.server.item.self_ty;
        let (impl_generics, ty_generics, where_clause) = self.generics.split_for_impl();
        let (client, info, with_timeout, after, idempotent) = (
            &self.client,
            &self.info,
            &self.with_timeout,
            &self.after,
            &self.idempotent,
        );
        let ty_args = self.ty_args();
        let calls = self.server.handlers(Kind::Call).map(|handler| {
            self.call_method(
                handler,
                &quote!(self.0),
                &quote!(call(__message)),
                CALL_ERRORS,
            )
        });
        let casts = self.server.handlers(Kind::Cast).map(|handler| {
            let docs = self.handler_docs(handler, &format!("Queues the `{}` cast, without waiting.", handler.name()));
            let (cfgs, method, params) = (&handler.cfgs, handler.name(), self.client_params(handler));
            let message = self.message(&self.cast, handler);
            quote! {
                #(#docs)*
                #[doc = #CAST_ERRORS]
                #(#cfgs)*
                #[inline]
                pub fn #method(&self, #(#params),*) -> ::core::result::Result<(), #krate::SendError> {
                    self.0.cast(#message)
                }
            }
        });
        let send_doc = format!(
            "Queues a raw (`#[info]`) message, without waiting: a [`{info}`], or the argument of an \
             `#[info]` handler that takes one.\n{CAST_ERRORS}"
        );
        let whereis_doc = format!(
            "The client of the running `{}` registered as `name`, if any.",
            self.name
        );
        quote! {
            impl #impl_generics #client #ty_generics #where_clause {
                #(#calls)*
                #(#casts)*

                #[doc = #send_doc]
                #[inline]
                pub fn send(
                    &self,
                    __message: impl ::core::convert::Into<#info #ty_generics>,
                ) -> ::core::result::Result<(), #krate::SendError> {
                    self.0.send(__message)
                }

                /// The call methods, with a timeout other than the default 5 s:
                /// `client.with_timeout(Duration::from_secs(1)).some_call(..).await`.
                #[inline]
                pub fn with_timeout(&self, __timeout: ::core::time::Duration) -> #with_timeout<'_, #(#ty_args),*> {
                    #with_timeout { client: &self.0, timeout: __timeout }
                }

                /// The call methods, made with an idempotency key: the first call with `key` runs
                /// its handler, a retry with the same key gets the first reply without running it
                /// again (`peeper::Idempotent`): `client.idempotent(request_id).some_call(..).await`.
                #[inline]
                pub fn idempotent(&self, __key: impl ::core::convert::Into<#krate::IdempotencyKey>) -> #idempotent<'_, #(#ty_args),*> {
                    #idempotent(self.0.idempotent(__key))
                }

                /// The cast methods and `send`, delivering after `delay` (the counterpart of
                /// `Process.send_after/3`): `client.after(Duration::from_secs(1)).some_cast(..)`.
                #[inline]
                pub fn after(&self, __delay: ::core::time::Duration) -> #after<'_, #(#ty_args),*> {
                    #after { client: &self.0, delay: __delay }
                }

                /// The server's branch: its tasks, restarts, `kill_worker`, waiting for restarts.
                #[inline]
                #[must_use]
                pub fn branch(&self) -> &#krate::Branch {
                    self.0.branch()
                }

                /// Stops the server normally: every message queued before is handled, `#[terminate]`
                /// runs, the name is freed. Resolves once all of that is done.
                ///
                /// # Errors
                ///
                /// `peeper::StopError::AlreadyStopped` if the server had already stopped, `Terminate`
                /// if `#[terminate]` panicked, `Store` if a durable server's last state is not stored
                /// yet, `CallingSelf` if called from one of its own handlers (see `peeper::StopError`).
                pub async fn stop(&self) -> ::core::result::Result<(), #krate::StopError> {
                    self.0.stop().await
                }

                /// Stops the server with a reason (`peeper::Exit::Stopped`), which `#[terminate]`,
                /// the listener and `branch().ended()` receive; otherwise as `stop`.
                ///
                /// # Errors
                ///
                /// As `stop`.
                pub async fn stop_with(
                    &self,
                    __reason: impl ::core::convert::Into<::std::string::String>,
                ) -> ::core::result::Result<(), #krate::StopError> {
                    self.0.stop_with(__reason).await
                }

                #[doc = #whereis_doc]
                #[must_use]
                pub fn whereis(__name: &str) -> ::core::option::Option<Self> {
                    ::core::option::Option::map(#krate::whereis::<#self_ty>(__name), Self)
                }

                /// The generic `peeper::Client` this typed client wraps.
                #[inline]
                #[must_use]
                pub fn inner(&self) -> &#krate::Client<#self_ty> {
                    &self.0
                }

                /// The generic `peeper::Client` this typed client wraps.
                #[inline]
                #[must_use]
                pub fn into_inner(self) -> #krate::Client<#self_ty> {
                    self.0
                }
            }
        }
    }

    fn with_timeout_builder(&self) -> TokenStream {
        let krate = self.krate;
        let (ident, client) = (&self.with_timeout, &self.client);
        let doc = format!(
            "The calls of a [`{client}`] with a timeout, from [`{client}::with_timeout`]. Generated by \
             `#[peeper::server]`."
        );
        let calls = self.server.handlers(Kind::Call).map(|handler| {
            self.call_method(
                handler,
                &quote!(self.client),
                &quote!(call_timeout(__message, self.timeout)),
                TIMEOUT_ERRORS,
            )
        });
        self.borrowing_builder(ident, &doc, &quote!(timeout), &quote!(#(#calls)*), krate)
    }

    /// `{S}Idempotent`: the calls with an idempotency key, wrapping `peeper::Idempotent`. A
    /// `#[call]` that answers later (`ReplyTo`) has no keyed method: its reply is not the
    /// handler's to record.
    fn idempotent_builder(&self) -> TokenStream {
        let krate = self.krate;
        let self_ty = &self.server.item.self_ty;
        let (ident, client) = (&self.idempotent, &self.client);
        let generics = with_lifetime(&self.generics);
        let where_clause = &generics.where_clause;
        let (impl_generics, ty_generics, _) = generics.split_for_impl();
        let doc = format!(
            "The calls of a [`{client}`] made with an idempotency key, from \
             [`{client}::idempotent`]: the first call with the key runs its handler, a retry gets \
             its reply without running it again (see `peeper::Idempotent`). Generated by \
             `#[peeper::server]`."
        );
        let name = ident.to_string();
        let calls = self
            .server
            .handlers(Kind::Call)
            .filter(|handler| handler.reply_to().is_none())
            .map(|handler| self.keyed_call_method(handler));
        quote! {
            #[doc = #doc]
            #[must_use = "these methods send nothing until one of them is called"]
            pub struct #ident #generics (#krate::Idempotent<'client, #self_ty>) #where_clause;

            impl #impl_generics #ident #ty_generics #where_clause {
                /// The same calls with a timeout other than the default 5 s. A timed-out call may
                /// have been applied: retry it with the same key to find out.
                #[inline]
                pub fn timeout(self, __timeout: ::core::time::Duration) -> Self {
                    #ident(self.0.timeout(__timeout))
                }

                /// The key these calls carry.
                #[inline]
                #[must_use]
                pub fn key(&self) -> &#krate::IdempotencyKey {
                    self.0.key()
                }

                #(#calls)*
            }

            impl #impl_generics ::core::clone::Clone for #ident #ty_generics #where_clause {
                #[inline]
                fn clone(&self) -> Self {
                    #ident(::core::clone::Clone::clone(&self.0))
                }
            }

            impl #impl_generics ::core::fmt::Debug for #ident #ty_generics #where_clause {
                fn fmt(&self, __f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    __f.debug_tuple(#name).field(&self.0).finish()
                }
            }
        }
    }

    /// A call method of `{S}Idempotent`: the message's digest is taken before it is built, and
    /// the reply is recorded through its own type. The bounds are higher-ranked so that a
    /// handler whose types are not serde is an error only where it is called with a key.
    fn keyed_call_method(&self, handler: &Handler<'_>) -> TokenStream {
        let krate = self.krate;
        let reply = &self.reply;
        let docs = self.handler_docs(
            handler,
            &format!(
                "Calls `{}` with the idempotency key and waits for its reply (or the reply \
                 recorded for the key).",
                handler.name()
            ),
        );
        let (cfgs, method, params) = (&handler.cfgs, handler.name(), self.client_params(handler));
        let variant = case::variant(handler.name());
        let message = self.message(&self.call, handler);
        let ty = reply_type(handler);
        let names: Vec<_> = handler.args().filter_map(|arg| arg.name()).collect();
        let arg_types: Vec<_> = handler
            .args()
            .filter(|arg| arg.name().is_some())
            .map(|arg| &arg.ty)
            .collect();
        let method_name = method.to_string();
        let mismatch = format!(
            "the worker answers `{}::{variant}` with `{reply}::{variant}`",
            self.call
        );
        quote! {
            #(#docs)*
            #[doc = #KEYED_ERRORS]
            #(#cfgs)*
            #[inline]
            #[allow(unreachable_patterns)]
            pub async fn #method(&self, #(#params),*) -> ::core::result::Result<#ty, #krate::CallError>
            where
                for<'__keyed> #ty: #krate::Retainable,
                #(for<'__keyed> #arg_types: #krate::Comparable,)*
            {
                let __digest = #krate::__private::digest(#method_name, &(#(&#names,)*));
                let __message = #message;
                let __answer = self.0.__call(
                    __message,
                    __digest,
                    |__reply| match __reply {
                        #reply::#variant(__reply) => #krate::__private::encode_reply(__reply),
                        _ => ::core::result::Result::Err(<::std::string::String as ::core::convert::From<&str>>::from(#mismatch)),
                    },
                    |__bytes| #krate::__private::decode_reply::<#ty>(__bytes).map(#reply::#variant),
                ).await;
                match __answer {
                    ::core::result::Result::Ok(#reply::#variant(__reply)) => ::core::result::Result::Ok(__reply),
                    ::core::result::Result::Ok(_) => ::core::unreachable!(#mismatch),
                    ::core::result::Result::Err(__error) => ::core::result::Result::Err(__error),
                }
            }
        }
    }

    fn after_builder(&self) -> TokenStream {
        let krate = self.krate;
        let (ident, client, info) = (&self.after, &self.client, &self.info);
        let ty_generics = self.generics.split_for_impl().1;
        let doc = format!(
            "The casts and raw messages of a [`{client}`], delivered after a delay, from \
             [`{client}::after`]. Generated by `#[peeper::server]`."
        );
        let casts = self.server.handlers(Kind::Cast).map(|handler| {
            let docs = self.handler_docs(handler, &format!("Queues the `{}` cast after the delay.", handler.name()));
            let (cfgs, method, params) = (&handler.cfgs, handler.name(), self.client_params(handler));
            let message = self.message(&self.cast, handler);
            quote! {
                #(#docs)*
                #[doc = #AFTER_ERRORS]
                #(#cfgs)*
                #[inline]
                pub fn #method(&self, #(#params),*) -> ::core::result::Result<#krate::Timer, #krate::SendError> {
                    self.client.cast_after(self.delay, #message)
                }
            }
        });
        let methods = quote! {
            #(#casts)*

            /// Queues a raw (`#[info]`) message after the delay.
            #[doc = #AFTER_ERRORS]
            #[inline]
            pub fn send(
                &self,
                __message: impl ::core::convert::Into<#info #ty_generics>,
            ) -> ::core::result::Result<#krate::Timer, #krate::SendError> {
                self.client.send_after(self.delay, __message)
            }
        };
        self.borrowing_builder(ident, &doc, &quote!(delay), &methods, krate)
    }

    /// A struct holding `&Client<S>` and a `Duration` named `field`, with `methods`.
    fn borrowing_builder(
        &self,
        ident: &Ident,
        doc: &str,
        field: &TokenStream,
        methods: &TokenStream,
        krate: &Path,
    ) -> TokenStream {
        let self_ty = &self.server.item.self_ty;
        let generics = with_lifetime(&self.generics);
        let where_clause = &generics.where_clause;
        let (impl_generics, ty_generics, _) = generics.split_for_impl();
        let name = ident.to_string();
        let field_name = field.to_string();
        quote! {
            #[doc = #doc]
            #[must_use = "these methods send nothing until one of them is called"]
            #[allow(private_interfaces, private_bounds)]
            pub struct #ident #generics #where_clause {
                client: &'client #krate::Client<#self_ty>,
                #field: ::core::time::Duration,
            }

            impl #impl_generics #ident #ty_generics #where_clause {
                #methods
            }

            impl #impl_generics ::core::clone::Clone for #ident #ty_generics #where_clause {
                #[inline]
                fn clone(&self) -> Self {
                    #ident { client: self.client, #field: self.#field }
                }
            }

            impl #impl_generics ::core::fmt::Debug for #ident #ty_generics #where_clause {
                fn fmt(&self, __f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    __f.debug_struct(#name)
                        .field("client", self.client)
                        .field(#field_name, &self.#field)
                        .finish()
                }
            }
        }
    }

    /// Lists the server in `peeper::servers()`. Generic servers are not listed: a registration is
    /// a `static`, which cannot be generic.
    fn registration(&self) -> TokenStream {
        if self.server.is_generic() {
            return TokenStream::new();
        }
        let krate = self.krate;
        let self_ty = &self.server.item.self_ty;
        let name = &self.name;
        quote! {
            #krate::__private::inventory::submit! {
                #krate::ServerKind::__new(
                    #name,
                    ::core::module_path!(),
                    ::core::any::type_name::<#self_ty>,
                    ::core::any::TypeId::of::<#self_ty>,
                    #krate::__private::branch_named::<#self_ty>,
                )
            }
        }
    }
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

    /// An `async fn` of the client or of its timeout builder for a `#[call]` handler.
    fn call_method(
        &self,
        handler: &Handler<'_>,
        client: &TokenStream,
        call: &TokenStream,
        errors: &str,
    ) -> TokenStream {
        let krate = self.krate;
        let reply = &self.reply;
        let docs = self.handler_docs(
            handler,
            &format!("Calls `{}` and waits for its reply.", handler.name()),
        );
        let (cfgs, method, params) = (&handler.cfgs, handler.name(), self.client_params(handler));
        let variant = case::variant(handler.name());
        let message = self.message(&self.call, handler);
        let ty = reply_type(handler);
        let mismatch = format!(
            "the worker answers `{}::{variant}` with `{reply}::{variant}`",
            self.call
        );
        quote! {
            #(#docs)*
            #[doc = #errors]
            #(#cfgs)*
            #[inline]
            // A single `#[call]` makes the mismatch arm unreachable.
            #[allow(unreachable_patterns)]
            pub async fn #method(&self, #(#params),*) -> ::core::result::Result<#ty, #krate::CallError> {
                let __message = #message;
                match #client.#call.await {
                    ::core::result::Result::Ok(#reply::#variant(__reply)) => ::core::result::Result::Ok(__reply),
                    // The worker answers each call variant with the reply variant of the same name.
                    ::core::result::Result::Ok(_) => ::core::unreachable!(#mismatch),
                    ::core::result::Result::Err(__error) => ::core::result::Result::Err(__error),
                }
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
        let types = self
            .server
            .handlers(kind)
            .filter(|handler| handler.cfgs.is_empty())
            .flat_map(|handler| {
                handler
                    .args()
                    .map(|arg| arg.ty.to_token_stream())
                    .collect::<Vec<_>>()
            });
        if self.unused_type_params(types).is_empty() {
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
        quote! {
            #[doc(hidden)]
            __Phantom(::core::marker::PhantomData<fn() -> (#(#unused,)*)>, ::core::convert::Infallible),
        }
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
