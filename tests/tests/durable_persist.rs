//! Durable state: what reaches the store and when (write-through, batched, group commit), what
//! each way of ending does to it (PersistentGenServer's three scenarios), and how an operator
//! inspects it.
#![allow(clippy::unwrap_used)]

mod durable_common;

use std::sync::Arc;
use std::time::Duration;

use durable_common::{Tally, decode_tally, fail_inits, inits, key, stored_tally, unique};
use peeper::store::{BoxFuture, Key, Memory, Redb, Storage, Store, StoreError, Write};
use peeper::{CallError, DynamicSupervisor, Exit, OnStop, WritePolicy};
use peeper_tests::queue;
use tokio::sync::{Notify, Semaphore};

// ---------------------------------------------------------------------------------------------
// PersistentGenServer's three scenarios
// ---------------------------------------------------------------------------------------------

/// Scenario 1: a normal stop is the end of the server: its stored state is wiped, and a new
/// start under the same name starts fresh.
#[tokio::test]
async fn a_normal_stop_wipes_the_stored_state() {
    let name = unique("wipe");
    let storage = Storage::new(Memory::new());
    let start = || {
        Tally::builder(Tally::default())
            .name(&name)
            .store(storage.clone())
            .start()
    };
    let tally = start().await.unwrap();
    assert_eq!(tally.add(5).await, Ok(5));
    assert_eq!(storage.keys(None).await.unwrap(), [key(&name)]);

    tally.stop().await.unwrap();
    assert!(storage.keys(None).await.unwrap().is_empty());
    let again = start().await.unwrap();
    assert_eq!(again.get().await, Ok(0));
    again.stop().await.unwrap();

    // `ctx.stop()` is a normal stop too; so is a stop through the branch.
    let again = start().await.unwrap();
    again.add(1).await.unwrap();
    again.branch().stop().await.unwrap();
    assert!(storage.keys(None).await.unwrap().is_empty());
}

/// Scenario 2, restart limit: the branch gave up, the state was not meant to go: a new start by
/// name picks up the last kept state (not the crashing handler's half-done change).
#[tokio::test]
async fn giving_up_after_the_restart_limit_keeps_the_stored_state() {
    let name = unique("limit");
    let storage = Storage::new(Memory::new());
    let start = |max_restarts| {
        Tally::builder(Tally::default())
            .name(&name)
            .store(storage.clone())
            .max_restarts(max_restarts)
            .start()
    };
    let tally = start(0).await.unwrap();
    assert_eq!(tally.add(7).await, Ok(7));
    assert!(matches!(tally.boom().await, Err(CallError::Crashed(_))));
    assert!(matches!(
        tally.branch().ended().await,
        Exit::RestartLimit { .. }
    ));
    assert_eq!(stored_tally(&storage, &name).await, Some(7));

    let again = start(10).await.unwrap();
    assert_eq!(again.get().await, Ok(7));
    again.stop().await.unwrap();
}

/// Scenario 2, crash loop: `init` keeps failing on restart, the branch stops with `CrashLoop`; the
/// state stays stored for a later start (once whatever broke `init` is fixed).
#[tokio::test]
async fn a_crash_loop_keeps_the_stored_state() {
    let name = unique("loop");
    let storage = Storage::new(Memory::new());
    let start = || {
        Tally::builder(Tally::default())
            .name(&name)
            .store(storage.clone())
            .start()
    };
    let tally = start().await.unwrap();
    assert_eq!(tally.add(3).await, Ok(3));
    fail_inits(&name, true);
    tally.branch().kill_worker().unwrap();
    assert!(matches!(
        tally.branch().ended().await,
        Exit::CrashLoop { .. }
    ));
    assert_eq!(stored_tally(&storage, &name).await, Some(3));

    fail_inits(&name, false);
    let again = start().await.unwrap();
    assert_eq!(again.get().await, Ok(3));
    again.stop().await.unwrap();
}

