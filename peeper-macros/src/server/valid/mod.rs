//! The checks: every mistake found is recorded with the span of the token it is about and a
//! message that says how to fix it, and checking goes on, so the user sees all mistakes at once.

use std::collections::HashMap;

use proc_macro2::{Ident, TokenStream};
use quote::{ToTokens, quote};
use syn::{FnArg, GenericParam, Item, Meta, ReturnType, Type};

use super::ast::{Arg, Context, Handler, Param, Reply, Server};
use super::attr::Kind;
use crate::case;
use crate::errors::{Errors, shown};

mod types;

pub(crate) use types::is_owned;
use types::{Role, owned};

/// What to say about an item that is not an `impl` block.
pub(crate) fn not_an_impl(item: &Item, errors: &Errors) {
    let (tokens, what, name): (TokenStream, &str, Option<&Ident>) = match item {
        Item::Struct(item) => {
            let (token, ident) = (&item.struct_token, &item.ident);
            (quote!(#token #ident), "struct", Some(ident))
        }
        Item::Enum(item) => {
            let (token, ident) = (&item.enum_token, &item.ident);
            (quote!(#token #ident), "enum", Some(ident))
        }
        Item::Fn(item) => {
            let (token, ident) = (&item.sig.fn_token, &item.sig.ident);
            (quote!(#token #ident), "function", None)
        }
        Item::Trait(item) => {
            let (token, ident) = (&item.trait_token, &item.ident);
            (quote!(#token #ident), "trait", None)
        }
        Item::Mod(item) => {
            let (token, ident) = (&item.mod_token, &item.ident);
            (quote!(#token #ident), "module", None)
        }
        other => (other.to_token_stream(), "item", None),
    };
    let name = name.map_or_else(|| "MyServer".to_owned(), ToString::to_string);
    errors.error(
        tokens,
        format_args!(
            "`#[peeper::server]` goes on the `impl` block that holds the handlers, not on a {what}: \
             write `#[peeper::server] impl {name} {{ #[call] fn get(&self) -> u64 {{ .. }} }}`"
        ),
    );
}

pub(crate) fn server(server: &Server<'_>, errors: &Errors) {
    let item = server.item;
    let self_ty = &item.self_ty;
    if let Some((_, path, for_token)) = &item.trait_ {
        let ty = shown(self_ty);
        let trait_ = shown(path);
        errors.error(
            quote!(#path #for_token),
            format_args!(
                "`#[peeper::server]` goes on an inherent `impl` block (`impl {ty} {{ .. }}`), not on an \
                 implementation of `{trait_}`: move the attribute and the handlers to `impl {ty}`"
            ),
        );
        return;
    }
    if server.name.is_none() {
        errors.error(
            self_ty,
            "`#[peeper::server]` needs a named type to implement a server for: `impl Counter { .. }`, \
             where `Counter` is the struct that holds the state",
        );
    }
    for param in &item.generics.params {
        if let GenericParam::Lifetime(lifetime) = param {
            let lifetime = &lifetime.lifetime;
            errors.error(
                lifetime,
                format_args!(
                    "a server cannot borrow (`{lifetime}`): it moves to its own task and outlives every \
                     borrow; own the data instead (`String` for `&str`, `Arc<T>` to share)"
                ),
            );
        }
    }
    for attr in &server.misplaced {
        let kind = Kind::of(attr).map_or("#[call]", Kind::attr);
        errors.error(
            attr,
            format_args!("`{kind}` goes on a method of the block: `{kind} fn name(&self, ..)`, not on a constant, type or macro"),
        );
    }
    for handler in &server.handlers {
        self::handler(server, handler, errors);
    }
    single(server, Kind::Init, errors);
    single(server, Kind::Terminate, errors);
    single(server, Kind::Timeout, errors);
    clashes(server, errors);
    variants(server, errors);
}

/// At most one `#[init]` and one `#[terminate]` (unless all of them are under `#[cfg]`).
fn single(server: &Server<'_>, kind: Kind, errors: &Errors) {
    let handlers: Vec<_> = server.handlers(kind).collect();
    if handlers.len() < 2 || handlers.iter().all(|handler| !handler.cfgs.is_empty()) {
        return;
    }
    let first = handlers[0].name();
    let attr = kind.attr();
    for handler in &handlers[1..] {
        errors.error(
            handler.attr,
            format_args!(
                "a server has one `{attr}` handler, and `{first}` already is it: merge `{}` into `{first}`, \
                 or remove this attribute",
                handler.name()
            ),
        );
    }
}

/// What the server type gets, and what the client gets, for any handler.
const SERVER_METHODS: [(&str, &str); 3] = [
    ("start", "starts the server and returns its typed client"),
    (
        "builder",
        "returns a `peeper::Builder` to start the server with options",
    ),
    ("whereis", "finds a running server by name"),
];

const CLIENT_METHODS: [(&str, &str); 11] = [
    ("send", "sends raw (`#[info]`) messages"),
    ("with_timeout", "makes calls with a timeout"),
    ("idempotent", "makes calls with an idempotency key"),
    ("after", "sends delayed messages"),
    ("branch", "gives the server's branch"),
    ("stop", "stops the server"),
    ("stop_with", "stops the server with a reason"),
    ("whereis", "finds a running server by name"),
    ("inner", "gives the generic `peeper::Client`"),
    ("into_inner", "gives the generic `peeper::Client`"),
    ("clone", "clones the client"),
];

/// Whether a handler named `ident` would clash with a generated method.
pub(crate) fn is_generated_name(ident: &Ident) -> bool {
    SERVER_METHODS
        .iter()
        .chain(CLIENT_METHODS.iter())
        .any(|(generated, _)| ident == generated)
}

fn clashes(server: &Server<'_>, errors: &Errors) {
    let Some(name) = server.name else { return };
    for method in &server.methods {
        let ident = &method.sig.ident;
        if let Some((generated, what)) = SERVER_METHODS
            .iter()
            .find(|(generated, _)| ident == generated)
        {
            errors.error(
                ident,
                format_args!(
                    "`{ident}` clashes with `{name}::{generated}`, which `#[peeper::server]` generates and \
                     which {what}: rename this method"
                ),
            );
        }
    }
    let client = server
        .item("Client")
        .unwrap_or_else(|| case::item(name, "Client"));
    for handler in server
        .handlers
        .iter()
        .filter(|handler| handler.kind.is_message())
    {
        let ident = handler.name();
        if SERVER_METHODS
            .iter()
            .any(|(generated, _)| ident == generated)
        {
            continue; // already reported
        }
        if let Some((generated, what)) = CLIENT_METHODS
            .iter()
            .find(|(generated, _)| ident == generated)
        {
            errors.error(
                ident,
                format_args!(
                    "the `{}` handler `{ident}` would become `{client}::{generated}`, which `#[peeper::server]` \
                     already generates and which {what}: rename the handler",
                    handler.kind.attr()
                ),
            );
        }
    }
}

/// Two handlers of one kind must not become the same variant (`foo_bar` and `fooBar`).
fn variants(server: &Server<'_>, errors: &Errors) {
    let Some(name) = server.name else { return };
    for (kind, suffix) in [
        (Kind::Call, "Call"),
        (Kind::Cast, "Cast"),
        (Kind::Info, "Info"),
    ] {
        let mut seen: HashMap<String, &Ident> = HashMap::new();
        for handler in server.handlers(kind) {
            let variant = case::variant(handler.name()).to_string();
            match seen.get(&variant) {
                Some(first) if *first != handler.name() => errors.error(
                    handler.name(),
                    format_args!(
                        "`{first}` and `{}` both become the variant `{}::{variant}`: rename one of them",
                        handler.name(),
                        server.item(suffix).unwrap_or_else(|| case::item(name, suffix))
                    ),
                ),
                _ => {
                    seen.insert(variant, handler.name());
                }
            }
        }
    }
}

fn handler(server: &Server<'_>, handler: &Handler<'_>, errors: &Errors) {
    let attr = handler.kind.attr();
    let name = handler.name();
    for (kind, extra) in &handler.extra {
        if *kind == handler.kind {
            errors.error(extra, format_args!("duplicate `{attr}`: remove this one"));
        } else {
            errors.error(
                extra,
                format_args!(
                    "`{name}` already is a `{attr}` handler, and a method is one kind of handler: remove `{}`, \
                     or move its code to a method of its own",
                    kind.attr()
                ),
            );
        }
    }
    for handler_attr in
        std::iter::once(&handler.attr).chain(handler.extra.iter().map(|(_, attr)| attr))
    {
        if !matches!(handler_attr.meta, Meta::Path(_)) {
            let kind = Kind::of(handler_attr).map_or(attr, Kind::attr);
            errors.error(
                handler_attr,
                format_args!("`{kind}` takes no arguments: write `{kind}`"),
            );
        }
    }
    let sig = &handler.method.sig;
    if let Some(unsafety) = &sig.unsafety {
        errors.error(
            unsafety,
            "a handler cannot be `unsafe`: the server calls it with nothing to uphold its safety contract; \
             make it safe, with an `unsafe` block inside",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.error(
            abi,
            "a handler cannot have an `extern` ABI: the server calls it as a Rust method; remove the ABI, \
             or call the `extern` function from a plain handler",
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        let tokens = match &sig.generics.where_clause {
            Some(where_clause) if sig.generics.params.is_empty() => where_clause.to_token_stream(),
            _ => sig.generics.to_token_stream(),
        };
        let holder = match (
            handler.kind.is_message(),
            server.item(kind_suffix(handler.kind)),
        ) {
            (true, Some(holder)) => format!(
                "its arguments become the fields of `{holder}::{}`, which has no place for a parameter of the method",
                case::variant(name)
            ),
            _ => "the server calls it with no way to choose its parameters".to_owned(),
        };
        let generic = server.name.map_or_else(
            || "impl<T> Server<T>".to_owned(),
            |name| format!("impl<T> {name}<T>"),
        );
        errors.error(
            tokens,
            format_args!(
                "a handler cannot be generic: {holder}; use concrete types, or make the server generic \
                 (`{generic}`)"
            ),
        );
    }
    receiver(handler, errors);
    let mut context: Option<&Context<'_>> = None;
    for param in &handler.params {
        match param {
            Param::Context(ctx) => {
                if let Some(first) = context {
                    let first = shown(&first.arg.pat);
                    errors.error(
                        ctx.arg,
                        format_args!("a handler takes one context at most, and `{first}` already is it: remove this argument"),
                    );
                } else {
                    context = Some(ctx);
                }
                self::context(server, ctx, errors);
            }
            Param::Arg(arg) => match handler.kind {
                Kind::Init => errors.error(
                    arg.arg,
                    "`#[init]` takes no arguments besides `&mut self` and an optional \
                     `ctx: &mut peeper::Context<Self>`: it runs on the state itself, so put what it needs \
                     into the state",
                ),
                Kind::Timeout => errors.error(
                    arg.arg,
                    "`#[timeout]` takes no arguments besides the receiver and an optional \
                     `ctx: &mut peeper::Context<Self>`: no message came, so there is nothing to pass; \
                     keep what it needs in the state",
                ),
                Kind::Terminate => {}
                Kind::Call | Kind::Cast | Kind::Info => message_arg(server, handler, arg, errors),
            },
            Param::Reply(reply) => reply_to(server, handler, reply, errors),
        }
    }
    match handler.kind {
        Kind::Terminate => terminate(handler, errors),
        Kind::Call => {
            if let Some(output) = &handler.output {
                if let (Some(reply), ReturnType::Type(_, written)) =
                    (handler.reply_to(), &handler.method.sig.output)
                {
                    let name = shown(&reply.arg.pat);
                    errors.error(
                        written,
                        format_args!(
                            "a `#[call]` that takes a reply handle answers through it (`{name}.send(..)`) and \
                             returns nothing: remove `-> {}`",
                            shown(written)
                        ),
                    );
                } else {
                    for (tokens, message) in owned(server, output, Role::Reply) {
                        errors.error(tokens, message);
                    }
                }
            }
        }
        Kind::Cast | Kind::Info | Kind::Init | Kind::Timeout => {
            if let Some(output) = &handler.output {
                for (tokens, message) in owned(server, output, Role::Output) {
                    errors.error(tokens, message);
                }
            }
        }
    }
}

fn kind_suffix(kind: Kind) -> &'static str {
    match kind {
        Kind::Call => "Call",
        Kind::Cast => "Cast",
        Kind::Info => "Info",
        Kind::Init | Kind::Terminate | Kind::Timeout => "",
    }
}

fn receiver(handler: &Handler<'_>, errors: &Errors) {
    let attr = handler.kind.attr();
    let name = handler.name();
    let wanted = match handler.kind {
        Kind::Init | Kind::Terminate => "`&mut self`",
        Kind::Call | Kind::Cast | Kind::Info | Kind::Timeout => {
            "`&self` to read the state, or `&mut self` to change it"
        }
    };
    match handler.receiver {
        None => errors.error(
            name,
            format_args!(
                "the `{attr}` handler `{name}` needs a receiver as its first argument: {wanted}"
            ),
        ),
        Some(FnArg::Receiver(receiver)) => {
            let borrowed = receiver.reference.is_some()
                || matches!(&*receiver.ty, Type::Reference(reference)
                    if matches!(&*reference.elem, Type::Path(path) if path.path.is_ident("Self")));
            if !borrowed {
                errors.error(
                    receiver,
                    format_args!(
                        "a handler borrows the state, it cannot take `{}`: the state stays with the server \
                         after the handler returns; write {wanted}",
                        shown(receiver)
                    ),
                );
            }
        }
        Some(FnArg::Typed(_)) => {}
    }
}

fn context(server: &Server<'_>, ctx: &Context<'_>, errors: &Errors) {
    if !ctx.by_mut_ref {
        errors.error(
            &ctx.arg.ty,
            "the context is borrowed mutably: write `ctx: &mut peeper::Context<Self>`",
        );
        return;
    }
    match ctx.server() {
        None => errors.error(
            ctx.path,
            "the context names its server: write `ctx: &mut peeper::Context<Self>`",
        ),
        Some(ty) => {
            let is_self = match ty {
                Type::Path(path) if path.qself.is_none() => {
                    path.path.is_ident("Self")
                        || path.path.segments.last().map(|last| &last.ident) == server.name
                }
                _ => false,
            };
            if !is_self {
                let shown = shown(ty);
                let name = server
                    .name
                    .map_or_else(|| "this server".to_owned(), |name| format!("`{name}`"));
                errors.error(
                    ty,
                    format_args!(
                        "`Context<{shown}>` is the context of another server: a handler of {name} takes \
                         `ctx: &mut peeper::Context<Self>`"
                    ),
                );
            }
        }
    }
}

/// A `reply: peeper::ReplyTo<T>` argument.
fn reply_to(server: &Server<'_>, handler: &Handler<'_>, reply: &Reply<'_>, errors: &Errors) {
    let attr = handler.kind.attr();
    if handler.kind != Kind::Call {
        errors.error(
            reply.arg,
            format_args!(
                "a reply handle answers a `#[call]`, and nobody waits for the reply of a `{attr}` handler: \
                 remove this argument, or make the handler a `#[call]`"
            ),
        );
        return;
    }
    let first = handler.reply_to().map(|first| first.arg);
    if first.is_some_and(|first| !std::ptr::eq(first, reply.arg)) {
        errors.error(
            reply.arg,
            "a call has one reply, and this handler already takes a reply handle: remove this argument",
        );
        return;
    }
    match (&reply.ty, reply.by_ref) {
        (_, true) => errors.error(
            &reply.arg.ty,
            "the reply handle is taken by value, so that it can move into a task: write \
             `reply: peeper::ReplyTo<T>`",
        ),
        (None, false) => errors.error(
            &reply.arg.ty,
            "the reply handle names the reply's type: write `reply: peeper::ReplyTo<T>`, where `T` is \
             what the caller gets",
        ),
        (Some(ty), false) => {
            for (tokens, message) in owned(server, ty, Role::Reply) {
                errors.error(tokens, message);
            }
        }
    }
}

fn message_arg(server: &Server<'_>, handler: &Handler<'_>, arg: &Arg<'_>, errors: &Errors) {
    if arg.name().is_none() {
        let variant = server.name.map_or_else(String::new, |name| {
            format!(
                " (it becomes a field of `{}::{}`)",
                server
                    .item(kind_suffix(handler.kind))
                    .unwrap_or_else(|| case::item(name, kind_suffix(handler.kind))),
                case::variant(handler.name())
            )
        });
        errors.error(
            &arg.arg.pat,
            format_args!(
                "a message argument needs a plain name{variant}: write `name: {}` and destructure `name` in \
                 the body",
                shown(&arg.arg.ty)
            ),
        );
    }
    for (tokens, message) in owned(server, &arg.ty, Role::Argument) {
        errors.error(tokens, message);
    }
}

fn terminate(handler: &Handler<'_>, errors: &Errors) {
    const SIGNATURE: &str = "`#[terminate]` takes `&mut self`, an optional `reason: &peeper::Exit` and an optional \
                             `ctx: &mut peeper::Context<Self>`";
    let mut args = handler.args();
    if let Some(reason) = args.next() {
        let is_exit = |ty: &Type| matches!(ty, Type::Path(path) if path.path.segments.last().is_some_and(|last| last.ident == "Exit"));
        match &*reason.arg.ty {
            Type::Reference(reference)
                if reference.mutability.is_none() && is_exit(&reference.elem) => {}
            ty if is_exit(ty) => errors.error(
                ty,
                "the exit reason is borrowed: write `reason: &peeper::Exit`",
            ),
            ty => errors.error(
                ty,
                format_args!(
                    "{SIGNATURE}, not `{}`: write `reason: &peeper::Exit`",
                    shown(ty)
                ),
            ),
        }
    }
    for extra in args {
        errors.error(extra.arg, format_args!("{SIGNATURE}: remove this argument"));
    }
    if let ReturnType::Type(_, ty) = &handler.method.sig.output
        && handler.output.is_some()
    {
        errors.error(ty, "`#[terminate]` returns nothing: the server is ending and nobody receives a value; remove the return type");
    }
}
