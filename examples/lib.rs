//! Runnable examples of peeper (see the `[[example]]` targets of this crate), and the book's and
//! the README's code blocks, compiled and run as doctests of this crate so that none can rot.

#[doc = include_str!("../README.md")]
mod readme {}

#[doc = include_str!("../book/src/introduction.md")]
mod book_introduction {}

#[doc = include_str!("../book/src/durable-state.md")]
mod book_durable_state {}
