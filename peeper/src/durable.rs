//! How a branch reaches its store: the typed half of durable state, captured where
//! `S: Persist` is known (in [`Builder::store`](crate::Builder::store)) so that the rest of the
//! runtime needs no such bound.

use std::fmt;

use crate::store::{self, Key, Persist, Storage, StoreError};

pub(crate) struct Durable<S> {
    pub(crate) storage: Storage,
    /// The server kind; the name comes from the branch's options at start.
    pub(crate) kind: &'static str,
    encode: fn(&Key, &S) -> Result<Vec<u8>, StoreError>,
    decode: fn(&Key, &[u8]) -> Result<S, StoreError>,
}

impl<S> Durable<S> {
    pub(crate) fn new(storage: Storage) -> Self
    where
        S: Persist,
    {
        Durable {
            storage,
            kind: S::KIND,
            encode: store::encode::<S>,
            decode: store::decode::<S>,
        }
    }

    pub(crate) fn key(&self, name: &str) -> Key {
        Key::new(self.kind, name)
    }

    pub(crate) fn encode(&self, key: &Key, state: &S) -> Result<Vec<u8>, StoreError> {
        (self.encode)(key, state)
    }

    /// The stored state of `key`, if any, decoded (and migrated).
    pub(crate) async fn load(&self, key: &Key) -> Result<Option<S>, StoreError> {
        match self.storage.read(key).await? {
            Some(bytes) => (self.decode)(key, &bytes).map(Some),
            None => Ok(None),
        }
    }
}

impl<S> Clone for Durable<S> {
    fn clone(&self) -> Self {
        Durable {
            storage: self.storage.clone(),
            kind: self.kind,
            encode: self.encode,
            decode: self.decode,
        }
    }
}

impl<S> fmt::Debug for Durable<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Durable")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}
