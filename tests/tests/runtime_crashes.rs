//! Every kind of crash keeps the state of the last completed handler and every queued message;
//! restart intensity and the crash-loop policy end the branch when restarting cannot help.
//! Ported from Elixir Peeper's crash tests, plus what Peeper cannot promise (queued messages).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use peeper::{
    CallError, CrashLoop, DynamicSupervisor, Exit, SendError, Server, StartError, StopError,
};
use peeper_tests::{
    BadInit, Counter, CounterCall, CounterCast, CounterClient, CounterReply, Gate, InPlaceCounter,
    Probe, Recorder, kill_and_wait, queue, unique,
};

fn panicked(message: &str) -> Exit {
    Exit::Panicked {
        message: message.to_owned(),
    }
}

fn init_failed(message: &str) -> Exit {
    Exit::InitFailed {
        message: message.to_owned(),
    }
}

/// Peeper: "kill keeps the state".
#[tokio::test]
async fn kill_worker_keeps_the_state() {
    let counter = Counter::start(Counter::at(42)).await.unwrap();
    assert_eq!(kill_and_wait(&counter).await, 1);
    assert_eq!(counter.get().await, Ok(42));
    assert_eq!(counter.branch().restarts(), 1);
    counter.stop().await.unwrap();
}

/// Peeper: "raise in a call keeps the state"; the crashing caller hears the exact panic message.
#[tokio::test]
async fn panic_in_a_call_keeps_the_state() {
    let counter = Counter::start(Counter::at(42)).await.unwrap();
    let crash = counter
        .call(CounterCall::SetThenPanic(7, "boom in call"))
        .await;
    assert_eq!(crash, Err(CallError::Crashed(panicked("boom in call"))));
    assert_eq!(counter.get().await, Ok(42));
    assert_eq!(counter.branch().restarts(), 1);
    counter.stop().await.unwrap();
}

/// Peeper: "raise in a cast keeps the state".
#[tokio::test]
async fn panic_in_a_cast_keeps_the_state() {
    let counter = Counter::start(Counter::at(42)).await.unwrap();
    counter
        .cast(CounterCast::SetThenPanic(7, "boom in cast"))
        .unwrap();
    assert_eq!(counter.get().await, Ok(42));
    assert_eq!(counter.branch().restarts(), 1);
    counter.stop().await.unwrap();
}

/// Peeper: "init error after a restart": the failing incarnation's changes are dropped and the
/// next incarnation starts from the kept state.
#[tokio::test]
async fn init_error_after_a_restart_keeps_the_state() {
    let probe = Probe::default();
    let state = Counter {
        value: 42,
        fail_init_at: Some(1),
        probe: probe.clone(),
        ..Counter::default()
    };
    let counter = Counter::start(state).await.unwrap();
    // Incarnation 1 fails its init (after setting the value to 999); incarnation 2 is ready.
    assert_eq!(kill_and_wait(&counter).await, 2);
    assert_eq!(counter.get().await, Ok(42));
    assert_eq!(counter.branch().restarts(), 2);
    assert_eq!(probe.starting_with("init"), ["init 0", "init 1", "init 2"]);
    counter.stop().await.unwrap();
}

/// Peeper: "init raise after a restart".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_in_init_after_a_restart_keeps_the_state() {
    let state = Counter {
        value: 42,
        panic_init_at: Some(1),
        ..Counter::default()
    };
    let counter = Counter::start(state).await.unwrap();
    assert_eq!(kill_and_wait(&counter).await, 2);
    assert_eq!(counter.get().await, Ok(42));
    counter.stop().await.unwrap();
}

/// Peeper: "normal exit": a handler that asks to stop ends the branch normally, with every change
/// it and the handlers before it made.
#[tokio::test]
async fn handler_stop_ends_normally_with_the_state() {
    let probe = Probe::default();
    let counter = Counter::start(Counter {
        value: 40,
        probe: probe.clone(),
        ..Counter::default()
    })
    .await
    .unwrap();
    let ended = counter.branch().ended();
    counter.cast(CounterCast::Inc).unwrap();
    assert_eq!(
        counter.call(CounterCall::AddThenStop(1)).await,
        Ok(CounterReply::Value(42))
    );
    assert_eq!(ended.await, Exit::Normal);
    assert_eq!(probe.starting_with("terminate"), ["terminate Normal 42"]);
    assert_eq!(counter.get().await, Err(CallError::Stopped(Exit::Normal)));
}

