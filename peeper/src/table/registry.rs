//! [`Tables`]: the tables of a branch, by name.

use std::any::Any;
use std::collections::HashMap;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Access, AnyTable, Meta, TableError};

/// The tables of a branch, by name: one of the branch's
/// [`Resources`](crate::resources::Resources).
#[derive(Default)]
pub(crate) struct Tables {
    tables: Mutex<HashMap<Box<str>, Arc<dyn AnyTable>>>,
    ended: AtomicBool,
}

/// Locks a mutex whose holders never panic while holding it (map operations and moves only), so a
/// poisoned lock still guards consistent data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tables {
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

    /// The branch has ended: every table is detached and emptied, and no table is created from
    /// now on.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Release);
        let tables = mem::take(&mut *lock(&self.tables));
        for table in tables.values() {
            table.end();
        }
        drop(tables);
    }
}
