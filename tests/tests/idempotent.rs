//! Calls that can be retried safely (`client.idempotent(key)`): the first call with a key runs
//! its handler, every later call with that key gets the first reply without running it again,
//! across a crash, a kill, a hibernation and a restart on the same store; a key reused with
//! another message is refused; a crashed keyed call recorded nothing; records expire and are
//! bounded. Durable servers keep the record in the same commit as the state.
//!
//! SIGKILL between the commit and the reply is in `durable_kill.rs`; handoff and node loss on
//! PostgreSQL in `cluster_nodes.rs`.
#![allow(clippy::unwrap_used)]

mod durable_common;

use std::time::Duration;

use durable_common::unique;
use peeper::store::{BoxFuture, Key, Memory, Storage, Store, StoreError, Write};
use peeper::{CallError, Exit, OnStop};
use serde::{Deserialize, Serialize};

thread_local! {
    /// Makes the next `add` on this thread panic. Per thread, not global: the tests of this file
    /// run in parallel, each on its own thread with a current-thread runtime (where its servers
    /// run too), and a global flag set by one test failed another test's `add`.
    static FAIL_NEXT_ADD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Cart {
    items: Vec<String>,
    /// How many times `add` ran to completion: the effect a retry must not repeat.
    adds: u64,
}

#[peeper::server]
impl Cart {
    #[call]
    fn add(&mut self, item: String) -> usize {
        assert!(!FAIL_NEXT_ADD.replace(false), "add failed on purpose");
        self.items.push(item);
        self.adds += 1;
        self.items.len()
    }

    #[call]
    fn remove(&mut self, item: String) -> bool {
        let before = self.items.len();
        self.items.retain(|kept| *kept != item);
        before != self.items.len()
    }

    #[call]
    fn adds(&self) -> u64 {
        self.adds
    }

    #[call]
    fn crash(&self) {
        panic!("crash on purpose");
    }
}

impl peeper::Persist for Cart {
    const KIND: &'static str = "idempotent-cart";
}

#[tokio::test]
async fn a_retry_gets_the_first_reply_and_is_applied_once() {
    let cart = Cart::start(Cart::default()).await.unwrap();
    assert_eq!(cart.idempotent("req-1").add("tea".into()).await, Ok(1));
    assert_eq!(cart.idempotent("req-1").add("tea".into()).await, Ok(1));
    assert_eq!(
        cart.add("cake".into()).await,
        Ok(2),
        "without a key: applied"
    );
    assert_eq!(
        cart.idempotent("req-1").add("tea".into()).await,
        Ok(1),
        "the first reply, not what a new run would say"
    );
    assert_eq!(cart.idempotent("req-2").add("tea".into()).await, Ok(3));
    assert_eq!(cart.adds().await, Ok(3));
}

#[tokio::test]
async fn a_key_reused_with_another_message_is_refused_and_nothing_runs() {
    let cart = Cart::start(Cart::default()).await.unwrap();
    assert_eq!(cart.idempotent("req-1").add("tea".into()).await, Ok(1));
    let reused = CallError::KeyReused {
        key: "req-1".into(),
    };
    assert_eq!(
        cart.idempotent("req-1").add("cake".into()).await,
        Err(reused.clone()),
        "other arguments"
    );
    assert_eq!(
        cart.idempotent("req-1").remove("tea".into()).await,
        Err(reused),
        "another handler, same arguments"
    );
    assert_eq!(cart.adds().await, Ok(1));
    assert_eq!(cart.idempotent("req-1").add("tea".into()).await, Ok(1));
}

#[tokio::test]
async fn a_keyed_call_whose_handler_crashed_recorded_nothing_and_its_retry_runs() {
    quiet();
    let cart = Cart::start(Cart::default()).await.unwrap();
    FAIL_NEXT_ADD.set(true);
    let crashed = cart.idempotent("req-1").add("tea".into()).await;
    assert!(
        matches!(crashed, Err(CallError::Crashed(Exit::Panicked { .. }))),
        "{crashed:?}"
    );
    assert_eq!(cart.idempotent("req-1").add("tea".into()).await, Ok(1));
    assert_eq!(cart.adds().await, Ok(1));
}

#[tokio::test]
async fn records_survive_a_crash_and_a_kill_of_the_worker_as_the_state_does() {
    quiet();
    let cart = Cart::start(Cart::default()).await.unwrap();
    assert_eq!(cart.idempotent("req-1").add("tea".into()).await, Ok(1));
    assert!(matches!(cart.crash().await, Err(CallError::Crashed(_))));
    assert_eq!(cart.idempotent("req-1").add("tea".into()).await, Ok(1));
    let restarted = cart.branch().next_restart();
    cart.branch().kill_worker().unwrap();
    restarted.await.unwrap();
    assert_eq!(cart.idempotent("req-1").add("tea".into()).await, Ok(1));
    assert_eq!(cart.adds().await, Ok(1));
}

/// Many callers with one key at once (a client retrying before its first attempt answered):
/// the handler runs once and every caller gets its reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_with_one_key_apply_once() {
    let storage = Storage::new(Memory::new());
    let cart = Cart::builder(Cart::default())
        .name(unique("concurrent"))
        .store(storage)
        .start()
        .await
        .unwrap();
    let calls = (0..32).map(|_| {
        let cart = cart.clone();
        tokio::spawn(async move { cart.idempotent("req-1").add("tea".into()).await })
    });
    for reply in futures::future::join_all(calls).await {
        assert_eq!(reply.unwrap(), Ok(1));
    }
    assert_eq!(cart.adds().await, Ok(1));
}

