//! What every table is underneath its handles: a map with its [`Meta`].

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_skiplist::SkipMap;
use dashmap::DashMap;

use super::{Access, TableError, TableId};

/// What every table carries besides its map.
pub(crate) struct Meta {
    pub(super) id: TableId,
    pub(super) name: Box<str>,
    pub(crate) access: Access,
    /// The type name of the owner's handle (`Table<K, V>`), for [`TableError::WrongType`].
    pub(crate) handle_type: &'static str,
    /// Set when the branch ends; outside handles check it before every operation.
    pub(super) ended: AtomicBool,
}

impl Meta {
    pub(crate) fn new(name: &str, access: Access, handle_type: &'static str) -> Meta {
        Meta {
            id: TableId::next(),
            name: name.into(),
            access,
            handle_type,
            ended: AtomicBool::new(false),
        }
    }

    #[inline]
    pub(super) fn is_attached(&self) -> bool {
        // SeqCst pairs with the store in `end`: see `ReadWrite::write`.
        !self.ended.load(Ordering::SeqCst)
    }

    #[inline]
    pub(super) fn check(&self) -> Result<(), TableError> {
        if self.is_attached() {
            Ok(())
        } else {
            Err(self.ended_error())
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn ended_error(&self) -> TableError {
        TableError::BranchEnded {
            table: self.name.to_string(),
        }
    }
}

/// A table of any kind and types, as its branch holds it.
pub(crate) trait AnyTable: std::any::Any + Send + Sync {
    fn meta(&self) -> &Meta;
    /// The branch has ended: refuse outside handles from now on, and drop every entry.
    fn end(&self);
}

/// A map with its metadata: what every handle on a table points to.
pub(crate) struct Shared<M> {
    pub(super) meta: Meta,
    pub(super) map: M,
}

/// The maps a table can be.
pub(crate) trait Map: Send + Sync + 'static {
    fn clear(&self);
}

impl<K, V> Map for DashMap<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn clear(&self) {
        DashMap::clear(self);
    }
}

impl<K, V> Map for SkipMap<K, V>
where
    K: Ord + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn clear(&self) {
        SkipMap::clear(self);
    }
}

impl<M: Map> AnyTable for Shared<M> {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn end(&self) {
        self.meta.ended.store(true, Ordering::SeqCst);
        self.map.clear();
    }
}

pub(super) fn debug_meta(f: &mut fmt::Formatter<'_>, handle: &str, meta: &Meta) -> fmt::Result {
    f.debug_struct(handle)
        .field("name", &meta.name)
        .field("id", &meta.id)
        .field("access", &meta.access)
        .field("attached", &meta.is_attached())
        .finish_non_exhaustive()
}
