//! The typed model of an `impl` block under `#[peeper::server]`. It keeps references to the
//! user's syntax so that every later error can point at the token it is about. Building it never
//! fails: what does not fit is recorded as is, and `valid` reports it.

use proc_macro2::Ident;
use syn::visit_mut::VisitMut;
use syn::{
    Attribute, FnArg, GenericArgument, ImplItem, ImplItemFn, ItemImpl, Pat, PatType, PathArguments,
    ReturnType, Type, TypePath, parse_quote,
};

use super::attr::{self, Kind};

/// The server: the `impl` block and its handlers.
pub(crate) struct Server<'a> {
    pub(crate) item: &'a ItemImpl,
    /// The server's name: the last segment of the `impl`'s type (`Counter` in `impl foo::Counter<T>`).
    /// `None` when the type is not a path, which `valid` reports.
    pub(crate) name: Option<&'a Ident>,
    pub(crate) handlers: Vec<Handler<'a>>,
    /// Every method of the block, handler or not (their names may clash with generated ones).
    pub(crate) methods: Vec<&'a ImplItemFn>,
    /// Handler attributes on items that are not methods.
    pub(crate) misplaced: Vec<&'a Attribute>,
    /// `#[cfg]`s of the `impl` block, carried onto everything generated.
    pub(crate) cfgs: Vec<&'a Attribute>,
    /// The base of the generated type names, if not the server's name (`prefix = ..`).
    pub(crate) prefix: Option<Ident>,
    /// The typed client's name, if not `{prefix}Client` (`client = ..`).
    pub(crate) client: Option<Ident>,
}

/// One method with a handler attribute.
pub(crate) struct Handler<'a> {
    pub(crate) kind: Kind,
    /// The (first) handler attribute.
    pub(crate) attr: &'a Attribute,
    /// Further handler attributes on the same method: each one is a mistake.
    pub(crate) extra: Vec<(Kind, &'a Attribute)>,
    pub(crate) method: &'a ImplItemFn,
    pub(crate) receiver: Option<&'a FnArg>,
    /// Every argument after the receiver, in order.
    pub(crate) params: Vec<Param<'a>>,
    /// The return type, `Self` replaced by the server's type; `None` for `()` or nothing.
    pub(crate) output: Option<Type>,
    pub(crate) docs: Vec<&'a Attribute>,
    pub(crate) cfgs: Vec<&'a Attribute>,
}

/// One argument of a handler.
// A few of these exist per compilation, briefly: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Param<'a> {
    /// `ctx: &mut peeper::Context<Self>` (or what looks like a try at it: `valid` checks).
    Context(Context<'a>),
    /// A message argument: a field of the handler's variant.
    Arg(Arg<'a>),
    /// `reply: peeper::ReplyTo<T>`: a `#[call]` that answers later (`valid` checks where).
    Reply(Reply<'a>),
}

/// An argument whose type is `ReplyTo<..>` (or a reference to one, which `valid` reports).
pub(crate) struct Reply<'a> {
    pub(crate) arg: &'a PatType,
    /// Taken by reference (a mistake).
    pub(crate) by_ref: bool,
    /// The `T` of `ReplyTo<T>` with `Self` replaced, if written with exactly one type argument.
    pub(crate) ty: Option<Type>,
}

/// An argument whose type is `Context<..>`, `&Context<..>` or `&mut Context<..>`.
pub(crate) struct Context<'a> {
    pub(crate) arg: &'a PatType,
    /// Taken as `&mut`.
    pub(crate) by_mut_ref: bool,
    /// The path `Context<..>` itself.
    pub(crate) path: &'a TypePath,
}

/// A message argument.
pub(crate) struct Arg<'a> {
    pub(crate) arg: &'a PatType,
    /// Its type with `Self` replaced by the server's type: the type of the variant's field.
    pub(crate) ty: Type,
}

