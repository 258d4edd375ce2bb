//! Handles for other tasks: [`ReadOnly`] and [`ReadWrite`], from [`table`](super::table).

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::ops::{Deref, RangeBounds};

use super::{Map, OrderedTable, Shared, Table, TableError, TableId, debug_meta};

/// A read-only handle on another server's table, from [`table`](super::table): for a
/// [`Protected`](super::Access::Protected) or [`Public`](super::Access::Public) table. `T` is the
/// kind, [`Table<K, V>`] or [`OrderedTable<K, V>`].
///
/// Every operation fails with [`TableError::BranchEnded`] once the owning branch has ended
/// (the table is then gone: look the server up again if another was started under its name).
/// Until then, it reads the live table, as the worker writes it.
///
#[doc = example!(read hash, r#"// `names: ReadOnly<Table<u64, String>>`
assert_eq!(names.get(&1)?, Some("one".to_owned()));
assert_eq!(names.len()?, 2);"#)]
pub struct ReadOnly<T> {
    pub(super) table: T,
}

/// A read-write handle on another server's [`Public`](super::Access::Public) table, from
/// [`table`](super::table). It reads as a [`ReadOnly`] does (it dereferences to one), and writes.
///
#[doc = example!(write hash, r#"// `names: ReadWrite<Table<u64, String>>`
names.insert(3, "three".to_owned())?;
assert_eq!(names.get(&3)?, Some("three".to_owned()));"#)]
pub struct ReadWrite<T> {
    pub(super) read: ReadOnly<T>,
}

impl<T> Deref for ReadWrite<T> {
    type Target = ReadOnly<T>;

    fn deref(&self) -> &ReadOnly<T> {
        &self.read
    }
}

impl<K, V> ReadOnly<Table<K, V>>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    #[inline]
    fn attached(&self) -> Result<&Table<K, V>, TableError> {
        self.table.shared.meta.check()?;
        Ok(&self.table)
    }

    /// The value for `key`, cloned.
    ///
    /// # Errors
    /// [`TableError::BranchEnded`].
    ///
    #[doc = example!(read hash, r#"assert_eq!(names.get(&1)?, Some("one".to_owned()));"#)]
    pub fn get<Q>(&self, key: &Q) -> Result<Option<V>, TableError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        Ok(self.attached()?.get(key))
    }

    /// Runs `read` on the value for `key` in place (see [`Table::get_with`]).
    ///
    /// # Errors
    /// [`TableError::BranchEnded`].
    ///
    #[doc = example!(read hash, r#"assert_eq!(names.get_with(&1, |name| name.len())?, Some(3));"#)]
    pub fn get_with<Q, R>(
        &self,
        key: &Q,
        read: impl FnOnce(&V) -> R,
    ) -> Result<Option<R>, TableError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Ok(self.attached()?.get_with(key, read))
    }

    /// Whether the table holds `key`.
    ///
    /// # Errors
    /// [`TableError::BranchEnded`].
    ///
    #[doc = example!(read hash, r#"assert!(names.contains_key(&1)?);"#)]
    pub fn contains_key<Q>(&self, key: &Q) -> Result<bool, TableError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Ok(self.attached()?.contains_key(key))
    }

    /// Every entry, cloned, in no particular order.
    ///
    /// # Errors
    /// [`TableError::BranchEnded`].
    ///
    #[doc = example!(read hash, r#"let mut all = names.to_vec()?;
all.sort();
assert_eq!(all, vec![(1, "one".to_owned()), (2, "two".to_owned())]);"#)]
    pub fn to_vec(&self) -> Result<Vec<(K, V)>, TableError>
    where
        K: Clone,
        V: Clone,
    {
        Ok(self.attached()?.to_vec())
    }

    /// How many entries the table holds.
    ///
    /// # Errors
    /// [`TableError::BranchEnded`].
    ///
    #[doc = example!(read hash, r#"assert_eq!(names.len()?, 2);"#)]
    pub fn len(&self) -> Result<usize, TableError> {
        Ok(self.attached()?.len())
    }

    /// Whether the table is empty.
    ///
    /// # Errors
    /// [`TableError::BranchEnded`].
    ///
    #[doc = example!(read hash, r#"assert!(!names.is_empty()?);"#)]
    pub fn is_empty(&self) -> Result<bool, TableError> {
        Ok(self.attached()?.is_empty())
    }
}

