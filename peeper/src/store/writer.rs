//! The group-commit writer: one task per [`Storage`](super::Storage), one transaction per round.
//!
//! Submitting is synchronous (a lock, a map insert, a wake-up), so the order in which a server
//! submits its states is the order they reach the map, and a later state of a key replaces an
//! earlier one that has not been committed yet. Only a write of the same claim replaces another:
//! a server's write pending when a newer claim of its key writes (the server's start was dropped,
//! and a new start claimed the key) is refused as fenced, never committed under the newer claim. The task takes everything pending, commits it in
//! one transaction, answers every waiter of that round, and goes again while anything is pending:
//! under load, each round carries what arrived during the previous commit.
//!
//! The task holds the backend only while it commits (a [`Weak`] otherwise), and lets go of it
//! before it answers the round's waiters: once the last `Storage` is gone and no commit is in
//! flight, nothing keeps the backend (a redb file) open. Closing (or dropping the last `Storage`)
//! refuses new writes, lets the task commit what is pending, and ends it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use super::{Key, Store, StoreError, Write};

type Waiter = oneshot::Sender<Result<(), StoreError>>;

/// The writes waiting for a commit: the latest bytes of each key, and everyone waiting for it.
#[derive(Default)]
struct Pending {
    /// Keys in the order they were first submitted since their last commit.
    order: VecDeque<Key>,
    writes: HashMap<Key, (Write, Vec<Waiter>)>,
    /// Set once by closing (or dropping) the storage: new writes are refused, and the task ends
    /// once everything pending is committed. Under the same lock as the writes, so that the task
    /// never sees "closed and nothing pending" while a write it should commit is on its way in.
    closed: bool,
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
            if let Some((write, waiting)) = self.writes.remove(&key) {
                waiters.push((key, waiting));
                batch.push(write);
            }
        }
        (batch, waiters)
    }
}

struct Shared {
    /// Not an `Arc`: the task must not keep the backend alive between rounds (see the module).
    backend: Weak<dyn Store>,
    /// The backend, kept for the task's last rounds when the last `Storage` was dropped with
    /// writes still pending; the task drops it when it ends.
    last_rounds: Mutex<Option<Arc<dyn Store>>>,
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