impl<'a> Server<'a> {
    pub(crate) fn from_syn(item: &'a ItemImpl) -> Server<'a> {
        let name = match &*item.self_ty {
            Type::Path(path) if path.qself.is_none() => {
                path.path.segments.last().map(|last| &last.ident)
            }
            _ => None,
        };
        let mut server = Server {
            item,
            name,
            handlers: Vec::new(),
            methods: Vec::new(),
            misplaced: Vec::new(),
            cfgs: item
                .attrs
                .iter()
                .filter(|attr| attr::is_cfg(attr))
                .collect(),
            prefix: None,
            client: None,
        };
        for impl_item in &item.items {
            match impl_item {
                ImplItem::Fn(method) => {
                    server.methods.push(method);
                    if let Some(handler) = Handler::from_syn(method, &item.self_ty) {
                        server.handlers.push(handler);
                    }
                }
                ImplItem::Const(inner) => server
                    .misplaced
                    .extend(handler_attrs(&inner.attrs).map(|(_, attr)| attr)),
                ImplItem::Type(inner) => server
                    .misplaced
                    .extend(handler_attrs(&inner.attrs).map(|(_, attr)| attr)),
                ImplItem::Macro(inner) => server
                    .misplaced
                    .extend(handler_attrs(&inner.attrs).map(|(_, attr)| attr)),
                _ => {}
            }
        }
        server
    }

    /// The name of a generated type: `{prefix}{suffix}` (`CounterCall`), or the client's own
    /// name. `None` without a server name, which `valid` reports.
    pub(crate) fn item(&self, suffix: &str) -> Option<Ident> {
        if suffix == "Client"
            && let Some(client) = &self.client
        {
            return Some(client.clone());
        }
        Some(crate::case::item(
            self.prefix.as_ref().or(self.name)?,
            suffix,
        ))
    }

    /// The handlers of one kind, in the order of the block.
    pub(crate) fn handlers(&self, kind: Kind) -> impl Iterator<Item = &Handler<'a>> {
        self.handlers
            .iter()
            .filter(move |handler| handler.kind == kind)
    }

    /// The `impl`'s generics with `Self` replaced by the server's type.
    pub(crate) fn generics_without_self(&self) -> syn::Generics {
        let mut generics = self.item.generics.clone();
        ReplaceSelf(&self.item.self_ty).visit_generics_mut(&mut generics);
        generics
    }

    /// Whether the server is generic over types or constants (it then cannot be registered).
    pub(crate) fn is_generic(&self) -> bool {
        !self.item.generics.params.is_empty()
    }
}

fn handler_attrs(attrs: &[Attribute]) -> impl Iterator<Item = (Kind, &Attribute)> {
    attrs
        .iter()
        .filter_map(|attr| Kind::of(attr).map(|kind| (kind, attr)))
}

impl<'a> Handler<'a> {
    fn from_syn(method: &'a ImplItemFn, self_ty: &Type) -> Option<Handler<'a>> {
        let mut attrs = handler_attrs(&method.attrs);
        let (kind, attr) = attrs.next()?;
        let extra = attrs.collect();
        let mut inputs = method.sig.inputs.iter().peekable();
        let receiver = inputs.next_if(|input| matches!(input, FnArg::Receiver(_)));
        let params = inputs
            .filter_map(|input| match input {
                FnArg::Typed(arg) => Some(Param::from_syn(arg, self_ty)),
                // A receiver after the first argument is a syntax error of its own.
                FnArg::Receiver(_) => None,
            })
            .collect();
        let output = match &method.sig.output {
            ReturnType::Type(_, ty) if !is_unit(ty) => Some(replace_self(ty, self_ty)),
            _ => None,
        };
        Some(Handler {
            kind,
            attr,
            extra,
            method,
            receiver,
            params,
            output,
            docs: method
                .attrs
                .iter()
                .filter(|attr| attr::is_doc(attr))
                .collect(),
            cfgs: method
                .attrs
                .iter()
                .filter(|attr| attr::is_cfg(attr))
                .collect(),
        })
    }

    pub(crate) fn name(&self) -> &'a Ident {
        &self.method.sig.ident
    }

    /// The message arguments, in order.
    pub(crate) fn args(&self) -> impl Iterator<Item = &Arg<'a>> {
        self.params.iter().filter_map(|param| match param {
            Param::Arg(arg) => Some(arg),
            Param::Context(_) | Param::Reply(_) => None,
        })
    }

    /// The `ReplyTo<T>` argument of a `#[call]` that answers later, if any (the first).
    pub(crate) fn reply_to(&self) -> Option<&Reply<'a>> {
        self.params.iter().find_map(|param| match param {
            Param::Reply(reply) => Some(reply),
            Param::Context(_) | Param::Arg(_) => None,
        })
    }

    /// Whether the handler takes `&mut self` (and so may change the state); `false` for `&self`.
    pub(crate) fn mutates(&self) -> bool {
        match self.receiver {
            Some(FnArg::Receiver(receiver)) => match &*receiver.ty {
                Type::Reference(reference) => reference.mutability.is_some(),
                _ => receiver.mutability.is_some(),
            },
            _ => false,
        }
    }

    pub(crate) fn is_async(&self) -> bool {
        self.method.sig.asyncness.is_some()
    }
}

