//! Kept tables: concurrent maps that a branch keeps across its crashes, the counterpart of ETS
//! tables whose heir is the keeper.
//!
//! A worker gets a table from its context ([`Context::table`](crate::Context::table)); the table
//! belongs to the branch, not to the worker, so every later incarnation gets the very same table
//! back (the same allocation, never a copy), whatever crashed and however often, and a
//! [`transfer`](crate::transfer) moves it with the branch. Other tasks reach a table by the
//! server's name and the table's name ([`table`]), as far as its [`Access`] allows.
//!
//! A write is a write: a handler that writes to a table and then panics has still written (ETS
//! does not roll back either). Only the *state* goes back to the last completed handler's.
//!
//! Hash tables are [`dashmap::DashMap`]s and ordered tables are
//! [`crossbeam_skiplist::SkipMap`]s; see the book's chapter on kept resources for the benchmark
//! that chose them.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::ops::{Deref, RangeBounds};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_skiplist::SkipMap;
use dashmap::DashMap;

use crate::Server;

/// Builds the example of a handle's method: `$body` runs with `table` (a [`Table<u64, String>`]
/// or an [`OrderedTable<u64, String>`] of a running server, empty) or `names` (a [`ReadOnly`] or
/// [`ReadWrite`] handle looked up from outside, on a table holding `1 => "one"` and
/// `2 => "two"`).
macro_rules! example {
    (@owner $method:literal, $handle:literal, $body:literal) => {
        concat!(
            "```\n",
            "# #[derive(Clone)] struct Owner;\n",
            "# #[peeper::server] impl Owner {\n",
            "#     #[call] fn table(&self, ctx: &mut peeper::Context<Self>) -> peeper::", $handle, "<u64, String> {\n",
            "#         ctx.", $method, "(\"names\").expect(\"a table\")\n",
            "#     }\n",
            "# }\n",
            "# #[tokio::main(flavor = \"current_thread\")] async fn main() -> Result<(), Box<dyn std::error::Error>> {\n",
            "# let table = Owner::start(Owner).await?.table().await?;\n",
            $body,
            "\n# Ok(()) }\n```",
        )
    };
    (@outside $method:literal, $access:literal, $handle:literal, $body:literal) => {
        concat!(
            "```\n",
            "# #[derive(Clone)] struct Owner;\n",
            "# #[peeper::server] impl Owner {\n",
            "#     #[init] fn init(&mut self, ctx: &mut peeper::Context<Self>) {\n",
            "#         let names = ctx.", $method, "::<u64, String>(\"names\", peeper::Access::", $access, ").expect(\"a table\");\n",
            "#         names.insert(1, \"one\".to_owned());\n",
            "#         names.insert(2, \"two\".to_owned());\n",
            "#     }\n",
            "# }\n",
            "# #[tokio::main(flavor = \"current_thread\")] async fn main() -> Result<(), Box<dyn std::error::Error>> {\n",
            "# let _owner = Owner::builder(Owner).name(\"owner\").start().await?;\n",
            "# let names: peeper::", $handle, " = peeper::table::<Owner, _>(\"owner\", \"names\")?;\n",
            $body,
            "\n# Ok(()) }\n```",
        )
    };
    (hash, $body:literal) => { example!(@owner "table", "Table", $body) };
    (ordered, $body:literal) => { example!(@owner "ordered_table", "OrderedTable", $body) };
    (read hash, $body:literal) => {
        example!(@outside "table_with", "Protected", "ReadOnly<peeper::Table<u64, String>>", $body)
    };
    (write hash, $body:literal) => {
        example!(@outside "table_with", "Public", "ReadWrite<peeper::Table<u64, String>>", $body)
    };
    (read ordered, $body:literal) => {
        example!(@outside "ordered_table_with", "Protected", "ReadOnly<peeper::OrderedTable<u64, String>>", $body)
    };
    (write ordered, $body:literal) => {
        example!(@outside "ordered_table_with", "Public", "ReadWrite<peeper::OrderedTable<u64, String>>", $body)
    };
}

/// Who may use a table besides the worker of the branch that owns it, as ETS's access levels.
///
/// The worker always reads and writes its own tables. The level decides what other tasks get
/// when they look a table up with [`table`] (by the server's registered name). A handle the
/// worker hands out itself (in a reply, say) is a capability: it carries the worker's rights.
///
/// ```
/// assert_eq!(peeper::Access::default(), peeper::Access::Protected);   // as ETS
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Access {
    /// Only the worker: lookups fail with [`TableError::Private`].
    Private,
    /// Others may read, with a [`ReadOnly`] handle (the default, as in ETS).
    #[default]
    Protected,
    /// Others may read and write, with a [`ReadWrite`] handle (or read with a [`ReadOnly`] one).
    Public,
}

