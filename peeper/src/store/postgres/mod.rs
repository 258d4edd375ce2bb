//! [`Postgres`]: a backend in a PostgreSQL database that the nodes of a cluster share, with one
//! owner per server (leases) and fencing. Needs the `postgres` feature.

mod notify;
mod sql;
#[cfg(feature = "postgres-tls")]
mod tls;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{Notify, broadcast, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::NoTls;
use tokio_postgres::config::{Host, SslMode};

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

/// How to connect a [`Postgres`] store: [`Postgres::builder`].
///
/// ```
/// use std::time::Duration;
/// use peeper::store::{NodeId, Postgres};
///
/// let builder = Postgres::builder("postgres://app:hunter2@db.internal:5432/app")
///     .node(NodeId::new("web-1"))
///     .schema("game")
///     .lease(Duration::from_secs(15))
///     .pool_size(8);
/// let shown = format!("{builder:?}");
/// assert!(shown.contains("db.internal") && !shown.contains("hunter2"));
/// ```
#[must_use = "a builder does nothing until `.connect().await`"]
pub struct PostgresBuilder {
    config: Result<tokio_postgres::Config, String>,
    node: Option<NodeId>,
    schema: String,
    lease: Duration,
    pool_size: usize,
    timeout: Duration,
    #[cfg(feature = "postgres-tls")]
    tls: Option<PostgresTls>,
}

impl Postgres {
    /// A builder for a store at `url` (`postgres://user:password@host:port/database`, or the
    /// `key=value` form libpq takes).
    pub fn builder(url: &str) -> PostgresBuilder {
        PostgresBuilder {
            // Only the error's kind is kept, never the text given: it may hold the password.
            config: tokio_postgres::Config::from_str(url)
                .map_err(|error| format!("postgres: the connection URL is invalid: {error}")),
            node: None,
            schema: "public".to_owned(),
            lease: DEFAULT_LEASE,
            pool_size: DEFAULT_POOL_SIZE,
            timeout: DEFAULT_TIMEOUT,
            #[cfg(feature = "postgres-tls")]
            tls: None,
        }
    }

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

