//! Runnable examples of peeper; see the `[[example]]` entries of this crate.