/// A table's identity: unique in the process, and the same for the table's whole life, across
/// every crash and transfer of its branch. Two handles with the same id are handles on the same
/// map, not copies.
///
#[doc = example!(hash, r#"let id: peeper::TableId = table.id();
assert_eq!(table.clone().id(), id);               // a clone is the same table
assert!(id.to_string().starts_with("table#"));"#)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId(u64);

impl TableId {
    fn next() -> TableId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TableId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "table#{}", self.0)
    }
}

/// Why a table could not be had, or used.
///
/// ```
/// let err = peeper::TableError::Private { table: "sessions".into() };
/// assert_eq!(err.to_string(), "table `sessions` is private to its server's worker");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// [`table`]: no running server of that type is registered under that name.
    #[error("no running server of this type is named `{server}`")]
    ServerNotFound {
        /// The server name looked up.
        server: String,
    },
    /// [`table`]: the server has no table of that name (it has not created it yet, or the
    /// branch has ended and its tables with it).
    #[error("server `{server}` has no table named `{table}`")]
    NotFound {
        /// The server name.
        server: String,
        /// The table name.
        table: String,
    },
    /// The name holds a table of other key or value types, or of the other kind (hash or
    /// ordered), than the handle asked for.
    #[error("table `{table}` is a `{found}`, not a `{expected}`")]
    WrongType {
        /// The table name.
        table: String,
        /// The handle asked for.
        expected: &'static str,
        /// The handle the table was created with.
        found: &'static str,
    },
    /// [`table`]: the table is [`Access::Private`].
    #[error("table `{table}` is private to its server's worker")]
    Private {
        /// The table name.
        table: String,
    },
    /// [`table`]: a [`ReadWrite`] handle was asked of a table that is only
    /// [`Access::Protected`]; a [`ReadOnly`] one is allowed.
    #[error("table `{table}` is protected: other tasks may read it (`ReadOnly`), not write it")]
    ReadOnly {
        /// The table name.
        table: String,
    },
    /// [`Context::table_with`](crate::Context::table_with): the table exists with another
    /// access level. The first call decides; later ones must ask for the same.
    #[error("table `{table}` was created {existing:?}, not {requested:?}")]
    AccessMismatch {
        /// The table name.
        table: String,
        /// The level it was created with.
        existing: Access,
        /// The level asked for.
        requested: Access,
    },
    /// The branch that owned the table has ended: the table was emptied and detached, and a
    /// [`ReadOnly`] or [`ReadWrite`] handle on it refuses every operation.
    #[error("the branch that owned table `{table}` has ended")]
    BranchEnded {
        /// The table name.
        table: String,
    },
}

/// What every table carries besides its map.
pub(crate) struct Meta {
    id: TableId,
    name: Box<str>,
    pub(crate) access: Access,
    /// The type name of the owner's handle (`Table<K, V>`), for [`TableError::WrongType`].
    pub(crate) handle_type: &'static str,
    /// Set when the branch ends; outside handles check it before every operation.
    ended: AtomicBool,
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
    fn is_attached(&self) -> bool {
        // SeqCst pairs with the store in `end`: see `ReadWrite::write`.
        !self.ended.load(Ordering::SeqCst)
    }

    #[inline]
    fn check(&self) -> Result<(), TableError> {
        if self.is_attached() {
            Ok(())
        } else {
            Err(self.ended_error())
        }
    }

