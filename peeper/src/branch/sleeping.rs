//! A branch's sleeping slot: where a hibernating branch's parts are parked, woken by the first
//! send and released into the registry when the last handle outside lets go.
//!
//! A parked branch is reachable through its handles ([`Branch`] values: its clients, a
//! `Branch` a user kept, a status waiter) and through its name. While any handle outside the
//! parked parts exists, the branch stays in place, so that every handle keeps working and keeps
//! its status. Once none does, only a lookup by name can reach it again: the parts go into a
//! record in the registry (a few hundred bytes less than the branch, its mailbox and its parts),
//! from which the lookup revives the server in a new branch with the same id.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard, PoisonError};

use super::{Branch, BranchId};
use crate::registry;

/// `parked` for parts that can never be released (see [`Branch::release`]): no handle count
/// matches it, so no drop takes the registry's lock for them again.
pub(super) const NEVER_RELEASED: usize = usize::MAX;

/// The parts of a hibernating branch, parked in its sleeping slot: taken (once) by the first
/// handle that sends to it, which wakes them, or by the last handle to let go, which releases
/// them into the registry.
pub(crate) trait Sleeper: Send {
    /// Revives the branch: loads its state and starts its task again.
    fn wake(self: Box<Self>);

    /// How many handles on the branch the parked parts hold themselves (their client, their
    /// control queue), with the registry's client: when no other is left, nothing but a lookup
    /// by name can reach the branch again.
    fn holds(&self) -> usize;

    /// Replaces the branch's client in the registry with a record of these parts, from which
    /// a lookup by name revives the server in a new branch (same id, same name). Returns what to
    /// drop once the locks are let go, or the parts back if they cannot be released (a server
    /// whose mailbox a cluster forwards, say): they stay parked.
    fn release(
        self: Box<Self>,
        names: &mut registry::Names,
    ) -> Result<Box<dyn Send>, Box<dyn Sleeper>>;
}

impl Clone for Branch {
    fn clone(&self) -> Self {
        if self.inner.may_sleep {
            // Relaxed, as `Arc`'s own count: a new handle is made from a live one.
            self.inner.handles.fetch_add(1, Ordering::Relaxed);
        }
        Branch {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Drop for Branch {
    fn drop(&mut self) {
        let inner = &*self.inner;
        if !inner.may_sleep {
            return;
        }
        let left = inner.handles.fetch_sub(1, Ordering::AcqRel) - 1;
        let parked = inner.parked.load(Ordering::Acquire);
        if parked != 0 && left == parked {
            self.release();
        }
    }
}

impl Branch {
    /// A branch again for a server released while it hibernated (see [`Sleeper::release`]),
    /// with the id, the name and the status it had: hibernating, and taking control requests,
    /// until its revival (under way) starts its task.
    pub(crate) fn revived(
        id: BranchId,
        server: &'static str,
        name: String,
        ready: Option<u64>,
        restarts: u64,
    ) -> Branch {
        let branch = Branch::with_kind(id, server, Some(name), true, false);
        branch.tasks().control_open = true;
        branch.inner.status.send_modify(|status| {
            status.ready = ready;
            status.restarts = restarts;
            status.hibernating = true;
        });
        branch
    }

    /// The slot a hibernating branch waits in.
    pub(crate) fn sleeping(&self) -> MutexGuard<'_, Option<Box<dyn Sleeper>>> {
        // Only an `Option` and `parked` are read and written under this lock.
        self.inner
            .sleeping
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Parks `sleeper` in the sleeping slot (`slot`, this branch's, locked): the next send
    /// wakes it, and the last handle to let go releases it.
    pub(crate) fn park(
        &self,
        slot: &mut MutexGuard<'_, Option<Box<dyn Sleeper>>>,
        sleeper: Box<dyn Sleeper>,
    ) {
        self.inner.parked.store(sleeper.holds(), Ordering::Release);
        **slot = Some(sleeper);
    }

    /// Takes what is parked in the sleeping slot (`slot`, this branch's, locked), if anything.
    fn unpark(
        &self,
        slot: &mut MutexGuard<'_, Option<Box<dyn Sleeper>>>,
    ) -> Option<Box<dyn Sleeper>> {
        let sleeper = slot.take();
        if sleeper.is_some() {
            self.inner.parked.store(0, Ordering::Release);
        }
        sleeper
    }

    /// Releases the parked parts into the registry if nothing but they and the registry hold
    /// this branch any more; called by the drop of the handle that may have been the last other.
    ///
    /// Both locks are taken, the registry's first (as a lookup by name takes it, and then this
    /// branch's handles through its client), and the count is looked at again under them: a
    /// lookup cannot hand out a new handle meanwhile, and a send cannot take the slot.
    #[cold]
    fn release(&self) {
        // Tables and kept values live in the branch, and a dynamic supervisor's child is its
        // supervisor's to end: those stay parked in place. Once true, either stays true; it is
        // looked at here without the registry's lock, and again under both locks below (the
        // server may have woken, made a table and parked again meanwhile).
        let kept = || self.existing_resources().is_some() || self.tasks().owner.is_some();
        if kept() {
            let slot = self.sleeping();
            if slot.is_some() {
                self.inner.parked.store(NEVER_RELEASED, Ordering::Release);
            }
            drop(slot);
            return;
        }
        let mut names = registry::lock();
        let mut slot = self.sleeping();
        let unheld = slot
            .as_ref()
            .is_some_and(|sleeper| self.inner.handles.load(Ordering::Acquire) == sleeper.holds());
        if !unheld {
            return;
        }
        if kept() {
            self.inner.parked.store(NEVER_RELEASED, Ordering::Release);
            return;
        }
        let Some(sleeper) = self.unpark(&mut slot) else {
            return;
        };
        match sleeper.release(&mut names) {
            Ok(leftovers) => {
                drop(slot);
                drop(names);
                // The parts' own handles on this branch, and the registry's client: with their
                // drops (the slot is empty now, so none of them comes back here), the branch is
                // freed.
                drop(leftovers);
            }
            Err(sleeper) => {
                *slot = Some(sleeper);
                self.inner.parked.store(NEVER_RELEASED, Ordering::Release);
            }
        }
    }

    /// Runs `send` (a send into the mailbox or the control channel) and, if the branch is
    /// hibernating, wakes it, exactly once however many senders race.
    ///
    /// The send and the look at the slot happen under the slot's lock, which the supervisor also
    /// holds while it checks that the mailbox is empty and parks the branch: so either the
    /// supervisor sees this message and stays awake, or this sender sees the parked branch and
    /// wakes it. No message can fall between the two.
    #[inline]
    pub(crate) fn send_waking<T>(&self, send: impl FnOnce() -> T) -> T {
        if !self.inner.may_sleep {
            return send();
        }
        let (sent, sleeper) = {
            let mut slot = self.sleeping();
            (send(), self.unpark(&mut slot))
        };
        if let Some(sleeper) = sleeper {
            sleeper.wake();
        }
        sent
    }
}
