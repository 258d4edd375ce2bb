//! [`Postgres`]: a backend in a PostgreSQL database that the nodes of a cluster share, with one
//! owner per server (leases) and fencing. Needs the `postgres` feature.

mod backend;
mod connect;
#[cfg(feature = "grpc")]
mod directory;
mod handoff;
mod leases;
mod notify;
mod sql;
#[cfg(feature = "postgres-tls")]
mod tls;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use self::connect::PostgresBuilder;
use self::connect::Redacted;
#[cfg(feature = "grpc")]
pub(crate) use self::directory::Route;
pub(crate) use self::notify::Listening;
use self::sql::Sql;
#[cfg(feature = "postgres-tls")]
pub use self::tls::PostgresTls;
use super::{BoxFuture, Claim, Key, NodeId, Records, Store, StoreError, Write};

/// The default lease: how long a node's claim on a server lasts without renewal.
const DEFAULT_LEASE: Duration = Duration::from_secs(10);
const DEFAULT_POOL_SIZE: usize = 16;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A backend on PostgreSQL, shared by the nodes of a cluster: state, leases and fencing in one
/// proven engine that you already operate.
///
/// - **State**: one row per server (`peeper_states`), written by the group-commit writer of
///   [`Storage`](super::Storage) in one statement per round, whatever the number of servers.
/// - **Ownership**: a lease row per server (`peeper_leases`): the owning node, an expiry, and a
///   **fencing epoch** taken from a sequence at every claim. The runtime claims a server's key
///   before it loads the state (at start, at revival) and releases it after its last write.
///   Starting a server that another live node owns fails with
///   [`StoreError::OwnedElsewhere`], naming the node; [`owner`](Postgres::owner) says who owns
///   a key.
/// - **Renewal**: one `UPDATE` per renewal period (a third of the lease) extends every lease of
///   this handle, however many; a lease found taken by another node is reported to the
///   [`Node`](crate::cluster::Node), which stops the stale server.
/// - **Fencing**: every write carries the epoch its claim got, and applies only if the lease
///   still holds that epoch (the lease row is locked `FOR KEY SHARE` for the write and
///   `FOR UPDATE` by a claim, so a claim and a write never interleave, while renewals never
///   wait for writes). A node paused past its lease (a long GC pause, `SIGSTOP`, a
///   partition) cannot overwrite the state of the node that took over: its write changes nothing
///   and fails with [`StoreError::Fenced`], and the server ends with
///   [`Exit::Fenced`](crate::Exit::Fenced).
/// - **Schema**: created and migrated by [`connect`](PostgresBuilder::connect), under a
///   transaction-scoped advisory lock so that nodes starting together do not race
///   (`peeper_schema_version` records the version). Use [`schema`](PostgresBuilder::schema) to
///   keep several applications apart in one database.
/// - **Connections**: a pool ([deadpool](https://docs.rs/deadpool-postgres)); the password is
///   never logged nor shown by `Debug`; TLS with the `postgres-tls` feature.
///
/// Expiry is measured by PostgreSQL's clock only, so the nodes' clocks do not matter.
///
/// A write needs its key's lease: the writes of a server started on this node with this store
/// go through; [`Storage::delete`](super::Storage::delete) of a key this node does not hold is
/// refused with [`StoreError::Fenced`].
///
/// This example needs a running PostgreSQL, so it is compiled but not run (the tests get one
/// from `scripts/with-postgres`):
///
/// ```no_run
/// use peeper::store::{NodeId, Postgres, Storage};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), peeper::store::StoreError> {
/// let postgres = Postgres::builder("postgres://app:secret@db.internal/app")
///     .node(NodeId::new("web-1"))
///     .connect()
///     .await?;
/// assert!(!format!("{postgres:?}").contains("secret"));
/// let storage = Storage::new(postgres);
/// # drop(storage); Ok(()) }
/// ```
#[derive(Clone)]
pub struct Postgres {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: Tls,
    sql: Sql,
    schema: String,
    node: NodeId,
    /// This handle's own id in the lease rows: see `sql.rs`.
    session: String,
    lease: Duration,
    leases: Mutex<Leases>,
    lost: broadcast::Sender<Key>,
    renewals: AtomicU64,
    renewer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(renewer) = self
            .renewer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            renewer.abort();
        }
    }
}

