//! Keep strategies: what a crashing handler leaves behind with `Snapshot`, `Projection` and
//! `InPlace`, what keeping costs, and a `Clone` that panics while keeping.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use peeper::{CallError, Exit, Listener, Server};
use peeper_tests::{
    Cached, CachedCall, CachedView, Counted, CountedCall, Counter, CounterCall, CounterClient,
    Fragile, FragileCall, InPlaceCall, InPlaceCounter, kill_and_wait,
};

fn panicked(message: &str) -> Exit {
    Exit::Panicked {
        message: message.to_owned(),
    }
}

/// Snapshot: the crashing handler's change is gone; its caller hears the exact panic message.
#[tokio::test]
async fn snapshot_drops_a_crashing_handlers_partial_change() {
    let counter = Counter::start(Counter::at(42)).await.unwrap();
    assert_eq!(counter.add(1).await, Ok(43));
    let crash = counter
        .call(CounterCall::SetThenPanic(1_000, "half-way through"))
        .await;
    assert_eq!(crash, Err(CallError::Crashed(panicked("half-way through"))));
    assert_eq!(
        crash.unwrap_err().to_string(),
        "the worker crashed while handling this call: the worker panicked: half-way through"
    );
    assert_eq!(counter.get().await, Ok(43));
    counter.stop().await.unwrap();
}

/// InPlace: no copy is kept, so the crashing handler's partial change stays (documented).
#[tokio::test]
async fn in_place_keeps_a_crashing_handlers_partial_change() {
    let counter = InPlaceCounter::start(InPlaceCounter { value: 40 })
        .await
        .unwrap();
    counter.cast(2).unwrap();
    assert_eq!(counter.call(InPlaceCall::Get).await, Ok(42));
    let crash = counter.call(InPlaceCall::SetThenPanic(99)).await;
    assert_eq!(crash, Err(CallError::Crashed(panicked("in-place boom"))));
    assert_eq!(counter.call(InPlaceCall::Get).await, Ok(99));

    // A kill keeps the live state as it is, too.
    counter.cast(1).unwrap();
    kill_and_wait(&counter).await;
    assert_eq!(counter.call(InPlaceCall::Get).await, Ok(100));
    counter.stop().await.unwrap();
}

/// Projection: the projected part is the last completed handler's; the rest is rebuilt.
#[tokio::test]
async fn projection_rebuilds_the_part_it_does_not_keep() {
    let cached = Cached::start(Cached {
        total: 10,
        cache: vec![10],
        rebuilds: 0,
    })
    .await
    .unwrap();
    cached.cast(5).unwrap();
    let view = |total, cache: &[u64], rebuilds| CachedView {
        total,
        cache: cache.to_vec(),
        rebuilds,
    };
    assert_eq!(
        cached.call(CachedCall::View).await,
        Ok(view(15, &[10, 5], 0))
    );

    let crash = cached.call(CachedCall::PushThenPanic(100)).await;
    assert_eq!(crash, Err(CallError::Crashed(panicked("projection boom"))));
    // The total is the kept one (not 115); the cache was rebuilt, empty.
    assert_eq!(cached.call(CachedCall::View).await, Ok(view(15, &[], 1)));

    cached.cast(1).unwrap();
    assert_eq!(cached.call(CachedCall::View).await, Ok(view(16, &[1], 1)));
    kill_and_wait(&cached).await;
    assert_eq!(cached.call(CachedCall::View).await, Ok(view(16, &[], 2)));
    cached.stop().await.unwrap();
}

fn counted() -> (Counted, Arc<AtomicUsize>) {
    let clones = Arc::new(AtomicUsize::new(0));
    (
        Counted {
            value: 0,
            clones: Arc::clone(&clones),
        },
        clones,
    )
}

/// `&self` handlers never copy the state; `&mut self` handlers copy it exactly once each.
#[tokio::test]
async fn read_only_handlers_never_copy() {
    let (state, clones) = counted();
    let server = Counted::start(state).await.unwrap();
    // The state given to `start` is kept once, even though `init` did not change it.
    assert_eq!(clones.load(Ordering::SeqCst), 1);

    for _ in 0..100 {
        assert_eq!(server.call(CountedCall::Get).await, Ok(0));
    }
    assert_eq!(
        clones.load(Ordering::SeqCst),
        1,
        "read-only calls copied the state"
    );

    for expected in 1..=100 {
        assert_eq!(server.call(CountedCall::Inc).await, Ok(expected));
    }
    assert_eq!(
        clones.load(Ordering::SeqCst),
        101,
        "each changing call copies exactly once"
    );

    for _ in 0..50 {
        server.cast(()).unwrap();
    }
    assert_eq!(server.call(CountedCall::Get).await, Ok(150));
    assert_eq!(clones.load(Ordering::SeqCst), 151);
    server.stop().await.unwrap();
}

/// A listener that hears every state change but does nothing with it.
struct Ears(Arc<AtomicUsize>);

impl Listener<Counted> for Ears {
    fn on_state_changed(&self, _: &Counted, _: &Counted) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A listener shares the copies the snapshot makes anyway: still one copy per change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_adds_no_copy() {
    let (state, clones) = counted();
    let heard = Arc::new(AtomicUsize::new(0));
    let server = Counted::builder(state)
        .listener(Ears(Arc::clone(&heard)))
        .start()
        .await
        .unwrap();
    for _ in 0..20 {
        server.call(CountedCall::Get).await.unwrap();
        server.call(CountedCall::Inc).await.unwrap();
    }
    server.stop().await.unwrap(); // resolves after the listener heard everything
    assert_eq!(clones.load(Ordering::SeqCst), 21);
    assert_eq!(heard.load(Ordering::SeqCst), 20);
}

/// A `Clone` that panics while the state is being kept is a crash of that handler: its caller
/// hears it, and the previous good state is intact.
#[tokio::test]
async fn clone_that_panics_while_keeping() {
    let fragile = Fragile::start(Fragile {
        value: 42,
        explode: false,
    })
    .await
    .unwrap();
    let crash = fragile.call(FragileCall::SetAndExplode(7)).await;
    assert_eq!(
        crash,
        Err(CallError::Crashed(panicked(
            "keeping the state panicked: clone exploded"
        )))
    );
    assert_eq!(fragile.call(FragileCall::Get).await, Ok(42));
    assert_eq!(fragile.branch().restarts(), 1);

    // Business as usual afterwards.
    assert_eq!(fragile.call(FragileCall::Set(8)).await, Ok(8));
    kill_and_wait(&fragile).await;
    assert_eq!(fragile.call(FragileCall::Get).await, Ok(8));
    fragile.stop().await.unwrap();
}
