//! `#[peeper::server]`: attribute options -> typed model of the `impl` block -> validation (every
//! mistake collected) -> expansion, one generator per emitted item.

mod ast;
mod attr;
mod expand;
mod fallback;
mod valid;

#[cfg(test)]
mod tests;

use proc_macro2::TokenStream;
use quote::ToTokens as _;
use syn::Item;

use crate::errors::Errors;

/// The whole macro, on `proc_macro2` tokens so that it can be unit-tested.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse2::<Item>(input.clone()) {
        Ok(item) => item,
        // Not even an item: report the syntax error and give the tokens back unchanged.
        Err(error) => {
            let mut tokens = error.to_compile_error();
            tokens.extend(input);
            return tokens;
        }
    };
    let errors = Errors::new();
    let args = attr::Args::parse(args, &errors);
    generate(&args, &item, errors).unwrap_or_else(|error| fallback::expand(&args, &item, &error))
}

fn generate(args: &attr::Args, item: &Item, errors: Errors) -> syn::Result<TokenStream> {
    let Item::Impl(item) = item else {
        valid::not_an_impl(item, &errors);
        return errors.check().map(|()| TokenStream::new());
    };
    let mut server = ast::Server::from_syn(item);
    server.prefix.clone_from(&args.prefix);
    server.client.clone_from(&args.client);
    valid::server(&server, &errors);
    if args.remote && !item.generics.params.is_empty() {
        errors.error(
            &item.generics,
            "a `remote` server cannot be generic: other nodes name its kind with one `Persist::KIND`; \
             make a concrete type (`struct Players(Inner<u64>)`) the server",
        );
    }
    errors.check()?;
    let name = server
        .name
        .ok_or_else(|| syn::Error::new_spanned(&item.self_ty, "a server needs a name"))?;
    Ok(expand::Expansion::new(args, &server, name).into_token_stream())
}
