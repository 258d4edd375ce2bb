//! Clusters on PostgreSQL: a [`Node`] runs durable servers that one
//! [`Postgres`] database shares between processes, with one owner per
//! server, handoff on graceful shutdown, transfer to another node, and adoption of the servers of
//! a node that died. Needs the `postgres` feature.
//!
//! ```text
//!                         ┌───────────── PostgreSQL ──────────────┐
//!                         │ peeper_states   peeper_leases         │
//!                         │ (kind,name)→    (kind,name)→owner,    │
//!                         │   envelope        epoch, expires_at   │
//!                         └──▲──────────────────▲─────────────▲───┘
//!          claim, write with │ epoch,  renew     │ LISTEN/     │ orphans: expired
//!          release, NOTIFY   │ (1 UPDATE/period) │ NOTIFY      │ leases
//!                   ┌────────┴──────┐     ┌──────┴────────┐ ┌──┴────────────┐
//!                   │ node a        │     │ node b        │ │ node c        │
//!                   │ player/ada    │     │ takes over    │ │ adopts        │
//!                   └───────────────┘     └───────────────┘ └───────────────┘
//! ```
//!
//! Reviving a server on another node means starting it by its kind's name, so a node is told
//! which server types it may run: [`NodeBuilder::host`] registers a factory per type (a builder
//! with the state to start from when nothing is stored, and the options). The registration is
//! explicit, rather than every `#[peeper::server]` in the program, because a revival needs those
//! options, and a node should run only the kinds it is deployed for.
//!
//! Messages are not routed between nodes: a client is a handle on a server in this process. A
//! node that no longer owns a server answers its clients with a typed error naming the new owner
//! when it knows it ([`Exit::Fenced`], [`Exit::HandedOff`],
//! [`StoreError::OwnedElsewhere`]); route the request to that node
//! ([`Node::owner`] says which) with whatever your services already use between them.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::store::{Key, Persist, Storage, StoreError};
pub use crate::store::{NodeId, Postgres, PostgresBuilder};
use crate::{
    Branch, Builder, Client, DynamicSupervisor, Exit, StartError, StopError, TransferError,
};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A process's place in a cluster: the servers it runs on a shared [`Postgres`] store, and what
/// it does with other nodes' servers.
///
/// - [`start`](Node::start) starts a durable server here, claiming its lease; a server that
///   another live node owns fails with [`StartError::Store`]`(`[`StoreError::OwnedElsewhere`]`)`.
/// - [`shutdown`](Node::shutdown) hands every server off: the node stops taking messages for
///   them, finishes what each has queued, writes their last states, releases their leases for a
///   taker and `NOTIFY`s their keys. Nodes built with [`take_over`](NodeBuilder::take_over)
///   `LISTEN`, claim them and revive them from the store.
/// - [`transfer`](Node::transfer) does the same for one server, to one named node.
/// - Nodes built with [`adopt_orphans`](NodeBuilder::adopt_orphans) look for leases that
///   expired (their node died without shutting down) and revive those servers from their last
///   committed state.
/// - [`events`](Node::events) tells what the node took over, adopted or lost.
///
/// This example needs a running PostgreSQL, so it is compiled but not run (the tests get one
/// from `scripts/with-postgres`):
///
/// ```no_run
/// use peeper::cluster::{Node, NodeId, Postgres};
///
/// #[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
/// pub struct Player { points: u64 }
///
/// #[peeper::server]
/// impl Player {
///     #[call]
///     fn score(&mut self, points: u64) -> u64 { self.points += points; self.points }
/// }
///
/// impl peeper::Persist for Player { const KIND: &'static str = "player"; }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let postgres = Postgres::builder("postgres://app:secret@db.internal/app")
///     .node(NodeId::new("web-1"))
///     .connect()
///     .await?;
/// let node = Node::builder(postgres)
///     .host(|_name: &str| Player::builder(Player::default()))
///     .take_over(true)
///     .adopt_orphans(true)
///     .start()
///     .await?;
///
/// let ada = node.start(Player::builder(Player::default()).name("ada")).await?;
/// ada.score(10).await?;
///
/// node.shutdown().await?;   // on SIGTERM: every player moves to another node
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