    fn last_rounds(&self) -> MutexGuard<'_, Option<Arc<dyn Store>>> {
        // Only an `Option` is replaced under the lock.
        self.last_rounds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// How a new write of a key relates to the one queued for it.
enum Supersedes {
    /// Made under the same claim (or one of them under none): the new one replaces the queued.
    Same,
    /// The queued write was made under an older claim: it is refused, the new one takes its place.
    Stale,
    /// The new write was made under an older claim than the queued one: it is refused.
    Superseded,
}

impl Supersedes {
    fn of(new: &Write, queued: &Write) -> Self {
        match (new.claim, queued.claim) {
            (Some(new), Some(queued)) if new.epoch > queued.epoch => Supersedes::Stale,
            (Some(new), Some(queued)) if new.epoch < queued.epoch => Supersedes::Superseded,
            _ => Supersedes::Same,
        }
    }
}

/// Adds `newer` records to `queued` ones: the later record of an id replaces the earlier (a store
/// applies each id once per commit).
fn merge_retained(
    queued: &mut Vec<(String, Option<Vec<u8>>)>,
    newer: Vec<(String, Option<Vec<u8>>)>,
) {
    for (id, record) in newer {
        match queued.iter_mut().find(|(queued_id, _)| *queued_id == id) {
            Some(slot) => slot.1 = record,
            None => queued.push((id, record)),
        }
    }
}

/// What a write made under a claim that a newer one replaced gets: the owner is not known here.
fn fenced(key: &Key) -> StoreError {
    StoreError::Fenced {
        key: key.clone(),
        owner: None,
    }
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<Result<(), StoreError>>>>,
    /// Held for the whole of a `close`, so that concurrent calls all wait for the task's end.
    closing: tokio::sync::Mutex<()>,
}

impl Writer {
    /// A writer for `backend`, which it does not keep alive: whoever owns the `Arc` does.
    pub(crate) fn new(backend: &Arc<dyn Store>, max_batch: usize) -> Self {
        let shared = Shared {
            backend: Arc::downgrade(backend),
            last_rounds: Mutex::new(None),
            pending: Mutex::default(),
            wake: Notify::new(),
            commits: AtomicU64::new(0),
            max_batch: max_batch.max(1),
        };
        Writer {
            shared: Arc::new(shared),
            task: Mutex::new(None),
            closing: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    pub(crate) fn submit(
        &self,
        write: Write,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let (waiter, committed) = oneshot::channel();
        let answer = async move { committed.await.unwrap_or(Err(StoreError::Closed)) };
        {
            let mut pending = self.shared.pending();
            if pending.closed {
                // The sender is dropped here: `answer` is `Closed`.
                return answer;
            }
            match pending.writes.get_mut(&write.key) {
                Some((queued, waiters)) => match Supersedes::of(&write, queued) {
                    // Not committed yet: the newer bytes replace the older ones, for both waiters.
                    Supersedes::Same => {
                        queued.bytes = write.bytes;
                        queued.claim = queued.claim.or(write.claim);
                        merge_retained(&mut queued.retained, write.retained);
                        waiters.push(waiter);
                    }
                    // A newer claim of the key writes: the queued write's server lost its claim,
                    // and its write must not land under the newer one.
                    Supersedes::Stale => {
                        let key = write.key.clone();
                        for stale in std::mem::replace(waiters, vec![waiter]) {
                            let _ = stale.send(Err(fenced(&key)));
                        }
                        *queued = write;
                    }
                    Supersedes::Superseded => {
                        let _ = waiter.send(Err(fenced(&write.key)));
                    }
                },
                None => {
                    pending.order.push_back(write.key.clone());
                    pending
                        .writes
                        .insert(write.key.clone(), (write, vec![waiter]));
                }
            }
        }
        self.ensure_running();
        // A stored permit if the task is busy committing: it goes round once more.
        self.shared.wake.notify_one();
        answer
    }

    /// Refuses every later write, lets the task commit what is pending, and waits for it to end.
    ///
    /// Returns the error of a commit that failed after the close began (its waiters got it too).
    /// Once this returns, the task holds no reference to the backend. Calls are serialized: a
    /// second call waits for the first, then finds nothing left to do.
    pub(crate) async fn close(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.closing.lock().await;
        self.refuse_writes(|| {});
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(task) = task else {
            return Ok(()); // Never started, or an earlier `close` saw it end.
        };
        match task.await {
            Ok(outcome) => outcome,
            // Aborted with its runtime: its future, and what it held, is dropped all the same.
            Err(error) if error.is_cancelled() => Ok(()),
            Err(error) => Err(StoreError::backend(error)),
        }
    }

    /// Marks the writer closed and wakes the task to commit what is pending and end. With writes
    /// pending, `keep_backend` runs first and the task is (re)started: one whose runtime shut
    /// down left them behind.
    fn refuse_writes(&self, keep_backend: impl FnOnce()) {
        let has_pending = {
            let mut pending = self.shared.pending();
            pending.closed = true;
            !pending.writes.is_empty()
        };
        if has_pending {
            keep_backend();
            self.ensure_running();
        }
        self.shared.wake.notify_one();
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
    /// The last `Storage` is gone: no write can come any more. The task commits what is pending
    /// (keeping the backend alive for it), then ends; with nothing pending it ends at once and
    /// the backend is released by whoever drops the last `Arc` of it, now.
    fn drop(&mut self) {
        let shared = Arc::clone(&self.shared);
        self.refuse_writes(|| {
            if let Some(backend) = shared.backend.upgrade() {
                *shared.last_rounds() = Some(backend);
            }
        });
        // The task is not aborted: aborting it mid-commit would drop its waiters' answers while
        // the commit itself (on a blocking thread) goes on. Its handle is dropped: it runs on.
    }
}

async fn run(shared: Arc<Shared>) -> Result<(), StoreError> {
    // The first commit that failed after the close began: what `close` reports.
    let mut failed_while_closing = None;
    loop {
        shared.wake.notified().await;
        loop {
            let (batch, waiters, closed) = {
                let mut pending = shared.pending();
                let (batch, waiters) = pending.take(shared.max_batch);
                (batch, waiters, pending.closed)
            };
            if batch.is_empty() {
                if closed {
                    // Closed, and nothing pending can come any more.
                    drop(shared.last_rounds().take());
                    return failed_while_closing.map_or(Ok(()), Err);
                }
                break;
            }
            let outcome = match shared.backend.upgrade() {
                // `commit_owned`: a store shared by several nodes may refuse the writes of a
                // server this node no longer owns (fencing) and still commit everyone else's.
                Some(backend) => {
                    let outcome = backend.commit_owned(batch).await;
                    // Let go of the backend before anyone hears of the commit: a caller that
                    // drops its `Storage` once its write is answered releases the backend then.
                    drop(backend);
                    shared.commits.fetch_add(1, Ordering::Relaxed);
                    outcome
                }
                None => Err(StoreError::Closed),
            };
            if closed && shared.pending().writes.is_empty() {
                // The last round of a dropped storage: let go of the backend before anyone hears
                // of it, as above (closed: no write can come any more).
                drop(shared.last_rounds().take());
            }
            let mut refused: HashMap<Key, StoreError> = match outcome {
                Ok(refused) => refused.into_iter().collect(),
                Err(error) => {
                    tracing::error!(%error, writes = waiters.len(), "commit failed");
                    // Read again: a commit already in flight when the close began counts.
                    if failed_while_closing.is_none() && shared.pending().closed {
                        failed_while_closing = Some(error.clone());
                    }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use tokio::sync::Semaphore;

    use super::super::{BoxFuture, Memory, Storage};
    use super::*;

    /// A `Memory` that says when it is dropped, and holds every commit until a permit is given.
    struct Watched {
        memory: Memory,
        dropped: Arc<AtomicBool>,
        permits: Arc<Semaphore>,
    }

    impl Drop for Watched {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::SeqCst);
        }
    }

    impl Store for Watched {
        fn read<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
            self.memory.read(key)
        }

        fn commit(&self, batch: Vec<Write>) -> BoxFuture<'_, Result<(), StoreError>> {
            Box::pin(async move {
                // The semaphore is never closed.
                self.permits.acquire().await.expect("open").forget();
                self.memory.commit(batch).await
            })
        }

        fn keys<'a>(
            &'a self,
            kind: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Vec<Key>, StoreError>> {
            self.memory.keys(kind)
        }
    }

    struct Watch {
        memory: Memory,
        dropped: Arc<AtomicBool>,
        permits: Arc<Semaphore>,
    }

    impl Watch {
        fn dropped(&self) -> bool {
            self.dropped.load(Ordering::SeqCst)
        }
    }

    fn watched(permits: usize) -> (Storage, Watch) {
        let watch = Watch {
            memory: Memory::new(),
            dropped: Arc::new(AtomicBool::new(false)),
            permits: Arc::new(Semaphore::new(permits)),
        };
        let storage = Storage::new(Watched {
            memory: watch.memory.clone(),
            dropped: Arc::clone(&watch.dropped),
            permits: Arc::clone(&watch.permits),
        });
        (storage, watch)
    }

    fn key(name: &str) -> Key {
        Key::new("writer-test", name)
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// Writes of one key coalesce only under one claim: a queued write of an older claim is
    /// refused when a newer claim writes, and a write of an older claim arriving after a newer
    /// one is refused at once; neither lands.
    #[tokio::test]
    async fn a_write_of_an_older_claim_is_refused_not_merged() {
        use super::super::Claim;
        let (storage, watch) = watched(Semaphore::MAX_PERMITS);
        // Nothing runs between these submits (one thread, no await): all three meet in the queue.
        let older = storage.submit(Write::put(key("a"), vec![1]).under(Claim::new(1)));
        let newer = storage.submit(Write::put(key("a"), vec![2]).under(Claim::new(2)));
        let late = storage.submit(Write::put(key("a"), vec![3]).under(Claim::new(1)));
        let same = storage.submit(Write::put(key("a"), vec![4]).under(Claim::new(2)));
        let fenced = |outcome: Result<(), StoreError>| matches!(outcome, Err(StoreError::Fenced { key: k, owner: None }) if k == key("a"));
        assert!(fenced(older.await));
        assert!(fenced(late.await));
        assert_eq!(newer.await, Ok(()));
        assert_eq!(same.await, Ok(()));
        assert_eq!(watch.memory.read(&key("a")).await, Ok(Some(vec![4])));
        assert_eq!(storage.commits(), 1, "the writes of one claim were merged");
    }

    #[tokio::test]
    async fn dropping_the_last_storage_between_rounds_drops_the_backend_at_once() {
        let (storage, watch) = watched(Semaphore::MAX_PERMITS);
        storage
            .submit(Write::put(key("a"), vec![1]))
            .await
            .expect("committed");
        let clone = storage.clone();
        drop(storage);
        assert!(!watch.dropped(), "a clone still holds it");
        drop(clone);
        assert!(watch.dropped(), "the idle task does not hold it");
        assert_eq!(watch.memory.read(&key("a")).await, Ok(Some(vec![1])));
    }

    #[tokio::test]
    async fn writes_pending_when_the_last_storage_is_dropped_are_still_committed() {
        let (storage, watch) = watched(0);
        let first = storage.submit(Write::put(key("a"), vec![1]));
        settle().await; // The task is in its commit of `a`, waiting for a permit.
        let second = storage.submit(Write::put(key("b"), vec![2]));
        drop(storage);
        settle().await;
        assert!(
            !watch.dropped(),
            "kept for the commits in flight and pending"
        );

        watch.permits.add_permits(2);
        assert_eq!(first.await, Ok(()));
        assert_eq!(second.await, Ok(()));
        assert!(
            watch.dropped(),
            "released before the last waiter was answered"
        );
        assert_eq!(watch.memory.keys(None).await.map(|keys| keys.len()), Ok(2));
    }

    #[tokio::test]
    async fn close_commits_what_is_pending_then_refuses_everything() {
        let (storage, watch) = watched(0);
        let clone = storage.clone();
        let written = storage.submit(Write::put(key("a"), vec![1]));
        let closing = tokio::spawn(async move { storage.close().await });
        settle().await;
        assert!(!closing.is_finished(), "waits for the pending commit");
        assert_eq!(
            clone.submit(Write::put(key("b"), vec![2])).await,
            Err(StoreError::Closed),
            "refused once the close began"
        );

        watch.permits.add_permits(1);
        assert_eq!(closing.await.expect("no panic"), Ok(()));
        assert!(watch.dropped(), "released when `close` returns");
        assert_eq!(
            written.await,
            Ok(()),
            "submitted before the close: committed"
        );
        assert_eq!(watch.memory.read(&key("a")).await, Ok(Some(vec![1])));
        assert_eq!(watch.memory.read(&key("b")).await, Ok(None));
        assert_eq!(clone.read(&key("a")).await, Err(StoreError::Closed));
        assert_eq!(clone.keys(None).await, Err(StoreError::Closed));
        assert_eq!(clone.close().await, Ok(()), "a second close is harmless");
    }

    #[tokio::test]
    async fn close_reports_a_commit_that_failed_while_flushing() {
        let (storage, watch) = watched(Semaphore::MAX_PERMITS);
        watch.memory.fail_writes(Some("disk full"));
        let written = storage.submit(Write::put(key("a"), vec![1]));
        let failed = Err(StoreError::backend("disk full"));
        assert_eq!(storage.close().await, failed);
        assert_eq!(written.await, failed);
        assert!(watch.dropped());
    }

    #[tokio::test]
    async fn close_reports_a_commit_in_flight_that_fails() {
        let (storage, watch) = watched(0);
        watch.memory.fail_writes(Some("disk full"));
        let written = storage.submit(Write::put(key("a"), vec![1]));
        settle().await; // In its commit, waiting for a permit.
        let closing = tokio::spawn(async move { storage.close().await });
        settle().await;
        watch.permits.add_permits(1);
        let failed = Err(StoreError::backend("disk full"));
        assert_eq!(closing.await.expect("no panic"), failed);
        assert_eq!(written.await, failed);
    }

    #[tokio::test]
    async fn close_without_any_write_releases_the_backend() {
        let (storage, watch) = watched(0);
        assert_eq!(storage.keys(None).await, Ok(Vec::new()));
        assert_eq!(storage.close().await, Ok(()));
        assert!(watch.dropped());
    }
}
