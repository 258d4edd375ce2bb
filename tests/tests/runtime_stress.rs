//! Many crashes, many clients: nothing is lost, and order is kept per sender.
#![allow(clippy::unwrap_used)]

use peeper::{Client, Server};
use peeper_tests::{Counter, CounterCast, CounterClient, kill_and_wait};

/// Peeper: "stress": 1,000 rounds of (update, kill, restart) lose no update.
#[tokio::test]
async fn stress_a_thousand_kills() {
    let counter = Counter::builder(Counter::at(0))
        .max_restarts(10_000)
        .start()
        .await
        .unwrap();
    for incarnation in 1..=1_000 {
        counter.cast(CounterCast::Inc).unwrap();
        assert_eq!(kill_and_wait(&counter).await, incarnation);
    }
    assert_eq!(counter.get().await, Ok(1_000));
    assert_eq!(counter.branch().restarts(), 1_000);
    counter.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_kills_multi_thread() {
    let counter = Counter::builder(Counter::at(0))
        .max_restarts(10_000)
        .start()
        .await
        .unwrap();
    for round in 1..=300 {
        counter.cast(CounterCast::Inc).unwrap();
        kill_and_wait(&counter).await;
        if round % 50 == 0 {
            assert_eq!(counter.get().await, Ok(round));
        }
    }
    assert_eq!(counter.get().await, Ok(300));
    counter.stop().await.unwrap();
}

/// Peeper: "concurrent access": 20 tasks cast 5 times each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_casts() {
    let counter = Counter::start(Counter::at(0)).await.unwrap();
    let senders: Vec<_> = (0..20)
        .map(|_| {
            let counter = counter.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    counter.cast(CounterCast::Inc).unwrap();
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    // Every cast was queued before this call.
    assert_eq!(counter.get().await, Ok(100));
    kill_and_wait(&counter).await;
    assert_eq!(counter.get().await, Ok(100));
    counter.stop().await.unwrap();
}

/// Concurrent calls each see their own update: the replies are exactly 1..=200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_are_linearizable() {
    let counter = Counter::start(Counter::at(0)).await.unwrap();
    let callers: Vec<_> = (0..10)
        .map(|_| {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut replies = Vec::new();
                for _ in 0..20 {
                    replies.push(counter.add(1).await.unwrap());
                }
                replies
            })
        })
        .collect();
    let mut replies = Vec::new();
    for caller in callers {
        let mine = caller.await.unwrap();
        assert!(mine.is_sorted(), "one caller's replies go up: {mine:?}");
        replies.extend(mine);
    }
    replies.sort_unstable();
    assert_eq!(replies, (1..=200).collect::<Vec<u64>>());
    counter.stop().await.unwrap();
}

async fn produce(counter: Client<Counter>, producer: usize, count: usize) {
    for seq in 0..count {
        counter
            .cast(CounterCast::Push(format!("{producer}:{seq:04}")))
            .unwrap();
        if seq % 25 == 0 {
            tokio::task::yield_now().await; // let the killer in
        }
    }
}

/// Casts from four tasks race fifty kills: every cast is handled once, each sender's in order.
/// (Handlers without an `.await` cannot be interrupted half-way, so none is lost.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn casts_racing_kills_are_all_handled_in_order() {
    let counter = Counter::builder(Counter::at(0))
        .max_restarts(10_000)
        .start()
        .await
        .unwrap();
    let producers: Vec<_> = (0..4)
        .map(|producer| tokio::spawn(produce(counter.clone(), producer, 250)))
        .collect();
    let killer = {
        let counter = counter.clone();
        tokio::spawn(async move {
            for _ in 0..50 {
                kill_and_wait(&counter).await;
            }
        })
    };
    for producer in producers {
        producer.await.unwrap();
    }
    killer.await.unwrap();

    let log = counter.log().await.unwrap();
    assert_eq!(log.len(), 1_000);
    for producer in 0..4 {
        let prefix = format!("{producer}:");
        let mine: Vec<_> = log
            .iter()
            .filter(|line| line.starts_with(&prefix))
            .collect();
        let expected: Vec<_> = (0..250).map(|seq| format!("{producer}:{seq:04}")).collect();
        assert_eq!(
            mine,
            expected.iter().collect::<Vec<_>>(),
            "producer {producer}"
        );
    }
    assert_eq!(counter.branch().restarts(), 50);
    counter.stop().await.unwrap();
}

/// Calls racing kills: a handler without an `.await` always completes, so every call succeeds
/// and every update is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_racing_kills_all_succeed() {
    let counter = Counter::builder(Counter::at(0))
        .max_restarts(10_000)
        .start()
        .await
        .unwrap();
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let counter = counter.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    counter.add(1).await.unwrap();
                }
            })
        })
        .collect();
    for _ in 0..30 {
        kill_and_wait(&counter).await;
    }
    for caller in callers {
        caller.await.unwrap();
    }
    assert_eq!(counter.get().await, Ok(200));
    counter.stop().await.unwrap();
}
