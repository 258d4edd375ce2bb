//! Runnable examples of peeper (see the `[[example]]` targets of this crate), and the book's and
//! the README's code blocks, compiled and run as doctests of this crate so that none can rot.

#[doc = include_str!("../README.md")]
mod readme {}

#[doc = include_str!("../book/src/introduction.md")]
mod book_introduction {}

#[doc = include_str!("../book/src/durable-state.md")]
mod book_durable_state {}

#[doc = include_str!("../book/src/tutorial.md")]
mod book_tutorial {}

#[doc = include_str!("../book/src/crash-semantics.md")]
mod book_crash_semantics {}

#[doc = include_str!("../book/src/listener-and-tracing.md")]
mod book_listener_and_tracing {}

#[doc = include_str!("../book/src/supervisors-and-transfer.md")]
mod book_supervisors_and_transfer {}

#[doc = include_str!("../book/src/testing.md")]
mod book_testing {}

#[doc = include_str!("../book/src/from-elixir.md")]
mod book_from_elixir {}

#[doc = include_str!("../book/src/from-kameo-ractor.md")]
mod book_from_kameo_ractor {}

#[doc = include_str!("../book/src/macro-expansion.md")]
mod book_macro_expansion {}

#[doc = include_str!("../book/src/kept-resources.md")]
mod book_kept_resources {}

#[doc = include_str!("../book/src/clusters.md")]
mod book_clusters {}
