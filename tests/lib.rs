//! Shared helpers for peeper's integration tests.
