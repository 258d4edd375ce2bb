//! Hash tables: [`Table`], the worker's handle.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use dashmap::DashMap;

use super::{Access, Shared, TableError, TableId, Tables, debug_meta};

/// A kept hash table (an ETS `set`): the worker's handle, from
/// [`Context::table`](crate::Context::table).
///
/// Cheap to clone (one reference count), `Send + Sync`, and every clone is the same table: keep
/// one in the state if you like, it survives the state's own copies and restores. Every method
/// takes `&self` and may run on any thread; reads never wait for the server.
///
/// Values are cloned out ([`get`](Table::get)) or read in place under a short shard lock
/// ([`get_with`](Table::get_with)). No method hands out a guard, so none can be held across an
/// `.await`.
///
/// A handle kept after its branch ended (moved into a task that outlived it) is *detached*: its
/// table was emptied when the branch ended, and nothing else sees what is written to it since.
/// [`is_attached`](Table::is_attached) tells.
///
/// ```
/// #[derive(Clone, Default)]
/// pub struct Users;
///
/// #[peeper::server]
/// impl Users {
///     #[cast]
///     fn add(&self, id: u64, name: String, ctx: &mut peeper::Context<Self>) -> Result<(), peeper::TableError> {
///         ctx.table::<u64, String>("users")?.insert(id, name);
///         Ok(())
///     }
///
///     #[call]
///     fn name(&self, id: u64, ctx: &mut peeper::Context<Self>) -> Option<String> {
///         ctx.table::<u64, String>("users").ok()?.get(&id)
///     }
///
///     #[call]
///     fn crash(&self) {
///         panic!("on purpose");
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let users = Users::start(Users).await?;
/// users.add(7, "ada".to_owned())?;
/// assert!(users.crash().await.is_err());
/// assert_eq!(users.name(7).await?, Some("ada".to_owned()));   // the table survived the crash
/// # Ok(()) }
/// ```
pub struct Table<K, V> {
    pub(super) shared: Arc<Shared<DashMap<K, V>>>,
}

impl<K, V> Table<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    pub(crate) fn open(tables: &Tables, name: &str, access: Access) -> Result<Self, TableError> {
        let shared = tables.table(name, access, std::any::type_name::<Self>(), |meta| Shared {
            meta,
            map: DashMap::new(),
        })?;
        Ok(Table { shared })
    }

    /// The value for `key`, cloned.
    ///
    #[doc = example!(hash, r#"table.insert(1, "one".to_owned());
assert_eq!(table.get(&1), Some("one".to_owned()));
assert_eq!(table.get(&2), None);"#)]
    #[must_use]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.shared.map.get(key).map(|entry| entry.value().clone())
    }

    /// Runs `read` on the value for `key` in place, without cloning it, and returns what it
    /// returns.
    ///
    /// `read` runs under the read lock of the key's shard: it must not use this table (a write to
    /// the same shard would wait forever), and should be short.
    ///
    #[doc = example!(hash, r#"table.insert(1, "one".to_owned());
assert_eq!(table.get_with(&1, |name| name.len()), Some(3));"#)]
    pub fn get_with<Q, R>(&self, key: &Q, read: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shared.map.get(key).map(|entry| read(entry.value()))
    }

    /// Whether the table holds `key`.
    ///
    #[doc = example!(hash, r#"table.insert(1, "one".to_owned());
assert!(table.contains_key(&1));
assert!(!table.contains_key(&2));"#)]
    #[must_use]
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shared.map.contains_key(key)
    }

    /// Inserts `value` under `key`, and returns the value it replaced, if any.
    ///
    #[doc = example!(hash, r#"assert_eq!(table.insert(1, "one".to_owned()), None);
assert_eq!(table.insert(1, "uno".to_owned()), Some("one".to_owned()));"#)]
    pub fn insert(&self, key: K, value: V) -> Option<V> {
        self.shared.map.insert(key, value)
    }

    /// Removes `key`, and returns its value, if any (ETS's `take`).
    ///
    #[doc = example!(hash, r#"table.insert(1, "one".to_owned());
assert_eq!(table.remove(&1), Some("one".to_owned()));
assert_eq!(table.remove(&1), None);"#)]
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shared.map.remove(key).map(|(_, value)| value)
    }

    /// The value for `key`, inserting `make()` first if there is none: the cache lookup, in one
    /// step that no other writer can split.
    ///
    /// `make` runs under the write lock of the key's shard: it must not use this table. Compute
    /// an expensive value before, with [`get`](Table::get) and [`insert`](Table::insert), if it
    /// may take long.
    ///
    #[doc = example!(hash, r#"assert_eq!(table.get_or_insert_with(1, || "one".to_owned()), "one");