    /// Extends every lease this handle holds, in one `UPDATE`, as the background renewal does
    /// every third of the lease; returns how many it extended. Leases found taken by another node
    /// are dropped and reported to [`lost`](Postgres::lost) subscribers.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    pub async fn renew(&self) -> Result<usize, StoreError> {
        let started = Instant::now();
        self.retry_releases().await;
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.inner.sql.renew)
            .await
            .map_err(backend)?;
        let rows = client
            .query(
                &statement,
                &[&self.inner.session, &millis(self.inner.lease)],
            )
            .await
            .map_err(backend)?;
        self.inner.renewals.fetch_add(1, Ordering::Relaxed);
        let renewed: HashMap<Key, i64> = rows
            .iter()
            .map(|row| Ok((key_at(row, 0)?, column(row, 2)?)))
            .collect::<Result<_, StoreError>>()?;
        let lost: Vec<Key> = {
            let mut leases = self.leases();
            let lost: Vec<Key> = leases
                .held
                .iter()
                .filter(|(key, held)| {
                    // Claimed after the renewal started: it may not have been there to renew.
                    !held.releasing
                        && held.since < started
                        && renewed.get(*key) != Some(&held.epoch)
                })
                .map(|(key, _)| key.clone())
                .collect();
            for key in &lost {
                leases.held.remove(key);
            }
            lost
        };
        for key in lost {
            tracing::warn!(%key, "lease lost to another node");
            let _ = self.inner.lost.send(key);
        }
        Ok(renewed.len())
    }

    /// How many renewal `UPDATE`s this handle has run: the renewal load is this over time,
    /// whatever the number of leases.
    #[must_use]
    pub fn renewals(&self) -> u64 {
        self.inner.renewals.load(Ordering::Relaxed)
    }

    /// The keys whose lease this handle found taken by another node, as it finds them.
    #[must_use]
    pub fn lost(&self) -> broadcast::Receiver<Key> {
        self.inner.lost.subscribe()
    }

    // ---- for `cluster::Node` ----------------------------------------------------------------

    /// Whether this handle holds the lease of `key`, or is claiming it.
    pub(crate) fn holds(&self, key: &Key) -> bool {
        let leases = self.leases();
        leases.held.contains_key(key) || leases.claiming.contains_key(key)
    }

    /// From now on, every release marks its lease for a node taking over (`*`), until
    /// [`stop_handing_off`](Self::stop_handing_off).
    pub(crate) fn hand_off_all(&self) {
        self.leases().hand_off_all = Some("*".to_owned());
    }

    pub(crate) fn stop_handing_off(&self) {
        self.leases().hand_off_all = None;
    }

    /// The next release of `key` marks it for `to`.
    pub(crate) fn hand_off(&self, key: &Key, to: &NodeId) {
        self.leases()
            .hand_off
            .insert(key.clone(), to.as_str().to_owned());
    }

    /// Forgets a [`hand_off`](Self::hand_off) that did not happen.
    pub(crate) fn cancel_hand_off(&self, key: &Key) {
        self.leases().hand_off.remove(key);
    }

    /// The keys released for a handoff to `target` (any node if `None`) and not announced yet.
    pub(crate) fn take_handed_off(&self, target: Option<&NodeId>) -> Vec<Key> {
        let target = target.map_or("*", NodeId::as_str);
        let mut leases = self.leases();
        let (taken, kept) = std::mem::take(&mut leases.handed_off)
            .into_iter()
            .partition(|(_, to)| to == target);
        leases.handed_off = kept;
        taken.into_iter().map(|(key, _)| key).collect()
    }

    /// Announces `keys`, released for a handoff, to `target` (any node taking over if `None`).
    pub(crate) async fn notify(
        &self,
        target: Option<&NodeId>,
        keys: &[Key],
    ) -> Result<usize, StoreError> {
        let payloads = notify::encode(target, keys);
        let client = self.client().await?;
        for payload in &payloads {
            client
                .execute(&self.inner.sql.notify, &[&self.inner.sql.channel, payload])
                .await
                .map_err(backend)?;
        }
        Ok(payloads.len())
    }

    /// A dedicated connection (outside the pool) that `LISTEN`s for handoffs.
    pub(crate) async fn listen(&self) -> Result<Listening, StoreError> {
        let config = &self.inner.config;
        let (client, payloads) = match &self.inner.tls {
            Tls::Off => {
                let (client, connection) = config.connect(NoTls).await.map_err(backend)?;
                (client, notify::forward(connection))
            }
            #[cfg(feature = "postgres-tls")]
            Tls::Rustls(tls) => {
                let (client, connection) = config.connect(tls.clone()).await.map_err(backend)?;
                (client, notify::forward(connection))
            }
        };
        client
            .batch_execute(&format!("LISTEN {}", self.inner.sql.channel))
            .await
            .map_err(backend)?;
        Ok(Listening {
            _client: client,
            payloads,
        })
    }

    /// Decodes a handoff payload: the target and the keys.
    pub(crate) fn decode(payload: &str) -> Option<(Option<NodeId>, Vec<Key>)> {
        notify::decode(payload)
    }

    /// Released leases of these kinds waiting for a taker: those for this node, and those for
    /// any node if `any`.
    pub(crate) async fn handoffs(&self, kinds: &[&str], any: bool) -> Result<Vec<Key>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.inner.sql.handoffs)
            .await
            .map_err(backend)?;
        let rows = client
            .query(&statement, &[&self.inner.node.as_str(), &any, &kinds])
            .await
            .map_err(backend)?;
        rows.iter().map(|row| key_at(row, 0)).collect()
    }

    /// Expired leases of these kinds (their owner stopped renewing), with their last owner;
    /// not those this handle holds itself (late renewals during an outage).
    pub(crate) async fn orphans(&self, kinds: &[&str]) -> Result<Vec<(Key, NodeId)>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.inner.sql.orphans)
            .await
            .map_err(backend)?;
        let rows = client.query(&statement, &[&kinds]).await.map_err(backend)?;
        let orphans = rows
            .iter()
            .map(|row| Ok((key_at(row, 0)?, NodeId::new(column::<String>(row, 2)?))))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let leases = self.leases();
        Ok(orphans
            .into_iter()
            .filter(|(key, _)| !leases.held.contains_key(key) && !leases.claiming.contains_key(key))
            .collect())
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

    async fn try_claim(&self, key: &Key) -> Result<i64, StoreError> {
        // A lease that expires or is released between the claim and the look at its owner is
        // claimed again.
        for _ in 0..3 {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(&self.inner.sql.claim)
                .await
                .map_err(backend)?;
            let row = client
                .query_opt(
                    &statement,
                    &[
                        &key.kind,
                        &key.name,
                        &self.inner.node.as_str(),
                        &self.inner.session,
                        &millis(self.inner.lease),
                    ],
                )
                .await
                .map_err(backend)?;
            drop(client);
            if let Some(row) = row {
                return column(&row, 0);
            }
            if let Some((node, true)) = self.recorded_owner(key).await? {
                return Err(StoreError::OwnedElsewhere {
                    key: key.clone(),
                    node,
                });
            }
        }
        Err(StoreError::backend(format!(
            "postgres: the lease of `{key}` kept changing hands; try again"
        )))
    }

    async fn release_lease(
        &self,
        key: &Key,
        epoch: i64,
        target: Option<&str>,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let released = match target {
            Some(target) => {
                let statement = client
                    .prepare_cached(&self.inner.sql.release_for_handoff)
                    .await
                    .map_err(backend)?;
                client
                    .execute(
                        &statement,
                        &[&key.kind, &key.name, &self.inner.session, &epoch, &target],
                    )
                    .await
            }
            None => {
                let statement = client
                    .prepare_cached(&self.inner.sql.release)
                    .await
                    .map_err(backend)?;
                client
                    .execute(
                        &statement,
                        &[&key.kind, &key.name, &self.inner.session, &epoch],
                    )
                    .await
            }
        };
        released.map(|rows| rows == 1).map_err(backend)
    }

    /// Gives up the lease of `key` (see [`Store::release`]).
    async fn release_now(&self, key: &Key) -> Result<(), StoreError> {
        let (epoch, target) = {
            let mut leases = self.leases();
            let target = leases
                .hand_off
                .remove(key)
                .or_else(|| leases.hand_off_all.clone());
            let Some(held) = leases.held.get_mut(key) else {
                // Not held (lost to another node, or never claimed): nothing to give up.
                return Ok(());
            };
            held.releasing = true;
            (held.epoch, target)
        };
        let released = self.release_lease(key, epoch, target.as_deref()).await;
        let mut leases = self.leases();
        if leases.held.get(key).is_some_and(|held| held.epoch == epoch) {
            leases.held.remove(key);
        }
        match released {
            Ok(true) => {
                if let Some(target) = target {
                    leases.handed_off.push((key.clone(), target));
                }
            }
            Ok(false) => {}
            Err(error) => {
                // Not held any more as far as this node is concerned; the renewal retries it.
                leases.unreleased.push((key.clone(), epoch, target));
                return Err(error);
            }
        }
        Ok(())
    }

    /// Forgets the claim on `key` at once, so that this node may claim it again right away, and
    /// releases its lease in the background (queued for the renewal's retry if that fails).
    fn abandon_key(&self, key: &Key) {
        let held = {
            let mut leases = self.leases();
            let Some(held) = leases.held.remove(key) else {
                return;
            };
            leases.unreleased.push((key.clone(), held.epoch, None));
            held
        };
        tracing::debug!(%key, epoch = held.epoch, "claim abandoned");
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let postgres = self.clone();
            runtime.spawn(async move { postgres.retry_releases().await });
        }
    }

    async fn retry_releases(&self) {
        let unreleased = std::mem::take(&mut self.leases().unreleased);
        for (key, epoch, target) in unreleased {
            match self.release_lease(&key, epoch, target.as_deref()).await {
                Ok(true) => {
                    if let Some(target) = target {
                        self.leases().handed_off.push((key, target));
                    }
                }
                Ok(false) => {}
                Err(_) => self.leases().unreleased.push((key, epoch, target)),
            }
        }
    }

    /// The epoch each write of `batch` is made under: the lease this handle holds on its key,
    /// if the write was made under that very claim (or under none). A write whose claim was given
    /// up or replaced gets -1, which no lease row has: it is refused.
    fn epochs(&self, batch: &[Write]) -> Vec<i64> {
        let leases = self.leases();
        batch
            .iter()
            .map(|write| {
                leases
                    .held
                    .get(&write.key)
                    .filter(|held| {
                        write
                            .claim
                            .is_none_or(|claim| i64::try_from(claim.epoch) == Ok(held.epoch))
                    })
                    .map_or(-1, |held| held.epoch)
            })
            .collect()
    }

    /// Applies the writes this session may make under the `epochs` of [`epochs`](Self::epochs);
    /// returns the keys applied.
    async fn write(
        &self,
        client: &impl GenericClient,
        batch: &[Write],
        epochs: &[i64],
    ) -> Result<HashSet<Key>, StoreError> {
        let kinds: Vec<&str> = batch.iter().map(|write| write.key.kind.as_str()).collect();
        let names: Vec<&str> = batch.iter().map(|write| write.key.name.as_str()).collect();
        let states: Vec<Option<&[u8]>> = batch.iter().map(|write| write.bytes.as_deref()).collect();
        let records = batch.iter().flat_map(|write| {
            write
                .retained
                .iter()
                .map(move |(id, record)| (&write.key, id.as_str(), record.as_deref()))
        });
        let (mut record_kinds, mut record_names, mut ids, mut bodies) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (key, id, record) in records {
            record_kinds.push(key.kind.as_str());
            record_names.push(key.name.as_str());
            ids.push(id);
            bodies.push(record);
        }
        let statement = client
            .prepare_cached(&self.inner.sql.write)
            .await
            .map_err(backend)?;
        let rows = client
            .query(
                &statement,
                &[
                    &kinds,
                    &names,
                    &states,
                    &epochs,
                    &self.inner.session,
                    &record_kinds,
                    &record_names,
                    &ids,
                    &bodies,
                ],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(|row| key_at(row, 0)).collect()
    }

    /// The writes of `batch` not in `applied`, each with its [`StoreError::Fenced`] naming the
    /// lease's owner now. The leases they were refused under are gone from this handle (a newer
    /// claim of the same key, made since, stays).
    async fn refusals(
        &self,
        batch: Vec<Write>,
        epochs: &[i64],
        applied: &HashSet<Key>,
    ) -> Result<Vec<(Key, StoreError)>, StoreError> {
        let refused: Vec<(Key, i64)> = batch
            .into_iter()
            .zip(epochs)
            .map(|(write, &epoch)| (write.key, epoch))
            .filter(|(key, _)| !applied.contains(key))
            .collect();
        if refused.is_empty() {
            return Ok(Vec::new());
        }
        {
            let mut leases = self.leases();
            for (key, epoch) in &refused {
                if leases
                    .held
                    .get(key)
                    .is_some_and(|held| held.epoch == *epoch)
                {
                    leases.held.remove(key);
                }
            }
        }
        let refused: Vec<Key> = refused.into_iter().map(|(key, _)| key).collect();
        let client = self.client().await?;
        let kinds: Vec<&str> = refused.iter().map(|key| key.kind.as_str()).collect();
        let names: Vec<&str> = refused.iter().map(|key| key.name.as_str()).collect();
        let rows = client
            .query(&self.inner.sql.owners, &[&kinds, &names])
            .await
            .map_err(backend)?;
        let mut owners = HashMap::new();
        for row in &rows {
            if let Some(owner) = column::<Option<String>>(row, 2)? {
                owners.insert(key_at(row, 0)?, NodeId::new(owner));
            }
        }
        Ok(refused
            .into_iter()
            .map(|key| {
                let owner = owners.remove(&key);
                tracing::warn!(%key, owner = ?owner, "write fenced: the lease is not this node's any more");
                let error = StoreError::Fenced {
                    key: key.clone(),
                    owner,
                };
                (key, error)
            })
            .collect())
    }
}

