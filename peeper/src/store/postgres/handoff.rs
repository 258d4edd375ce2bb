//! What [`Node`](crate::cluster::Node) uses: handoffs, transfers and orphans.

use tokio_postgres::NoTls;

use super::{Key, Listening, NodeId, Postgres, StoreError, Tls, backend, column, key_at, notify};

impl Postgres {
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
}