/// Scenario 2, shutdown: a dynamic supervisor shutting down is not the server's decision to end:
/// the state stays stored and the next start by name restores it.
#[tokio::test]
async fn a_supervisor_shutdown_keeps_the_stored_state() {
    let name = unique("shutdown");
    let storage = Storage::new(Memory::new());
    let sup = DynamicSupervisor::new();
    let tally = sup
        .start_child(
            Tally::builder(Tally::default())
                .name(&name)
                .store(storage.clone()),
        )
        .await
        .unwrap();
    assert_eq!(tally.add(4).await, Ok(4));
    sup.shutdown().await;
    assert_eq!(tally.branch().exit(), Some(Exit::Shutdown));
    assert_eq!(stored_tally(&storage, &name).await, Some(4));

    let again = Tally::builder(Tally::default())
        .name(&name)
        .store(storage.clone())
        .start()
        .await
        .unwrap();
    assert_eq!(again.get().await, Ok(4));
    assert_eq!(inits(&name), 2);
    again.stop().await.unwrap();
}

/// `OnStop::Keep`: even a normal stop keeps the state.
#[tokio::test]
async fn a_normal_stop_with_keep_keeps_the_stored_state() {
    let name = unique("keep");
    let storage = Storage::new(Memory::new());
    let start = || {
        Tally::builder(Tally::default())
            .name(&name)
            .store(storage.clone())
            .on_stop(OnStop::Keep)
            .start()
    };
    let tally = start().await.unwrap();
    tally.add(2).await.unwrap();
    tally.stop().await.unwrap();
    let again = start().await.unwrap();
    assert_eq!(again.add(1).await, Ok(3));
    again.stop().await.unwrap();
    assert_eq!(stored_tally(&storage, &name).await, Some(3));
}

/// Scenario 3: a server without a store survives its own crashes, not its end.
#[tokio::test]
async fn a_plain_server_loses_its_state_when_stopped() {
    let name = unique("plain");
    let tally = Tally::builder(Tally::default())
        .name(&name)
        .start()
        .await
        .unwrap();
    assert_eq!(tally.add(5).await, Ok(5));
    let restarted = tally.branch().next_restart();
    tally.branch().kill_worker().unwrap();
    restarted.await.unwrap();
    assert_eq!(tally.get().await, Ok(5), "a crash keeps it");
    tally.stop().await.unwrap();

    let again = Tally::builder(Tally::default())
        .name(&name)
        .start()
        .await
        .unwrap();
    assert_eq!(again.get().await, Ok(0), "a stop loses it");
    again.stop().await.unwrap();
}

/// A crash of a durable server restarts from the kept state in memory, as without a store, and
/// writes nothing older over the store.
#[tokio::test]
async fn a_crash_restarts_from_memory_and_the_store_follows() {
    let name = unique("crash");
    let storage = Storage::new(Memory::new());
    let tally = Tally::builder(Tally::default())
        .name(&name)
        .store(storage.clone())
        .start()
        .await
        .unwrap();
    tally.add(5).await.unwrap();
    assert!(matches!(tally.boom().await, Err(CallError::Crashed(_))));
    assert_eq!(tally.get().await, Ok(5));
    assert_eq!(stored_tally(&storage, &name).await, Some(5));
    assert_eq!(tally.add(1).await, Ok(6));
    assert_eq!(stored_tally(&storage, &name).await, Some(6));
    tally.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Write-through
// ---------------------------------------------------------------------------------------------

/// After a call returns `Ok`, the store holds the state that call produced, in an envelope.
#[tokio::test]
async fn write_through_stores_every_acknowledged_state() {
    let name = unique("through");
    let storage = Storage::new(Memory::new());
    let tally = Tally::builder(Tally::default())
        .name(&name)
        .store(storage.clone())
        .start()
        .await
        .unwrap();
    // The start itself stores the state: the key exists before the first change.
    assert_eq!(stored_tally(&storage, &name).await, Some(0));
    for expected in 1..=5 {
        assert_eq!(tally.add(1).await, Ok(expected));
        let bytes = storage.read(&key(&name)).await.unwrap().unwrap();
        assert!(bytes.starts_with(b"PEEP"));
        assert_eq!(decode_tally(bytes).await, expected);
    }
    // A `&self` call changes nothing and writes nothing.
    let commits = storage.commits();
    assert_eq!(tally.get().await, Ok(5));
    assert_eq!(storage.commits(), commits);
    tally.stop().await.unwrap();
}

/// A backend whose commits wait for a permit, and say when one starts waiting.
#[derive(Clone)]
struct Gated {
    inner: Memory,
    permits: Arc<Semaphore>,
    committing: Arc<Notify>,
}

impl Store for Gated {
    fn read<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        self.inner.read(key)
    }

    fn commit(&self, batch: Vec<Write>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.committing.notify_one();
            self.permits.acquire().await.unwrap().forget();
            self.inner.commit(batch).await
        })
    }

    fn keys<'a>(&'a self, kind: Option<&'a str>) -> BoxFuture<'a, Result<Vec<Key>, StoreError>> {
        self.inner.keys(kind)
    }
}