    #[cold]
    #[inline(never)]
    fn ended_error(&self) -> TableError {
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
    meta: Meta,
    map: M,
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

// ---------------------------------------------------------------------------------------------
// Hash tables
// ---------------------------------------------------------------------------------------------

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
    shared: Arc<Shared<DashMap<K, V>>>,
}

impl<K, V> Table<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    pub(crate) fn open(
        resources: &crate::resources::Resources,
        name: &str,
        access: Access,
    ) -> Result<Self, TableError> {
        let shared =
            resources.table(name, access, std::any::type_name::<Self>(), |meta| Shared {
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

fn debug_meta(f: &mut fmt::Formatter<'_>, handle: &str, meta: &Meta) -> fmt::Result {
    f.debug_struct(handle)
        .field("name", &meta.name)
        .field("id", &meta.id)
        .field("access", &meta.access)
        .field("attached", &meta.is_attached())
        .finish_non_exhaustive()
}

// ---------------------------------------------------------------------------------------------
// Ordered tables
// ---------------------------------------------------------------------------------------------

/// A kept ordered table (an ETS `ordered_set`): the worker's handle, from
/// [`Context::ordered_table`](crate::Context::ordered_table).
///
/// Everything [`Table`] is (kept across crashes, moved by transfers, cheap to clone, usable from
/// any thread), sorted by key, with range queries. It is lock-free: no method waits for another,
/// and the closures it runs may use the table. Removed entries are freed once no reader can be
/// looking at them (epoch-based reclamation), not always at once.
///
/// ```
/// #[derive(Clone, Default)]
/// pub struct Scores;
///
/// #[peeper::server]
/// impl Scores {
///     #[cast]
///     fn record(&self, score: u64, player: String, ctx: &mut peeper::Context<Self>) -> Result<(), peeper::TableError> {
///         ctx.ordered_table::<u64, String>("scores")?.insert(score, player);
///         Ok(())
///     }
///
///     #[call]
///     fn best(&self, ctx: &mut peeper::Context<Self>) -> Option<(u64, String)> {
///         ctx.ordered_table::<u64, String>("scores").ok()?.last()
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let scores = Scores::start(Scores).await?;
/// scores.record(30, "ada".to_owned())?;
/// scores.record(50, "grace".to_owned())?;
/// assert_eq!(scores.best().await?, Some((50, "grace".to_owned())));
/// # Ok(()) }
/// ```
pub struct OrderedTable<K, V> {
    shared: Arc<Shared<SkipMap<K, V>>>,
}

impl<K, V> OrderedTable<K, V>
where
    K: Ord + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    pub(crate) fn open(
        resources: &crate::resources::Resources,
        name: &str,
        access: Access,
    ) -> Result<Self, TableError> {
        let shared =
            resources.table(name, access, std::any::type_name::<Self>(), |meta| Shared {
                meta,
                map: SkipMap::new(),
            })?;
        Ok(OrderedTable { shared })
    }

    /// The value for `key`, cloned.
    ///
    #[doc = example!(ordered, r#"table.insert(1, "one".to_owned());
assert_eq!(table.get(&1), Some("one".to_owned()));
assert_eq!(table.get(&2), None);"#)]
    #[must_use]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        V: Clone,
    {
        self.shared.map.get(key).map(|entry| entry.value().clone())
    }

    /// Runs `read` on the value for `key` in place, without cloning it, and returns what it
    /// returns.
    ///
    #[doc = example!(ordered, r#"table.insert(1, "one".to_owned());
assert_eq!(table.get_with(&1, |name| name.len()), Some(3));"#)]
    pub fn get_with<Q, R>(&self, key: &Q, read: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.shared.map.get(key).map(|entry| read(entry.value()))
    }

    /// Whether the table holds `key`.
    ///
    #[doc = example!(ordered, r#"table.insert(1, "one".to_owned());
assert!(table.contains_key(&1));"#)]
    #[must_use]
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.shared.map.contains_key(key)
    }

    /// Inserts `value` under `key`, replacing any value it had.
    ///
    /// Unlike [`Table::insert`] it does not return the replaced value: the skip list swaps the
    /// entry in one step and hands back only the new one. [`remove`](OrderedTable::remove) first
    /// if you need the old value.
    ///
    #[doc = example!(ordered, r#"table.insert(1, "one".to_owned());
table.insert(1, "uno".to_owned());
assert_eq!(table.get(&1), Some("uno".to_owned()));"#)]
    pub fn insert(&self, key: K, value: V) {
        self.shared.map.insert(key, value);
    }

    /// Removes `key`, and returns its value, if any.
    ///
    #[doc = example!(ordered, r#"table.insert(1, "one".to_owned());
assert_eq!(table.remove(&1), Some("one".to_owned()));
assert_eq!(table.remove(&1), None);"#)]
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        V: Clone,
    {
        self.shared
            .map
            .remove(key)
            .map(|entry| entry.value().clone())
    }

    /// The entry with the smallest key, cloned.
    ///
    #[doc = example!(ordered, r#"table.insert(2, "two".to_owned());
table.insert(1, "one".to_owned());
assert_eq!(table.first(), Some((1, "one".to_owned())));"#)]
    #[must_use]
    pub fn first(&self) -> Option<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        self.shared.map.front().map(|entry| cloned(&entry))
    }

    /// The entry with the largest key, cloned.
    ///
    #[doc = example!(ordered, r#"table.insert(2, "two".to_owned());
table.insert(1, "one".to_owned());
assert_eq!(table.last(), Some((2, "two".to_owned())));"#)]
    #[must_use]
    pub fn last(&self) -> Option<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        self.shared.map.back().map(|entry| cloned(&entry))
    }