impl Store for Postgres {
    fn read<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(&self.inner.sql.read)
                .await
                .map_err(backend)?;
            let row = client
                .query_opt(&statement, &[&key.kind, &key.name])
                .await
                .map_err(backend)?;
            row.map(|row| column(&row, 0)).transpose()
        })
    }

    /// All or nothing: a batch with a write this node may not make is rolled back, and fails
    /// with that write's [`StoreError::Fenced`].
    fn commit(&self, batch: Vec<Write>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            let epochs = self.epochs(&batch);
            let applied = self.write(&transaction, &batch, &epochs).await?;
            if applied.len() == batch.len() {
                transaction.commit().await.map_err(backend)
            } else {
                transaction.rollback().await.map_err(backend)?;
                let mut refused = self.refusals(batch, &epochs, &applied).await?;
                Err(refused.swap_remove(0).1)
            }
        })
    }

    fn retained<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<Records, StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(&self.inner.sql.retained)
                .await
                .map_err(backend)?;
            let rows = client
                .query(&statement, &[&key.kind, &key.name])
                .await
                .map_err(backend)?;
            rows.iter()
                .map(|row| Ok((column(row, 0)?, column(row, 1)?)))
                .collect()
        })
    }

    fn keys<'a>(&'a self, kind: Option<&'a str>) -> BoxFuture<'a, Result<Vec<Key>, StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = match kind {
                Some(kind) => {
                    let statement = client
                        .prepare_cached(&self.inner.sql.keys_of_kind)
                        .await
                        .map_err(backend)?;
                    client.query(&statement, &[&kind]).await
                }
                None => {
                    let statement = client
                        .prepare_cached(&self.inner.sql.keys)
                        .await
                        .map_err(backend)?;
                    client.query(&statement, &[]).await
                }
            }
            .map_err(backend)?;
            rows.iter().map(|row| key_at(row, 0)).collect()
        })
    }

    fn claim<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(async move {
            loop {
                let in_flight = {
                    let mut leases = self.leases();
                    // One server per key in a node: a second claim would fence the first.
                    if leases.held.contains_key(key) {
                        return Err(StoreError::OwnedElsewhere {
                            key: key.clone(),
                            node: self.inner.node.clone(),
                        });
                    }
                    match leases.claiming.get(key) {
                        Some(ended) => Arc::clone(ended),
                        None => {
                            leases.claiming.insert(key.clone(), Arc::new(Notify::new()));
                            break;
                        }
                    }
                };
                let ended = in_flight.notified();
                let mut ended = std::pin::pin!(ended);
                // Registered before the look again, so the end cannot slip between the two.
                ended.as_mut().enable();
                if self.leases().claiming.contains_key(key) {
                    ended.await;
                }
            }
            // The claim runs in a task of its own: a caller that stops waiting (a start under a
            // timeout) cannot leave it half done, with the key marked as being claimed forever
            // or a lease row held in the database that nothing here knows of.
            let (sender, receiver) = oneshot::channel();
            let waiting = ClaimWaiter {
                receiver,
                postgres: self.clone(),
            };
            tokio::spawn({
                let postgres = self.clone();
                let key = key.clone();
                async move {
                    let claimed = postgres.try_claim(&key).await;
                    // One lock for the outcome and the end of the claim: a claim waiting on this
                    // one sees the key held, or given up, never in between.
                    let (ended, given_up) = {
                        let mut leases = postgres.leases();
                        let ended = leases.claiming.remove(&key);
                        let mut given_up = false;
                        match claimed {
                            Ok(epoch) => match sender.send(Ok((key.clone(), epoch))) {
                                Ok(()) => {
                                    let since = Instant::now();
                                    let held = Held {
                                        epoch,
                                        since,
                                        releasing: false,
                                    };
                                    leases.held.insert(key, held);
                                }
                                // The caller gave up before the claim landed.
                                Err(_) => {
                                    leases.unreleased.push((key, epoch, None));
                                    given_up = true;
                                }
                            },
                            Err(error) => drop(sender.send(Err(error))),
                        }
                        (ended, given_up)
                    };
                    if let Some(ended) = ended {
                        ended.notify_waiters();
                    }
                    if given_up {
                        postgres.retry_releases().await;
                    }
                }
            });
            let epoch = waiting.wait().await?;
            tracing::debug!(%key, epoch, "claimed");
            Ok(Claim::new(u64::try_from(epoch).unwrap_or(0)))
        })
    }

    fn release<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<(), StoreError>> {
        // In a task of its own, for the same reason as the claim: once asked, the release
        // completes (or is queued for a retry) whether or not its caller waits for it.
        let released = tokio::spawn({
            let postgres = self.clone();
            let key = key.clone();
            async move { postgres.release_now(&key).await }
        });
        Box::pin(async move {
            released
                .await
                .unwrap_or_else(|error| Err(StoreError::backend(error)))
        })
    }

    fn abandon(&self, key: &Key) {
        self.abandon_key(key);
    }

    fn commit_owned(
        &self,
        batch: Vec<Write>,
    ) -> BoxFuture<'_, Result<Vec<(Key, StoreError)>, StoreError>> {
        Box::pin(async move {
            // One statement: atomic on its own, no transaction to hold open.
            let client = self.client().await?;
            let epochs = self.epochs(&batch);
            let applied = self.write(&client, &batch, &epochs).await?;
            drop(client);
            if applied.len() == batch.len() {
                return Ok(Vec::new());
            }
            self.refusals(batch, &epochs, &applied).await
        })
    }
}