/// A stop requested by a cast also ends normally and keeps the state it ends with.
#[tokio::test]
async fn cast_stop_ends_normally_with_the_state() {
    let probe = Probe::default();
    let counter = Counter::start(Counter {
        value: 41,
        probe: probe.clone(),
        ..Counter::default()
    })
    .await
    .unwrap();
    counter.cast(CounterCast::Inc).unwrap();
    counter.cast(CounterCast::Stop).unwrap();
    assert_eq!(counter.branch().ended().await, Exit::Normal);
    assert_eq!(probe.starting_with("terminate"), ["terminate Normal 42"]);
}

/// The call being handled when the worker is killed fails with `Crashed(Killed)`.
#[tokio::test]
async fn a_call_in_progress_during_a_kill_hears_killed() {
    let gate = Gate::default();
    let counter = Counter::start(Counter {
        value: 42,
        gate: gate.clone(),
        ..Counter::default()
    })
    .await
    .unwrap();
    let stuck = queue(counter.call(CounterCall::AddWaitAdd(100))).await;
    gate.entered().await;
    let restarted = counter.branch().next_restart();
    counter.branch().kill_worker().unwrap();
    assert_eq!(stuck.output().await, Err(CallError::Crashed(Exit::Killed)));
    assert_eq!(restarted.await, Ok(1));
    // The killed handler had added 100 before waiting: not kept.
    assert_eq!(counter.get().await, Ok(42));
    counter.stop().await.unwrap();
}

/// Peeper: "nested crashes": quick kills in a row, then kills between updates.
#[tokio::test]
async fn nested_crashes() {
    let counter = Counter::start(Counter::at(0)).await.unwrap();
    for incarnation in 1..=5 {
        assert_eq!(kill_and_wait(&counter).await, incarnation);
    }
    assert_eq!(counter.get().await, Ok(0));

    for _ in 0..5 {
        counter.cast(CounterCast::Inc).unwrap();
        kill_and_wait(&counter).await;
    }
    assert_eq!(counter.get().await, Ok(5));
    assert_eq!(counter.branch().restarts(), 10);
    // Kills say nothing about the state: ten in a row without progress are no crash loop.
    assert!(counter.branch().is_running());
    counter.stop().await.unwrap();
}

/// Beyond Peeper: messages queued behind a killed handler are all handled, in order, by the next
/// worker, and the call among them is answered.
#[tokio::test]
async fn queued_messages_survive_a_kill_in_order() {
    let gate = Gate::default();
    let counter = Counter::start(Counter {
        value: 1,
        gate: gate.clone(),
        ..Counter::default()
    })
    .await
    .unwrap();
    let stuck = queue(counter.call(CounterCall::Wait)).await;
    gate.entered().await;

    for line in ["a", "b", "c"] {
        counter.cast(CounterCast::Push(line.into())).unwrap();
    }
    let logged = queue(counter.log()).await;
    let added = queue(counter.add(1)).await;

    let restarted = counter.branch().next_restart();
    counter.branch().kill_worker().unwrap();
    assert_eq!(stuck.output().await, Err(CallError::Crashed(Exit::Killed)));
    assert_eq!(restarted.await, Ok(1));

    assert_eq!(logged.output().await.unwrap(), ["a", "b", "c"]);
    assert_eq!(added.output().await, Ok(2));
    counter.stop().await.unwrap();
}

/// Beyond Peeper: the same behind a handler that panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_survive_a_panic_in_order() {
    let gate = Gate::default();
    let counter = Counter::start(Counter {
        value: 1,
        gate: gate.clone(),
        ..Counter::default()
    })
    .await
    .unwrap();
    let stuck = queue(counter.call(CounterCall::Wait)).await;
    gate.entered().await;

    let crash = queue(counter.call(CounterCall::Panic("queued boom"))).await;
    for line in ["a", "b", "c"] {
        counter.cast(CounterCast::Push(line.into())).unwrap();
    }
    let logged = queue(counter.log()).await;

    gate.release();
    assert_eq!(stuck.output().await, Ok(CounterReply::Value(1)));
    assert_eq!(
        crash.output().await,
        Err(CallError::Crashed(panicked("queued boom")))
    );
    assert_eq!(logged.output().await.unwrap(), ["a", "b", "c"]);
    assert_eq!(counter.branch().restarts(), 1);
    counter.stop().await.unwrap();
}