    /// Removes and returns the entry with the smallest key: a queue or an expiry list.
    ///
    #[doc = example!(ordered, r#"table.insert(2, "two".to_owned());
table.insert(1, "one".to_owned());
assert_eq!(table.pop_first(), Some((1, "one".to_owned())));
assert_eq!(table.len(), 1);"#)]
    pub fn pop_first(&self) -> Option<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        self.shared.map.pop_front().map(|entry| cloned(&entry))
    }

    /// Removes and returns the entry with the largest key.
    ///
    #[doc = example!(ordered, r#"table.insert(2, "two".to_owned());
table.insert(1, "one".to_owned());
assert_eq!(table.pop_last(), Some((2, "two".to_owned())));"#)]
    pub fn pop_last(&self) -> Option<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        self.shared.map.pop_back().map(|entry| cloned(&entry))
    }

    /// The entries whose keys are in `range`, cloned, in key order.
    ///
    #[doc = example!(ordered, r#"for (n, name) in [(1, "one"), (2, "two"), (3, "three")] {
    table.insert(n, name.to_owned());
}
assert_eq!(table.range(2..), vec![(2, "two".to_owned()), (3, "three".to_owned())]);"#)]
    #[must_use]
    pub fn range<Q, R>(&self, range: R) -> Vec<(K, V)>
    where
        K: Borrow<Q> + Clone,
        V: Clone,
        R: RangeBounds<Q>,
        Q: Ord + ?Sized,
    {
        self.shared.map.range(range).map(|e| cloned(&e)).collect()
    }

    /// Runs `visit` on every entry, in key order. Entries written meanwhile may or may not be
    /// visited.
    ///
    #[doc = example!(ordered, r#"table.insert(2, "two".to_owned());
table.insert(1, "one".to_owned());
let mut names = Vec::new();
table.for_each(|_, name| names.push(name.clone()));
assert_eq!(names, ["one", "two"]);"#)]
    pub fn for_each(&self, mut visit: impl FnMut(&K, &V)) {
        for entry in self.shared.map.iter() {
            visit(entry.key(), entry.value());
        }
    }

    /// Every entry, cloned, in key order.
    ///
    #[doc = example!(ordered, r#"table.insert(1, "one".to_owned());
assert_eq!(table.to_vec(), vec![(1, "one".to_owned())]);"#)]
    #[must_use]
    pub fn to_vec(&self) -> Vec<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        self.shared.map.iter().map(|e| cloned(&e)).collect()
    }

    /// How many entries the table holds.
    ///
    #[doc = example!(ordered, r#"table.insert(1, "one".to_owned());
assert_eq!(table.len(), 1);"#)]
    #[must_use]
    pub fn len(&self) -> usize {
        self.shared.map.len()
    }

    /// Whether the table is empty.
    ///
    #[doc = example!(ordered, r#"assert!(table.is_empty());"#)]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.shared.map.is_empty()
    }

    /// Removes every entry.
    ///
    #[doc = example!(ordered, r#"table.insert(1, "one".to_owned());
table.clear();
assert!(table.is_empty());"#)]
    pub fn clear(&self) {
        self.shared.map.clear();
    }
}

impl<K, V> OrderedTable<K, V> {
    /// The table's identity, the same across every crash and transfer (see [`TableId`]).
    ///
    #[doc = example!(ordered, r#"assert_eq!(table.id(), table.clone().id());"#)]
    #[must_use]
    pub fn id(&self) -> TableId {
        self.shared.meta.id
    }

    /// The table's name in its branch.
    ///
    #[doc = example!(ordered, r#"assert_eq!(table.name(), "names");"#)]
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.meta.name
    }

    /// What other tasks may do with the table.
    ///
    #[doc = example!(ordered, r#"assert_eq!(table.access(), peeper::Access::Protected);"#)]
    #[must_use]
    pub fn access(&self) -> Access {
        self.shared.meta.access
    }

    /// `false` once the branch that owned the table has ended.
    ///
    #[doc = example!(ordered, r#"assert!(table.is_attached());"#)]
    #[must_use]
    pub fn is_attached(&self) -> bool {
        self.shared.meta.is_attached()
    }

    /// Whether two handles are handles on the same table.
    ///
    #[doc = example!(ordered, r#"assert!(peeper::OrderedTable::same(&table, &table.clone()));"#)]
    #[must_use]
    pub fn same(this: &Self, other: &Self) -> bool {
        Arc::ptr_eq(&this.shared, &other.shared)
    }
}

