//! The loss paths a review of the runtime found, one test each: every one of them failed before
//! its fix. They drive the runtime to the exact point of each race through a scripted store
//! (commits and claims that wait at a gate, fail on demand, and log what reached them) and
//! through listener callbacks, never through sleeps.
#![allow(clippy::unwrap_used)]

mod durable_common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use durable_common::{Tally, unique};
use peeper::store::{BoxFuture, Claim, Key, Memory, Storage, Store, StoreError, Write};
use peeper::{DynamicSupervisor, Exit, Listener, WritePolicy};
use tokio::sync::{Notify, Semaphore};

/// What reached the scripted store, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Claim(String),
    /// A commit that was applied, with the keys it carried.
    Commit(Vec<String>),
    /// A commit that failed on purpose.
    Failed,
    Release(String),
    /// A claim given up without waiting (its start was dropped).
    Abandon(String),
}

/// A store over [`Memory`] whose commits and claims can be held at a gate or made to fail, and
/// which logs what reached it.
#[derive(Default)]
struct Scripted {
    memory: Memory,
    log: Mutex<Vec<Seen>>,
    /// When set, every commit (then every claim, with `gate_claims`) waits here for a permit.
    gate: Mutex<Option<Arc<Semaphore>>>,
    gate_claims: std::sync::atomic::AtomicBool,
    gate_reads: std::sync::atomic::AtomicBool,
    /// Signalled each time an operation reaches the gate.
    at_gate: Notify,
    /// The next commits that fail.
    failures: AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Scripted {
    fn seen(&self) -> Vec<Seen> {
        lock(&self.log).clone()
    }

    /// From now on, commits wait for [`open`](Self::open).
    fn close_gate(&self) -> Arc<Semaphore> {
        let gate = Arc::new(Semaphore::new(0));
        *lock(&self.gate) = Some(Arc::clone(&gate));
        gate
    }

    async fn pass_gate(&self) {
        let gate = lock(&self.gate).clone();
        if let Some(gate) = gate {
            let waiting = self.at_gate.notified();
            self.at_gate.notify_waiters();
            drop(waiting);
            gate.acquire().await.unwrap().forget();
        }
    }
}

/// A shared handle, so that the test keeps one while the storage owns another.
#[derive(Clone, Default)]
struct Shared(Arc<Scripted>);

impl Store for Shared {
    fn read<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(async move {
            if self.0.gate_reads.load(Ordering::SeqCst) {
                self.0.pass_gate().await;
            }
            self.0.memory.read(key).await
        })
    }

    fn commit(&self, batch: Vec<Write>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.0.pass_gate().await;
            let failing = self
                .0
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                lock(&self.0.log).push(Seen::Failed);
                return Err(StoreError::backend("scripted failure"));
            }
            let keys = batch.iter().map(|write| write.key.to_string()).collect();
            self.0.memory.commit(batch).await?;
            lock(&self.0.log).push(Seen::Commit(keys));
            Ok(())
        })
    }

    fn keys<'a>(&'a self, kind: Option<&'a str>) -> BoxFuture<'a, Result<Vec<Key>, StoreError>> {
        self.0.memory.keys(kind)
    }

    fn claim<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(async move {
            if self.0.gate_claims.load(Ordering::SeqCst) {
                self.0.pass_gate().await;
            }
            lock(&self.0.log).push(Seen::Claim(key.to_string()));
            Ok(Claim::LOCAL)
        })
    }

    fn release<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<(), StoreError>> {
        lock(&self.0.log).push(Seen::Release(key.to_string()));
        Box::pin(std::future::ready(Ok(())))
    }

    fn abandon(&self, key: &Key) {
        lock(&self.0.log).push(Seen::Abandon(key.to_string()));
    }
}

/// Tells the test when a restart begins (`on_restart` runs before the next worker starts).
struct Restarts(Arc<Notify>);

impl Listener<Tally> for Restarts {
    fn on_restart(&self, _: u64, _: &Exit) {
        self.0.notify_one();
    }

    fn wants_state_changes(&self) -> bool {
        false
    }
}