struct NodeInner {
    postgres: Postgres,
    storage: Storage,
    supervisor: DynamicSupervisor,
    hosts: HashMap<&'static str, Arc<dyn Host>>,
    take_over: bool,
    adopt_orphans: bool,
    events: broadcast::Sender<NodeEvent>,
    running: Mutex<HashMap<Key, Branch>>,
    closing: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for NodeInner {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

/// What a [`Node`] did with a server of another node, or lost to one: [`Node::events`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A server handed off by another node (its graceful shutdown, or a transfer to this node)
    /// now runs here, from its last stored state.
    TookOver {
        /// The server.
        key: Key,
    },
    /// A server whose node stopped renewing its lease (dead, paused, cut off) now runs here,
    /// from its last committed state.
    Adopted {
        /// The server.
        key: Key,
        /// The node whose lease expired.
        from: NodeId,
    },
    /// This node found a server's lease taken by another node (it had stopped renewing it in
    /// time), and stopped its stale copy with [`Exit::Fenced`].
    Lost {
        /// The server.
        key: Key,
        /// The node that owns it now, if known.
        owner: Option<NodeId>,
    },
    /// A server that this node tried to take over or adopt could not start here.
    ReviveFailed {
        /// The server.
        key: Key,
        /// Why.
        error: String,
    },
}

/// How a [`Node`] is built: [`Node::builder`].
#[must_use = "a builder does nothing until `.start().await`"]
pub struct NodeBuilder {
    postgres: Postgres,
    hosts: HashMap<&'static str, Arc<dyn Host>>,
    take_over: bool,
    adopt_orphans: bool,
    adopt_every: Option<Duration>,
}

/// Starts servers of one kind by name, for revivals.
trait Host: Send + Sync {
    fn start<'a>(
        &'a self,
        node: &'a NodeInner,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Branch, StartError>>;
}

struct Hosting<F>(F);

impl<S, C, F> Host for Hosting<F>
where
    S: Persist,
    C: From<Client<S>> + 'static,
    F: Fn(&str) -> Builder<S, C> + Send + Sync + 'static,
{
    fn start<'a>(
        &'a self,
        node: &'a NodeInner,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Branch, StartError>> {
        let builder = (self.0)(name).name(name);
        Box::pin(async move {
            node.launch(builder)
                .await
                .map(|client| client.branch().clone())
        })
    }
}

impl NodeBuilder {
    /// Lets this node revive servers of kind `S` ([`Persist::KIND`]) that another node handed
    /// off or left orphaned: `factory(name)` gives the builder to start one with (the state to
    /// use when nothing is stored, and the options). The node sets the name, the store and the
    /// supervisor itself.
    pub fn host<S, C, F>(mut self, factory: F) -> Self
    where
        S: Persist,
        C: From<Client<S>> + 'static,
        F: Fn(&str) -> Builder<S, C> + Send + Sync + 'static,
    {
        self.hosts.insert(S::KIND, Arc::new(Hosting(factory)));
        self
    }

    /// Whether this node takes over the servers other nodes hand off when they shut down (off by
    /// default). Servers transferred to this node by name are always taken.
    pub fn take_over(mut self, take_over: bool) -> Self {
        self.take_over = take_over;
        self
    }

    /// Whether this node adopts the servers of nodes that stopped renewing their leases (off by
    /// default).
    pub fn adopt_orphans(mut self, adopt: bool) -> Self {
        self.adopt_orphans = adopt;
        self
    }

    /// How often an adopting node looks for expired leases (half the lease by default). A dead
    /// node's servers come back after at most the lease plus this.
    pub fn adopt_every(mut self, period: Duration) -> Self {
        self.adopt_every = Some(period);
        self
    }

    /// Starts the node: it `LISTEN`s for handoffs, takes what is already waiting for it, and
    /// starts looking for orphans if asked to.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the `LISTEN` connection cannot be opened.
    pub async fn start(self) -> Result<Node, StoreError> {
        let adopt_every = self
            .adopt_every
            .unwrap_or(self.postgres.lease() / 2)
            .max(Duration::from_millis(10));
        let node = Node {
            inner: Arc::new(NodeInner {
                storage: Storage::new(self.postgres.clone()),
                postgres: self.postgres,
                supervisor: DynamicSupervisor::new(),
                hosts: self.hosts,
                take_over: self.take_over,
                adopt_orphans: self.adopt_orphans,
                events: broadcast::channel(4096).0,
                running: Mutex::default(),
                closing: AtomicBool::new(false),
                tasks: Mutex::default(),
            }),
        };
        let listening = node.inner.postgres.listen().await?;
        let weak = Arc::downgrade(&node.inner);
        let mut tasks = vec![
            tokio::spawn(listen(Weak::clone(&weak), listening)),
            tokio::spawn(watch_lost(Weak::clone(&weak), node.inner.postgres.lost())),
        ];
        if node.inner.adopt_orphans {
            tasks.push(tokio::spawn(adopt(Weak::clone(&weak), adopt_every)));
        }
        node.inner.tasks().extend(tasks);
        // What was handed off while no node listened.
        node.inner.scan_handoffs().await;
        tracing::info!(node = %node.id(), take_over = node.inner.take_over, adopt_orphans = node.inner.adopt_orphans, "node started");
        Ok(node)
    }
}

