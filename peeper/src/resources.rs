//! What a branch keeps for its workers besides the state: its tables and its kept values (the
//! counterparts of ETS tables with the keeper as heir, and of the process dictionary).
//!
//! They hang off the [`Branch`](crate::Branch), which is one allocation for the branch's whole
//! life: every incarnation reaches the same `Resources` through its context, and a transfer moves
//! the branch, so they move too, without a copy. The supervisor empties them when the branch ends
//! ([`Resources::end`]).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::table::{Access, AnyTable, Meta, TableError};

/// The kept values, one per type.
pub(crate) type Values = HashMap<TypeId, Box<dyn Any + Send + Sync>>;

#[derive(Default)]
pub(crate) struct Resources {
    tables: Mutex<HashMap<Box<str>, Arc<dyn AnyTable>>>,
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
    /// The table named `name`, created with `create` on first use. `handle` is the type name of
    /// its owner's handle (`Table<K, V>`), for errors.
    ///
    /// # Errors
    /// The name holds a table of another type or kind ([`TableError::WrongType`]) or another
    /// access ([`TableError::AccessMismatch`]); the branch has ended.
    pub(crate) fn table<T: AnyTable>(
        &self,
        name: &str,
        access: Access,
        handle: &'static str,
        create: impl FnOnce(Meta) -> T,
    ) -> Result<Arc<T>, TableError> {
        let mut tables = lock(&self.tables);
        // Checked under the lock, which `end` takes after setting the flag: no table is created
        // once the branch has been emptied.
        if self.ended.load(Ordering::Acquire) {
            return Err(TableError::BranchEnded {
                table: name.to_owned(),
            });
        }
        if let Some(found) = tables.get(name) {
            let meta = found.meta();
            let (existing, found_type) = (meta.access, meta.handle_type);
            let any: Arc<dyn Any + Send + Sync> = Arc::<dyn AnyTable>::clone(found);
            let table = any.downcast::<T>().map_err(|_| TableError::WrongType {
                table: name.to_owned(),
                expected: handle,
                found: found_type,
            })?;
            if existing != access {
                return Err(TableError::AccessMismatch {
                    table: name.to_owned(),
                    existing,
                    requested: access,
                });
            }
            return Ok(table);
        }
        let table = Arc::new(create(Meta::new(name, access, handle)));
        tables.insert(name.into(), Arc::clone(&table) as Arc<dyn AnyTable>);
        Ok(table)
    }

    /// The table named `name`, for a lookup from outside.
    pub(crate) fn find(&self, name: &str) -> Option<Arc<dyn AnyTable>> {
        lock(&self.tables).get(name).cloned()
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
        let tables = mem::take(&mut *lock(&self.tables));
        let values = mem::take(&mut *lock(&self.values));
        for table in tables.values() {
            table.end();
        }
        drop(tables);
        drop(values);
    }
}
