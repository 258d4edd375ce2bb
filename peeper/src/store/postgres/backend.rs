//! [`Postgres`] as a [`Store`]: reads, fenced writes, claims and releases.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use deadpool_postgres::GenericClient;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::{
    BoxFuture, Claim, Held, Key, NodeId, Postgres, Records, Store, StoreError, Write, backend,
    column, key_at,
};

impl Postgres {
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