impl Node {
    /// A builder for a node on `postgres` (whose [`NodeId`] is the node's).
    pub fn builder(postgres: Postgres) -> NodeBuilder {
        NodeBuilder {
            postgres,
            hosts: HashMap::new(),
            take_over: false,
            adopt_orphans: false,
            adopt_every: None,
        }
    }

    /// This node's id.
    #[must_use]
    pub fn id(&self) -> &NodeId {
        self.inner.postgres.node()
    }

    /// The store.
    #[must_use]
    pub fn postgres(&self) -> &Postgres {
        &self.inner.postgres
    }

    /// The [`Storage`] every server of this node writes through (one group-commit writer).
    #[must_use]
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// The supervisor every server of this node runs under.
    #[must_use]
    pub fn supervisor(&self) -> &DynamicSupervisor {
        &self.inner.supervisor
    }

    /// What this node takes over, adopts and loses, from now on.
    #[must_use]
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.inner.events.subscribe()
    }

    /// Starts a durable server on this node: `builder` needs a [`name`](Builder::name); the node
    /// gives it its store and supervisor. The server's lease is claimed first, then its stored
    /// state (if any) loaded.
    ///
    /// # Errors
    /// As [`Builder::start`]; [`StartError::Store`]`(`[`StoreError::OwnedElsewhere`]`)` if
    /// another live node owns it; [`StartError::SupervisorStopped`] once the node shuts down.
    pub async fn start<S: Persist, C: From<Client<S>>>(
        &self,
        builder: Builder<S, C>,
    ) -> Result<C, StartError> {
        self.inner.launch(builder).await.map(C::from)
    }

    /// The node that owns `key` now, if any (this one included): `whereis` across the cluster.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    pub async fn owner(&self, key: &Key) -> Result<Option<NodeId>, StoreError> {
        self.inner.postgres.owner(key).await
    }

    /// The servers running on this node, sorted.
    #[must_use]
    pub fn running(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = self
            .inner
            .running()
            .iter()
            .filter(|(_, branch)| branch.is_running())
            .map(|(key, _)| key.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Moves the server `key` to node `to`: the handoff of [`shutdown`](Node::shutdown), for one
    /// server. The server finishes what it has queued, writes its last state and releases its
    /// lease for `to`, which is notified and revives it (a [`NodeEvent::TookOver`] there).
    /// Clients here then get [`Exit::HandedOff`] naming `to`. Returns once the server has left.
    ///
    /// `to` must be running and host the server's kind; until it claims the server, the lease is
    /// free and any node may start it by name.
    ///
    /// # Errors
    /// [`TransferError::NotFound`] if the server does not run on this node;
    /// [`TransferError::Stopped`] if it ended first; [`TransferError::Store`] if `to` could not
    /// be notified (the server is stopped and released), or if its last state could not be
    /// written (the server is stopped here and keeps its lease, retrying the write; it is
    /// released, not handed to `to`, once the write commits).
    pub async fn transfer(&self, key: &Key, to: &NodeId) -> Result<(), TransferError> {
        let not_found = || TransferError::NotFound {
            name: key.name.clone(),
        };
        let branch = self
            .inner
            .running()
            .get(key)
            .cloned()
            .ok_or_else(not_found)?;
        if to == self.id() {
            return Err(TransferError::SameSupervisor);
        }
        // From its own handler, the stop would wait for the handler that asked for it.
        if crate::handling::is_handling(branch.id()) {
            return Err(TransferError::CallingSelf);
        }
        let postgres = &self.inner.postgres;
        postgres.hand_off(key, to);
        let stopped = branch
            .stop_as(Exit::HandedOff {
                to: Some(to.clone()),
            })
            .await;
        match stopped {
            // A panicking `terminate` is logged; the server stopped and is handed off all the same.
            Ok(()) | Err(StopError::Terminate { .. }) => {}
            Err(StopError::AlreadyStopped(exit)) => {
                postgres.cancel_hand_off(key);
                return Err(TransferError::Stopped(exit));
            }
            // Its last state is not stored yet: the branch keeps the lease and retries; the
            // release that follows the write is a plain one, and `to` is not told.
            Err(StopError::Store(error)) => {
                postgres.cancel_hand_off(key);
                return Err(TransferError::Store(error));
            }
            Err(error) => return Err(TransferError::Store(StoreError::backend(error))),
        }
        let keys = postgres.take_handed_off(Some(to));
        postgres
            .notify(Some(to), &keys)
            .await
            .map_err(TransferError::Store)?;
        tracing::info!(%key, %to, "transferred to another node");
        Ok(())
    }

    /// Hands every server of this node off to the nodes that take over, for a rolling deploy:
    /// the node stops taking servers in, every server finishes what it has queued (messages sent
    /// after that are refused with [`Exit::HandedOff`]), writes its last state and releases its
    /// lease for a taker; then the keys are `NOTIFY`d (keys only; several notifications if they
    /// do not fit in one). Returns the keys handed off.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the notification could not be sent: the servers are stopped
    /// and released all the same, and taking nodes find them when they next (re)connect.
    /// The store's error if the last state of a server could not be written: that server keeps
    /// its lease and retries while this process lives, and is released (for a taker) once its
    /// write commits; wait for it with its branch's [`ended`](Branch::ended) before exiting.
    pub async fn shutdown(&self) -> Result<Vec<Key>, StoreError> {
        let inner = &self.inner;
        inner.closing.store(true, Ordering::SeqCst);
        for task in inner.tasks().drain(..) {
            task.abort();
        }
        let postgres = &inner.postgres;
        postgres.hand_off_all();
        let children = inner.supervisor.which_children();
        let stopped = futures::future::join_all(
            children
                .iter()
                .map(|branch| branch.stop_as(Exit::HandedOff { to: None })),
        )
        .await;
        // A server whose last state is not stored yet keeps its lease and retries; it is handed
        // off (released for a taker) once the write commits, while this process lives.
        let unstored = stopped.into_iter().find_map(|stopped| match stopped {
            Err(StopError::Store(error)) => Some(error),
            _ => None,
        });
        // Refuses starts from now on, and stops any that came in meanwhile (released for a taker
        // too, since every release now is).
        inner.supervisor.shutdown().await;
        let keys = postgres.take_handed_off(None);
        postgres.stop_handing_off();
        let notified = postgres.notify(None, &keys).await;
        tracing::info!(node = %self.id(), servers = keys.len(), "handed off");
        if let Some(error) = unstored {
            return Err(error);
        }
        notified.map(|_| keys)
    }
}

impl NodeInner {
    fn tasks(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn running(&self) -> MutexGuard<'_, HashMap<Key, Branch>> {
        // Only map operations run under the lock.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    async fn launch<S: Persist, C: From<Client<S>>>(
        &self,
        builder: Builder<S, C>,
    ) -> Result<Client<S>, StartError> {
        if self.is_closing() {
            return Err(StartError::SupervisorStopped);
        }
        let Some(name) = builder.options.name.clone() else {
            return Err(StartError::InvalidOptions(
                "a server of a node needs a name (`Builder::name`): its stored state and its lease are keyed by it",
            ));
        };
        let builder = builder
            .store(self.storage.clone())
            .supervisor(&self.supervisor);
        let client = crate::supervisor::start(builder).await?;
        let mut running = self.running();
        // Ended servers are dropped here, not when they end: this is the only writer.
        running.retain(|_, branch| branch.is_running());
        running.insert(Key::new(S::KIND, name), client.branch().clone());
        Ok(client)
    }

    /// Starts `key` here, for a handoff or an adoption; `event` says which, once it runs.
    async fn revive(&self, key: Key, event: NodeEvent) {
        if self.is_closing() {
            return;
        }
        let Some(host) = self.hosts.get(key.kind.as_str()) else {
            return;
        };
        match host.start(self, &key.name).await {
            Ok(_) => {
                tracing::info!(%key, ?event, "revived");
                let _ = self.events.send(event);
            }
            // Another node was quicker, or it runs here already: nothing to do.
            Err(
                StartError::Store(StoreError::OwnedElsewhere { .. })
                | StartError::NameTaken { .. }
                | StartError::SupervisorStopped,
            ) => {}
            Err(error) => {
                tracing::error!(%key, %error, "could not revive");
                let _ = self.events.send(NodeEvent::ReviveFailed {
                    key,
                    error: error.to_string(),
                });
            }
        }
    }

    fn kinds(&self) -> Vec<&'static str> {
        self.hosts.keys().copied().collect()
    }

    /// Takes what was released for this node (or for any, when taking over).
    async fn scan_handoffs(self: &Arc<Self>) {
        match self.postgres.handoffs(&self.kinds(), self.take_over).await {
            Ok(keys) => self.revive_all(keys),
            Err(error) => tracing::warn!(%error, "could not look for handoffs"),
        }
    }

    fn revive_all(self: &Arc<Self>, keys: Vec<Key>) {
        for key in keys {
            let node = Arc::clone(self);
            tokio::spawn(async move {
                let event = NodeEvent::TookOver { key: key.clone() };
                node.revive(key, event).await;
            });
        }
    }
}

