//! A durable worker's link to its store: write-through, batches, and what a failed write
//! leaves to do.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::time::Instant;

use crate::durable::Durable;
use crate::options::WritePolicy;
use crate::retained::Unwritten;
use crate::store::{Key, StoreError};
use crate::{Exit, Server, Tracked};

/// A durable worker's link to its store.
pub(crate) struct Persistence<S: Server> {
    pub(crate) durable: Durable<S>,
    pub(crate) key: Key,
    pub(crate) policy: WritePolicy,
    /// Batched policy: when the oldest change not yet submitted was made.
    unwritten_since: Option<Instant>,
    /// Set from each write's submission until its commit succeeds: a write that failed leaves
    /// the store behind the state in memory. Hibernating drops that state, so the idle path
    /// writes it again first (see `flush`) instead of letting the branch come back older.
    /// Shared with the write's future, which outlives the `&mut self` that made it.
    behind: Arc<AtomicBool>,
}

impl<S: Server> Persistence<S> {
    pub(crate) fn new(durable: Durable<S>, key: Key, policy: WritePolicy) -> Self {
        Persistence {
            durable,
            key,
            policy,
            unwritten_since: None,
            behind: Arc::default(),
        }
    }

    /// The state changed: write it through (the returned future waits for the commit), or note
    /// it for the next batch.
    ///
    /// The state is encoded before anything is awaited: `S` need not be `Sync`.
    pub(super) fn changed(
        &mut self,
        state: &S,
        records: Option<&Unwritten>,
    ) -> Option<impl Future<Output = Result<(), StoreError>> + Send + 'static> {
        match self.policy {
            WritePolicy::Through => Some(self.write(state, records)),
            WritePolicy::Batched(_) => {
                self.unwritten_since.get_or_insert_with(Instant::now);
                None
            }
        }
    }

    /// When the batch must go out, if one is waiting.
    pub(super) fn flush_at(&self) -> Option<Instant> {
        match (self.policy, self.unwritten_since) {
            (WritePolicy::Batched(period), Some(since)) => Some(since + period),
            _ => None,
        }
    }

    /// Writes the state if a batched change is waiting, or if the last write failed; the future
    /// waits for the commit.
    pub(super) fn flush(
        &mut self,
        state: &S,
        records: Option<&Unwritten>,
    ) -> Option<impl Future<Output = Result<(), StoreError>> + Send + 'static> {
        let behind = self.behind.load(Ordering::Relaxed);
        let recorded = records.is_some_and(|records| !records.is_empty());
        (self.unwritten_since.is_some() || behind || recorded).then(|| self.write(state, records))
    }

    /// Whether the store holds `state` as it is: its bytes have `fingerprint`.
    pub(super) fn holds(&self, state: &S, fingerprint: u64) -> bool {
        self.durable
            .encode(&self.key, state)
            .is_ok_and(|bytes| crate::fingerprint::fingerprint(&bytes) == fingerprint)
    }

    /// Writes the state, with the records of keyed calls not written yet (put back for the next
    /// write if this one fails: they never reach the store without their state, nor are lost).
    pub(super) fn write(
        &mut self,
        state: &S,
        records: Option<&Unwritten>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        self.unwritten_since = None;
        // One worker awaits each write before it makes the next: the flag follows the last one.
        self.behind.store(true, Ordering::Relaxed);
        let behind = Arc::clone(&self.behind);
        let encoded = self.durable.encode(&self.key, state);
        let carried = records.map(|records| (records.clone(), records.take()));
        let submitted = encoded.map(|bytes| {
            let mut write = self.durable.write(self.key.clone(), Some(bytes));
            if let Some((_, changes)) = &carried {
                write.retained.clone_from(changes);
            }
            self.durable.storage.submit(write)
        });
        async move {
            let written = match submitted {
                Ok(submitted) => submitted.await,
                Err(error) => Err(error),
            };
            match written {
                Ok(()) => behind.store(false, Ordering::Relaxed),
                Err(_) => {
                    if let Some((records, changes)) = carried {
                        records.put_back(changes);
                    }
                }
            }
            written
        }
    }
}

/// Writes the state to the store if the handler that just ran changed it.
pub(super) fn store_if_changed<S: Server>(
    persistence: &mut Option<Box<Persistence<S>>>,
    live: &Tracked<S>,
    records: Option<&Unwritten>,
) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
    let write = match persistence {
        Some(persistence) if live.changed() => persistence.changed(live, records),
        _ => None,
    };
    async move {
        match write {
            Some(write) => write.await,
            None => Ok(()),
        }
    }
}

/// A write refused by fencing ends the worker (and its branch, without writing or releasing):
/// another node owns the server now, and this copy of its state is stale.
pub(super) fn fenced(written: &Result<(), StoreError>) -> Option<Exit> {
    match written {
        Err(StoreError::Fenced { owner, .. }) => Some(Exit::Fenced {
            owner: owner.clone(),
        }),
        _ => None,
    }
}
