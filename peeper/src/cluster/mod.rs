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
//! With the `grpc` feature, a node that [`listen`s](NodeBuilder::listen) answers calls from other
//! nodes, and `Node::get` returns a server's typed client wherever it runs, starting it where
//! a placement says when it runs nowhere: see the `grpc` section of the book. Without it, a
//! client is a handle on a server in this process, and a node that no longer owns a server
//! answers its clients with a typed error naming the new owner when it knows it
//! ([`Exit::Fenced`], [`Exit::HandedOff`], [`StoreError::OwnedElsewhere`]).

mod builder;
#[cfg(feature = "grpc")]
mod grpc;
mod inner;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use self::builder::Host;
pub use self::builder::{NodeBuilder, NodeError};
#[cfg(feature = "grpc")]
pub use self::grpc::{Asked, ClusterTls, DEFAULT_MAX_MESSAGE, Hashed, ListenError, Placement};
use crate::store::{Key, Persist, Storage, StoreError};
pub use crate::store::{NodeId, Postgres, PostgresBuilder};
use crate::{
    Branch, Builder, Client, DynamicSupervisor, Exit, StartError, StopError, TransferError,
};

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
    /// Calls between nodes, once the node listens.
    #[cfg(feature = "grpc")]
    remote: std::sync::OnceLock<grpc::Remoting>,
    /// This node, for the links it makes.
    #[cfg(feature = "grpc")]
    me: std::sync::Weak<NodeInner>,
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

impl Node {
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
        // Answered "moved" during the handoffs, and forwarded what was queued: now out of the
        // directory, and closed once the requests in flight (waiting for the takers, whom the
        // notification just woke) are answered.
        #[cfg(feature = "grpc")]
        if let Some(remote) = inner.remote.get() {
            remote.leave(inner).await;
        }
        tracing::info!(node = %self.id(), servers = keys.len(), "handed off");
        if let Some(error) = unstored {
            return Err(error);
        }
        notified.map(|_| keys)
    }
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
