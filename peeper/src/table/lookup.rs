//! Lookup: another server's table, by the server's name and the table's name ([`table`]).

use std::hash::Hash;
use std::sync::Arc;

use crossbeam_skiplist::SkipMap;
use dashmap::DashMap;

use super::{Access, AnyTable, Map, OrderedTable, ReadOnly, ReadWrite, Shared, Table, TableError};
use crate::Server;

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
        .existing_resources()
        .and_then(|resources| resources.tables().find(table))
        .ok_or_else(|| TableError::NotFound {
            server: server.to_owned(),
            table: table.to_owned(),
        })?;
    T::from_found(sealed::Found {
        table: found,
        name: table.to_owned(),
    })
}