fn cloned<K: Clone, V: Clone>(entry: &crossbeam_skiplist::map::Entry<'_, K, V>) -> (K, V) {
    (entry.key().clone(), entry.value().clone())
}

impl<K, V> Clone for OrderedTable<K, V> {
    fn clone(&self) -> Self {
        OrderedTable {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K, V> fmt::Debug for OrderedTable<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_meta(f, "OrderedTable", &self.shared.meta)
    }
}

// ---------------------------------------------------------------------------------------------
// Handles for other tasks
// ---------------------------------------------------------------------------------------------

/// A read-only handle on another server's table, from [`table`]: for a
/// [`Protected`](Access::Protected) or [`Public`](Access::Public) table. `T` is the kind,
/// [`Table<K, V>`] or [`OrderedTable<K, V>`].
///
/// Every operation fails with [`TableError::BranchEnded`] once the owning branch has ended
/// (the table is then gone: look the server up again if another was started under its name).
/// Until then, it reads the live table, as the worker writes it.
///
#[doc = example!(read hash, r#"// `names: ReadOnly<Table<u64, String>>`
assert_eq!(names.get(&1)?, Some("one".to_owned()));
assert_eq!(names.len()?, 2);"#)]
pub struct ReadOnly<T> {
    table: T,
}

/// A read-write handle on another server's [`Public`](Access::Public) table, from [`table`]. It
/// reads as a [`ReadOnly`] does (it dereferences to one), and writes.
///
#[doc = example!(write hash, r#"// `names: ReadWrite<Table<u64, String>>`
names.insert(3, "three".to_owned())?;
assert_eq!(names.get(&3)?, Some("three".to_owned()));"#)]
pub struct ReadWrite<T> {
    read: ReadOnly<T>,
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
    /// [`AnyTable::end`] emptied the table, where nobody would ever read it but it would stay
    /// until the last handle drops. Empty it again, and say so. (The flag is stored before the
    /// table is emptied and read after the write, both `SeqCst`: a write the emptying missed
    /// sees the flag.)
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

// ---------------------------------------------------------------------------------------------
// Lookup
// ---------------------------------------------------------------------------------------------

mod sealed {
    use std::sync::Arc;

    /// How each handle type is made from a table found by name.
    pub trait Sealed: Sized {
        fn from_found(found: Found) -> Result<Self, super::TableError>;
    }

    /// A table found by name, of unknown kind and types. Public in a private module: nameable by
    /// no one outside the crate.
    pub struct Found {
        pub(crate) table: Arc<dyn super::AnyTable>,
        pub(crate) name: String,
    }

    impl std::fmt::Debug for Found {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Found")
                .field("name", &self.name)
                .finish_non_exhaustive()
        }
    }
}

/// The handles [`table`] can return: [`ReadOnly`] and [`ReadWrite`] of [`Table`] or
/// [`OrderedTable`]. Sealed: implemented by those four only.
///
#[doc = example!(read hash, r#"fn lookup<T: peeper::Lookup>(table: &str) -> Result<T, peeper::TableError> {
    peeper::table::<Owner, T>("owner", table)
}
let names: peeper::ReadOnly<peeper::Table<u64, String>> = lookup("names")?;"#)]
pub trait Lookup: sealed::Sealed {}

/// Checks `found`'s access against what the handle needs, then its kind and types.
fn downcast<M: Map>(
    found: sealed::Found,
    write: bool,
    expected: &'static str,
) -> Result<Arc<Shared<M>>, TableError> {
    let sealed::Found { table, name } = found;
    let meta = table.meta();
    match meta.access {
        Access::Private => return Err(TableError::Private { table: name }),
        Access::Protected if write => return Err(TableError::ReadOnly { table: name }),
        Access::Protected | Access::Public => {}
    }
    let found_type = meta.handle_type;
    let any: Arc<dyn std::any::Any + Send + Sync> = table;
    any.downcast::<Shared<M>>()
        .map_err(|_| TableError::WrongType {
            table: name,
            expected,
            found: found_type,
        })
}

