//! The checks of `#[derive(peeper::State)]`, every mistake collected.

use quote::quote;
use syn::{Data, Fields, GenericParam};

use super::ast::State;
use crate::errors::Errors;

pub(crate) fn state(state: &State<'_>, errors: &Errors) {
    let input = state.input;
    let ident = &input.ident;
    match &input.data {
        Data::Struct(data) => {
            if let Fields::Unnamed(fields) = &data.fields {
                let struct_token = data.struct_token;
                errors.error(
                    quote!(#struct_token #ident #fields),
                    format_args!(
                        "`#[derive(peeper::State)]` needs a struct with named fields, to say which are kept: \
                         write `struct {ident} {{ name: Type, .. }}`, or implement `peeper::keep::Project` \
                         by hand"
                    ),
                );
            }
        }
        Data::Enum(data) => {
            let enum_token = data.enum_token;
            errors.error(
                quote!(#enum_token #ident),
                "`#[derive(peeper::State)]` works on a struct with named fields, not on an enum: hold the \
                 enum in a field of a struct, or implement `peeper::keep::Project` by hand",
            );
        }
        Data::Union(data) => {
            let union_token = data.union_token;
            errors.error(
                quote!(#union_token #ident),
                "`#[derive(peeper::State)]` works on a struct with named fields, not on a union",
            );
        }
    }
    for param in &input.generics.params {
        if let GenericParam::Lifetime(param) = param {
            errors.error(
                &param.lifetime,
                "a server's state cannot borrow: it moves to its own task and outlives every borrow; own \
                 the data instead (`String` for `&str`, `Arc<T>` to share)",
            );
        }
    }
    for field in &state.fields {
        if let (None, Some((with, _))) = (&field.keep.skip, &field.keep.with) {
            errors.error(
                with,
                format_args!(
                    "`with` says how to rebuild a skipped field, but `{}` is kept: add `skip` \
                     (`#[keep(skip, with = ..)]`), or remove `with`",
                    field.ident
                ),
            );
        }
    }
}