impl PostgresBuilder {
    /// This node's id (a fresh [`NodeId::generate`] if not given).
    pub fn node(mut self, node: impl Into<NodeId>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// The schema to keep the tables in (`public` by default); created if missing. A lowercase
    /// identifier of at most 40 characters (`[a-z_][a-z0-9_]*`).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// How long a claim lasts without renewal (10 s by default; at least 100 ms). It is renewed
    /// every third of it; a node that stops renewing (dead, paused, cut off) loses its servers
    /// to an adopting node after at most this long.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(100));
        self
    }

    /// The most connections the pool opens (16 by default, at least 1).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long to wait for a connection to open, or for a free one in the pool, before failing
    /// with [`StoreError::Backend`] (5 s by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Encrypts the connections with TLS; see [`PostgresTls`].
    #[cfg(feature = "postgres-tls")]
    pub fn tls(mut self, tls: PostgresTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Connects, creates or migrates the schema, and starts renewing leases on the current tokio
    /// runtime.
    ///
    /// # Errors
    /// [`StoreError::Backend`]: an invalid URL or schema name, an unreachable database, a failed
    /// authentication or TLS handshake, or a schema newer than this build knows.
    pub async fn connect(self) -> Result<Postgres, StoreError> {
        let mut config = self.config.map_err(StoreError::backend)?;
        if !sql::valid_schema(&self.schema) {
            return Err(StoreError::backend(format!(
                "postgres: `{}` cannot name a schema: use a lowercase identifier ([a-z_][a-z0-9_]*, at most 40 characters)",
                self.schema
            )));
        }
        let node = self.node.unwrap_or_else(NodeId::generate);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name(format!("peeper {node}"));
        }
        #[cfg(feature = "postgres-tls")]
        let tls = match self.tls {
            Some(tls) => {
                // With TLS configured, no silent fallback to plain text unless the URL asks.
                if !has_sslmode(&config) {
                    config.ssl_mode(SslMode::Require);
                }
                Tls::Rustls(tls.connector())
            }
            None => Tls::Off,
        };
        #[cfg(not(feature = "postgres-tls"))]
        let tls = Tls::Off;
        if matches!(tls, Tls::Off) && config.get_ssl_mode() == SslMode::Require {
            return Err(StoreError::backend(
                "postgres: the URL requires TLS (`sslmode=require`): enable the `postgres-tls` feature and give `PostgresBuilder::tls`",
            ));
        }

        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            Tls::Off => Manager::from_config(config.clone(), NoTls, manager_config),
            #[cfg(feature = "postgres-tls")]
            Tls::Rustls(tls) => Manager::from_config(config.clone(), tls.clone(), manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.timeout))
            .create_timeout(Some(self.timeout))
            .recycle_timeout(Some(self.timeout))
            .build()
            .map_err(backend)?;

