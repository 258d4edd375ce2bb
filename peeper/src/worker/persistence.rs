//! A durable worker's link to its store: write-through, batches, and what a failed write
//! leaves to do.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::time::Instant;

use super::durable::Hooks;
use crate::durable::Durable;
use crate::erased::BoxFuture;
use crate::options::WritePolicy;
use crate::retained::Unwritten;
use crate::store::{Claim, Key, Storage, StoreError, Write};
use crate::{Exit, Server, Tracked};

/// A durable worker's link to its store.
///
/// Only the encoding needs the server's type; the rest ([`Writes`]) is written, and compiled,
/// once for every server type, and its writes are boxed futures made here.
pub(crate) struct Persistence<S: Server> {
    encode: fn(&Key, &S) -> Result<Vec<u8>, StoreError>,
    /// What the worker does around its handlers because it is durable.
    pub(super) hooks: &'static Hooks<S>,
    pub(crate) writes: Writes,
}

/// The part of a durable worker's link that needs no server type.
pub(crate) struct Writes {
    pub(crate) storage: Storage,
    pub(crate) key: Key,
    /// The claim the branch runs under: every write carries it.
    claim: Option<Claim>,
    policy: WritePolicy,
    /// Batched policy: when the oldest change not yet submitted was made.
    unwritten_since: Option<Instant>,
    /// Set from each write's submission until its commit succeeds: a write that failed leaves
    /// the store behind the state in memory. Hibernating drops that state, so the idle path
    /// writes it again first (see `flush`) instead of letting the branch come back older.
    /// Shared with the write's future, which outlives the `&mut self` that made it.
    behind: Arc<AtomicBool>,
}

/// A write on its way to the store: it completes with the commit.
pub(crate) type Written = BoxFuture<'static, Result<(), StoreError>>;

impl<S: Server> Persistence<S> {
    pub(crate) fn new(
        durable: &Durable<S>,
        key: Key,
        policy: WritePolicy,
        hooks: &'static Hooks<S>,
    ) -> Self {
        Persistence {
            encode: durable.encoder(),
            hooks,
            writes: Writes {
                storage: durable.storage.clone(),
                key,
                claim: durable.claim,
                policy,
                unwritten_since: None,
                behind: Arc::default(),
            },
        }
    }

    /// The state changed: write it through (the returned future waits for the commit), or note
    /// it for the next batch.
    ///
    /// The state is encoded before anything is awaited: `S` need not be `Sync`.
    pub(super) fn changed(&mut self, state: &S, records: Option<&Unwritten>) -> Option<Written> {
        self.writes.through().then(|| self.write(state, records))
    }

    /// When the batch must go out, if one is waiting.
    pub(super) fn flush_at(&self) -> Option<Instant> {
        self.writes.flush_at()
    }

    /// Writes the state if a batched change is waiting, or if the last write failed; the future
    /// waits for the commit.
    pub(super) fn flush(&mut self, state: &S, records: Option<&Unwritten>) -> Option<Written> {
        self.writes
            .must_flush(records)
            .then(|| self.write(state, records))
    }

    /// Whether the store holds `state` as it is: its bytes have `fingerprint`.
    pub(super) fn holds(&self, state: &S, fingerprint: u64) -> bool {
        (self.encode)(&self.writes.key, state)
            .is_ok_and(|bytes| crate::fingerprint::fingerprint(&bytes) == fingerprint)
    }

    /// Writes the state, with the records of keyed calls not written yet (put back for the next
    /// write if this one fails: they never reach the store without their state, nor are lost).
    pub(super) fn write(&mut self, state: &S, records: Option<&Unwritten>) -> Written {
        let encoded = (self.encode)(&self.writes.key, state);
        self.writes.write(encoded, records)
    }
}

impl Writes {
    /// Whether a change is written at once; else it is noted for the next batch.
    fn through(&mut self) -> bool {
        match self.policy {
            WritePolicy::Through => true,
            WritePolicy::Batched(_) => {
                self.unwritten_since.get_or_insert_with(Instant::now);
                false
            }
        }
    }

    fn flush_at(&self) -> Option<Instant> {
        match (self.policy, self.unwritten_since) {
            (WritePolicy::Batched(period), Some(since)) => Some(since + period),
            _ => None,
        }
    }

    fn must_flush(&self, records: Option<&Unwritten>) -> bool {
        let behind = self.behind.load(Ordering::Relaxed);
        let recorded = records.is_some_and(|records| !records.is_empty());
        self.unwritten_since.is_some() || behind || recorded
    }

    /// Submits `encoded` (the state's bytes, or why they could not be made) with the unwritten
    /// `records`.
    fn write(
        &mut self,
        encoded: Result<Vec<u8>, StoreError>,
        records: Option<&Unwritten>,
    ) -> Written {
        self.unwritten_since = None;
        // One worker awaits each write before it makes the next: the flag follows the last one.
        self.behind.store(true, Ordering::Relaxed);
        let behind = Arc::clone(&self.behind);
        let carried = records.map(|records| (records.clone(), records.take()));
        let submitted = encoded.map(|bytes| {
            let mut write = Write::put(self.key.clone(), bytes);
            if let Some(claim) = self.claim {
                write = write.under(claim);
            }
            if let Some((_, changes)) = &carried {
                write.retained.clone_from(changes);
            }
            self.storage.submit(write)
        });
        Box::pin(async move {
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
        })
    }
}

/// Writes the state to the store if the handler that just ran changed it; `None` if there is
/// nothing to wait for.
pub(super) fn store_if_changed<S: Server>(
    persistence: &mut Persistence<S>,
    live: &Tracked<S>,
    records: Option<&Unwritten>,
) -> Option<Written> {
    if live.changed() {
        persistence.changed(live, records)
    } else {
        None
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
