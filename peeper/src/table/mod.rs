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

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

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

// After `example!`, which their docs use.
mod error;
mod hash;
mod lookup;
mod ordered;
mod outside;
mod registry;
mod shared;

pub use self::error::TableError;
pub use self::hash::Table;
pub use self::lookup::{Lookup, table};
pub use self::ordered::OrderedTable;
pub use self::outside::{ReadOnly, ReadWrite};
pub(crate) use self::registry::Tables;
use self::shared::{AnyTable, Map, Meta, Shared, debug_meta};

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
