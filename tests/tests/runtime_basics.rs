//! Calls, casts and raw messages on a hand-written server; what a kill keeps; states of every
//! shape; call timeouts. Ported from Elixir Peeper's `peeper_test.exs` where one exists.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use peeper::{CallError, Server};
use peeper_tests::{
    Big, Counter, CounterCall, CounterCast, CounterClient, CounterInfo, CounterReply, Empty, Gate,
    Quiet, Unit, kill_and_wait, queue, unique,
};

/// Peeper: "calls and casts delegate to the worker, and the state survives a kill".
#[tokio::test]
async fn calls_and_casts_delegate() {
    let counter = Counter::start(Counter::at(0)).await.unwrap();
    assert_eq!(counter.get().await, Ok(0));
    counter.cast(CounterCast::Inc).unwrap();
    assert_eq!(counter.get().await, Ok(1));

    assert_eq!(kill_and_wait(&counter).await, 1);
    assert_eq!(counter.get().await, Ok(1));

    counter.send(CounterInfo::Inc).unwrap();
    assert_eq!(counter.get().await, Ok(2));
    counter.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_casts_delegate_multi_thread() {
    let counter = Counter::start(Counter::at(0)).await.unwrap();
    counter.cast(CounterCast::Inc).unwrap();
    counter.send(CounterInfo::Inc).unwrap();
    assert_eq!(counter.add(10).await, Ok(12));
    assert_eq!(kill_and_wait(&counter).await, 1);
    assert_eq!(counter.get().await, Ok(12));
    counter.stop().await.unwrap();
}

/// Peeper: "direct calls" through another handle on the same server.
#[tokio::test]
async fn direct_calls_through_a_clone_and_whereis() {
    let name = unique("direct");
    let counter = Counter::builder(Counter::at(5))
        .name(&name)
        .start()
        .await
        .unwrap();

    let clone = counter.clone();
    assert_eq!(clone.add(1).await, Ok(6));
    assert_eq!(clone.branch().id(), counter.branch().id());

    let found = peeper::whereis::<Counter>(&name).expect("registered");
    assert_eq!(found.branch().id(), counter.branch().id());
    assert_eq!(found.add(1).await, Ok(7));
    found.cast(CounterCast::Inc).unwrap();
    assert_eq!(counter.get().await, Ok(8));

    // Both handles stay valid across a restart.
    kill_and_wait(&found).await;
    assert_eq!(clone.get().await, Ok(8));
    assert_eq!(
        peeper::whereis::<Counter>(&name).unwrap().get().await,
        Ok(8)
    );
    counter.stop().await.unwrap();
}

/// Peeper: "unexpected messages are ignored": the default `handle_info` drops them.
#[tokio::test]
async fn unexpected_messages_are_ignored() {
    let quiet = Quiet::start(Quiet { value: 3 }).await.unwrap();
    quiet.send("what is this?".to_owned()).unwrap();
    quiet.send("and this?".to_owned()).unwrap();
    // The call is queued after both infos: they were handled (ignored) before it.
    assert_eq!(quiet.call(()).await, Ok(3));
    quiet.cast(1).unwrap();
    assert_eq!(quiet.call(()).await, Ok(4));
    assert_eq!(quiet.branch().restarts(), 0);
    assert!(quiet.branch().is_running());
    quiet.stop().await.unwrap();
}

/// Raw messages are handled in mailbox order with casts and calls.
#[tokio::test]
async fn infos_casts_and_calls_share_one_fifo_mailbox() {
    let counter = Counter::start(Counter::default()).await.unwrap();
    counter.cast(CounterCast::Push("cast 1".into())).unwrap();
    counter.send(CounterInfo::Push("info 1".into())).unwrap();
    counter.cast(CounterCast::Push("cast 2".into())).unwrap();
    counter.send(CounterInfo::Push("info 2".into())).unwrap();
    assert_eq!(
        counter.log().await.unwrap(),
        ["cast 1", "info 1", "cast 2", "info 2"]
    );
    counter.stop().await.unwrap();
}

/// Peeper: "empty state": a state with no data at all starts, survives a kill and answers.
#[tokio::test]
async fn empty_and_unit_states() {
    let unit = Unit::start(Unit).await.unwrap();
    unit.cast(()).unwrap();
    assert_eq!(unit.call(()).await, Ok(Unit));
    kill_and_wait(&unit).await;
    assert_eq!(unit.call(()).await, Ok(Unit));
    unit.stop().await.unwrap();

    let empty = Empty::start(Empty {}).await.unwrap();
    empty.cast(()).unwrap();
    assert_eq!(empty.call(()).await, Ok("empty"));
    kill_and_wait(&empty).await;
    assert_eq!(empty.call(()).await, Ok("empty"));
    empty.stop().await.unwrap();
}

/// Peeper: "large state": 10,000 items survive a kill intact.
#[tokio::test]
async fn large_state_survives_a_kill_intact() {
    let items: Vec<u64> = (0..10_000).map(|i| i * 7).collect();
    let big = Big::start(Big(items.clone())).await.unwrap();
    big.cast(70_000).unwrap();
    let mut expected = items;
    expected.push(70_000);
    assert_eq!(big.call(()).await.unwrap(), expected);

    kill_and_wait(&big).await;
    assert_eq!(big.call(()).await.unwrap(), expected);
    big.stop().await.unwrap();
}

/// Peeper: "call timeout": a call that times out leaves the state intact, and the timed-out call
/// still counts once its handler completes (as with `GenServer.call/3`).
#[tokio::test(start_paused = true)]
async fn call_timeout_then_state_intact() {
    let gate = Gate::default();
    let counter = Counter::start(Counter {
        value: 10,
        gate: gate.clone(),
        ..Counter::default()
    })
    .await
    .unwrap();

    // The handler adds 1, waits at the gate (forever, unless released), then adds 1 again.
    let late = counter
        .call_timeout(CounterCall::AddWaitAdd(1), Duration::from_millis(100))
        .await;
    assert_eq!(late, Err(CallError::Timeout(Duration::from_millis(100))));
    assert!(counter.branch().is_running());

    gate.release();
    // The slow handler completed (both additions), and nothing else was lost.
    assert_eq!(counter.get().await, Ok(12));
    assert_eq!(counter.branch().restarts(), 0);
    counter.stop().await.unwrap();
}

/// A call that times out while its handler is stuck, then a kill: the stuck handler's partial
/// change is not kept, the state is the one before it.
#[tokio::test(start_paused = true)]
async fn call_timeout_then_kill_drops_the_stuck_handlers_changes() {
    let gate = Gate::default();
    let counter = Counter::start(Counter {
        value: 10,
        gate: gate.clone(),
        ..Counter::default()
    })
    .await
    .unwrap();
    let late = counter
        .call_timeout(CounterCall::AddWaitAdd(1), Duration::from_millis(100))
        .await;
    assert!(matches!(late, Err(CallError::Timeout(_))), "{late:?}");

    assert_eq!(kill_and_wait(&counter).await, 1);
    assert_eq!(counter.get().await, Ok(10));
    counter.stop().await.unwrap();
}

/// On a multi-thread runtime a call arms its timer only if the ticker finds it still waiting a
/// tick (10 ms) after the send: the timeout still fires, and never sooner than asked for, for a
/// timeout shorter than two ticks (armed at once) and a longer one (armed by the ticker), for one
/// caller and for many callers waiting together on both worker threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_timeout_on_a_multi_thread_runtime_is_never_early() {
    let gate = Gate::default();
    let counter = Counter::start(Counter {
        gate: gate.clone(),
        ..Counter::default()
    })
    .await
    .unwrap();
    // A handler waits at the gate: every call below waits behind it.
    let waiting = tokio::spawn({
        let counter = counter.clone();
        async move { counter.call(CounterCall::Wait).await }
    });
    gate.entered().await;
    for timeout in [Duration::from_millis(5), Duration::from_millis(60)] {
        let sent = std::time::Instant::now();
        let late = counter.call_timeout(CounterCall::Get, timeout).await;
        assert_eq!(late, Err(CallError::Timeout(timeout)));
        assert!(
            sent.elapsed() >= timeout,
            "{timeout:?}: {:?}",
            sent.elapsed()
        );
    }
    let callers: Vec<_> = (0..64)
        .map(|_| {
            let counter = counter.clone();
            tokio::spawn(async move {
                let sent = std::time::Instant::now();
                let timeout = Duration::from_millis(40);
                let late = counter.call_timeout(CounterCall::Get, timeout).await;
                (late, sent.elapsed())
            })
        })
        .collect();
    for caller in callers {
        let (late, waited) = caller.await.unwrap();
        assert_eq!(late, Err(CallError::Timeout(Duration::from_millis(40))));
        assert!(waited >= Duration::from_millis(40), "{waited:?}");
    }
    gate.release();
    assert_eq!(waiting.await.unwrap(), Ok(CounterReply::Value(0)));
    assert_eq!(counter.get().await, Ok(0));
    counter.stop().await.unwrap();
}

/// The incarnation a handler sees goes up with every restart.
#[tokio::test]
async fn handlers_see_their_incarnation() {
    let counter = Counter::start(Counter::default()).await.unwrap();
    assert_eq!(
        counter.call(CounterCall::Incarnation).await,
        Ok(CounterReply::Value(0))
    );
    kill_and_wait(&counter).await;
    kill_and_wait(&counter).await;
    assert_eq!(
        counter.call(CounterCall::Incarnation).await,
        Ok(CounterReply::Value(2))
    );
    counter.stop().await.unwrap();
}

/// `queue` really queues: a call polled once is answered in mailbox order.
#[tokio::test]
async fn a_queued_call_keeps_its_place_in_the_mailbox() {
    let counter = Counter::start(Counter::default()).await.unwrap();
    let first = queue(counter.get()).await;
    counter.cast(CounterCast::Inc).unwrap();
    let second = queue(counter.get()).await;
    assert_eq!(second.output().await, Ok(1));
    assert_eq!(first.output().await, Ok(0));
    counter.stop().await.unwrap();
}
