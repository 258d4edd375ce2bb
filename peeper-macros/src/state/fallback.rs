//! What `#[derive(peeper::State)]` emits next to its errors: a stub `Project` impl, so that the
//! only errors the user sees are the ones about the derive (the approach of thiserror's
//! `fallback.rs`).

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, Path};

pub(crate) fn expand(input: &DeriveInput, krate: &Path, error: &syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        #error

        impl #impl_generics #krate::keep::Project for #ident #ty_generics #where_clause {
            type Projection = ();

            fn project(&self) {}

            fn rebuild((): &()) -> Self {
                ::core::unreachable!("`#[derive(peeper::State)]` failed")
            }
        }
    }
}