#[tokio::test(start_paused = true)]
async fn records_expire_after_their_window_and_the_oldest_go_past_the_max() {
    let cart = Cart::builder(Cart::default())
        .retain_replies(Duration::from_secs(60), 2)
        .start()
        .await
        .unwrap();
    assert_eq!(cart.idempotent("a").add("1".into()).await, Ok(1));
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(cart.idempotent("a").add("1".into()).await, Ok(1), "kept");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        cart.idempotent("a").add("1".into()).await,
        Ok(2),
        "expired: runs again"
    );
    // Two kept at most: `b` and `c` push out the record of `a` made just now.
    assert_eq!(cart.idempotent("b").add("2".into()).await, Ok(3));
    assert_eq!(cart.idempotent("c").add("3".into()).await, Ok(4));
    assert_eq!(cart.idempotent("a").add("1".into()).await, Ok(5));
    assert_eq!(cart.idempotent("c").add("3".into()).await, Ok(4), "kept");
}

/// A durable server: the record is committed with the state (one write carries both), and a
/// new start on the same store (a process restart) and a revival from hibernation find it.
#[tokio::test]
async fn a_durable_servers_record_is_committed_with_its_state_and_outlives_it() {
    let memory = Memory::new();
    let name = unique("durable");
    let key = Key::new("idempotent-cart", &name);
    let start = |storage: Storage| {
        Cart::builder(Cart::default())
            .name(name.clone())
            .store(storage)
            .on_stop(OnStop::Keep)
            .start()
    };
    let cart = start(Storage::new(memory.clone())).await.unwrap();
    assert_eq!(cart.idempotent("req-1").add("tea".into()).await, Ok(1));
    // When the reply came, both were in the store.
    assert!(memory.read(&key).await.unwrap().is_some());
    let records = memory.retained(&key).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].0, "req-1");
    cart.stop().await.unwrap();

    // A new start reads the record back at its first keyed call.
    let cart = start(Storage::new(memory.clone())).await.unwrap();
    assert_eq!(cart.idempotent("req-1").add("tea".into()).await, Ok(1));
    assert_eq!(
        cart.idempotent("req-1").add("cake".into()).await,
        Err(CallError::KeyReused {
            key: "req-1".into()
        })
    );
    assert_eq!(cart.adds().await, Ok(1));
    cart.stop().await.unwrap();

    // Wiping the state (a normal stop under `OnStop::Wipe`, the default) forgets its records.
    let wiped = Cart::builder(Cart::default())
        .name(name.clone())
        .store(Storage::new(memory.clone()))
        .start()
        .await
        .unwrap();
    wiped.stop().await.unwrap();
    assert!(memory.read(&key).await.unwrap().is_none());
    assert!(memory.retained(&key).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_hibernated_server_answers_a_retry_from_its_stored_record() {
    let storage = Storage::new(Memory::new());
    let cart = Cart::builder(Cart::default())
        .name(unique("hibernating"))
        .store(storage)
        .idle_after(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    assert_eq!(cart.idempotent("req-1").add("tea".into()).await, Ok(1));
    cart.branch().hibernated().await.unwrap();
    assert_eq!(cart.idempotent("req-1").add("tea".into()).await, Ok(1));
    assert_eq!(cart.adds().await, Ok(1));
}

/// A write that fails keeps the record for the next one: the caller is told (`Store`), a retry
/// once the store is back writes state and record together before it answers, and nothing is
/// applied twice.
#[tokio::test]
async fn a_record_whose_write_failed_is_written_before_a_retry_is_answered() {
    let memory = Memory::new();
    let name = unique("failing");
    let key = Key::new("idempotent-cart", &name);
    let cart = Cart::builder(Cart::default())
        .name(name.clone())
        .store(Storage::new(memory.clone()))
        .start()
        .await
        .unwrap();
    memory.fail_writes(Some("disk full"));
    let failed = cart.idempotent("req-1").add("tea".into()).await;
    assert!(matches!(failed, Err(CallError::Store(_))), "{failed:?}");
    assert!(memory.retained(&key).await.unwrap().is_empty());
    memory.fail_writes(None);
    assert_eq!(cart.idempotent("req-1").add("tea".into()).await, Ok(1));
    assert_eq!(memory.retained(&key).await.unwrap().len(), 1);
    assert_eq!(cart.adds().await, Ok(1));
}

/// A store that does not keep records (the `Store::retained` default) refuses keyed calls to
/// durable servers with a typed error, rather than apply a retry twice after a restart.
#[tokio::test]
async fn a_store_without_records_refuses_keyed_calls_typed() {
    struct StatesOnly(Memory);
    impl Store for StatesOnly {
        fn read<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
            self.0.read(key)
        }
        fn commit(&self, batch: Vec<Write>) -> BoxFuture<'_, Result<(), StoreError>> {
            self.0.commit(batch)
        }
        fn keys<'a>(
            &'a self,
            kind: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Vec<Key>, StoreError>> {
            self.0.keys(kind)
        }
    }
    let cart = Cart::builder(Cart::default())
        .name(unique("states-only"))
        .store(Storage::new(StatesOnly(Memory::new())))
        .start()
        .await
        .unwrap();
    let refused = cart.idempotent("req-1").add("tea".into()).await;
    assert!(
        matches!(&refused, Err(CallError::Store(StoreError::Backend { message })) if message.contains("keeps no records")),
        "{refused:?}"
    );
    assert_eq!(cart.adds().await, Ok(0));
}

fn quiet() {
    peeper::quiet_caught_panics();
}