assert_eq!(table.get_or_insert_with(1, || "uno".to_owned()), "one");   // already there"#)]
    pub fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> V
    where
        V: Clone,
    {
        self.shared
            .map
            .entry(key)
            .or_insert_with(make)
            .value()
            .clone()
    }

    /// Runs `change` on the value for `key` in place, and returns what it returns; `None` if
    /// there is no such key.
    ///
    /// `change` runs under the write lock of the key's shard: it must not use this table.
    ///
    #[doc = example!(hash, r#"table.insert(1, "one".to_owned());
assert_eq!(table.update(&1, |name| { name.push('!'); name.len() }), Some(4));
assert_eq!(table.get(&1), Some("one!".to_owned()));
assert_eq!(table.update(&2, |name| name.len()), None);"#)]
    pub fn update<Q, R>(&self, key: &Q, change: impl FnOnce(&mut V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shared
            .map
            .get_mut(key)
            .map(|mut entry| change(entry.value_mut()))
    }

    /// Keeps only the entries for which `keep` returns `true`.
    ///
    /// Shard by shard, each under its write lock: `keep` must not use this table.
    ///
    #[doc = example!(hash, r#"table.insert(1, "one".to_owned());
table.insert(2, "two".to_owned());
table.retain(|id, _| id % 2 == 0);
assert_eq!(table.to_vec(), vec![(2, "two".to_owned())]);"#)]
    pub fn retain(&self, keep: impl FnMut(&K, &mut V) -> bool) {
        self.shared.map.retain(keep);
    }

    /// Runs `visit` on every entry, in no particular order.
    ///
    /// Shard by shard, each under its read lock: `visit` must not write to this table. Entries
    /// written meanwhile may or may not be visited.
    ///
    #[doc = example!(hash, r#"table.insert(1, "one".to_owned());
table.insert(2, "two".to_owned());
let mut total = 0;
table.for_each(|id, _| total += id);
assert_eq!(total, 3);"#)]
    pub fn for_each(&self, mut visit: impl FnMut(&K, &V)) {
        for entry in self.shared.map.iter() {
            visit(entry.key(), entry.value());
        }
    }

    /// Every entry, cloned, in no particular order: a snapshot taken shard by shard, not all at
    /// once.
    ///
    #[doc = example!(hash, r#"table.insert(1, "one".to_owned());
assert_eq!(table.to_vec(), vec![(1, "one".to_owned())]);"#)]
    #[must_use]
    pub fn to_vec(&self) -> Vec<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        let mut entries = Vec::with_capacity(self.shared.map.len());
        self.for_each(|key, value| entries.push((key.clone(), value.clone())));
        entries
    }

    /// How many entries the table holds.
    ///
    #[doc = example!(hash, r#"assert_eq!(table.len(), 0);
table.insert(1, "one".to_owned());
assert_eq!(table.len(), 1);"#)]
    #[must_use]
    pub fn len(&self) -> usize {
        self.shared.map.len()
    }

    /// Whether the table is empty.
    ///
    #[doc = example!(hash, r#"assert!(table.is_empty());"#)]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.shared.map.is_empty()
    }

    /// Removes every entry.
    ///
    #[doc = example!(hash, r#"table.insert(1, "one".to_owned());
table.clear();
assert!(table.is_empty());"#)]
    pub fn clear(&self) {
        self.shared.map.clear();
    }
}

impl<K, V> Table<K, V> {
    /// The table's identity, the same across every crash and transfer (see [`TableId`]).
    ///
    #[doc = example!(hash, r#"assert_eq!(table.id(), table.clone().id());"#)]
    #[must_use]
    pub fn id(&self) -> TableId {
        self.shared.meta.id
    }

    /// The table's name in its branch.
    ///
    #[doc = example!(hash, r#"assert_eq!(table.name(), "names");"#)]
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.meta.name
    }

    /// What other tasks may do with the table.
    ///
    #[doc = example!(hash, r#"assert_eq!(table.access(), peeper::Access::Protected);"#)]
    #[must_use]
    pub fn access(&self) -> Access {
        self.shared.meta.access
    }

    /// `false` once the branch that owned the table has ended (the table was then emptied, and
    /// this handle is all that is left of it).
    ///
    #[doc = example!(hash, r#"assert!(table.is_attached());"#)]
    #[must_use]
    pub fn is_attached(&self) -> bool {
        self.shared.meta.is_attached()
    }

    /// Whether two handles are handles on the same table (the same allocation, as
    /// [`Arc::ptr_eq`]).
    ///
    #[doc = example!(hash, r#"assert!(peeper::Table::same(&table, &table.clone()));"#)]
    #[must_use]
    pub fn same(this: &Self, other: &Self) -> bool {
        Arc::ptr_eq(&this.shared, &other.shared)
    }
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        Table {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K, V> fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_meta(f, "Table", &self.shared.meta)
    }
}