/// The reply waits for the commit: while the commit is held, the caller has no answer and the
/// store still has the old state; once it lands, the caller gets its reply.
#[tokio::test]
async fn write_through_replies_only_after_the_commit() {
    let name = unique("gated");
    let gated = Gated {
        inner: Memory::new(),
        permits: Arc::new(Semaphore::new(1)), // for the write after `init`
        committing: Arc::new(Notify::new()),
    };
    let storage = Storage::new(gated.clone());
    let tally = Tally::builder(Tally::default())
        .name(&name)
        .store(storage.clone())
        .start()
        .await
        .unwrap();
    gated.committing.notified().await; // the permit left by the start's commit

    let call = tokio::spawn({
        let tally = tally.clone();
        async move { tally.add(1).await }
    });
    gated.committing.notified().await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!call.is_finished(), "replied before the commit");
    assert_eq!(stored_tally(&storage, &name).await, Some(0));

    gated.permits.add_permits(1);
    assert_eq!(call.await.unwrap(), Ok(1));
    assert_eq!(stored_tally(&storage, &name).await, Some(1));
    gated.permits.add_permits(1); // for the wipe at the stop
    tally.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Batched writes
// ---------------------------------------------------------------------------------------------

/// `WritePolicy::Batched(d)`: replies at once, the state reaches the store within `d` (one commit
/// for the whole window), and an end writes what is pending.
#[tokio::test(start_paused = true)]
async fn batched_writes_reply_at_once_and_reach_the_store_within_the_period() {
    const PERIOD: Duration = Duration::from_secs(10);
    const TICK: Duration = Duration::from_millis(1);
    let name = unique("batched");
    let storage = Storage::new(Memory::new());
    let tally = Tally::builder(Tally::default())
        .name(&name)
        .store(storage.clone())
        .write_policy(WritePolicy::Batched(PERIOD))
        .on_stop(OnStop::Keep)
        .start()
        .await
        .unwrap();
    let commits = storage.commits();
    let t0 = tokio::time::Instant::now();
    for expected in 1..=10 {
        assert_eq!(tally.add(1).await, Ok(expected));
    }
    assert_eq!(t0.elapsed(), Duration::ZERO, "no reply waited");
    assert_eq!(stored_tally(&storage, &name).await, Some(0));

    // Paused clock: these sleeps advance virtual time, and everything due runs before the next
    // timer fires.
    tokio::time::sleep(PERIOD - TICK).await;
    assert_eq!(stored_tally(&storage, &name).await, Some(0), "not before d");
    tokio::time::sleep(TICK * 2).await;
    assert_eq!(stored_tally(&storage, &name).await, Some(10), "within d");
    assert_eq!(storage.commits(), commits + 1, "ten changes, one commit");

    // The end writes the pending window.
    assert_eq!(tally.add(5).await, Ok(15));
    tally.stop().await.unwrap();
    assert_eq!(tally.branch().exit(), Some(Exit::Normal));
    assert_eq!(stored_tally(&storage, &name).await, Some(15));
}

