//! How a branch reaches its store: the typed half of durable state, captured where
//! `S: Persist` is known (in [`Builder::store`](crate::Builder::store)) so that the rest of the
//! runtime needs no such bound.

use std::any::Any;
use std::fmt;
use std::time::Duration;

use crate::Branch;
use crate::fingerprint::fingerprint;
use crate::store::{self, Claim, Key, Persist, Storage, StoreError, Write};

pub(crate) struct Durable<S: crate::Server> {
    pub(crate) storage: Storage,
    /// What is the same for every durable server of the type: one constant per type.
    pub(crate) of: &'static DurableKind<S>,
    /// The claim the branch runs under, once made: every write carries it, so that a fencing
    /// store refuses the writes of a branch whose claim was given up or taken over.
    pub(crate) claim: Option<Claim>,
    /// For a remote server of a cluster node (`grpc`): what takes the mailbox when the server
    /// moves to another node (handed off, fenced), so that its clients follow it there.
    pub(crate) forward: Option<Forward<S>>,
}

/// What a durable server's type decides about its storage: built once per type, in a constant,
/// and pointed to by every [`Durable`] of the type (a pointer per server rather than five fields).
pub(crate) struct DurableKind<S: crate::Server> {
    /// The server kind; the name comes from the branch's options at start.
    pub(crate) kind: &'static str,
    pub(crate) encode: fn(&Key, &S) -> Result<Vec<u8>, StoreError>,
    pub(crate) decode: fn(&Key, &[u8]) -> Result<S, StoreError>,
    /// What only a durable branch runs (its claim and load at start, its last write,
    /// hibernation and revival), set where `S: Persist` is known: the supervision's
    /// `DurablePaths<S>`, which this module, below the supervisor's, cannot name. A server
    /// without a store never reaches that code, and through this pointer its crate does not
    /// compile it either.
    pub(crate) paths: &'static (dyn Any + Send + Sync),
}

impl<S: Persist> DurableKind<S> {
    /// The kind of `S`, with `paths` (see [`paths`](DurableKind::paths)).
    pub(crate) const fn of(paths: &'static (dyn Any + Send + Sync)) -> Self {
        DurableKind {
            kind: S::KIND,
            encode: store::encode::<S>,
            decode: store::decode::<S>,
            paths,
        }
    }
}

/// Takes the mailbox (and the branch) of a server that moved to another node.
pub(crate) type Forward<S> = std::sync::Arc<
    dyn Fn(crate::mailbox::Inbox<crate::mailbox::Envelope<S>>, Branch) + Send + Sync,
>;

impl<S: crate::Server> Durable<S> {
    pub(crate) fn new(storage: Storage, of: &'static DurableKind<S>) -> Self {
        Durable {
            storage,
            of,
            claim: None,
            forward: None,
        }
    }

    pub(crate) fn key(&self, name: &str) -> Key {
        Key::new(self.of.kind, name)
    }

    pub(crate) fn encode(&self, key: &Key, state: &S) -> Result<Vec<u8>, StoreError> {
        (self.of.encode)(key, state)
    }

    /// How the state is encoded for the store.
    pub(crate) fn encoder(&self) -> fn(&Key, &S) -> Result<Vec<u8>, StoreError> {
        self.of.encode
    }

    /// A write of `bytes` (`None`: a delete) to `key`, under the branch's claim.
    pub(crate) fn write(&self, key: Key, bytes: Option<Vec<u8>>) -> Write {
        let write = match bytes {
            Some(bytes) => Write::put(key, bytes),
            None => Write::delete(key),
        };
        match self.claim {
            Some(claim) => write.under(claim),
            None => write,
        }
    }

    /// The stored state of `key`, if any, decoded (and migrated), with the fingerprint of the
    /// stored bytes ([`fingerprint`](crate::fingerprint::fingerprint)).
    pub(crate) async fn load(&self, key: &Key) -> Result<Option<(S, u64)>, StoreError> {
        match self.storage.read(key).await? {
            Some(bytes) => {
                (self.of.decode)(key, &bytes).map(|state| Some((state, fingerprint(&bytes))))
            }
            None => Ok(None),
        }
    }
}

