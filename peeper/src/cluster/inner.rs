//! What a node does on its own: it starts servers (`NodeInner::launch`), revives those handed
//! off to it or orphaned, and runs the tasks that find them (the `LISTEN` loop, the adoption of
//! orphans) and that fence the servers whose lease it lost.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::{NodeEvent, NodeInner, Postgres};
use crate::store::{Key, Persist, StoreError};
use crate::{Branch, Builder, Client, Exit, StartError};

impl NodeInner {
    pub(super) fn tasks(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn running(&self) -> MutexGuard<'_, HashMap<Key, Branch>> {
        // Only map operations run under the lock.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    pub(super) async fn launch<S: Persist, C: From<Client<S>>>(
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
        #[allow(unused_mut)]
        let mut builder = builder
            .store(self.storage.clone())
            .supervisor(&self.supervisor);
        #[cfg(feature = "grpc")]
        // Only a node that reaches others can follow a server there.
        if let (Some(durable), true, true) = (
            &mut builder.durable,
            S::__WIRE.is_some(),
            self.remote.get().is_some(),
        ) {
            durable.forward = Some(super::grpc::forwarding::<S>(&self.me, &name));
        }
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
    pub(super) async fn scan_handoffs(self: &Arc<Self>) {
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
pub(super) async fn listen(
    node: Weak<NodeInner>,
    mut listening: crate::store::postgres::Listening,
) {
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
pub(super) async fn adopt(node: Weak<NodeInner>, every: Duration) {
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
pub(super) async fn watch_lost(node: Weak<NodeInner>, mut lost: broadcast::Receiver<Key>) {
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