/// The `LISTEN` loop: takes what is handed to this node; reconnects (and scans for what it
/// missed) when the connection is lost.
async fn listen(node: Weak<NodeInner>, mut listening: crate::store::postgres::Listening) {
    loop {
        while let Some(payload) = listening.payloads.recv().await {
            let Some(node) = node.upgrade() else {
                return;
            };
            let Some((target, keys)) = Postgres::decode(&payload) else {
                continue;
            };
            let for_me = match &target {
                Some(target) => target == node.postgres.node(),
                None => node.take_over,
            };
            if for_me {
                node.revive_all(keys);
            }
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            tokio::time::sleep(backoff).await;
            let Some(node) = node.upgrade() else {
                return;
            };
            match node.postgres.listen().await {
                Ok(again) => {
                    listening = again;
                    tracing::info!(node = %node.postgres.node(), "listening again");
                    node.scan_handoffs().await;
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "could not listen for handoffs; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// Looks for expired leases of the kinds this node hosts, and adopts them.
async fn adopt(node: Weak<NodeInner>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(node) = node.upgrade() else {
            return;
        };
        if node.is_closing() {
            return;
        }
        match node.postgres.orphans(&node.kinds()).await {
            Ok(orphans) => {
                for (key, from) in orphans {
                    let node = Arc::clone(&node);
                    tokio::spawn(async move {
                        let event = NodeEvent::Adopted {
                            key: key.clone(),
                            from,
                        };
                        node.revive(key, event).await;
                    });
                }
            }
            Err(error) => tracing::warn!(%error, "could not look for orphans"),
        }
    }
}

/// Stops the servers whose lease the renewal found taken by another node.
async fn watch_lost(node: Weak<NodeInner>, mut lost: broadcast::Receiver<Key>) {
    loop {
        let keys = match lost.recv().await {
            Ok(key) => vec![key],
            // Notices were dropped (a mass expiry outran this task): which ones is unknown, so
            // every server running here is checked against the leases the store still holds.
            // Skipping them instead left fenced copies answering reads.
            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                let Some(node) = node.upgrade() else {
                    return;
                };
                tracing::warn!(skipped, "lost-lease notices dropped; checking every lease");
                node.running()
                    .keys()
                    .filter(|key| !node.postgres.holds(key))
                    .cloned()
                    .collect()
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(node) = node.upgrade() else {
            return;
        };
        for key in keys {
            fence(&node, key).await;
        }
    }
}

/// Stops the server `key`, whose lease this node lost, and tells the node's listeners.
async fn fence(node: &NodeInner, key: Key) {
    let Some(branch) = node.running().get(&key).cloned() else {
        return;
    };
    let owner = node.postgres.owner(&key).await.ok().flatten();
    let _ = branch
        .stop_as(Exit::Fenced {
            owner: owner.clone(),
        })
        .await;
    let _ = node.events.send(NodeEvent::Lost { key, owner });
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("id", self.id())
            .field("running", &self.inner.running().len())
            .field("take_over", &self.inner.take_over)
            .field("adopt_orphans", &self.inner.adopt_orphans)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for NodeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeBuilder")
            .field("node", self.postgres.node())
            .field("kinds", &self.hosts.keys().collect::<Vec<_>>())
            .field("take_over", &self.take_over)
            .field("adopt_orphans", &self.adopt_orphans)
            .finish_non_exhaustive()
    }
}