impl<S: crate::Server> Durable<S> {
    /// Claims `key` for a server about to run on it ([`Store::claim`](crate::store::Store::claim)).
    /// The claim is guarded until a running branch owns it.
    pub(crate) async fn claim(&self, key: &Key) -> Result<ClaimGuard, StoreError> {
        // Armed before the await: the store's own claim is cancel-safe, and a claim that lands
        // after this future was dropped is given up by the store itself.
        let claim = self.storage.claim(key).await?;
        Ok(ClaimGuard {
            storage: self.storage.clone(),
            key: Some(key.clone()),
            claim,
        })
    }
}

/// A claim on a durable server's key that no running branch owns yet.
///
/// Dropped while armed (the start or revival that made it failed, or its future was dropped at
/// one of its awaits, as under `tokio::time::timeout`), it gives the claim up at once: this
/// node can claim the key again right away, and the store releases the lease in the background
/// ([`Store::abandon`](crate::store::Store::abandon)). Without it, a cancelled start left the
/// key claimed, and renewed, for as long as the process lived.
#[must_use = "a claim guard dropped at once gives the claim up"]
pub(crate) struct ClaimGuard {
    storage: Storage,
    key: Option<Key>,
    claim: Claim,
}

impl ClaimGuard {
    /// What the store granted.
    pub(crate) fn claim(&self) -> Claim {
        self.claim
    }

    /// A running branch owns the claim from now on: it releases it after its last write.
    pub(crate) fn hand_to_branch(mut self) {
        self.key = None;
    }

    /// Releases the claim and waits for it: the start failed before any branch ran.
    pub(crate) async fn release(mut self) {
        if let Some(key) = self.key.take() {
            release(&self.storage, &key).await;
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.storage.abandon(&key);
        }
    }
}

impl<S: crate::Server> Durable<S> {
    /// Writes a branch's last state, retrying until the store takes it.
    ///
    /// A failure that another attempt can fix (the store is down, the disk is full) is retried
    /// with a growing pause, up to a second, for as long as it takes: the branch keeps its claim
    /// meanwhile, so no other node revives an older state, and its name, so no new start here
    /// reads one. After a few failures the error is published for the stopper
    /// ([`StopError::Store`](crate::StopError::Store)). A failure that no retry fixes (fenced,
    /// closed) is returned.
    pub(crate) async fn store_last(
        &self,
        branch: &Branch,
        key: &Key,
        bytes: Vec<u8>,
        records: crate::retained::Changes,
    ) -> Result<(), StoreError> {
        const FIRST_PAUSE: Duration = Duration::from_millis(10);
        const LONGEST_PAUSE: Duration = Duration::from_secs(1);
        const ANNOUNCE_AFTER: u32 = 3;
        let mut pause = FIRST_PAUSE;
        let mut failures = 0_u32;
        loop {
            let mut write = self.write(key.clone(), Some(bytes.clone()));
            write.retained.clone_from(&records);
            let error = match self.storage.submit(write).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            if matches!(
                error,
                StoreError::Fenced { .. } | StoreError::Closed | StoreError::OwnedElsewhere { .. }
            ) {
                return Err(error);
            }
            failures += 1;
            tracing::warn!(%key, %error, failures, "could not store the last state; retrying");
            if failures == ANNOUNCE_AFTER {
                branch
                    .inner
                    .status
                    .send_modify(|status| status.unstored = Some(Box::new(error)));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }
}

/// Releases a durable server's claim on its key ([`Store::release`](crate::store::Store::release)),
/// after its last write. A failure is only logged: an unreleased lease expires on its own.
pub(crate) async fn release(storage: &Storage, key: &Key) {
    if let Err(error) = storage.release(key).await {
        tracing::warn!(%key, %error, "could not release the lease");
    }
}

impl<S: crate::Server> Clone for Durable<S> {
    fn clone(&self) -> Self {
        Durable {
            storage: self.storage.clone(),
            of: self.of,
            claim: self.claim,
            forward: self.forward.clone(),
        }
    }
}

impl<S: crate::Server> fmt::Debug for Durable<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Durable")
            .field("kind", &self.of.kind)
            .finish_non_exhaustive()
    }
}
