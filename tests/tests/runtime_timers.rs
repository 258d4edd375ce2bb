//! Delayed messages (`cast_after`, `send_after`) and `Timer::cancel`, on a paused clock.
//!
//! No test sleeps: each awaits the line a delayed message's handler writes to the probe. With the
//! clock paused and nothing else to do, tokio jumps the clock to the next timer, so the waits
//! take no real time, and the virtual time elapsed shows each delay was respected.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use peeper::Server;
use peeper_tests::{Counter, CounterCast, CounterClient, CounterInfo, Probe, kill_and_wait};
use tokio::time::Instant;

fn noted(probe: &Probe) -> Vec<String> {
    probe
        .lines()
        .into_iter()
        .filter(|line| line.starts_with("cast ") || line.starts_with("info "))
        .collect()
}

/// Delayed casts and infos arrive after their delay, in deadline order; a cancelled one never.
#[tokio::test(start_paused = true)]
async fn cast_after_send_after_and_cancel() {
    let probe = Probe::default();
    let counter = Counter::start(Counter {
        probe: probe.clone(),
        ..Counter::default()
    })
    .await
    .unwrap();
    let start = Instant::now();

    let cancelled = counter
        .cast_after(
            Duration::from_secs(60),
            CounterCast::Note("cancelled".into()),
        )
        .unwrap();
    cancelled.cancel();
    counter
        .send_after(
            Duration::from_secs(2),
            CounterInfo::Note("after 2 s".into()),
        )
        .unwrap();
    counter
        .cast_after(
            Duration::from_secs(1),
            CounterCast::Note("after 1 s".into()),
        )
        .unwrap();

    probe.logged("cast after 1 s").await;
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_millis(1_100),
        "{elapsed:?}"
    );
    probe.logged("info after 2 s").await;
    assert!(start.elapsed() >= Duration::from_secs(2));

    // Past the cancelled message's deadline: it never came.
    counter
        .cast_after(
            Duration::from_secs(120),
            CounterCast::Note("after 2 min".into()),
        )
        .unwrap();
    probe.logged("cast after 2 min").await;
    assert!(start.elapsed() >= Duration::from_secs(120));
    assert_eq!(
        noted(&probe),
        ["cast after 1 s", "info after 2 s", "cast after 2 min"]
    );
    assert!(cancelled.is_finished());
    counter.stop().await.unwrap();
}

/// A delayed message waits in a timer, not in a worker: a restart meanwhile does not lose it.
#[tokio::test(start_paused = true)]
async fn a_delayed_message_survives_a_restart() {
    let probe = Probe::default();
    let counter = Counter::start(Counter {
        probe: probe.clone(),
        ..Counter::default()
    })
    .await
    .unwrap();
    counter
        .cast_after(Duration::from_secs(5), CounterCast::Add(10))
        .unwrap();
    counter
        .cast_after(Duration::from_secs(6), CounterCast::Note("added".into()))
        .unwrap();
    kill_and_wait(&counter).await;
    assert_eq!(counter.get().await, Ok(0)); // not yet
    probe.logged("cast added").await;
    assert_eq!(counter.get().await, Ok(10));
    counter.stop().await.unwrap();
}

/// A branch that ends during the delay drops the message silently; the timer still finishes.
#[tokio::test(start_paused = true)]
async fn a_delayed_message_to_an_ended_branch_is_dropped() {
    let probe = Probe::default();
    let counter = Counter::start(Counter {
        probe: probe.clone(),
        ..Counter::default()
    })
    .await
    .unwrap();
    let dropped = counter
        .cast_after(
            Duration::from_secs(10),
            CounterCast::Note("too late".into()),
        )
        .unwrap();
    counter.stop().await.unwrap();

    // A second server's later timer shows the clock went past the first deadline.
    let witness_probe = Probe::default();
    let witness = Counter::start(Counter {
        probe: witness_probe.clone(),
        ..Counter::default()
    })
    .await
    .unwrap();
    witness
        .cast_after(Duration::from_secs(20), CounterCast::Note("later".into()))
        .unwrap();
    witness_probe.logged("cast later").await;
    assert!(dropped.is_finished());
    assert!(noted(&probe).is_empty());
    witness.stop().await.unwrap();
}
