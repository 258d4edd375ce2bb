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

// Needs the PostgreSQL stack: `cargo test --workspace --all-features` (or `--features postgres`).
#[cfg(feature = "postgres")]
#[doc = include_str!("../book/src/clusters.md")]
mod book_clusters {}

#[doc = include_str!("../book/src/getting-started.md")]
mod book_getting_started {}

#[doc = include_str!("../book/src/options.md")]
mod book_options {}

#[doc = include_str!("../book/src/errors.md")]
mod book_errors {}

#[doc = include_str!("../book/src/calls-and-casts.md")]
mod book_calls_and_casts {}

#[doc = include_str!("../book/src/choosing-a-strategy.md")]
mod book_choosing_a_strategy {}

#[doc = include_str!("../book/src/deploying.md")]
mod book_deploying {}

#[doc = include_str!("../book/src/troubleshooting.md")]
mod book_troubleshooting {}

#[doc = include_str!("../book/src/retries.md")]
mod book_retries {}

#[doc = include_str!("../book/src/remote-calls.md")]
mod book_remote_calls {}
