//! What a branch keeps for its workers besides the state: its tables and its kept values (the
//! counterparts of ETS tables with the keeper as heir, and of the process dictionary).
//!
//! They hang off the [`Branch`](crate::Branch), which is one allocation for the branch's whole
//! life: every incarnation reaches the same `Resources` through its context, and a transfer moves
//! the branch, so they move too, without a copy. The supervisor empties them when the branch ends
//! ([`Resources::end`]).

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::table::Tables;

/// The kept values, one per type.
///
/// A `BTreeMap`: a server keeps a few values at most, and an empty one is three words (a
/// `HashMap` is six, in every server's task, kept values or not).
pub(crate) type Values = BTreeMap<TypeId, Box<dyn Any + Send + Sync>>;

#[derive(Default)]
pub(crate) struct Resources {
    tables: Tables,
    /// Moved into each worker's context for its life, and back when the context drops.
    values: Mutex<Values>,
    ended: AtomicBool,
}

/// Locks a mutex whose holders never panic while holding it (map operations and moves only), so a
/// poisoned lock still guards consistent data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Resources {
    /// The branch's tables, by name.
    pub(crate) fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Moves the kept values out, for a new context.
    pub(crate) fn take_values(&self) -> Values {
        mem::take(&mut *lock(&self.values))
    }

    /// Takes back the values of a context that is dropped.
    pub(crate) fn give_back(&self, values: Values) {
        if values.is_empty() {
            return;
        }
        let mut kept = lock(&self.values);
        if self.ended.load(Ordering::Acquire) {
            // The branch has ended: drop them (outside the lock, as a `Drop` may take long).
            drop(kept);
            drop(values);
        } else {
            kept.extend(values);
        }
    }

    /// The branch has ended: every table is detached and emptied, every kept value dropped.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Release);
        let values = mem::take(&mut *lock(&self.values));
        self.tables.end();
        drop(values);
    }
}
