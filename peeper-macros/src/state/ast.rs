//! The typed model of a struct under `#[derive(peeper::State)]`.

use proc_macro2::Ident;
use syn::{Data, DeriveInput, Fields, Path};

use super::attr::{self, FieldKeep};
use crate::errors::Errors;

pub(crate) struct State<'a> {
    pub(crate) input: &'a DeriveInput,
    /// The runtime crate's path, `::peeper` unless `#[keep(crate = path)]`.
    pub(crate) krate: Path,
    /// The named fields; empty for a unit struct and for what `valid` rejects.
    pub(crate) fields: Vec<Field<'a>>,
}

pub(crate) struct Field<'a> {
    pub(crate) field: &'a syn::Field,
    pub(crate) ident: &'a Ident,
    pub(crate) keep: FieldKeep,
}

impl<'a> State<'a> {
    /// Reads the struct and every `#[keep]` attribute; attribute syntax errors are recorded.
    pub(crate) fn from_syn(input: &'a DeriveInput, errors: &Errors) -> State<'a> {
        let krate = attr::container(&input.attrs, errors);
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(fields) => fields
                    .named
                    .iter()
                    .filter_map(|field| {
                        let ident = field.ident.as_ref()?;
                        Some(Field {
                            field,
                            ident,
                            keep: attr::field(&field.attrs, errors),
                        })
                    })
                    .collect(),
                Fields::Unnamed(_) | Fields::Unit => Vec::new(),
            },
            Data::Enum(_) | Data::Union(_) => Vec::new(),
        };
        State {
            input,
            krate,
            fields,
        }
    }

    /// The fields that are kept.
    pub(crate) fn kept(&self) -> impl Iterator<Item = &Field<'a>> {
        self.fields.iter().filter(|field| field.keep.skip.is_none())
    }

    /// The fields that are skipped, and rebuilt.
    pub(crate) fn skipped(&self) -> impl Iterator<Item = &Field<'a>> {
        self.fields.iter().filter(|field| field.keep.skip.is_some())
    }
}
