//! Listeners: every callback, in the order things happened; `on_terminate` on every end; a
//! listener that panics never takes the branch down.
//!
//! Listener callbacks run in the keeper task, after the fact. Each test asserts the recorded
//! sequence only once something guarantees the keeper has heard everything: `stop()` and
//! `ended()` resolve after `on_terminate`, and `transfer` after the old keeper's last callback.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use peeper::{CallError, DynamicSupervisor, Exit, Listener, Server};
use peeper_tests::{
    Counter, CounterCall, CounterCast, CounterClient, Probe, Recorder, kill_and_wait,
};

/// Changes, restarts (with their reason) and the end, in order.
#[tokio::test]
async fn listener_hears_everything_in_order() {
    let recorder = Recorder::default();
    let counter = Counter::builder(Counter::at(0))
        .listener(recorder.clone())
        .start()
        .await
        .unwrap();
    counter.cast(CounterCast::Inc).unwrap();
    assert_eq!(counter.add(2).await, Ok(3));
    assert_eq!(counter.get().await, Ok(3)); // a read: no event
    assert_eq!(kill_and_wait(&counter).await, 1);
    let crash = counter.call(CounterCall::SetThenPanic(9, "oops")).await;
    assert!(matches!(crash, Err(CallError::Crashed(_))));
    counter.cast(CounterCast::Inc).unwrap();
    counter.stop().await.unwrap();

    assert_eq!(
        recorder.events.lines(),
        [
            "changed 0->1",
            "changed 1->3",
            "restart 1 Killed",
            r#"restart 2 Panicked { message: "oops" }"#,
            "changed 3->4",
            "terminate Normal 4",
        ]
    );
}

/// `on_terminate` with `Transferred` when the branch leaves, then the same listener goes on
/// hearing the branch at its new place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_follows_a_transfer() {
    let name = peeper_tests::unique("listened");
    let (from, to) = (DynamicSupervisor::new(), DynamicSupervisor::new());
    let recorder = Recorder::default();
    let counter = from
        .start_child(
            Counter::builder(Counter::at(42))
                .name(&name)
                .listener(recorder.clone()),
        )
        .await
        .unwrap();
    assert_eq!(counter.add(1).await, Ok(43));
    peeper::transfer(&name, &from, &to).await.unwrap();
    // The old keeper has run its last callback before the transfer completed.
    assert_eq!(
        recorder.events.lines(),
        ["changed 42->43", "terminate Transferred 43"]
    );

    assert_eq!(counter.add(1).await, Ok(44));
    kill_and_wait(&counter).await;
    to.shutdown().await;
    assert_eq!(
        recorder.events.lines(),
        [
            "changed 42->43",
            "terminate Transferred 43",
            "changed 43->44",
            "restart 2 Killed",
            "terminate Shutdown 44",
        ]
    );
}

