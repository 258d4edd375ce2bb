//! Calls between the nodes of a cluster (the `grpc` feature): a node that
//! [`listen`](crate::cluster::NodeBuilder::listen)s answers calls to the servers it runs from
//! other nodes, and [`Node::get`](crate::cluster::Node::get) returns a server's ordinary typed
//! client wherever the server runs.
//!
//! ```text
//!   node a                                   PostgreSQL                    node b
//!   ada.won(10) ──► Client<Player>           peeper_leases: player/ada     ┌───────────────┐
//!                   (a link: its mailbox     → owner b, epoch 7            │ gRPC service  │
//!                   is drained by a task) ──  peeper_nodes: b → 10.0.0.2 ──►│ whereis("ada")│
//!                        │  Invoke{player, ada, Call, payload, timeout}     │ .call(..)     │
//!                        └──────────────── tonic, mutual TLS ─────────────►└───────────────┘
//! ```
//!
//! - **Directory.** The lease table says who owns a server; `peeper_nodes` says where each node
//!   answers and which kinds it hosts, for as long as its heartbeat lasts.
//! - **Local first.** `get` of a server running on this node returns its direct client: the call
//!   costs what a local call costs.
//! - **Links.** A server on another node gets a client whose mailbox a *link* task drains: each
//!   call is encoded (`peeper::remote`) and sent to the owner with its timeout, calls
//!   concurrently, casts in order. The link caches the owner and its lease's epoch; a node that
//!   does not run the server answers "moved" without running anything, with the owner, epoch and
//!   address it knows, and the link follows (or, for a redirect no newer than what it knows,
//!   looks the owner up again), at most two hops; while a handoff is in progress it waits for the taker, up to the
//!   call's deadline.
//! - **Activation.** A name nobody owns is started where the [`Placement`] says: here by
//!   default, which claims its lease; the lease makes a storm of `get`s start it once.
//! - **Delivery.** At most once. A call that cannot have reached a handler (the owner could not
//!   be reached, it kept moving, nobody took it over in time) fails with
//!   [`CallError::NotApplied`](crate::CallError::NotApplied) after the link retried what it
//!   could; a call lost in flight fails with
//!   [`CallError::MaybeApplied`](crate::CallError::MaybeApplied). Casts are at most once and
//!   their failures are not reported.

mod link;
mod placement;
pub(crate) mod serve;
mod tls;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

pub use self::placement::{Asked, Hashed, Placement};
pub(crate) use self::serve::{Serve, Serving};
pub use self::tls::ClusterTls;
pub(crate) use self::tls::Transport;
use super::{Node, NodeInner};
use crate::remote::Remote;
use crate::store::postgres::Route;
use crate::store::postgres::with_causes as chain;
use crate::store::{Key, NodeId, Persist};
use crate::{CallError, Undelivered};

/// The largest message or reply a node sends or takes by default: 4 MiB, gRPC's usual cap.
pub const DEFAULT_MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// What a listening node keeps for calls between nodes.
pub(crate) struct Remoting {
    pub(crate) transport: Transport,
    pub(crate) served: HashMap<&'static str, Arc<dyn Serve>>,
    pub(crate) placement: Arc<dyn Placement>,
    pub(crate) max_message: usize,
    /// The address other nodes dial, as published.
    pub(crate) address: String,
    channels: Mutex<HashMap<String, Channel>>,
    /// Stops the gRPC server (after a shutdown's handoffs, so that it answers "moved" meanwhile).
    stop: Mutex<Option<oneshot::Sender<()>>>,
    /// The gRPC server's task, awaited at the end of a graceful shutdown.
    serving: Mutex<Option<JoinHandle<()>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Remoting {
    fn drop(&mut self) {
        if let Some(serving) = self
            .serving
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            serving.abort();
        }
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

/// How a node listens: what `NodeBuilder` collected. The node listens only when `bind` is set
/// (`NodeBuilder::listen`); the other settings may come before or after it.
pub(crate) struct Listen {
    pub(crate) bind: Option<SocketAddr>,
    pub(crate) advertise: Option<String>,
    pub(crate) transport: Option<Transport>,
    pub(crate) placement: Arc<dyn Placement>,
    pub(crate) max_message: usize,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            bind: None,
            advertise: None,
            transport: None,
            placement: Arc::new(Asked),
            max_message: DEFAULT_MAX_MESSAGE,
        }
    }
}

