//! The group-commit writer: one task per [`Storage`](super::Storage), one transaction per round.
//!
//! Submitting is synchronous (a lock, a map insert, a wake-up), so the order in which a server
//! submits its states is the order they reach the map, and a later state of a key replaces an
//! earlier one that has not been committed yet. The task takes everything pending, commits it in
//! one transaction, answers every waiter of that round, and goes again while anything is pending:
//! under load, each round carries what arrived during the previous commit.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use super::{Key, Store, StoreError, Write};

type Waiter = oneshot::Sender<Result<(), StoreError>>;

/// The writes waiting for a commit: the latest bytes of each key, and everyone waiting for it.
#[derive(Default)]
struct Pending {
    /// Keys in the order they were first submitted since their last commit.
    order: VecDeque<Key>,
    writes: HashMap<Key, (Option<Vec<u8>>, Vec<Waiter>)>,
}

impl Pending {
    /// Takes up to `max` keys, oldest first, with the waiters of each.
    fn take(&mut self, max: usize) -> (Vec<Write>, Vec<(Key, Vec<Waiter>)>) {
        let mut batch = Vec::new();
        let mut waiters = Vec::new();
        while batch.len() < max {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            if let Some((bytes, waiting)) = self.writes.remove(&key) {
                waiters.push((key.clone(), waiting));
                batch.push((key, bytes));
            }
        }
        (batch, waiters)
    }
}

struct Shared {
    backend: Arc<dyn Store>,
    pending: Mutex<Pending>,
    wake: Notify,
    commits: AtomicU64,
    /// The most keys one transaction carries.
    max_batch: usize,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // Only map and vector operations run under the lock: it cannot be poisoned mid-update.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    pub(crate) fn new(backend: Arc<dyn Store>, max_batch: usize) -> Self {
        let shared = Shared {
            backend,
            pending: Mutex::default(),
            wake: Notify::new(),
            commits: AtomicU64::new(0),
            max_batch: max_batch.max(1),
        };
        Writer {
            shared: Arc::new(shared),
            task: Mutex::new(None),
        }
    }

    pub(crate) fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    pub(crate) fn submit(
        &self,
        key: Key,
        bytes: Option<Vec<u8>>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let (waiter, committed) = oneshot::channel();
        {
            let mut pending = self.shared.pending();
            match pending.writes.get_mut(&key) {
                // Not committed yet: the newer bytes replace the older ones, for both waiters.
                Some((pending_bytes, waiters)) => {
                    *pending_bytes = bytes;
                    waiters.push(waiter);
                }
                None => {
                    pending.order.push_back(key.clone());
                    pending.writes.insert(key, (bytes, vec![waiter]));
                }
            }
        }
        self.ensure_running();
        // A stored permit if the task is busy committing: it goes round once more.
        self.shared.wake.notify_one();
        async move { committed.await.unwrap_or(Err(StoreError::Closed)) }
    }

    /// Starts the task on the current runtime, or again if the runtime it ran on has shut down.
    fn ensure_running(&self) {
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if task.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // No runtime: the waiters get `Closed` when their channel is dropped below.
        };
        *task = Some(runtime.spawn(run(Arc::clone(&self.shared))));
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

async fn run(shared: Arc<Shared>) {
    loop {
        shared.wake.notified().await;
        loop {
            let (batch, waiters) = shared.pending().take(shared.max_batch);
            if batch.is_empty() {
                break;
            }
            // `commit_owned`: a store shared by several nodes may refuse the writes of a server
            // this node no longer owns (fencing) and still commit everyone else's.
            let outcome = shared.backend.commit_owned(batch).await;
            shared.commits.fetch_add(1, Ordering::Relaxed);
            let mut refused: HashMap<Key, StoreError> = match outcome {
                Ok(refused) => refused.into_iter().collect(),
                Err(error) => {
                    tracing::error!(%error, writes = waiters.len(), "commit failed");
                    for (_, waiting) in waiters {
                        for waiter in waiting {
                            let _ = waiter.send(Err(error.clone()));
                        }
                    }
                    continue;
                }
            };
            for (key, waiting) in waiters {
                let outcome = match refused.remove(&key) {
                    Some(error) => {
                        tracing::warn!(%error, "write refused");
                        Err(error)
                    }
                    None => Ok(()),
                };
                for waiter in waiting {
                    // A waiter that gave up (its worker was killed) needs no answer.
                    let _ = waiter.send(outcome.clone());
                }
            }
        }
    }
}
