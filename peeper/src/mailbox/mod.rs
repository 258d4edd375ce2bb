//! What travels through a server's mailbox.
//!
//! The mailbox is one unbounded channel per branch ([`channel`]: a queue under a lock, which
//! holds no buffer while it is empty and shrunk). Its receiving end lives in the keeper's
//! [`Cell`](crate::keeper::Cell), never in a worker, so a killed worker cannot take queued
//! messages down with it; its sending end lives in every [`Client`](crate::Client).

mod channel;

pub(crate) use channel::{Inbox, Outbox, channel};

use crate::reply::Sender;
use crate::retained::{IdempotencyKey, ReplyCodec};
use crate::{CallError, Exit, Server};

/// Where a call's reply goes (see [`Sender`]).
pub(crate) type Caller<S> = Sender<<S as Server>::Reply>;

pub(crate) enum Envelope<S: Server> {
    Call {
        call: S::Call,
        reply: Caller<S>,
    },
    /// A call made with an idempotency key. Boxed: rarer, and larger than a call.
    Keyed(Box<KeyedCall<S>>),
    Cast(S::Cast),
    Info(S::Info),
    /// End the branch once everything queued before it is handled, with this exit, or
    /// [`Exit::Normal`] for `None` (a plain `stop`, which then allocates nothing). Boxed: the exit
    /// is large and rare, and every slot of the mailbox is as large as its largest variant.
    Stop(Option<Box<Exit>>),
    /// Leave the worker at this message boundary so the branch can move (see `transfer`).
    Handoff,
    /// A call to a server on another node, with the time its caller waits: only a remote
    /// client's link receives these (the deadline travels with the call). Boxed: rare.
    Timed(Box<Timed<S>>),
}

/// A call and its caller's timeout (see [`Envelope::Timed`]).
#[cfg_attr(not(feature = "grpc"), allow(dead_code))]
pub(crate) struct Timed<S: Server> {
    pub(crate) envelope: Envelope<S>,
    pub(crate) timeout: std::time::Duration,
}

impl<S: Server> Inbox<Envelope<S>> {
    /// Closes the mailbox of a branch that ended with `exit`: later sends fail, each message
    /// queued now is refused (its caller hears why), and the waiting task's waker leaves the
    /// channel, which clients keep alive after the end.
    pub(crate) fn close_refusing(&mut self, exit: &Exit) {
        self.close();
        while let Some(envelope) = self.try_recv() {
            envelope.refuse(exit);
        }
    }
}

impl<S: Server> Envelope<S> {
    /// Answers a message that will never be handled because the branch ended with `exit`.
    pub(crate) fn refuse(self, exit: &Exit) {
        let reply = match self {
            Envelope::Call { reply, .. } => reply,
            Envelope::Keyed(keyed) => keyed.reply,
            Envelope::Timed(timed) => return timed.envelope.refuse(exit),
            _ => return,
        };
        // The caller may have given up already; nobody else is owed the refusal.
        let _ = reply.send(Err(Box::new(CallError::Stopped(exit.clone()))));
    }
}

/// A keyed call on its way to the worker (boxed in the mailbox: rarer and larger than a call).
pub(crate) struct KeyedCall<S: Server> {
    pub(crate) call: S::Call,
    pub(crate) reply: Caller<S>,
    pub(crate) key: IdempotencyKey,
    pub(crate) digest: u64,
    pub(crate) codec: ReplyCodec<S>,
    /// How the worker handles it: the worker's `KeyedHandler<S>`, which this module, below the
    /// worker's, cannot name. Set where keyed calls are made, so that a program making none
    /// does not compile the keyed path.
    pub(crate) handler: &'static (dyn std::any::Any + Send + Sync),
}
