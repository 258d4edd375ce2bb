//! Implementation detail of [`peeper`](https://docs.rs/peeper): its procedural macros,
//! `#[peeper::server]` and `#[derive(peeper::State)]`.
//!
//! Depend on `peeper` and use `peeper::server` and `peeper::State`, which are documented there;
//! this crate's API is not stable on its own and is pinned by `peeper` with an exact version.
//!
//! Each macro is staged in its own module: `attr` (options), `ast` (a typed model of the input
//! that keeps the user's tokens for spans), `valid` (checks, every mistake collected), `expand`
//! (one generator per emitted item) and `fallback` (what to emit next to the errors).

mod case;
mod errors;
mod server;
mod state;

use proc_macro::TokenStream;

// No doc comment: the documentation lives on the re-export `peeper::server`, to which rustdoc
// would append this one.
#[proc_macro_attribute]
pub fn server(args: TokenStream, input: TokenStream) -> TokenStream {
    server::expand(args.into(), input.into()).into()
}

// Documented on the re-export `peeper::State`.
#[proc_macro_derive(State, attributes(keep))]
pub fn derive_state(input: TokenStream) -> TokenStream {
    state::expand(input.into()).into()
}
