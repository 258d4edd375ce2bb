//! What a type used in a message or a reply must not be: borrowed, or an `impl Trait`. Each
//! finding comes with the token it is about and a message that says how to fix it.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::visit_mut::VisitMut;
use syn::{Lifetime, Type, TypeImplTrait, TypeReference};

use super::super::ast::Server;
use crate::errors::shown;

/// Whether `ty` can be a field of a message enum: it borrows nothing and names no `impl Trait`.
/// (The fallback keeps such fields, and leaves out the others, which were reported.)
pub(crate) fn is_owned(server: &Server<'_>, ty: &Type) -> bool {
    owned(server, ty, Role::Argument).is_empty()
}

/// Where a type is used, for the messages about what it must not be.
#[derive(Clone, Copy)]
pub(super) enum Role {
    /// A message argument: a field of a message enum.
    Argument,
    /// A `#[call]`'s return type: a field of the reply enum.
    Reply,
    /// Another handler's return type.
    Output,
}

/// What in `ty` borrows or is not a concrete type, each with a message.
pub(super) fn owned(server: &Server<'_>, ty: &Type, role: Role) -> Vec<(TokenStream, String)> {
    let (subject, reason, verb) = match role {
        Role::Argument => (
            "a message argument",
            "the message outlives the caller's borrows",
            "take",
        ),
        Role::Reply | Role::Output => ("a reply", "it is sent to the caller's task", "return"),
    };
    let mut found = Vec::new();
    for impl_trait in impl_traits(ty) {
        let message = impl_trait_message(server, &impl_trait, role);
        found.push((impl_trait.to_token_stream(), message));
    }
    if matches!(role, Role::Output) {
        return found;
    }
    let mut scan = Borrows::default();
    scan.visit_type_mut(&mut ty.clone());
    for reference in scan.references {
        let owned = match &*reference.elem {
            Type::Path(path) if path.path.is_ident("str") => "`String`".to_owned(),
            Type::Slice(slice) => format!("`Vec<{}>`", shown(&slice.elem)),
            other => format!("`{}`", shown(other)),
        };
        let written = shown(&reference);
        found.push((
            reference.to_token_stream(),
            format!(
                "{subject} cannot borrow, {reason}: {verb} {owned} instead of `{written}` (clone what you need, \
                 or use `Arc` to share)"
            ),
        ));
    }
    for lifetime in scan.lifetimes {
        found.push((
            lifetime.to_token_stream(),
            format!("{subject} cannot borrow for `{lifetime}`, {reason}: use an owned type, or `'static`"),
        ));
    }
    found
}

fn impl_trait_message(server: &Server<'_>, impl_trait: &TypeImplTrait, role: Role) -> String {
    let written = shown(impl_trait);
    let is_future = impl_trait.bounds.iter().any(|bound| {
        matches!(bound, syn::TypeParamBound::Trait(bound)
            if bound.path.segments.last().is_some_and(|last| last.ident == "Future"))
    });
    let subject = match role {
        Role::Argument => "a message argument",
        Role::Reply | Role::Output => "a handler's return type",
    };
    if is_future {
        return format!(
            "{subject} needs a concrete type, not `{written}`: make the handler an `async fn` instead"
        );
    }
    if matches!(role, Role::Output) {
        return format!(
            "{subject} needs a concrete type, not `{written}`: return `()`, or `Result<(), E>`"
        );
    }
    let bounds = shown(&impl_trait.bounds);
    let generic = server.name.map_or_else(String::new, |name| {
        format!(" (`impl<T: {bounds}> {name}<T>`)")
    });
    format!(
        "{subject} needs a concrete type, not `{written}`: it becomes the field of an enum; name the type, or \
         make the server generic over it{generic}"
    )
}

fn impl_traits(ty: &Type) -> Vec<TypeImplTrait> {
    #[derive(Default)]
    struct Scan(Vec<TypeImplTrait>);
    impl VisitMut for Scan {
        fn visit_type_impl_trait_mut(&mut self, ty: &mut TypeImplTrait) {
            self.0.push(ty.clone());
        }
    }
    let mut scan = Scan::default();
    scan.visit_type_mut(&mut ty.clone());
    scan.0
}

/// The references and lifetimes in a type, except `'static` ones.
#[derive(Default)]
struct Borrows {
    references: Vec<TypeReference>,
    lifetimes: Vec<Lifetime>,
}

impl VisitMut for Borrows {
    fn visit_type_reference_mut(&mut self, reference: &mut TypeReference) {
        if reference
            .lifetime
            .as_ref()
            .is_some_and(|lifetime| lifetime.ident == "static")
        {
            syn::visit_mut::visit_type_mut(self, &mut reference.elem);
        } else {
            self.references.push(reference.clone());
        }
    }

    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident != "static" {
            self.lifetimes.push(lifetime.clone());
        }
    }

    fn visit_type_impl_trait_mut(&mut self, _: &mut TypeImplTrait) {
        // reported on its own
    }
}