impl<'a> Param<'a> {
    fn from_syn(arg: &'a PatType, self_ty: &Type) -> Param<'a> {
        let (by_mut_ref, inner) = match &*arg.ty {
            Type::Reference(reference) => (reference.mutability.is_some(), &*reference.elem),
            other => (false, other),
        };
        let last = match inner {
            Type::Path(path) if path.qself.is_none() => path.path.segments.last(),
            _ => None,
        };
        if let (Type::Path(path), Some(last)) = (inner, last) {
            if last.ident == "Context" {
                return Param::Context(Context {
                    arg,
                    by_mut_ref,
                    path,
                });
            }
            if last.ident == "ReplyTo" {
                return Param::Reply(Reply {
                    arg,
                    by_ref: matches!(&*arg.ty, Type::Reference(_)),
                    ty: single_type_argument(last).map(|ty| replace_self(ty, self_ty)),
                });
            }
        }
        Param::Arg(Arg {
            arg,
            ty: replace_self(&arg.ty, self_ty),
        })
    }
}

impl<'a> Context<'a> {
    /// The `S` of `Context<S>`, if written with exactly one type argument.
    pub(crate) fn server(&self) -> Option<&'a Type> {
        single_type_argument(self.path.path.segments.last()?)
    }
}

/// The `T` of `Name<T>`, if written with exactly one type argument.
fn single_type_argument(segment: &syn::PathSegment) -> Option<&Type> {
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>()[..] {
        [GenericArgument::Type(ty)] => Some(ty),
        _ => None,
    }
}

impl Arg<'_> {
    /// The argument's name, when it is a plain (possibly `mut`) binding; `valid` reports others.
    pub(crate) fn name(&self) -> Option<&Ident> {
        match &*self.arg.pat {
            Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => Some(&pat.ident),
            _ => None,
        }
    }
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty())
}

/// `ty` with every `Self` replaced by `self_ty`: generated items are not inside the `impl`, where
/// `Self` would mean the generated item itself.
pub(crate) fn replace_self(ty: &Type, self_ty: &Type) -> Type {
    let mut ty = ty.clone();
    ReplaceSelf(self_ty).visit_type_mut(&mut ty);
    ty
}

struct ReplaceSelf<'a>(&'a Type);

impl ReplaceSelf<'_> {
    /// `Self` becomes the type, `Self::Rest` becomes `<Type>::Rest`.
    fn replace(
        &self,
        qself: Option<&syn::QSelf>,
        path: &syn::Path,
    ) -> Option<(Option<syn::QSelf>, syn::Path)> {
        if qself.is_some() || path.leading_colon.is_some() {
            return None;
        }
        let first = path.segments.first()?;
        if first.ident != "Self" || path.segments.len() < 2 {
            return None;
        }
        let self_ty = self.0;
        let rest = path.segments.iter().skip(1);
        let qualified: TypePath = parse_quote!(<#self_ty>::#(#rest)::*);
        Some((qualified.qself, qualified.path))
    }
}

impl VisitMut for ReplaceSelf<'_> {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(path) = ty
            && path.qself.is_none()
            && path.path.is_ident("Self")
        {
            *ty = self.0.clone();
            return;
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }

    fn visit_type_path_mut(&mut self, ty: &mut TypePath) {
        if let Some((qself, path)) = self.replace(ty.qself.as_ref(), &ty.path) {
            ty.qself = qself;
            ty.path = path;
        }
        syn::visit_mut::visit_type_path_mut(self, ty);
    }

    fn visit_expr_path_mut(&mut self, expr: &mut syn::ExprPath) {
        if expr.path.is_ident("Self") {
            return; // a unit struct's value: leave it, it is not a type
        }
        if let Some((qself, path)) = self.replace(expr.qself.as_ref(), &expr.path) {
            expr.qself = qself;
            expr.path = path;
        }
        syn::visit_mut::visit_expr_path_mut(self, expr);
    }
}