impl<K, V> ReadWrite<Table<K, V>>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// Inserts `value` under `key`, and returns the value it replaced, if any.
    ///
    /// # Errors
    /// [`TableError::BranchEnded`] (the value is then dropped).
    ///
    #[doc = example!(write hash, r#"assert_eq!(names.insert(1, "uno".to_owned())?, Some("one".to_owned()));"#)]
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>, TableError> {
        let table = self.read.attached()?;
        let old = table.insert(key, value);
        table.shared.after_write()?;
        Ok(old)
    }

    /// Removes `key`, and returns its value, if any.
    ///
    /// # Errors
    /// [`TableError::BranchEnded`].
    ///
    #[doc = example!(write hash, r#"assert_eq!(names.remove(&1)?, Some("one".to_owned()));"#)]
    pub fn remove<Q>(&self, key: &Q) -> Result<Option<V>, TableError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Ok(self.read.attached()?.remove(key))
    }

    /// Runs `change` on the value for `key` in place (see [`Table::update`]).
    ///
    /// # Errors
    /// [`TableError::BranchEnded`].
    ///
    #[doc = example!(write hash, r#"assert_eq!(names.update(&1, |name| { name.push('!'); name.len() })?, Some(4));"#)]
    pub fn update<Q, R>(
        &self,
        key: &Q,
        change: impl FnOnce(&mut V) -> R,
    ) -> Result<Option<R>, TableError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Ok(self.read.attached()?.update(key, change))
    }
}

impl<K, V> ReadOnly<OrderedTable<K, V>>
where
    K: Ord + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    #[inline]
    fn attached(&self) -> Result<&OrderedTable<K, V>, TableError> {
        self.table.shared.meta.check()?;
        Ok(&self.table)
    }

    /// The value for `key`, cloned.
    ///
    /// # Errors
    /// [`TableError::BranchEnded`].
    ///
    #[doc = example!(read ordered, r#"assert_eq!(names.get(&1)?, Some("one".to_owned()));"#)]
    pub fn get<Q>(&self, key: &Q) -> Result<Option<V>, TableError>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        V: Clone,
    {
        Ok(self.attached()?.get(key))
    }

    /// Whether the table holds `key`.
    ///
    /// # Errors
    /// [`TableError::BranchEnded`].
    ///
    #[doc = example!(read ordered, r#"assert!(names.contains_key(&2)?);"#)]
    pub fn contains_key<Q>(&self, key: &Q) -> Result<bool, TableError>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        Ok(self.attached()?.contains_key(key))
    }

    /// The entry with the smallest key, cloned.
    ///
    /// # Errors
    /// [`TableError::BranchEnded`].
    ///
    #[doc = example!(read ordered, r#"assert_eq!(names.first()?, Some((1, "one".to_owned())));"#)]
    pub fn first(&self) -> Result<Option<(K, V)>, TableError>
    where
        K: Clone,
        V: Clone,
    {
        Ok(self.attached()?.first())
    }

    /// The entry with the largest key, cloned.
    ///
    /// # Errors
    /// [`TableError::BranchEnded`].
    ///
    #[doc = example!(read ordered, r#"assert_eq!(names.last()?, Some((2, "two".to_owned())));"#)]
    pub fn last(&self) -> Result<Option<(K, V)>, TableError>
    where
        K: Clone,
        V: Clone,
    {
        Ok(self.attached()?.last())
    }

    /// The entries whose keys are in `range`, cloned, in key order.
    ///
    /// # Errors
    /// [`TableError::BranchEnded`].
    ///
    #[doc = example!(read ordered, r#"assert_eq!(names.range(..2)?, vec![(1, "one".to_owned())]);"#)]
    pub fn range<Q, R>(&self, range: R) -> Result<Vec<(K, V)>, TableError>
    where
        K: Borrow<Q> + Clone,
        V: Clone,
        R: RangeBounds<Q>,
        Q: Ord + ?Sized,
    {
        Ok(self.attached()?.range(range))
    }

    /// Every entry, cloned, in key order.
    ///
    /// # Errors
    /// [`TableError::BranchEnded`].
    ///
    #[doc = example!(read ordered, r#"assert_eq!(names.to_vec()?.len(), 2);"#)]
    pub fn to_vec(&self) -> Result<Vec<(K, V)>, TableError>
    where
        K: Clone,
        V: Clone,
    {
        Ok(self.attached()?.to_vec())
    }

    /// How many entries the table holds.
    ///
    /// # Errors
    /// [`TableError::BranchEnded`].
    ///
    #[doc = example!(read ordered, r#"assert_eq!(names.len()?, 2);"#)]
    pub fn len(&self) -> Result<usize, TableError> {
        Ok(self.attached()?.len())
    }

    /// Whether the table is empty.
    ///
    /// # Errors
    /// [`TableError::BranchEnded`].
    ///
    #[doc = example!(read ordered, r#"assert!(!names.is_empty()?);"#)]
    pub fn is_empty(&self) -> Result<bool, TableError> {
        Ok(self.attached()?.is_empty())
    }
}

