//! Ordered tables: [`OrderedTable`], the worker's handle.

use std::borrow::Borrow;
use std::fmt;
use std::ops::RangeBounds;
use std::sync::Arc;

use crossbeam_skiplist::SkipMap;

use super::{Access, Shared, TableError, TableId, Tables, debug_meta};

/// A kept ordered table (an ETS `ordered_set`): the worker's handle, from
/// [`Context::ordered_table`](crate::Context::ordered_table).
///
/// Everything [`Table`](super::Table) is (kept across crashes, moved by transfers, cheap to clone,
/// usable from any thread), sorted by key, with range queries. It is lock-free: no method waits for
/// another, and the closures it runs may use the table. Removed entries are freed once no reader
/// can be looking at them (epoch-based reclamation), not always at once.
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
    pub(super) shared: Arc<Shared<SkipMap<K, V>>>,
}

impl<K, V> OrderedTable<K, V>
where
    K: Ord + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    pub(crate) fn open(tables: &Tables, name: &str, access: Access) -> Result<Self, TableError> {
        let shared = tables.table(name, access, std::any::type_name::<Self>(), |meta| Shared {
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
    /// Unlike [`Table::insert`](super::Table::insert) it does not return the replaced value: the
    /// skip list swaps the entry in one step and hands back only the new one.
    /// [`remove`](OrderedTable::remove) first if you need the old value.
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
