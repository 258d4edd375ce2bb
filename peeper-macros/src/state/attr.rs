//! The `#[keep(..)]` attributes of `#[derive(peeper::State)]`: on fields `skip` and
//! `with = path`, on the struct `crate = path`.

use proc_macro2::Ident;
use syn::parse::ParseStream;
use syn::{Attribute, Expr, Meta, Path, Token, parse_quote};

use crate::errors::Errors;

/// What a field's `#[keep(..)]` says.
#[derive(Default)]
pub(crate) struct FieldKeep {
    /// `skip`, with its token: the field is not kept, and rebuilt.
    pub(crate) skip: Option<Ident>,
    /// `with = path`: how a skipped field is rebuilt (`Default` otherwise). Keeps the `with` key
    /// for spans.
    pub(crate) with: Option<(Ident, Path)>,
}

/// The struct's own `#[keep(crate = path)]`.
pub(crate) fn container(attrs: &[Attribute], errors: &Errors) -> Path {
    let mut krate: Option<Path> = None;
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("keep")) {
        if !is_list(attr, errors) {
            continue;
        }
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let path: Path = meta.value()?.parse()?;
                if krate.is_some() {
                    errors.error(&meta.path, "duplicate option `crate`: give it once");
                }
                krate = Some(path);
            } else if meta.path.is_ident("skip") || meta.path.is_ident("with") {
                skip_value(meta.input)?;
                let key = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
                errors.error(
                    &meta.path,
                    format_args!("`{key}` goes on a field: put `#[keep({key})]` on the field to skip"),
                );
            } else {
                skip_value(meta.input)?;
                errors.error(
                    &meta.path,
                    format_args!(
                        "unknown option `{}` for `#[keep]` on a struct: expected `crate = path::to::peeper`",
                        quote::ToTokens::to_token_stream(&meta.path)
                    ),
                );
            }
            Ok(())
        });
        errors.ok(result);
    }
    krate.unwrap_or_else(|| parse_quote!(::peeper))
}

/// A field's `#[keep(..)]`s.
pub(crate) fn field(attrs: &[Attribute], errors: &Errors) -> FieldKeep {
    let mut keep = FieldKeep::default();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("keep")) {
        if !is_list(attr, errors) {
            continue;
        }
        let result = attr.parse_nested_meta(|meta| {
            let Some(key) = meta.path.get_ident() else {
                skip_value(meta.input)?;
                errors.error(&meta.path, unknown(&meta.path));
                return Ok(());
            };
            match key.to_string().as_str() {
                "skip" => {
                    if keep.skip.is_some() {
                        errors.error(key, "duplicate `skip`: give it once");
                    }
                    keep.skip = Some(key.clone());
                }
                "with" => {
                    let path: Path = meta.value()?.parse()?;
                    if keep.with.is_some() {
                        errors.error(key, "duplicate `with`: give it once");
                    }
                    keep.with = Some((key.clone(), path));
                }
                _ => {
                    skip_value(meta.input)?;
                    errors.error(key, unknown(&meta.path));
                }
            }
            Ok(())
        });
        errors.ok(result);
    }
    keep
}

fn unknown(path: &Path) -> String {
    format!(
        "unknown option `{}` for `#[keep]`: expected `skip` (not kept, rebuilt with `Default`) or \
         `skip, with = path::to_fn` (rebuilt by calling `path::to_fn()`)",
        quote::ToTokens::to_token_stream(path)
    )
}

/// `#[keep(..)]` must be a list; reports `#[keep]` and `#[keep = ..]`.
fn is_list(attr: &Attribute, errors: &Errors) -> bool {
    match &attr.meta {
        Meta::List(_) => true,
        Meta::Path(_) | Meta::NameValue(_) => {
            errors.error(attr, "`#[keep]` takes options: write `#[keep(skip)]` or `#[keep(skip, with = path::to_fn)]`");
            false
        }
    }
}

/// Consumes `= value` or `(..)` after an unknown key, so that parsing goes on with the next one.
fn skip_value(input: ParseStream<'_>) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        input.parse::<Expr>()?;
    } else if input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in input);
        content.parse::<proc_macro2::TokenStream>()?;
    }
    Ok(())
}
