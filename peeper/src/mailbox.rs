//! What travels through a server's mailbox.
//!
//! The mailbox is one unbounded channel per branch. Its receiving end lives in the keeper's
//! [`Cell`](crate::keeper::Cell), never in a worker, so a killed worker cannot take queued
//! messages down with it; its sending end lives in every [`Client`](crate::Client).

use tokio::sync::oneshot;

use crate::{CallError, Exit, Server};

/// Where a call's reply goes. Dropped without a reply only when the worker is killed mid-call,
/// which the client reports as [`CallError::Crashed`] with [`Exit::Killed`].
///
/// The error is boxed on its way: a `CallError` can be large (it may carry a store error), errors
/// are rare, and an unboxed one would make every reply that size.
pub(crate) type ReplyTo<S> = oneshot::Sender<Result<<S as Server>::Reply, Box<CallError>>>;

pub(crate) enum Envelope<S: Server> {
    Call {
        call: S::Call,
        reply: ReplyTo<S>,
    },
    Cast(S::Cast),
    Info(S::Info),
    /// End the branch once everything queued before it is handled. Boxed: the exit is large and
    /// rare, and every slot of the mailbox is as large as its largest variant.
    Stop(Box<Exit>),
    /// Leave the worker at this message boundary so the branch can move (see `transfer`).
    Handoff,
}

impl<S: Server> Envelope<S> {
    /// Answers a message that will never be handled because the branch ended with `exit`.
    pub(crate) fn refuse(self, exit: &Exit) {
        if let Envelope::Call { reply, .. } = self {
            // The caller may have given up already; nobody else is owed the refusal.
            let _ = reply.send(Err(Box::new(CallError::Stopped(exit.clone()))));
        }
    }
}