macro_rules! lookup {
    ($kind:ident, $map:ident, $($bound:tt)+) => {
        impl<K, V> sealed::Sealed for ReadOnly<$kind<K, V>>
        where
            K: $($bound)+ + Send + Sync + 'static,
            V: Send + Sync + 'static,
        {
            fn from_found(found: sealed::Found) -> Result<Self, TableError> {
                let shared = downcast::<$map<K, V>>(found, false, std::any::type_name::<$kind<K, V>>())?;
                Ok(ReadOnly { table: $kind { shared } })
            }
        }

        impl<K, V> sealed::Sealed for ReadWrite<$kind<K, V>>
        where
            K: $($bound)+ + Send + Sync + 'static,
            V: Send + Sync + 'static,
        {
            fn from_found(found: sealed::Found) -> Result<Self, TableError> {
                let shared = downcast::<$map<K, V>>(found, true, std::any::type_name::<$kind<K, V>>())?;
                Ok(ReadWrite { read: ReadOnly { table: $kind { shared } } })
            }
        }

        impl<K, V> Lookup for ReadOnly<$kind<K, V>>
        where
            K: $($bound)+ + Send + Sync + 'static,
            V: Send + Sync + 'static,
        {
        }

        impl<K, V> Lookup for ReadWrite<$kind<K, V>>
        where
            K: $($bound)+ + Send + Sync + 'static,
            V: Send + Sync + 'static,
        {
        }
    };
}

lookup!(Table, DashMap, Hash + Eq);
lookup!(OrderedTable, SkipMap, Ord);

/// Another server's table, by the server's registered name and the table's name, the
/// counterpart of using a named ETS table from another process.
///
/// The handle type `T` says what is wanted, and the table's [`Access`] whether it is allowed:
/// [`ReadOnly<Table<K, V>>`](ReadOnly) reads a protected or public hash table,
/// [`ReadWrite<Table<K, V>>`](ReadWrite) reads and writes a public one, and the same with
/// [`OrderedTable<K, V>`]. The handle stays valid across the server's crashes, restarts and
/// transfers (it is the same table), and refuses every operation once the branch has ended.
///
/// # Errors
/// [`TableError::ServerNotFound`], [`NotFound`](TableError::NotFound),
/// [`Private`](TableError::Private), [`ReadOnly`](TableError::ReadOnly) (a `ReadWrite` handle of
/// a protected table), [`WrongType`](TableError::WrongType).
///
/// ```
/// use peeper::{Access, ReadOnly, ReadWrite, Table, TableError};
///
/// #[derive(Clone, Default)]
/// pub struct Stats;
///
/// #[peeper::server]
/// impl Stats {
///     #[init]
///     fn init(&mut self, ctx: &mut peeper::Context<Self>) -> Result<(), TableError> {
///         ctx.table_with::<String, u64>("hits", Access::Public)?;
///         ctx.table_with::<String, u64>("totals", Access::Protected)?;
///         ctx.table_with::<String, u64>("secrets", Access::Private)?;
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let _stats = Stats::builder(Stats).name("stats").start().await?;
///
/// let hits: ReadWrite<Table<String, u64>> = peeper::table::<Stats, _>("stats", "hits")?;
/// hits.insert("/".to_owned(), 1)?;
///
/// let totals: ReadOnly<Table<String, u64>> = peeper::table::<Stats, _>("stats", "totals")?;
/// assert_eq!(totals.get("/")?, None);
///
/// let refused = peeper::table::<Stats, ReadWrite<Table<String, u64>>>("stats", "totals");
/// assert!(matches!(refused, Err(TableError::ReadOnly { .. })));
/// let refused = peeper::table::<Stats, ReadOnly<Table<String, u64>>>("stats", "secrets");
/// assert!(matches!(refused, Err(TableError::Private { .. })));
/// let refused = peeper::table::<Stats, ReadOnly<Table<u64, u64>>>("stats", "hits");
/// assert!(matches!(refused, Err(TableError::WrongType { .. })));
/// # Ok(()) }
/// ```
pub fn table<S: Server, T: Lookup>(server: &str, table: &str) -> Result<T, TableError> {
    let client = crate::whereis::<S>(server).ok_or_else(|| TableError::ServerNotFound {
        server: server.to_owned(),
    })?;
    let found = client
        .branch()
        .resources()
        .find(table)
        .ok_or_else(|| TableError::NotFound {
            server: server.to_owned(),
            table: table.to_owned(),
        })?;
    T::from_found(sealed::Found {
        table: found,
        name: table.to_owned(),
    })
}