/// What this handle holds, claims and gives away.
#[derive(Default)]
struct Leases {
    held: HashMap<Key, Held>,
    /// Claims in flight, each with what tells a second claim of the same key by this node that
    /// it has ended: that claim waits for it, then is refused if the first holds the key (a
    /// second claim would fence the first), or goes ahead if the first was given up.
    claiming: HashMap<Key, Arc<Notify>>,
    /// Releases that failed (the database was unreachable): retried at every renewal.
    unreleased: Vec<(Key, i64, Option<String>)>,
    /// Set while the node hands everything off: every release marks the lease for a taker.
    hand_off_all: Option<String>,
    /// Keys being transferred, with their target.
    hand_off: HashMap<Key, String>,
    /// Keys released for a handoff and not announced yet, with their target (`*`: any node).
    handed_off: Vec<(Key, String)>,
}

struct Held {
    epoch: i64,
    since: Instant,
    releasing: bool,
}

#[derive(Clone)]
enum Tls {
    Off,
    #[cfg(feature = "postgres-tls")]
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

impl Postgres {
    /// This node's id.
    #[must_use]
    pub fn node(&self) -> &NodeId {
        &self.inner.node
    }

    /// The schema the tables are in.
    #[must_use]
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// How long a lease lasts without renewal.
    #[must_use]
    pub fn lease(&self) -> Duration {
        self.inner.lease
    }

    /// The node that owns `key` now (its lease is live), if any: `whereis` across the cluster.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    pub async fn owner(&self, key: &Key) -> Result<Option<NodeId>, StoreError> {
        Ok(self
            .recorded_owner(key)
            .await?
            .and_then(|(node, live)| live.then_some(node)))
    }

    /// The keys this handle holds a lease on, sorted.
    #[must_use]
    pub fn owned(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = self.leases().held.keys().cloned().collect();
        keys.sort();
        keys
    }

    // ---- internals --------------------------------------------------------------------------

    fn leases(&self) -> MutexGuard<'_, Leases> {
        // Only map and vector operations run under the lock.
        self.inner
            .leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(backend)
    }

    /// The recorded owner of `key` and whether its lease is live.
    async fn recorded_owner(&self, key: &Key) -> Result<Option<(NodeId, bool)>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.inner.sql.owner)
            .await
            .map_err(backend)?;
        let row = client
            .query_opt(&statement, &[&key.kind, &key.name])
            .await
            .map_err(backend)?;
        row.map(|row| Ok((NodeId::new(column::<String>(&row, 0)?), column(&row, 1)?)))
            .transpose()
    }
}

/// Column `index` of `row`. A column of an unexpected type (a schema changed by hand, another
/// program's table of the same name) is a typed error, never a panic.
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    index: usize,
) -> Result<T, StoreError> {
    row.try_get(index).map_err(|error| {
        StoreError::backend(format!(
            "postgres: unexpected column {index} in a row of peeper's tables: {error}"
        ))
    })
}

/// The key in columns `at` (kind) and `at + 1` (name) of `row`.
fn key_at(row: &tokio_postgres::Row, at: usize) -> Result<Key, StoreError> {
    Ok(Key::new(
        column::<String>(row, at)?,
        column::<String>(row, at + 1)?,
    ))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A [`StoreError::Backend`] with the whole chain of causes: the driver's own text is often only
/// "db error", with PostgreSQL's message in its source.
fn backend(error: impl std::error::Error) -> StoreError {
    StoreError::backend(format!("postgres: {}", with_causes(&error)))
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres")
            .field("server", &Redacted(&self.inner.config))
            .field("schema", &self.inner.schema)
            .field("node", &self.inner.node)
            .field("lease", &self.inner.lease)
            .field("tls", &!matches!(self.inner.tls, Tls::Off))
            .field("held", &self.leases().held.len())
            .finish_non_exhaustive()
    }
}

/// `error` and its causes, on one line (each cause that its outer text does not already
/// repeat): drivers often say only "db error" or "transport error", with the reason in a source.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