/// `on_terminate` fires on every end: restart limit and crash loop, with the kept state.
#[tokio::test]
async fn on_terminate_on_restart_limit_and_crash_loop() {
    let recorder = Recorder::default();
    let counter = Counter::builder(Counter::at(5))
        .max_restarts(1)
        .within(Duration::from_secs(60))
        .listener(recorder.clone())
        .start()
        .await
        .unwrap();
    kill_and_wait(&counter).await;
    let ended = counter.branch().ended();
    counter.branch().kill_worker().unwrap();
    let limit = ended.await;
    assert!(matches!(limit, Exit::RestartLimit { .. }), "{limit:?}");
    assert_eq!(
        recorder.events.lines(),
        [
            "restart 1 Killed".to_owned(),
            format!("terminate {limit:?} 5")
        ]
    );

    let recorder = Recorder::default();
    let counter = Counter::builder(Counter::at(6))
        .listener(recorder.clone())
        .start()
        .await
        .unwrap();
    counter.cast(CounterCast::Poison).unwrap();
    let ended = counter.branch().ended();
    counter.branch().kill_worker().unwrap();
    let crash_loop = ended.await;
    assert!(
        matches!(crash_loop, Exit::CrashLoop { crashes: 3, .. }),
        "{crash_loop:?}"
    );
    let poisoned = |incarnation| {
        format!(r#"InitFailed {{ message: "poisoned at incarnation {incarnation}" }}"#)
    };
    assert_eq!(
        recorder.events.lines(),
        [
            "changed 6->6".to_owned(), // the poison
            "restart 1 Killed".to_owned(),
            format!("restart 2 {}", poisoned(1)),
            format!("restart 3 {}", poisoned(2)),
            format!("terminate {crash_loop:?} 6"),
        ]
    );
}

/// A panicking callback is caught and skipped; the keeper, the state and later callbacks live on.
#[tokio::test]
async fn a_panicking_listener_is_caught() {
    for callback in ["on_state_changed", "on_restart", "on_terminate"] {
        let recorder = Recorder {
            panic_in: Some(callback),
            ..Recorder::default()
        };
        let counter = Counter::builder(Counter::at(0))
            .listener(recorder.clone())
            .start()
            .await
            .unwrap();
        counter.cast(CounterCast::Inc).unwrap();
        assert_eq!(counter.add(1).await, Ok(2), "{callback}");
        kill_and_wait(&counter).await;
        kill_and_wait(&counter).await;
        assert_eq!(counter.add(1).await, Ok(3), "{callback}");
        counter.stop().await.unwrap();
        assert_eq!(
            recorder.events.lines(),
            [
                "changed 0->1",
                "changed 1->2",
                "restart 1 Killed",
                "restart 2 Killed",
                "changed 2->3",
                "terminate Normal 3"
            ],
            "{callback}"
        );
    }
}

/// A listener that does not want state changes gets none (and the worker sends none).
struct EndsOnly(Probe);

impl Listener<Counter> for EndsOnly {
    fn on_state_changed(&self, _: &Counter, _: &Counter) {
        self.0.push("changed");
    }

    fn on_restart(&self, incarnation: u64, _: &Exit) {
        self.0.push(format!("restart {incarnation}"));
    }

    fn on_terminate(&self, reason: &Exit, last: &Counter) {
        self.0.push(format!("terminate {reason:?} {}", last.value));
    }

    fn wants_state_changes(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn a_listener_may_decline_state_changes() {
    let probe = Probe::default();
    let counter = Counter::builder(Counter::at(0))
        .listener(EndsOnly(probe.clone()))
        .start()
        .await
        .unwrap();
    for _ in 0..10 {
        counter.cast(CounterCast::Inc).unwrap();
    }
    kill_and_wait(&counter).await;
    assert_eq!(counter.get().await, Ok(10));
    counter.stop().await.unwrap();
    assert_eq!(probe.lines(), ["restart 1", "terminate Normal 10"]);
}

/// A server is one task (supervision and worker together); a listener adds one task of its own,
/// and a restart adds none.
#[tokio::test(flavor = "current_thread")]
async fn a_server_is_one_task_and_a_listener_adds_one() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let plain = Counter::start(Counter::at(0)).await.unwrap();
    assert_eq!(metrics.num_alive_tasks(), before + 1);
    let heard = Counter::builder(Counter::at(0))
        .listener(EndsOnly(Probe::default()))
        .start()
        .await
        .unwrap();
    assert_eq!(metrics.num_alive_tasks(), before + 3);
    assert_eq!(kill_and_wait(&plain).await, 1);
    assert_eq!(kill_and_wait(&heard).await, 1);
    assert_eq!(metrics.num_alive_tasks(), before + 3);
    plain.stop().await.unwrap();
    heard.stop().await.unwrap();
    // `stop` resolves as the tasks return; a current-thread runtime counts a task alive until it
    // has been polled to its end, which happens before the next turn of this one.
    tokio::task::yield_now().await;
    assert_eq!(metrics.num_alive_tasks(), before);
}