/// Loss path 1: a durable server killed while the write-through commit of a completed call is in
/// flight. The state is already kept (the next worker starts from it), so the caller must get
/// its reply once the commit lands, not `Crashed(Killed)`: a caller that retried would apply the
/// change twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_the_commit_of_a_completed_call_still_answers_it() {
    let store = Shared::default();
    let restarted = Arc::new(Notify::new());
    let name = unique("kill-in-commit");
    let tally = Tally::builder(Tally::default())
        .name(&name)
        .store(Storage::new(store.clone()))
        .write_policy(WritePolicy::Through)
        .listener(Restarts(Arc::clone(&restarted)))
        .start()
        .await
        .unwrap();
    assert_eq!(tally.add(1).await, Ok(1));

    let gate = store.0.close_gate();
    let at_gate = store.0.at_gate.notified();
    let call = tokio::spawn({
        let tally = tally.clone();
        async move { tally.add(5).await }
    });
    at_gate.await; // the handler completed and its state is being committed
    let restarting = restarted.notified();
    tally.branch().kill_worker().unwrap();
    restarting.await; // the kill landed on the wait for the commit
    gate.add_permits(1_000);

    assert_eq!(
        call.await.unwrap(),
        Ok(6),
        "the change was kept: the caller is owed its reply"
    );
    assert_eq!(tally.get().await, Ok(6));
    assert_eq!(tally.branch().restarts(), 1);
    tally.stop().await.unwrap();
}

/// Loss path 2: a transfer asked for just as the worker of a durable server goes idle. The
/// supervisor used to hibernate with the transfer's reply channel in hand, drop it, and revive
/// the branch for the transfer's own request: the transfer answered `Stopped(Normal)` while the
/// server ran on under the source supervisor. A transfer answers what happened.
///
/// On a paused clock, the test's timer and the worker's idle deadline fire on the same tick, so
/// the request reaches the supervisor together with the worker's idle end: the supervisor then
/// picks one of the two at random, and every round has an even chance to hit the race.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_transfer_racing_hibernation_answers_what_happened() {
    const IDLE: Duration = Duration::from_millis(10);
    let storage = Storage::new(Memory::new());
    let (from, to) = (DynamicSupervisor::new(), DynamicSupervisor::new());
    let name = unique("transfer-idle");
    let tally = from
        .start_child(
            Tally::builder(Tally::default())
                .name(&name)
                .store(storage.clone())
                .idle_after(IDLE),
        )
        .await
        .unwrap();
    let mut sides = [&from, &to];
    for round in 0..200_u64 {
        assert_eq!(tally.add(1).await, Ok(round + 1));
        // Not a wait for anything: this lands the request on the worker's idle deadline.
        tokio::time::sleep(IDLE).await;
        if let Err(error) = peeper::transfer(&name, sides[0], sides[1]).await {
            panic!(
                "round {round}: the transfer answered `{error}`, and the server runs on: {:?}",
                tally.branch()
            );
        }
        sides.reverse();
        assert_eq!(sides[0].which_children().len(), 1, "round {round}");
        assert!(sides[1].which_children().is_empty(), "round {round}");
    }
    assert_eq!(tally.get().await, Ok(200));
    tally.stop().await.unwrap();
}

/// Loss path 4: the last write at the end of a branch fails. It used to be logged and the claim
/// released at once, so in a cluster the next owner revived an older state: with a batched
/// policy, acknowledged updates were gone. The claim is now released only after the write
/// commits; until then the branch retries, and the stopper hears why it is not done.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_failed_last_write_keeps_the_claim_until_a_retry_commits() {
    let store = Shared::default();
    let storage = Storage::new(store.clone());
    let name = unique("last-write");
    let tally = Tally::builder(Tally::default())
        .name(&name)
        .store(storage.clone())
        .write_policy(WritePolicy::Batched(Duration::from_secs(3_600)))
        .on_stop(peeper::OnStop::Keep)
        .start()
        .await
        .unwrap();
    assert_eq!(tally.add(5).await, Ok(5)); // acknowledged, not written yet (batched)
    let ended = tally.branch().ended();

    store.0.failures.store(6, Ordering::SeqCst);
    let stopped = tally.stop().await;
    assert!(
        matches!(stopped, Err(peeper::StopError::Store(_))),
        "the stopper hears that the last state is not stored yet: {stopped:?}"
    );
    assert_eq!(ended.await, Exit::Normal);

    let key = durable_common::key(&name).to_string();
    let seen = store.0.seen();
    let last_commit = seen
        .iter()
        .rposition(|seen| *seen == Seen::Commit(vec![key.clone()]))
        .expect("the last state was written in the end");
    let release = seen
        .iter()
        .position(|seen| *seen == Seen::Release(key.clone()))
        .expect("the claim was released in the end");
    assert!(
        release > last_commit,
        "released only after the write committed: {seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|seen| **seen == Seen::Failed).count(),
        6,
        "{seen:?}"
    );
    assert_eq!(durable_common::stored_tally(&storage, &name).await, Some(5));
}

