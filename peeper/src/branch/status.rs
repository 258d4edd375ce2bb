//! A branch's status: what it has come to (ready, restarts, hibernating, its exit), shared by
//! every handle and waited on by `ready`, `ended` and `stop`.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::Exit;
use crate::store::StoreError;

/// A branch's lifecycle, published by its tasks and watched by clients.
#[derive(Debug, Clone, Default)]
pub(crate) struct Status {
    /// The incarnation whose `init` has completed, if any.
    pub(crate) ready: Option<u64>,
    /// Restarts so far.
    pub(crate) restarts: u64,
    /// Set as soon as the branch starts ending; every later message is refused with it.
    pub(crate) exit: Option<Exit>,
    /// Set once the branch is completely gone: `terminate` ran, the name is free, the listener
    /// heard `on_terminate`.
    pub(crate) finished: bool,
    /// The branch is hibernating: no tasks, its state in its store.
    pub(crate) hibernating: bool,
    /// The branch is ending but its last state could not be stored yet (this is the last
    /// error): it retries, holding its claim and its name, until the store takes it.
    pub(crate) unstored: Option<Box<StoreError>>,
    /// The start that made the branch's claim was dropped and gave the claim up itself: the
    /// branch must not release it (see `supervisor::Starting`).
    pub(crate) abandoned: bool,
    /// `terminate` panicked, with this message: `stop` reports it.
    pub(crate) terminate_panicked: Option<String>,
}

/// A branch's [`Status`], and a way to wait for it to change.
///
/// A mutex and one `Notify`, not a `tokio::sync::watch`: the watch channel is a 400-byte
/// allocation per server and notifies through eight internal mutexes, which was a fifth of the
/// cost of starting and stopping a server. Status changes a handful of times per branch life.
#[derive(Default)]
pub(crate) struct StatusCell {
    status: Mutex<Status>,
    changed: Notify,
}

impl StatusCell {
    fn lock(&self) -> MutexGuard<'_, Status> {
        // Only plain field writes run under the lock.
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What `read` takes from the status, under its lock (never a guard: no caller can hold the
    /// lock by accident). Only what is asked for is copied, not the whole status.
    pub(crate) fn read<T>(&self, read: impl FnOnce(&Status) -> T) -> T {
        read(&self.lock())
    }

    /// Changes the status and wakes everyone waiting on it.
    pub(crate) fn send_modify(&self, modify: impl FnOnce(&mut Status)) {
        modify(&mut self.lock());
        self.changed.notify_waiters();
    }

    /// Waits until `until` returns `Some`, and returns what it returned.
    pub(crate) async fn wait_for<T>(&self, until: impl Fn(&Status) -> Option<T>) -> T {
        loop {
            // Registered before the look, so a change between the look and the wait is not missed.
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if let Some(found) = until(&self.lock()) {
                return found;
            }
            changed.await;
        }
    }
}
