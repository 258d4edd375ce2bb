//! The directory of a cluster whose nodes call each other (`grpc`): where each node answers,
//! which kinds it hosts, and where each server runs, read from the lease table.

use super::{Key, NodeId, Postgres, StoreError, backend, column, millis};

/// Where a server runs, as the lease table says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// Nobody holds it: never claimed, released, or its owner stopped renewing the lease.
    Free,
    /// Released for a handoff, and not taken yet.
    InHandoff,
    /// A live owner, at `epoch`; its address if its node answers other nodes.
    Owned {
        node: NodeId,
        epoch: i64,
        address: Option<String>,
    },
}

impl Postgres {
    /// The epoch of this handle's lease on `key`, if it holds one.
    pub(crate) fn held_epoch(&self, key: &Key) -> Option<i64> {
        self.leases().held.get(key).map(|held| held.epoch)
    }

    /// Where `key` runs.
    pub(crate) async fn route(&self, key: &Key) -> Result<Route, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.inner.sql.route)
            .await
            .map_err(backend)?;
        let Some(row) = client
            .query_opt(&statement, &[&key.kind, &key.name])
            .await
            .map_err(backend)?
        else {
            return Ok(Route::Free);
        };
        let owner: Option<String> = column(&row, 0)?;
        let live: Option<bool> = column(&row, 2)?;
        let handoff: bool = column(&row, 3)?;
        Ok(match (owner, live) {
            (Some(node), Some(true)) => Route::Owned {
                node: NodeId::new(node),
                epoch: column(&row, 1)?,
                address: column(&row, 4)?,
            },
            (None, _) if handoff => Route::InHandoff,
            _ => Route::Free,
        })
    }

    /// Publishes this node's address and kinds, for as long as its heartbeat lasts (the lease).
    pub(crate) async fn join(&self, address: &str, kinds: &[&str]) -> Result<(), StoreError> {
        let client = self.client().await?;
        let kinds: Vec<&str> = kinds.to_vec();
        client
            .execute(
                &self.inner.sql.join,
                &[
                    &self.node().as_str(),
                    &self.inner.session,
                    &address,
                    &kinds,
                    &millis(self.inner.lease),
                ],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Extends this node's entry; `false` if another session took the node's id.
    pub(crate) async fn heartbeat(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &self.inner.sql.heartbeat,
                &[
                    &self.node().as_str(),
                    &self.inner.session,
                    &millis(self.inner.lease),
                ],
            )
            .await
            .map_err(backend)?;
        Ok(!rows.is_empty())
    }

    /// Removes this node's entry (a graceful shutdown).
    pub(crate) async fn leave(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                &self.inner.sql.leave,
                &[&self.node().as_str(), &self.inner.session],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// The live nodes hosting `kind`, sorted by id, with their addresses.
    pub(crate) async fn nodes_hosting(
        &self,
        kind: &str,
    ) -> Result<Vec<(NodeId, String)>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.inner.sql.nodes_hosting)
            .await
            .map_err(backend)?;
        client
            .query(&statement, &[&kind])
            .await
            .map_err(backend)?
            .iter()
            .map(|row| Ok((NodeId::new(column::<String>(row, 0)?), column(row, 1)?)))
            .collect()
    }
}