/// Loss path 3, at the runtime's level: a start dropped while it loads the stored state (as
/// under `tokio::time::timeout`) used to keep the claim it had made, so in a cluster the key
/// stayed claimed, and renewed, for the life of the process. The claim is now given up when the
/// start is dropped, and a new start goes through at once. (`cluster_loss.rs` checks the same
/// against PostgreSQL, at the claim's own await too.)
#[tokio::test(flavor = "current_thread")]
async fn a_start_dropped_while_loading_gives_its_claim_up() {
    let store = Shared::default();
    let storage = Storage::new(store.clone());
    let name = unique("dropped-start");
    let key = durable_common::key(&name).to_string();
    store.0.gate_reads.store(true, Ordering::SeqCst);
    let gate = store.0.close_gate();
    let start = Tally::builder(Tally::default())
        .name(&name)
        .store(storage.clone())
        .start();
    let at_gate = store.0.at_gate.notified();
    let timed_out = tokio::select! {
        started = start => panic!("the start went through the gate: {:?}", started.map(|_| ())),
        () = at_gate => "dropped while loading",
    };
    assert_eq!(
        store.0.seen(),
        [Seen::Claim(key.clone()), Seen::Abandon(key.clone())],
        "{timed_out}: the claim is given up, nothing else happened"
    );

    store.0.gate_reads.store(false, Ordering::SeqCst);
    gate.add_permits(1_000);
    let tally = Tally::builder(Tally::default())
        .name(&name)
        .store(storage.clone())
        .start()
        .await
        .unwrap();
    assert_eq!(tally.add(2).await, Ok(2));
    tally.stop().await.unwrap();
}

/// A state that counts its live copies: the keeper's, the listener's, the ones waiting for it.
#[derive(Debug, Default)]
struct Counted {
    value: u64,
    copies: Arc<AtomicUsize>,
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.copies.fetch_add(1, Ordering::SeqCst);
        Counted {
            value: self.value,
            copies: Arc::clone(&self.copies),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.copies.fetch_sub(1, Ordering::SeqCst);
    }
}

#[peeper::server]
impl Counted {
    #[cast]
    fn bump(&mut self) {
        self.value += 1;
    }

    #[call]
    fn value(&self) -> u64 {
        self.value
    }
}

/// A listener stuck in its first callback until the test lets it go, then recording.
#[derive(Clone, Default)]
struct Slow {
    gate: Arc<Mutex<()>>,
    heard: Arc<Mutex<Vec<(u64, u64)>>>,
    skipped: Arc<AtomicUsize>,
}

impl Listener<Counted> for Slow {
    fn on_state_changed(&self, old: &Counted, new: &Counted) {
        // Off the runtime's worker thread: the tasks queued behind the keeper must go on.
        tokio::task::block_in_place(|| drop(lock(&self.gate)));
        lock(&self.heard).push((old.value, new.value));
    }

    fn on_state_changes_skipped(&self, skipped: u64) {
        self.skipped
            .fetch_add(usize::try_from(skipped).unwrap(), Ordering::SeqCst);
    }
}

/// Loss path 6: a listener slower than the handlers. Each change waiting for it pinned a copy of
/// the state, without bound. Now at most `listener_backlog` wait; past that the newest replaces
/// the ones not heard yet, and the listener is told how many it missed. It still hears, in
/// order, the last state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::await_holding_lock,
    reason = "the held lock is what keeps the listener stuck"
)]
async fn a_slow_listener_holds_a_bounded_number_of_copies() {
    const CHANGES: u64 = 2_000;
    const BACKLOG: usize = 16;
    let copies = Arc::new(AtomicUsize::new(0));
    let slow = Slow::default();
    let stuck = lock(&slow.gate);
    let server = Counted::builder(Counted {
        value: 0,
        copies: Arc::clone(&copies),
    })
    .listener(slow.clone())
    .listener_backlog(BACKLOG)
    .start()
    .await
    .unwrap();
    for _ in 0..CHANGES {
        server.bump().unwrap();
    }
    assert_eq!(server.value().await, Ok(CHANGES));
    // Live, the kept copy, the scratch buffer, the one the stuck callback holds, the backlog,
    // the overflow slot, and the `previous` the keeper holds.
    let held = copies.load(Ordering::SeqCst);
    assert!(
        held <= BACKLOG + 6,
        "{held} copies of the state wait for a stuck listener (backlog {BACKLOG})"
    );
    drop(stuck);
    server.stop().await.unwrap();

    let heard = lock(&slow.heard).clone();
    let skipped = slow.skipped.load(Ordering::SeqCst);
    assert_eq!(
        heard.last().map(|&(_, new)| new),
        Some(CHANGES),
        "{heard:?}"
    );
    assert_eq!(heard.len() + skipped, usize::try_from(CHANGES).unwrap());
    assert!(
        heard
            .windows(2)
            .all(|pair| pair[0].1 == pair[1].0 && pair[0].1 < pair[1].1)
    );
}