        // Unique per handle, even between handles of one node id.
        let session = NodeId::generate().as_str().to_owned();
        let postgres = Postgres {
            inner: Arc::new(Inner {
                pool,
                config,
                tls,
                sql: Sql::new(&self.schema),
                schema: self.schema,
                node,
                session,
                lease: self.lease,
                leases: Mutex::default(),
                lost: broadcast::channel(1024).0,
                renewals: AtomicU64::new(0),
                renewer: Mutex::new(None),
            }),
        };
        postgres.migrate().await?;
        let renewer = tokio::spawn(renew_every(Arc::downgrade(&postgres.inner), self.lease / 3));
        *postgres
            .inner
            .renewer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(renewer);
        tracing::info!(node = %postgres.inner.node, schema = postgres.inner.schema, "connected to PostgreSQL");
        Ok(postgres)
    }
}

impl Postgres {
    /// Creates the schema, or brings it to this build's version, under an advisory lock held
    /// by the transaction (so that nodes starting at once apply each migration once).
    async fn migrate(&self) -> Result<(), StoreError> {
        let schema = &self.inner.schema;
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(backend)?;
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&format!("peeper migrations {schema}")],
            )
            .await
            .map_err(backend)?;
        transaction
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE IF NOT EXISTS {schema}.peeper_schema_version (
                     version integer NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 );"
            ))
            .await
            .map_err(backend)?;
        let current: i32 = transaction
            .query_one(
                &format!("SELECT coalesce(max(version), 0) FROM {schema}.peeper_schema_version"),
                &[],
            )
            .await
            .map_err(backend)?
            .get(0);
        if current > sql::VERSION {
            return Err(StoreError::backend(format!(
                "postgres: the schema `{schema}` is at version {current}, newer than this build's {}; it was left untouched",
                sql::VERSION
            )));
        }
        for (version, migration) in Sql::migrations(schema, current) {
            transaction
                .batch_execute(&migration)
                .await
                .map_err(backend)?;
            transaction
                .execute(
                    &format!("INSERT INTO {schema}.peeper_schema_version (version) VALUES ($1)"),
                    &[&version],
                )
                .await
                .map_err(backend)?;
            tracing::info!(schema, version, "migrated the schema");
        }
        transaction.commit().await.map_err(backend)
    }
}

