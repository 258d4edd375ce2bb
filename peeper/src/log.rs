//! The runtime's log events, each in a function without type parameters.
//!
//! A `tracing` event costs a few hundred lines of code where it is written (its metadata, its
//! fields, the check of whether anyone listens); written in generic code, it is compiled again
//! for every server type in the user's crate (see [`erased`](crate::erased)). Each event keeps
//! the target of the module it is about, so filters by module see what they saw before.

use crate::store::StoreError;
use crate::{Branch, Exit};

/// A state write failed after `init` (not fatal: the next change writes the whole state again).
#[cold]
pub(crate) fn store_after_init_failed(branch: &Branch, error: &StoreError) {
    tracing::error!(target: "peeper::worker", server = branch.server(), %error, "could not store the state after init");
}

/// A state write failed after a handler that has nobody to tell (a cast, an info message), or
/// before hibernating.
#[cold]
pub(crate) fn store_failed(branch: &Branch, error: &StoreError) {
    tracing::error!(target: "peeper::worker", server = branch.server(), %error, "could not store the state");
}

/// Incarnation `incarnation` completed its `init`.
pub(crate) fn worker_ready(branch: &Branch, incarnation: u64) {
    tracing::debug!(
        target: "peeper::worker",
        server = branch.server(),
        incarnation,
        "worker ready"
    );
}

/// The reply of a keyed call could not be encoded for its record.
#[cold]
pub(crate) fn keyed_reply_unencodable(branch: &Branch, key: &dyn std::fmt::Display, error: &str) {
    tracing::error!(
        target: "peeper::worker::keyed",
        server = branch.server(), %key, %error,
        "the reply of a keyed call could not be encoded; it is not recorded"
    );
}

/// A keyed call's handler deferred its reply, which is then not recorded.
#[cold]
pub(crate) fn keyed_reply_deferred(branch: &Branch, key: &dyn std::fmt::Display) {
    tracing::warn!(
        target: "peeper::worker::keyed",
        server = branch.server(), %key,
        "a keyed call whose handler deferred its reply is not recorded"
    );
}

/// The kept state could not be restored for `terminate`.
#[cold]
pub(crate) fn terminate_unrestored(server: &str, exit: &Exit) {
    tracing::error!(target: "peeper::worker", server, %exit, "could not restore the state for terminate");
}

/// `terminate` panicked.
#[cold]
pub(crate) fn terminate_panicked(server: &str, message: &str) {
    tracing::error!(target: "peeper::worker", server, panic = %message, "terminate panicked");
}

/// The branch ended with `exit`: `info` for the ends a user asks for, `error` for the others.
pub(crate) fn stopped(branch: &Branch, exit: &Exit) {
    match exit {
        Exit::Normal
        | Exit::Stopped { .. }
        | Exit::Ignored
        | Exit::Transferred
        | Exit::Shutdown
        | Exit::HandedOff { .. } => {
            tracing::info!(target: "peeper::supervisor::end", server = branch.server(), name = branch.name(), %exit, "stopped");
        }
        _ => {
            tracing::error!(target: "peeper::supervisor::end", server = branch.server(), name = branch.name(), %exit, "stopped");
        }
    }
}

/// The crash-loop policy could not reset the state to the initial one.
#[cold]
pub(crate) fn reset_failed(reset: &Exit) {
    tracing::error!(target: "peeper::supervisor", %reset, "could not reset to the initial state");
}

/// The default `handle_info` ignored a message.
pub(crate) fn info_ignored(server: &str) {
    tracing::debug!(target: "peeper::server", server, "info message ignored");
}