/// Loss path 7: `on_state_changed` never fired for `Projection` (it now sees states rebuilt from
/// the kept parts), and silently never for `InPlace` (which keeps nothing to show: a listener
/// that wants the calls is now refused at start, with the fix in the error).
#[tokio::test]
async fn state_change_callbacks_fire_or_refuse_to_start() {
    #[derive(Debug, Default, peeper::State)]
    pub(crate) struct Cart {
        items: Vec<String>,
        #[keep(skip)]
        cache: usize,
    }

    #[peeper::server(keep = projection)]
    impl Cart {
        #[call]
        fn add(&mut self, item: String) -> usize {
            self.items.push(item);
            self.cache += 1;
            self.items.len()
        }
    }

    #[derive(Clone, Default)]
    struct Sizes(Arc<Mutex<Vec<(usize, usize)>>>);

    impl Listener<Cart> for Sizes {
        fn on_state_changed(&self, old: &Cart, new: &Cart) {
            assert_eq!((old.cache, new.cache), (0, 0), "skipped fields are rebuilt");
            lock(&self.0).push((old.items.len(), new.items.len()));
        }
    }

    let sizes = Sizes::default();
    let cart = Cart::builder(Cart::default())
        .listener(sizes.clone())
        .start()
        .await
        .unwrap();
    assert_eq!(cart.add("tea".to_owned()).await, Ok(1));
    assert_eq!(cart.add("milk".to_owned()).await, Ok(2));
    cart.stop().await.unwrap();
    assert_eq!(*lock(&sizes.0), [(0, 1), (1, 2)]);

    #[derive(Default)]
    pub(crate) struct Log(Vec<u8>);

    #[peeper::server(keep = in_place)]
    impl Log {
        #[cast]
        fn push(&mut self, byte: u8) {
            self.0.push(byte);
        }
    }

    struct Changes;
    impl Listener<Log> for Changes {
        fn on_state_changed(&self, _: &Log, _: &Log) {}
    }
    struct EndOnly;
    impl Listener<Log> for EndOnly {
        fn wants_state_changes(&self) -> bool {
            false
        }
    }
    let refused = Log::builder(Log::default()).listener(Changes).start().await;
    assert!(
        matches!(&refused, Err(peeper::StartError::InvalidOptions(why)) if why.contains("wants_state_changes")),
        "{:?}",
        refused.map(|_| ())
    );
    let log = Log::builder(Log::default())
        .listener(EndOnly)
        .start()
        .await
        .unwrap();
    log.push(1).unwrap();
    log.stop().await.unwrap();
}

/// A durable ledger whose call replies through its handle from inside the handler, before the
/// handler's change is even kept.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Ledger {
    total: u64,
}

#[peeper::server]
impl Ledger {
    #[call]
    fn add_early(&mut self, by: u64, reply: peeper::ReplyTo<u64>) {
        self.total += by;
        reply.send(self.total);
    }

    #[call]
    fn total(&self) -> u64 {
        self.total
    }
}

impl peeper::Persist for Ledger {
    const KIND: &'static str = "ledger";
}