/// The caller's side of a claim running in its own task. Dropped before the claim's outcome
/// was taken (the caller gave up), it closes the channel, so that a claim landing later is
/// abandoned by its task, and abandons one that landed already.
struct ClaimWaiter {
    receiver: oneshot::Receiver<Result<(Key, i64), StoreError>>,
    postgres: Postgres,
}

impl ClaimWaiter {
    async fn wait(mut self) -> Result<i64, StoreError> {
        let outcome = (&mut self.receiver).await;
        // Taken: nothing left for `drop` to give up.
        self.receiver.close();
        match outcome {
            Ok(claimed) => claimed.map(|(_, epoch)| epoch),
            Err(_) => Err(StoreError::Closed),
        }
    }
}

impl Drop for ClaimWaiter {
    fn drop(&mut self) {
        self.receiver.close();
        if let Ok(Ok((key, _))) = self.receiver.try_recv() {
            self.postgres.abandon_key(&key);
        }
    }
}

/// The background renewal: one `UPDATE` per period for every lease of the handle.
async fn renew_every(inner: Weak<Inner>, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let postgres = Postgres { inner };
        if let Err(error) = postgres.renew().await {
            tracing::warn!(%error, node = %postgres.inner.node, "could not renew the leases");
        }
    }
}

fn has_sslmode(config: &tokio_postgres::Config) -> bool {
    // `Config` does not say whether the URL set it; `Prefer` is its default.
    config.get_ssl_mode() != SslMode::Prefer
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
    StoreError::backend(format!("postgres: {text}"))
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

impl fmt::Debug for PostgresBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("PostgresBuilder");
        match &self.config {
            Ok(config) => debug.field("server", &Redacted(config)),
            Err(error) => debug.field("server", error),
        };
        debug
            .field("node", &self.node)
            .field("schema", &self.schema)
            .field("lease", &self.lease)
            .field("pool_size", &self.pool_size);
        #[cfg(feature = "postgres-tls")]
        debug.field("tls", &self.tls);
        debug.finish_non_exhaustive()
    }
}

/// A connection configuration as `user@host:port/database`, with no password, ever.
struct Redacted<'a>(&'a tokio_postgres::Config);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = self.0;
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|host| match host {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
        write!(
            f,
            "\"{}{}@{}:{}/{}\"",
            config.get_user().unwrap_or(""),
            if config.get_password().is_some() {
                ":<redacted>"
            } else {
                ""
            },
            hosts.join(","),
            ports.join(","),
            config.get_dbname().unwrap_or(""),
        )
    }
}