/// Why a node could not start listening for other nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    /// Neither [`tls`](crate::cluster::NodeBuilder::tls) nor the explicit
    /// [`insecure_plaintext_between_nodes`](crate::cluster::NodeBuilder::insecure_plaintext_between_nodes)
    /// was chosen.
    #[error(
        "a listening node needs `.tls(ClusterTls::from_pem(..))`, or the explicit `.insecure_plaintext_between_nodes()`"
    )]
    NoTransport,
    /// The address could not be bound.
    #[error("could not listen on {address}: {reason}")]
    Bind {
        /// The address.
        address: String,
        /// The system's error.
        reason: String,
    },
    /// The certificates or the key were refused.
    #[error("TLS: {reason}")]
    Tls {
        /// rustls's error.
        reason: String,
    },
    /// The node could not publish its address.
    #[error("could not join the directory: {0}")]
    Store(crate::store::StoreError),
}

impl Remoting {
    /// Binds, serves, and publishes the node; returns what the node keeps.
    pub(crate) async fn start(
        node: &Arc<NodeInner>,
        bind: SocketAddr,
        listen: Listen,
        served: HashMap<&'static str, Arc<dyn Serve>>,
    ) -> Result<Remoting, ListenError> {
        let transport = listen.transport.ok_or(ListenError::NoTransport)?;
        let listener =
            tokio::net::TcpListener::bind(bind)
                .await
                .map_err(|error| ListenError::Bind {
                    address: bind.to_string(),
                    reason: error.to_string(),
                })?;
        let bound = listener.local_addr().map_err(|error| ListenError::Bind {
            address: bind.to_string(),
            reason: error.to_string(),
        })?;
        let address = listen.advertise.unwrap_or_else(|| bound.to_string());
        let mut server = tonic::transport::Server::builder();
        if let Transport::Tls(tls) = &transport {
            server = server
                .tls_config(tls.server())
                .map_err(|error| ListenError::Tls {
                    reason: chain(&error),
                })?;
        }
        let service = serve::NodeService {
            node: Arc::downgrade(node),
            max_message: listen.max_message,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let serving = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            if let Err(error) = server
                .serve_with_incoming_shutdown(service, incoming, stopped)
                .await
            {
                tracing::error!(error = %chain(&error), "the node's gRPC server failed");
            }
        });
        let kinds: Vec<&str> = served.keys().copied().collect();
        node.postgres
            .join(&address, &kinds)
            .await
            .map_err(ListenError::Store)?;
        let heartbeat = tokio::spawn(heartbeat(
            Arc::downgrade(node),
            address.clone(),
            kinds.iter().map(|kind| (*kind).to_owned()).collect(),
        ));
        tracing::info!(node = %node.postgres.node(), %address, tls = matches!(transport, Transport::Tls(_)), "listening for other nodes");
        Ok(Remoting {
            transport,
            served,
            placement: listen.placement,
            max_message: listen.max_message,
            address,
            channels: Mutex::default(),
            stop: Mutex::new(Some(stop)),
            serving: Mutex::new(Some(serving)),
            tasks: Mutex::new(vec![heartbeat]),
        })
    }

    /// A channel to the node at `address` (one per address, connected on first use).
    fn channel(&self, address: &str) -> Result<Channel, String> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let uri = format!("{}://{address}", self.transport.scheme());
        let mut endpoint = Endpoint::from_shared(uri)
            .map_err(|error| chain(&error))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        if let Transport::Tls(tls) = &self.transport {
            endpoint = endpoint
                .tls_config(tls.client())
                .map_err(|error| chain(&error))?;
        }
        let channel = endpoint.connect_lazy();
        channels.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }

    /// Where the placement puts `key`, which runs nowhere, among the live nodes hosting its
    /// kind: `None` for this node (also when the placement chose a node outside the list),
    /// else another node and its address.
    pub(crate) async fn place(
        &self,
        node: &NodeInner,
        key: &Key,
    ) -> Result<Option<(NodeId, String)>, CallError> {
        let nodes = node
            .postgres
            .nodes_hosting(&key.kind)
            .await
            .map_err(CallError::Store)?;
        let ids: Vec<NodeId> = nodes.iter().map(|(id, _)| id.clone()).collect();
        if ids.is_empty() {
            return Err(CallError::NotApplied(Undelivered::NotHosted {
                kind: key.kind.clone(),
            }));
        }
        let here = node.postgres.node();
        let at = self.placement.place(key, here, &ids);
        Ok(nodes.into_iter().find(|(id, _)| *id == at && id != here))
    }

    /// Forgets the channel to `address` (its node went away; the next call dials again).
    fn forget(&self, address: &str) {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(address);
    }

    /// Leaves the directory and stops answering: the end of a graceful shutdown.
    pub(crate) async fn leave(&self, node: &NodeInner) {
        if let Err(error) = node.postgres.leave().await {
            tracing::warn!(%error, "could not leave the directory; the entry expires with its heartbeat");
        }
        if let Some(stop) = self
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = stop.send(());
        }
        // Graceful: the server tells every connection it goes away (HTTP/2 GOAWAY), finishes
        // the requests in flight, and closes; clients then dial the new owners. Bounded: a peer
        // that keeps its connection open does not hold the shutdown.
        let serving = self
            .serving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(serving) = serving {
            let abort = serving.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), serving)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

