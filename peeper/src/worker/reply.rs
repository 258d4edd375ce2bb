//! The reply a completed handler owes: sent once its state is kept (and committed, when written
//! through), or failed if its worker is killed first.

use std::sync::Arc;

use crate::context::Answer;
use crate::erased;
use crate::mailbox::Caller;
use crate::reply::Gate;
use crate::store::StoreError;
use crate::{CallError, Exit, Server};

use super::persistence::Written;

/// A completed call's reply, once its state is kept.
pub(super) enum Owed<S: Server> {
    /// The value the handler returned, for its caller.
    Value(Caller<S>, S::Reply),
    /// The handler took the reply handle: open its gate.
    Deferred(Arc<Gate<S::Reply>>),
}

impl<S: Server> Owed<S> {
    pub(super) fn of(answer: Answer<S>, value: S::Reply) -> Option<Self> {
        match answer {
            Answer::Now(caller) => Some(Owed::Value(caller, value)),
            Answer::Deferred(gate) => Some(Owed::Deferred(gate)),
            Answer::Nobody => None,
        }
    }

    /// Answers, now that the state write ended with `stored`.
    pub(super) fn answer(self, stored: Result<(), StoreError>) {
        match (self, stored) {
            // The caller may have timed out; the call still counted, as in GenServer.
            (Owed::Value(caller, value), Ok(())) => drop(caller.send(Ok(value))),
            (Owed::Value(caller, _), Err(error)) => {
                drop(caller.send(Err(Box::new(CallError::Store(error)))));
            }
            (Owed::Deferred(gate), Ok(())) => gate.open(),
            (Owed::Deferred(gate), Err(error)) => gate.fail(CallError::Store(error)),
        }
    }
}

impl<S: Server> Answer<S> {
    /// The handler crashed: its caller hears how.
    pub(super) fn crashed(self, exit: &Exit) {
        match self {
            Answer::Now(caller) => {
                let _ = caller.send(Err(Box::new(CallError::Crashed(exit.clone()))));
            }
            Answer::Deferred(gate) => gate.fail(CallError::Crashed(exit.clone())),
            Answer::Nobody => {}
        }
    }
}

/// The reply to a call whose handler completed and whose state is kept, waiting for that state's
/// commit.
///
/// A kill aborts the worker at its next await, and this wait is one. Once the state is kept, the
/// next worker starts from it, so a caller told [`CallError::Crashed`] here would retry a change
/// that was applied. Dropped before it replied (the worker was killed, or its runtime is shutting
/// down), it hands the wait and the reply to a task of their own: the caller still gets the reply
/// after the commit, or the store's error.
pub(super) struct CommittedReply<S: Server> {
    /// `None` once sent, or once handed to the finishing task.
    pending: Option<Pending<S>>,
}

/// The reply owed (if any) and the commit it waits for.
type Pending<S> = (Option<Owed<S>>, Written);

impl<S: Server> CommittedReply<S> {
    pub(super) fn new(owed: Option<Owed<S>>, write: Written) -> Self {
        CommittedReply {
            pending: Some((owed, write)),
        }
    }

    /// Waits for the commit, then replies; returns what the commit said.
    pub(super) async fn send(mut self) -> Result<(), StoreError> {
        let stored = match &mut self.pending {
            Some((_, write)) => write.as_mut().await,
            None => Ok(()),
        };
        if let Some((Some(owed), _)) = self.pending.take() {
            owed.answer(stored.clone());
        }
        stored
    }
}

impl<S: Server> Drop for CommittedReply<S> {
    fn drop(&mut self) {
        let Some((Some(owed), write)) = self.pending.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                erased::spawn_on(
                    &runtime,
                    Box::pin(async move {
                        let stored = write.await;
                        owed.answer(stored);
                        None
                    }),
                );
            }
            // No runtime to wait on: the commit's outcome cannot be known here.
            Err(_) => owed.answer(Err(StoreError::Closed)),
        }
    }
}
