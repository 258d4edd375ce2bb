//! Leases: claims, renewals and releases.

use std::collections::HashMap;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{Inner, Key, Postgres, StoreError, backend, column, key_at, millis};

impl Postgres {
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

    pub(super) async fn try_claim(&self, key: &Key) -> Result<i64, StoreError> {
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

    /// Gives up the lease of `key` (see [`Store::release`](super::Store::release)).
    pub(super) async fn release_now(&self, key: &Key) -> Result<(), StoreError> {
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
    pub(super) fn abandon_key(&self, key: &Key) {
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

    pub(super) async fn retry_releases(&self) {
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
}

/// The background renewal: one `UPDATE` per period for every lease of the handle.
pub(super) async fn renew_every(inner: Weak<Inner>, period: Duration) {
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