/// An abnormal end of a batched server writes the pending window too.
#[tokio::test(start_paused = true)]
async fn batched_writes_are_flushed_by_an_abnormal_end() {
    let name = unique("batched-end");
    let storage = Storage::new(Memory::new());
    let sup = DynamicSupervisor::new();
    let tally = sup
        .start_child(
            Tally::builder(Tally::default())
                .name(&name)
                .store(storage.clone())
                .write_policy(WritePolicy::Batched(Duration::from_secs(3600))),
        )
        .await
        .unwrap();
    assert_eq!(tally.add(6).await, Ok(6));
    assert_eq!(stored_tally(&storage, &name).await, Some(0));
    sup.shutdown().await;
    assert_eq!(stored_tally(&storage, &name).await, Some(6));
}

// ---------------------------------------------------------------------------------------------
// Group commit
// ---------------------------------------------------------------------------------------------

async fn group_commit(storage: Storage, label: &str) {
    const SERVERS: usize = 200;
    const CALLS: u64 = 20;
    let prefix = unique(label);
    let mut servers = Vec::new();
    for i in 0..SERVERS {
        let tally = Tally::builder(Tally::default())
            .name(format!("{prefix}-{i}"))
            .store(storage.clone())
            .on_stop(OnStop::Keep)
            .start()
            .await
            .unwrap();
        servers.push(tally);
    }
    let before = storage.commits();
    let barrier = Arc::new(tokio::sync::Barrier::new(SERVERS));
    let tasks: Vec<_> = servers
        .iter()
        .cloned()
        .map(|tally| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                for expected in 1..=CALLS {
                    assert_eq!(tally.add(1).await, Ok(expected));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let writes = SERVERS as u64 * CALLS;
    let commits = storage.commits() - before;
    println!(
        "group commit ({label}): {writes} writes in {commits} commits, {:.1} writes per commit",
        writes as f64 / commits as f64
    );
    assert!(commits < writes, "{commits} commits for {writes} writes");
    for (i, tally) in servers.iter().enumerate() {
        let name = format!("{prefix}-{i}");
        assert_eq!(stored_tally(&storage, &name).await, Some(CALLS));
        tally.stop().await.unwrap();
    }
}

/// 200 servers on one storage, each taking calls at the same time: their writes share commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_shares_transactions_between_servers_in_memory() {
    group_commit(Storage::new(Memory::new()), "memory").await;
}

/// The same on redb, where every commit is an fsync: this is what group commit is for.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_shares_transactions_between_servers_on_redb() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::new(Redb::open(dir.path().join("group.redb")).unwrap());
    group_commit(storage, "redb").await;
}

/// Repeated writes of one key waiting for the same commit are merged: only the latest goes in.
#[tokio::test]
async fn writes_of_one_key_waiting_together_are_merged() {
    let gated = Gated {
        inner: Memory::new(),
        permits: Arc::new(Semaphore::new(0)),
        committing: Arc::new(Notify::new()),
    };
    let storage = Storage::new(gated.clone());
    let name = unique("merged");
    // Hold a first commit (of another key), so that the next writes queue up behind it.
    let elsewhere = Key::new("other", "x");
    let held = queue(storage.delete(&elsewhere)).await;
    gated.committing.notified().await;

    // A server starts: the write after its `init` waits behind the held commit...
    let starting = tokio::spawn(
        Tally::builder(Tally::default())
            .name(&name)
            .store(storage.clone())
            .start(),
    );
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!starting.is_finished());
    // ...and then a delete of the same key joins it.
    let same = key(&name);
    let deleting = queue(storage.delete(&same)).await;

    assert_eq!(storage.commits(), 0);
    gated.permits.add_permits(2);
    held.output().await.unwrap();
    deleting.output().await.unwrap();
    let tally = starting.await.unwrap().unwrap();
    assert_eq!(
        storage.commits(),
        2,
        "the held commit, then both writes in one"
    );
    // The delete was submitted last: it replaced the start's write.
    assert_eq!(storage.read(&key(&name)).await.unwrap(), None);
    gated.permits.add_permits(100);
    tally.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Inspection
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
struct Other {
    label: String,
}