/// Peeper: "restart limit": more than `max_restarts` crashes in the window end the branch; every
/// waiting caller hears why, the listener hears the end, and the name can be used again.
#[tokio::test]
async fn restart_limit_then_restart_by_name() {
    let name = unique("limited");
    let (gate, probe, recorder) = (Gate::default(), Probe::default(), Recorder::default());
    let state = Counter {
        value: 42,
        gate: gate.clone(),
        probe: probe.clone(),
        ..Counter::default()
    };
    let counter = Counter::builder(state)
        .name(&name)
        .max_restarts(2)
        .within(Duration::from_secs(60))
        .listener(recorder.clone())
        .start()
        .await
        .unwrap();

    kill_and_wait(&counter).await;
    kill_and_wait(&counter).await;

    // The third crash: one call in progress, one waiting behind it.
    let stuck = queue(counter.call(CounterCall::Wait)).await;
    gate.entered().await;
    let waiting = queue(counter.get()).await;
    let ended = counter.branch().ended();
    counter.branch().kill_worker().unwrap();

    let limit = Exit::RestartLimit {
        max_restarts: 2,
        within: Duration::from_secs(60),
        last: Box::new(Exit::Killed),
    };
    assert_eq!(stuck.output().await, Err(CallError::Crashed(Exit::Killed)));
    assert_eq!(
        waiting.output().await,
        Err(CallError::Stopped(limit.clone()))
    );
    assert_eq!(ended.await, limit);

    assert_eq!(counter.get().await, Err(CallError::Stopped(limit.clone())));
    assert_eq!(
        counter.cast(CounterCast::Inc),
        Err(SendError::Stopped(limit.clone()))
    );
    assert_eq!(
        counter.branch().kill_worker(),
        Err(SendError::Stopped(limit.clone()))
    );
    assert_eq!(
        counter.stop().await,
        Err(StopError::AlreadyStopped(limit.clone()))
    );
    assert_eq!(counter.branch().restarts(), 2);

    // `terminate` ran once, on the kept state; the listener heard both restarts and the end.
    let terminate = format!("terminate {limit:?} 42");
    assert_eq!(probe.starting_with("terminate"), [terminate.as_str()]);
    assert_eq!(
        recorder.events.lines(),
        ["restart 1 Killed", "restart 2 Killed", terminate.as_str()]
    );

    assert!(peeper::whereis::<Counter>(&name).is_none());
    let again = Counter::builder(Counter::at(1))
        .name(&name)
        .start()
        .await
        .unwrap();
    assert_eq!(
        peeper::whereis::<Counter>(&name).unwrap().get().await,
        Ok(1)
    );
    again.stop().await.unwrap();
}

/// Restarts outside the window do not count (paused clock: the window is crossed instantly).
#[tokio::test(start_paused = true)]
async fn restarts_outside_the_window_do_not_count() {
    let counter = Counter::builder(Counter::at(42))
        .max_restarts(1)
        .within(Duration::from_secs(5))
        .start()
        .await
        .unwrap();
    kill_and_wait(&counter).await;
    tokio::time::advance(Duration::from_secs(6)).await;
    kill_and_wait(&counter).await;
    tokio::time::advance(Duration::from_secs(6)).await;
    kill_and_wait(&counter).await;
    assert_eq!(counter.get().await, Ok(42));

    // A second kill within the window of the last one: over the limit of one.
    let ended = counter.branch().ended();
    counter.branch().kill_worker().unwrap();
    assert!(matches!(
        ended.await,
        Exit::RestartLimit {
            max_restarts: 1,
            ..
        }
    ));
}

/// Peeper: "invalid init": an `init` that fails or panics at start is a start error, and leaves
/// nothing running or registered.
#[tokio::test]
async fn invalid_init_is_a_start_error() {
    let name = unique("bad-init");
    let error = BadInit::builder(BadInit { panic: false })
        .name(&name)
        .start()
        .await
        .unwrap_err();
    assert_eq!(
        error,
        StartError::Init(init_failed("missing configuration"))
    );
    assert!(peeper::whereis::<BadInit>(&name).is_none());

    let error = BadInit::builder(BadInit { panic: true })
        .name(&name)
        .start()
        .await
        .unwrap_err();
    assert_eq!(error, StartError::Init(init_failed("init exploded")));
    assert!(peeper::whereis::<BadInit>(&name).is_none());

    // Under a dynamic supervisor too: no child is left behind.
    let sup = DynamicSupervisor::new();
    let error = sup
        .start_child(BadInit::builder(BadInit { panic: true }).name(&name))
        .await
        .unwrap_err();
    assert_eq!(error, StartError::Init(init_failed("init exploded")));
    assert!(sup.which_children().is_empty());
    assert!(peeper::whereis::<BadInit>(&name).is_none());
}