/// A deferred reply stands for a kept state, as a returned one does: sent before the
/// handler's write-through commit, it reaches the caller only once the commit has landed.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_deferred_reply_waits_for_the_commit_of_its_handler() {
    let store = Shared::default();
    let name = unique("deferred-commit");
    let ledger = Ledger::builder(Ledger::default())
        .name(&name)
        .store(Storage::new(store.clone()))
        .write_policy(WritePolicy::Through)
        .start()
        .await
        .unwrap();
    let gate = store.0.close_gate();
    let at_gate = store.0.at_gate.notified();
    let call = tokio::spawn({
        let ledger = ledger.clone();
        async move { ledger.add_early(5).await }
    });
    at_gate.await; // the handler replied and completed; its commit waits at the gate
    let commits = |seen: &[Seen]| {
        seen.iter()
            .filter(|seen| matches!(seen, Seen::Commit(_)))
            .count()
    };
    let committed_before = commits(&store.0.seen());
    // On a paused clock, a sleep ends only once every other task is idle: whatever could have
    // delivered the reply has run.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(
        !call.is_finished(),
        "the reply came before its state was committed"
    );
    gate.add_permits(1_000);
    assert_eq!(call.await.unwrap(), Ok(5));
    assert_eq!(commits(&store.0.seen()), committed_before + 1);
    assert_eq!(ledger.total().await, Ok(5));
}

/// A start that runs past `start_timeout` while it loads the stored state releases its claim;
/// five in a row, then a clean start.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_start_timed_out_while_loading_releases_its_claim() {
    let store = Shared::default();
    let storage = Storage::new(store.clone());
    let name = unique("timed-out-start");
    let key = durable_common::key(&name).to_string();
    durable_common::fail_inits(&name, false);
    store.0.gate_reads.store(true, Ordering::SeqCst);
    let gate = store.0.close_gate();
    for round in 1..=5 {
        let started = Tally::builder(Tally::default())
            .name(&name)
            .store(storage.clone())
            .start_timeout(Duration::from_secs(1))
            .start()
            .await;
        assert_eq!(
            started.map(|_| ()),
            Err(peeper::StartError::Timeout(Duration::from_secs(1))),
            "round {round}"
        );
    }
    let expected: Vec<Seen> = (0..5)
        .flat_map(|_| [Seen::Claim(key.clone()), Seen::Release(key.clone())])
        .collect();
    assert_eq!(store.0.seen(), expected, "every claim was released");

    store.0.gate_reads.store(false, Ordering::SeqCst);
    gate.add_permits(1_000);
    let tally = Tally::builder(Tally::default())
        .name(&name)
        .store(storage)
        .start_timeout(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    assert_eq!(tally.add(2).await, Ok(2));
    tally.stop().await.unwrap();
}

/// A durable server whose `init` never completes for the first `hang` starts.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Sluggish {
    #[serde(skip)]
    starts: Arc<AtomicUsize>,
    hang: usize,
}

#[peeper::server]
impl Sluggish {
    #[init]
    async fn init(&mut self) {
        if self.starts.fetch_add(1, Ordering::SeqCst) < self.hang {
            std::future::pending::<()>().await;
        }
    }

    #[call]
    fn ping(&self) {}
}

impl peeper::Persist for Sluggish {
    const KIND: &'static str = "sluggish";
}

/// A start whose `init` runs past `start_timeout` releases its claim before `start` returns,
/// with no write under it: five in a row, then a clean start.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_start_timed_out_in_init_releases_its_claim() {
    let store = Shared::default();
    let storage = Storage::new(store.clone());
    let name = unique("timed-out-init");
    let starts = Arc::new(AtomicUsize::new(0));
    let sluggish = || Sluggish {
        starts: Arc::clone(&starts),
        hang: 5,
    };
    for round in 1..=5 {
        let started = Sluggish::builder(sluggish())
            .name(&name)
            .store(storage.clone())
            .start_timeout(Duration::from_secs(1))
            .start()
            .await;
        assert_eq!(
            started.map(|_| ()),
            Err(peeper::StartError::Timeout(Duration::from_secs(1))),
            "round {round}"
        );
        assert!(Sluggish::whereis(&name).is_none(), "round {round}");
    }
    let seen = store.0.seen();
    assert_eq!(
        seen.len(),
        10,
        "a claim and a release per round, no write: {seen:?}"
    );
    for pair in seen.chunks(2) {
        assert!(
            matches!(pair, [Seen::Claim(claimed), Seen::Release(released)] if claimed == released),
            "{seen:?}"
        );
    }

    let server = Sluggish::builder(sluggish())
        .name(&name)
        .store(storage)
        .start_timeout(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    server.ping().await.unwrap();
    assert_eq!(starts.load(Ordering::SeqCst), 6);
    server.stop().await.unwrap();
}
