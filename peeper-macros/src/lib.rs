//! Implementation detail of [`peeper`](https://docs.rs/peeper): its procedural macros.
//!
//! Depend on `peeper` and use `peeper::server`; this crate's API is not stable on its own and is
//! pinned by `peeper` with an exact version.
