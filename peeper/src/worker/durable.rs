//! What only a durable worker does around its handlers: the write after `init`, the flush
//! before going idle, the write a call's reply waits for, and the write after other handlers.
//!
//! Each is reached through [`Hooks`], a table of pointers the supervision's durable paths hold
//! (set by `Builder::store`), so a server without a store does not compile them. Each returns
//! the exit of a fenced write, if one was refused: another node owns the server then.

use super::persistence::{Persistence, Written, fenced, store_if_changed};
use super::reply::{CommittedReply, Owed};
use super::unwritten;
use crate::erased::BoxFuture;
use crate::keeper::Cell;
use crate::retained::Unwritten;
use crate::store::StoreError;
use crate::{Branch, Exit, Server};

/// A durable worker's paths.
pub(crate) struct Hooks<S: Server> {
    /// After the first `init`: writes the state unless it is the one just read from the store.
    pub(super) after_init: for<'a> fn(Durably<'a, S>) -> Option<Fencing<'a>>,
    /// The worker was idle until a deadline: flushes a waiting batch (or a failed write).
    pub(super) idle: for<'a> fn(Durably<'a, S>) -> BoxFuture<'a, Idle>,
    /// A call changed the state: writes it, then replies (see `CommittedReply`).
    pub(super) reply: for<'a> fn(Durably<'a, S>, Option<Owed<S>>) -> Fencing<'a>,
    /// Any other handler: writes the state if it changed.
    pub(super) after_handler: for<'a> fn(Durably<'a, S>) -> Option<Fencing<'a>>,
}

/// A write on its way; it ends with the exit of a fenced write, if it was refused.
pub(super) type Fencing<'a> = BoxFuture<'a, Option<Exit>>;

impl<S: Server> Hooks<S> {
    /// The table, in a constant so that `&Hooks::<S>::ALL` is `'static`.
    pub(crate) const ALL: Self = Hooks {
        after_init,
        idle,
        reply: |durably, owed| Box::pin(reply(durably, owed)),
        after_handler,
    };
}

/// What a hook works on.
pub(super) struct Durably<'a, S: Server> {
    pub(super) persistence: &'a mut Persistence<S>,
    pub(super) cell: &'a mut Cell<S>,
    pub(super) branch: &'a Branch,
}

/// What the flush at a deadline came to.
pub(super) enum Idle {
    /// The state is stored: a branch idle for its `idle_after` may hibernate.
    Stored,
    /// A write failed (logged): stay awake, and try again after another idle period.
    Failed,
    Fenced(Exit),
}

fn after_init<S: Server>(durably: Durably<'_, S>) -> Option<BoxFuture<'_, Option<Exit>>> {
    let Durably {
        persistence,
        cell,
        branch,
    } = durably;
    // A state just read from the store (a revival, a start on a stored state) is there already:
    // if `init` left it as it was, there is nothing to write. Any other first state, and the
    // state of every restart (a batched change may not have reached the store), is written.
    let from_store = cell.from_store.take();
    let records = unwritten(&cell.retained);
    let stored = from_store.is_some_and(|fingerprint| {
        persistence.holds(&cell.live, fingerprint) && records.is_none_or(Unwritten::is_empty)
    });
    if stored {
        return None;
    }
    let write = persistence.write(&cell.live, records);
    // A failure is not fatal: the next change writes the whole state again.
    Some(fencing(write, branch, crate::log::store_after_init_failed))
}

fn idle<S: Server>(durably: Durably<'_, S>) -> BoxFuture<'_, Idle> {
    let Durably {
        persistence,
        cell,
        branch,
    } = durably;
    let flush = persistence.flush(&cell.live, unwritten(&cell.retained));
    Box::pin(async move {
        let flushed = match flush {
            Some(flush) => flush.await,
            None => Ok(()),
        };
        if let Some(exit) = fenced(&flushed) {
            return Idle::Fenced(exit);
        }
        match flushed {
            Ok(()) => Idle::Stored,
            Err(error) => {
                crate::log::store_failed(branch, &error);
                Idle::Failed
            }
        }
    })
}

async fn reply<S: Server>(durably: Durably<'_, S>, owed: Option<Owed<S>>) -> Option<Exit> {
    let Durably {
        persistence, cell, ..
    } = durably;
    // Submitted now, synchronously: from here on the change is kept and on its way to the
    // store, so the reply is owed whatever happens to this worker (see `CommittedReply`).
    let write = persistence
        .changed(&cell.live, unwritten(&cell.retained))
        .unwrap_or_else(|| -> Written { Box::pin(std::future::ready(Ok(()))) });
    // Written: the common write after the handler must not write it again.
    cell.live.reset();
    let stored = CommittedReply::<S>::new(owed, write).send().await;
    fenced(&stored)
}

fn after_handler<S: Server>(durably: Durably<'_, S>) -> Option<BoxFuture<'_, Option<Exit>>> {
    let Durably {
        persistence,
        cell,
        branch,
    } = durably;
    let write = store_if_changed(persistence, &cell.live, unwritten(&cell.retained))?;
    // A cast or info message: nobody to tell of a failure but the log.
    Some(fencing(write, branch, crate::log::store_failed))
}

/// Waits for `write`: the exit if it was fenced, else a failure goes to `failed`.
fn fencing(write: Written, branch: &Branch, failed: fn(&Branch, &StoreError)) -> Fencing<'_> {
    Box::pin(async move {
        let written = write.await;
        let fenced = fenced(&written);
        if let (Err(error), None) = (&written, &fenced) {
            failed(branch, error);
        }
        fenced
    })
}
