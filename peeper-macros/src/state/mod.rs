//! `#[derive(peeper::State)]`: the declarative projection of a state struct. Same stages as the
//! server attribute: attributes -> model -> validation -> expansion.

mod ast;
mod attr;
mod expand;
mod fallback;
mod valid;

#[cfg(test)]
mod tests;

use proc_macro2::TokenStream;
use quote::ToTokens as _;
use syn::DeriveInput;

use crate::errors::Errors;

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let input = match syn::parse2::<DeriveInput>(input) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    let errors = Errors::new();
    let state = ast::State::from_syn(&input, &errors);
    valid::state(&state, &errors);
    match errors.check() {
        Ok(()) => expand::Expansion::new(&state).into_token_stream(),
        Err(error) => fallback::expand(&input, &state.krate, &error),
    }
}