#[peeper::server]
impl Other {
    #[call]
    fn set(&mut self, label: String) {
        self.label = label;
    }
}

impl peeper::Persist for Other {
    const KIND: &'static str = "other";
}

/// An operator's view of a redb file: every key, by kind, the raw envelopes, and deletion.
#[tokio::test]
async fn storage_lists_reads_and_deletes_on_a_redb_file() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::new(Redb::open(dir.path().join("inspect.redb")).unwrap());
    assert!(storage.keys(None).await.unwrap().is_empty());
    assert_eq!(storage.read(&key("nobody")).await.unwrap(), None);

    let (a, b, c) = (unique("a"), unique("b"), unique("c"));
    let start = |name: &str| {
        Tally::builder(Tally::default())
            .name(name)
            .store(storage.clone())
            .on_stop(OnStop::Keep)
            .start()
    };
    let ta = start(&a).await.unwrap();
    let tb = start(&b).await.unwrap();
    ta.add(1).await.unwrap();
    tb.add(2).await.unwrap();
    tb.stop().await.unwrap(); // stopped with `Keep`: still listed
    let other = Other::builder(Other::default())
        .name(&c)
        .store(storage.clone())
        .start()
        .await
        .unwrap();
    other.set("hello".to_owned()).await.unwrap();

    let mut all = vec![key(&a), key(&b), Key::new("other", &c)];
    all.sort();
    assert_eq!(storage.keys(None).await.unwrap(), all);
    let mut tallies = vec![key(&a), key(&b)];
    tallies.sort();
    assert_eq!(storage.keys(Some("tally")).await.unwrap(), tallies);
    assert_eq!(
        storage.keys(Some("other")).await.unwrap(),
        [Key::new("other", &c)]
    );
    assert!(storage.keys(Some("nothing")).await.unwrap().is_empty());

    let raw = storage.read(&Key::new("other", &c)).await.unwrap().unwrap();
    assert_eq!(&raw[..4], b"PEEP");
    assert_eq!(raw[4], 1, "envelope version");
    assert_eq!(raw[5], 1, "codec: MessagePack");
    assert_eq!(&raw[6..10], &1u32.to_le_bytes(), "schema version");
    assert!(String::from_utf8_lossy(&raw).contains("hello"));
    assert_eq!(stored_tally(&storage, &b).await, Some(2));

    // Deleting a stopped server's state: gone.
    storage.delete(&key(&b)).await.unwrap();
    assert_eq!(storage.read(&key(&b)).await.unwrap(), None);
    // Deleting a running server's state does not stop it; its next change writes it again.
    storage.delete(&key(&a)).await.unwrap();
    assert_eq!(storage.read(&key(&a)).await.unwrap(), None);
    assert_eq!(ta.add(1).await, Ok(2));
    assert_eq!(stored_tally(&storage, &a).await, Some(2));
    // Deleting what is not there is fine.
    storage.delete(&key("nobody")).await.unwrap();

    ta.stop().await.unwrap();
    other.stop().await.unwrap(); // `Wipe`: gone
    assert_eq!(storage.keys(None).await.unwrap(), [key(&a)]);
    assert!(storage.commits() > 0);
}

/// What `peeper::servers()` lists, for a process that wants to revive what it has stored.
#[test]
fn durable_server_kinds_are_registered() {
    assert!(peeper::servers().any(|kind| kind.is::<Tally>()));
    assert!(peeper::servers().any(|kind| kind.is::<Other>()));
}
