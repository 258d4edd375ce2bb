//! [`Memory`]: a backend in the process's memory, for tests and examples.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{BoxFuture, Key, Records, Store, StoreError, Write};

/// A backend that keeps everything in memory: it survives the servers that use it, not the
/// process. Clones share the same contents.
///
/// [`fail_writes`](Memory::fail_writes) makes every commit fail, to test how servers handle a
/// full or read-only store.
///
/// ```
/// use peeper::store::{Key, Memory, Store, Write};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let memory = Memory::new();
/// memory.fail_writes(Some("disk full"));
/// let failed = memory.commit(vec![Write::put(Key::new("k", "a"), vec![1])]).await;
/// assert_eq!(failed.unwrap_err().to_string(), "the store failed: disk full");
/// memory.fail_writes(None);
/// assert!(memory.commit(vec![Write::put(Key::new("k", "a"), vec![1])]).await.is_ok());
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Memory {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<Key, Vec<u8>>,
    /// Records of keyed calls ([`Store::retained`]), by key and id.
    retained: BTreeMap<Key, BTreeMap<String, Vec<u8>>>,
    failure: Option<String>,
}

impl Memory {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later commit fail with this message (`None` to stop failing).
    pub fn fail_writes(&self, failure: Option<&str>) {
        self.inner().failure = failure.map(str::to_owned);
    }

    /// Replaces the bytes under `key` directly, bypassing every check: for tests of corrupt data.
    pub fn put_raw(&self, key: Key, bytes: Vec<u8>) {
        self.inner().entries.insert(key, bytes);
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Only map operations run under the lock.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for Memory {
    fn read<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        let bytes = self.inner().entries.get(key).cloned();
        Box::pin(async move { Ok(bytes) })
    }

    fn commit(&self, batch: Vec<Write>) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut inner = self.inner();
        let outcome = match &inner.failure {
            Some(failure) => Err(StoreError::backend(failure)),
            None => {
                for write in batch {
                    let records = inner.retained.entry(write.key.clone()).or_default();
                    for (id, record) in write.retained {
                        match record {
                            Some(record) => records.insert(id, record),
                            None => records.remove(&id),
                        };
                    }
                    match write.bytes {
                        Some(bytes) => inner.entries.insert(write.key, bytes),
                        None => {
                            inner.retained.remove(&write.key);
                            inner.entries.remove(&write.key)
                        }
                    };
                }
                Ok(())
            }
        };
        Box::pin(async move { outcome })
    }

    fn retained<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<Records, StoreError>> {
        let records = self
            .inner()
            .retained
            .get(key)
            .map_or_else(Vec::new, |records| {
                records
                    .iter()
                    .map(|(id, record)| (id.clone(), record.clone()))
                    .collect()
            });
        Box::pin(async move { Ok(records) })
    }

    fn keys<'a>(&'a self, kind: Option<&'a str>) -> BoxFuture<'a, Result<Vec<Key>, StoreError>> {
        let keys = self
            .inner()
            .entries
            .keys()
            .filter(|key| kind.is_none_or(|kind| key.kind == kind))
            .cloned()
            .collect();
        Box::pin(async move { Ok(keys) })
    }
}