impl<K, V> ReadWrite<OrderedTable<K, V>>
where
    K: Ord + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// Inserts `value` under `key`, replacing any value it had.
    ///
    /// # Errors
    /// [`TableError::BranchEnded`] (the value is then dropped).
    ///
    #[doc = example!(write ordered, r#"names.insert(3, "three".to_owned())?;
assert_eq!(names.last()?, Some((3, "three".to_owned())));"#)]
    pub fn insert(&self, key: K, value: V) -> Result<(), TableError> {
        let table = self.read.attached()?;
        table.insert(key, value);
        table.shared.after_write()
    }

    /// Removes `key`, and returns its value, if any.
    ///
    /// # Errors
    /// [`TableError::BranchEnded`].
    ///
    #[doc = example!(write ordered, r#"assert_eq!(names.remove(&1)?, Some("one".to_owned()));"#)]
    pub fn remove<Q>(&self, key: &Q) -> Result<Option<V>, TableError>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        V: Clone,
    {
        Ok(self.read.attached()?.remove(key))
    }
}

/// Common to both outside handles, whatever the kind.
macro_rules! outside_common {
    ($kind:ident, $($example:tt)+) => {
        impl<K, V> ReadOnly<$kind<K, V>> {
            /// The table's identity (see [`TableId`]).
            ///
            #[doc = example!($($example)+, r#"let id: peeper::TableId = names.id();"#)]
            #[must_use]
            pub fn id(&self) -> TableId {
                self.table.shared.meta.id
            }

            /// The table's name in its branch.
            ///
            #[doc = example!($($example)+, r#"assert_eq!(names.name(), "names");"#)]
            #[must_use]
            pub fn name(&self) -> &str {
                &self.table.shared.meta.name
            }

            /// `false` once the owning branch has ended; every operation then fails with
            /// [`TableError::BranchEnded`].
            ///
            #[doc = example!($($example)+, r#"assert!(names.is_attached());"#)]
            #[must_use]
            pub fn is_attached(&self) -> bool {
                self.table.shared.meta.is_attached()
            }
        }

        impl<K, V> Clone for ReadOnly<$kind<K, V>> {
            fn clone(&self) -> Self {
                ReadOnly {
                    table: self.table.clone(),
                }
            }
        }

        impl<K, V> Clone for ReadWrite<$kind<K, V>> {
            fn clone(&self) -> Self {
                ReadWrite {
                    read: self.read.clone(),
                }
            }
        }

        impl<K, V> fmt::Debug for ReadOnly<$kind<K, V>> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                debug_meta(f, concat!("ReadOnly<", stringify!($kind), ">"), &self.table.shared.meta)
            }
        }

        impl<K, V> fmt::Debug for ReadWrite<$kind<K, V>> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                debug_meta(f, concat!("ReadWrite<", stringify!($kind), ">"), &self.read.table.shared.meta)
            }
        }
    };
}

outside_common!(Table, read hash);
outside_common!(OrderedTable, read ordered);

impl<M: Map> Shared<M> {
    /// After an outside write: if the branch ended meanwhile, the write may have landed after
    /// [`AnyTable::end`](super::AnyTable::end) emptied the table, where nobody would ever read it
    /// but it would stay until the last handle drops. Empty it again, and say so. (The flag is
    /// stored before the table is emptied and read after the write, both `SeqCst`: a write the
    /// emptying missed sees the flag.)
    #[inline]
    fn after_write(&self) -> Result<(), TableError> {
        if self.meta.is_attached() {
            Ok(())
        } else {
            self.detached_write()
        }
    }

    #[cold]
    #[inline(never)]
    fn detached_write(&self) -> Result<(), TableError> {
        self.map.clear();
        Err(self.meta.ended_error())
    }
}
