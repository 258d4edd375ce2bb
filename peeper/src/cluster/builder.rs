//! [`NodeBuilder`]: how a [`Node`] is built, and the kinds of server it hosts.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::broadcast;

use super::inner::{adopt, listen, watch_lost};
use super::{Node, NodeInner, Postgres};
use crate::store::{BoxFuture, Persist, Storage, StoreError};
use crate::{Branch, Builder, Client, DynamicSupervisor, StartError};

/// How a [`Node`] is built: [`Node::builder`].
#[must_use = "a builder does nothing until `.start().await`"]
pub struct NodeBuilder {
    postgres: Postgres,
    hosts: HashMap<&'static str, Arc<dyn Host>>,
    take_over: bool,
    adopt_orphans: bool,
    adopt_every: Option<Duration>,
    #[cfg(feature = "grpc")]
    listen: super::grpc::Listen,
    /// The hosted kinds that other nodes may call (`#[peeper::server(remote)]`).
    #[cfg(feature = "grpc")]
    served: HashMap<&'static str, Arc<dyn super::grpc::Serve>>,
}

/// Why a [`Node`] could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The store failed (the `LISTEN` connection could not be opened, say).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node could not listen for other nodes.
    #[cfg(feature = "grpc")]
    #[error(transparent)]
    Listen(#[from] super::grpc::ListenError),
}

/// Starts servers of one kind by name, for revivals.
pub(super) trait Host: Send + Sync {
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
        #[cfg(feature = "grpc")]
        if let Some(wire) = S::__WIRE {
            self.served
                .insert(S::KIND, Arc::new(super::grpc::Serving::<S>(wire)));
        }
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
    /// [`NodeError::Store`] if the `LISTEN` connection cannot be opened; with `grpc`,
    /// `NodeError::Listen` if the node cannot listen for other nodes.
    pub async fn start(self) -> Result<Node, NodeError> {
        let adopt_every = self
            .adopt_every
            .unwrap_or(self.postgres.lease() / 2)
            .max(Duration::from_millis(10));
        let node = Node {
            inner: Arc::new_cyclic(|_me| NodeInner {
                #[cfg(feature = "grpc")]
                me: Weak::clone(_me),
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
                #[cfg(feature = "grpc")]
                remote: std::sync::OnceLock::new(),
            }),
        };
        #[cfg(feature = "grpc")]
        if let Some(bind) = self.listen.bind {
            let remote =
                super::grpc::Remoting::start(&node.inner, bind, self.listen, self.served).await?;
            let _ = node.inner.remote.set(remote);
        }
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
    /// A builder for a node on `postgres` (whose [`NodeId`](super::NodeId) is the node's).
    pub fn builder(postgres: Postgres) -> NodeBuilder {
        NodeBuilder {
            postgres,
            hosts: HashMap::new(),
            take_over: false,
            adopt_orphans: false,
            adopt_every: None,
            #[cfg(feature = "grpc")]
            listen: super::grpc::Listen::default(),
            #[cfg(feature = "grpc")]
            served: HashMap::new(),
        }
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

/// Calls between nodes (the `grpc` feature).
#[cfg(feature = "grpc")]
impl NodeBuilder {
    /// Answers calls from other nodes on `address` (`0.0.0.0:7070`, or port 0 for any), and
    /// publishes the node in the directory: [`Node::get`] on other nodes then reaches the servers
    /// it runs. Choose how the traffic is protected with [`tls`](Self::tls) (or, explicitly,
    /// [`insecure_plaintext_between_nodes`](Self::insecure_plaintext_between_nodes)).
    pub fn listen(mut self, address: std::net::SocketAddr) -> Self {
        self.listen.bind = Some(address);
        self
    }

    /// The address other nodes dial (`host:port`), when it is not the bound one (behind NAT, or
    /// listening on `0.0.0.0`). This and the settings below apply once the node
    /// [`listen`](Self::listen)s, whether they are given before or after it.
    pub fn advertise(mut self, address: impl Into<String>) -> Self {
        self.listen.advertise = Some(address.into());
        self
    }

    /// Mutual TLS between nodes, with the cluster's CA ([`ClusterTls`](super::ClusterTls)).
    pub fn tls(mut self, tls: super::ClusterTls) -> Self {
        self.listen.transport = Some(super::grpc::Transport::Tls(Box::new(tls)));
        self
    }

    /// Plaintext between nodes: anyone who can reach the port can call every server. For tests
    /// and for networks that are already encrypted and closed; use [`tls`](Self::tls) otherwise.
    pub fn insecure_plaintext_between_nodes(mut self) -> Self {
        self.listen.transport = Some(super::grpc::Transport::Plaintext);
        self
    }

    /// Where [`Node::get`] starts a server that runs nowhere ([`Asked`](super::Asked) by
    /// default).
    pub fn placement(mut self, placement: impl super::Placement) -> Self {
        self.listen.placement = Arc::new(placement);
        self
    }

    /// The largest message or reply sent or taken, encoded (4 MiB by default). A larger one is
    /// refused with [`Undelivered::TooLarge`](crate::Undelivered::TooLarge) before it is sent.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.listen.max_message = bytes.max(1024);
        self
    }
}