/// Beyond Peeper: a state that makes every `init` crash stops the branch with `CrashLoop`
/// instead of restarting forever. Kills do not count; the loop starts after the kill.
#[tokio::test]
async fn crash_loop_stop() {
    let probe = Probe::default();
    let counter = Counter::start(Counter {
        value: 7,
        probe: probe.clone(),
        ..Counter::default()
    })
    .await
    .unwrap();
    counter.cast(CounterCast::Poison).unwrap();
    assert_eq!(counter.get().await, Ok(7)); // the poison is kept

    let restarted = counter.branch().next_restart();
    counter.branch().kill_worker().unwrap();
    let crash_loop = Exit::CrashLoop {
        crashes: 3,
        last: Box::new(init_failed("poisoned at incarnation 3")),
    };
    assert_eq!(restarted.await, Err(crash_loop.clone()));
    assert_eq!(counter.branch().ended().await, crash_loop);
    assert_eq!(counter.branch().restarts(), 3);
    assert_eq!(
        probe.starting_with("init"),
        ["init 0", "init 1", "init 2", "init 3"]
    );
    assert_eq!(
        probe.starting_with("terminate"),
        [format!("terminate {crash_loop:?} 7")]
    );
    assert_eq!(counter.get().await, Err(CallError::Stopped(crash_loop)));
}

/// Beyond Peeper: handler panics, however many in a row, are not a crash loop.
#[tokio::test]
async fn handler_crashes_are_never_a_crash_loop() {
    // Each panic consumes its message; the next incarnation starts fine and handles another one.
    // Only failed starts count toward a crash loop, so a client repeating one bad request cannot
    // take the server down through the crash-loop policy (the restart intensity bounds it).
    let counter = Counter::builder(Counter::at(7))
        .crash_loop_after(2)
        .start()
        .await
        .unwrap();
    for round in 0..5 {
        let crash = counter.call(CounterCall::Panic("again")).await;
        assert_eq!(
            crash,
            Err(CallError::Crashed(panicked("again"))),
            "round {round}"
        );
    }
    assert_eq!(counter.get().await, Ok(7));
    assert_eq!(counter.branch().restarts(), 5);
    assert!(counter.branch().is_running());
    counter.stop().await.unwrap();
}

/// A crash after progress resets the crash-loop count.
#[tokio::test]
async fn progress_between_crashes_is_no_crash_loop() {
    let counter = Counter::builder(Counter::at(7))
        .crash_loop_after(2)
        .start()
        .await
        .unwrap();
    for round in 0..5 {
        assert_eq!(counter.add(1).await, Ok(8 + round));
        let crash = counter.call(CounterCall::Panic("again")).await;
        assert_eq!(crash, Err(CallError::Crashed(panicked("again"))));
    }
    assert_eq!(counter.get().await, Ok(12));
    assert!(counter.branch().is_running());
    counter.stop().await.unwrap();
}

/// Beyond Peeper: `CrashLoop::ResetToInitial` falls back to the state given to `start`.
#[tokio::test]
async fn crash_loop_reset_to_initial() {
    let probe = Probe::default();
    let counter = Counter::builder(Counter {
        value: 7,
        probe: probe.clone(),
        ..Counter::default()
    })
    .crash_loop(CrashLoop::ResetToInitial)
    .start()
    .await
    .unwrap();
    counter.cast(CounterCast::Add(5)).unwrap();
    counter.cast(CounterCast::Poison).unwrap();
    assert_eq!(counter.get().await, Ok(12));

    // Incarnations 1-3 panic in init; the reset makes incarnation 4 start from the initial state.
    assert_eq!(kill_and_wait(&counter).await, 4);
    assert_eq!(counter.get().await, Ok(7));
    assert_eq!(counter.add(1).await, Ok(8));
    assert_eq!(kill_and_wait(&counter).await, 5);
    assert_eq!(counter.get().await, Ok(8));
    counter.stop().await.unwrap();
}

/// If the initial state crash-loops too, the branch gives up.
#[tokio::test]
async fn crash_loop_reset_that_does_not_help_stops() {
    let state = Counter {
        value: 7,
        fail_init_from: Some(1),
        ..Counter::default()
    };
    let counter = Counter::builder(state)
        .crash_loop(CrashLoop::ResetToInitial)
        .start()
        .await
        .unwrap();
    let restarted = counter.branch().next_restart();
    counter.branch().kill_worker().unwrap();
    let last = init_failed("init always refused, now at incarnation 6");
    assert_eq!(
        restarted.await,
        Err(Exit::CrashLoop {
            crashes: 3,
            last: Box::new(last)
        })
    );
}

/// `ResetToInitial` needs a kept copy, which `InPlace` does not make.
#[tokio::test]
async fn crash_loop_reset_with_in_place_is_invalid() {
    let error = InPlaceCounter::builder(InPlaceCounter::default())
        .crash_loop(CrashLoop::ResetToInitial)
        .start()
        .await;
    assert!(
        matches!(error, Err(StartError::InvalidOptions(_))),
        "{error:?}"
    );
}