/// Keeps the node's entry in the directory alive; publishes it again if it expired.
async fn heartbeat(node: Weak<NodeInner>, address: String, kinds: Vec<String>) {
    let every = match node.upgrade() {
        Some(node) => node.postgres.lease() / 3,
        None => return,
    };
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(node) = node.upgrade() else {
            return;
        };
        match node.postgres.heartbeat().await {
            Ok(true) => {}
            Ok(false) => {
                let kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
                if let Err(error) = node.postgres.join(&address, &kinds).await {
                    tracing::warn!(%error, "could not publish this node again");
                }
            }
            Err(error) => tracing::warn!(%error, "directory heartbeat failed"),
        }
    }
}

/// What takes the mailbox of the server `name` of this node when it moves to another node.
pub(crate) fn forwarding<S: Persist>(
    node: &Weak<NodeInner>,
    name: &str,
) -> crate::durable::Forward<S> {
    let node = Weak::clone(node);
    let name = name.to_owned();
    Arc::new(move |mailbox, branch| link::forward::<S>(Weak::clone(&node), &name, mailbox, branch))
}

impl NodeInner {
    pub(crate) fn remoting(&self) -> Result<&Remoting, CallError> {
        self.remote.get().ok_or_else(|| {
            CallError::NotApplied(Undelivered::Unreachable {
                node: self.postgres.node().to_string(),
                reason: "this node does not call other nodes: build it with `NodeBuilder::listen`"
                    .to_owned(),
            })
        })
    }

    /// Starts `key` here with its kind's factory.
    pub(crate) async fn activate(&self, key: &Key) -> Result<(), crate::StartError> {
        let Some(host) = self.hosts.get(key.kind.as_str()) else {
            return Err(crate::StartError::InvalidOptions(
                "this node does not host the server's kind (`NodeBuilder::host`)",
            ));
        };
        host.start(self, &key.name).await.map(drop)
    }
}

impl Node {
    /// The typed client of the server `name` of kind `S`, wherever it runs in the cluster:
    /// running on this node, its direct client (a call costs what a local call costs); running
    /// on another, a client whose calls go there over gRPC; running nowhere, started where the
    /// node's [`Placement`] says (here by default), from its stored state or, when nothing is
    /// stored, its factory's.
    ///
    /// The node must [`host`](crate::cluster::NodeBuilder::host) `S` to start it here, and
    /// [`listen`](crate::cluster::NodeBuilder::listen) to reach other nodes.
    ///
    /// # Errors
    /// [`CallError::NotApplied`] if the server could not be found or started (no node hosts its
    /// kind, its node cannot be reached, its start failed); [`CallError::Store`] if the
    /// directory could not be read.
    pub async fn get<S: Persist + Remote>(&self, name: &str) -> Result<S::Client, CallError> {
        let node = &self.inner;
        let remote = node.remoting()?;
        let key = Key::new(S::KIND, name);
        for _ in 0..4 {
            if let Some(client) = crate::whereis::<S>(name) {
                return Ok(S::Client::from(client));
            }
            let here = match node.postgres.route(&key).await.map_err(CallError::Store)? {
                Route::Owned { node: owner, .. } if owner == *node.postgres.node() => true,
                Route::Owned {
                    node: owner,
                    address: Some(address),
                    epoch,
                } => {
                    let target = link::Target {
                        node: owner,
                        address,
                        epoch: Some(epoch),
                    };
                    let (client, _) = link::Link::<S>::spawn(self, name, Some(target))?;
                    return Ok(S::Client::from(client));
                }
                // Its node is not in the directory (it died, its lease not expired yet), or a
                // handoff is in progress: a link, whose calls wait for it up to their deadline.
                Route::Owned { address: None, .. } | Route::InHandoff => false,
                Route::Free => remote.place(node, &key).await?.is_none(),
            };
            if here {
                match serve::here::<S>(node, name, true).await {
                    Ok(client) => return Ok(S::Client::from(client)),
                    Err(wire::Outcome::Failed(error)) => return Err(error),
                    // Taken by another node meanwhile: look again.
                    Err(_) => {}
                }
            } else {
                // Elsewhere, or being handed off: a link, which activates it there (or waits
                // for the taker) with its first message.
                let (client, link) = link::Link::<S>::spawn(self, name, None)?;
                link::activate(&link).await?;
                return Ok(S::Client::from(client));
            }
        }
        Err(CallError::NotApplied(Undelivered::Moved { hops: 4 }))
    }

    /// The address other nodes dial to reach this one, once it
    /// [`listen`](crate::cluster::NodeBuilder::listen)s.
    #[must_use]
    pub fn address(&self) -> Option<&str> {
        self.inner
            .remote
            .get()
            .map(|remote| remote.address.as_str())
    }
}
