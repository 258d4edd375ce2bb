//! Stopping a branch, and looking at it: what a stop handles and refuses, `terminate` exactly
//! once, and the supervisor, keeper and worker tasks as `Branch` reports them.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use peeper::{CallError, DynamicSupervisor, Exit, SendError, Server, StopError};
use peeper_tests::{
    Counter, CounterCall, CounterCast, CounterClient, CounterInfo, CounterReply, Gate, Probe,
    Recorder, kill_and_wait, queue, unique,
};

fn counter_with(gate: &Gate, probe: &Probe) -> Counter {
    Counter {
        gate: gate.clone(),
        probe: probe.clone(),
        ..Counter::default()
    }
}

/// Everything queued before a stop is handled, `terminate` runs once with `Normal`, and every
/// later request is refused with a typed error.
#[tokio::test]
async fn stop_handles_what_was_queued_then_refuses() {
    let (gate, probe, recorder) = (Gate::default(), Probe::default(), Recorder::default());
    let counter = Counter::builder(counter_with(&gate, &probe))
        .listener(recorder.clone())
        .start()
        .await
        .unwrap();
    let stuck = queue(counter.call(CounterCall::Wait)).await;
    gate.entered().await;
    for _ in 0..3 {
        counter.cast(CounterCast::Inc).unwrap();
    }
    let before = queue(counter.get()).await;
    let stopping = queue(counter.stop()).await;
    gate.release();

    assert_eq!(stuck.output().await, Ok(CounterReply::Value(0)));
    assert_eq!(before.output().await, Ok(3));
    assert_eq!(stopping.output().await, Ok(()));

    assert_eq!(probe.starting_with("terminate"), ["terminate Normal 3"]);
    assert_eq!(
        recorder.events.starting_with("terminate"),
        ["terminate Normal 3"]
    );
    assert_eq!(counter.branch().exit(), Some(Exit::Normal));
    assert!(!counter.branch().is_running());
    assert_eq!(counter.branch().ended().await, Exit::Normal);

    assert_eq!(counter.get().await, Err(CallError::Stopped(Exit::Normal)));
    assert_eq!(
        counter.cast(CounterCast::Inc),
        Err(SendError::Stopped(Exit::Normal))
    );
    assert_eq!(
        counter.send(CounterInfo::Inc),
        Err(SendError::Stopped(Exit::Normal))
    );
    let late = counter.cast_after(Duration::from_secs(1), CounterCast::Inc);
    assert_eq!(late.unwrap_err(), SendError::Stopped(Exit::Normal));
    assert_eq!(
        counter.branch().kill_worker(),
        Err(SendError::Stopped(Exit::Normal))
    );
    assert_eq!(
        counter.stop().await,
        Err(StopError::AlreadyStopped(Exit::Normal))
    );
    assert_eq!(counter.branch().next_restart().await, Err(Exit::Normal));
    // Still exactly once.
    assert_eq!(probe.starting_with("terminate"), ["terminate Normal 3"]);
}

/// A call queued behind the stop request is refused with `Stopped(Normal)`. The stop request
/// even survives a kill of the worker that had not reached it yet.
#[tokio::test]
async fn a_call_queued_after_stop_is_refused() {
    let (gate, probe) = (Gate::default(), Probe::default());
    let counter = Counter::start(counter_with(&gate, &probe)).await.unwrap();
    let stuck = queue(counter.call(CounterCall::Wait)).await;
    gate.entered().await;
    counter.cast(CounterCast::Inc).unwrap();
    let stopping = queue(counter.stop()).await;
    // Control requests are carried out in order: once the kill has landed, the stop request is
    // in the mailbox, behind the cast.
    counter.branch().kill_worker().unwrap();
    assert_eq!(stuck.output().await, Err(CallError::Crashed(Exit::Killed)));
    let after = queue(counter.get()).await;

    assert_eq!(stopping.output().await, Ok(()));
    assert_eq!(after.output().await, Err(CallError::Stopped(Exit::Normal)));
    assert_eq!(probe.starting_with("terminate"), ["terminate Normal 1"]);
}

/// The same with `ctx.stop()` from a handler: what follows in the mailbox is refused.
#[tokio::test]
async fn messages_behind_a_handler_stop_are_refused() {
    let (gate, probe) = (Gate::default(), Probe::default());
    let counter = Counter::start(counter_with(&gate, &probe)).await.unwrap();
    let stuck = queue(counter.call(CounterCall::Wait)).await;
    gate.entered().await;
    let stopping = queue(counter.call(CounterCall::AddThenStop(1))).await;
    counter.cast(CounterCast::Inc).unwrap(); // accepted, never handled
    let after = queue(counter.get()).await;
    gate.release();

    assert_eq!(stuck.output().await, Ok(CounterReply::Value(0)));
    assert_eq!(stopping.output().await, Ok(CounterReply::Value(1)));
    assert_eq!(after.output().await, Err(CallError::Stopped(Exit::Normal)));
    assert_eq!(counter.branch().ended().await, Exit::Normal);
    assert_eq!(probe.starting_with("terminate"), ["terminate Normal 1"]);
}

/// Two stops at once: both resolve once the branch has ended, `terminate` runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stops_terminate_once() {
    let probe = Probe::default();
    let counter = Counter::start(Counter {
        value: 7,
        probe: probe.clone(),
        ..Counter::default()
    })
    .await
    .unwrap();
    let other = counter.clone();
    let (first, second) = tokio::join!(counter.stop(), other.stop());
    for result in [first, second] {
        assert!(
            matches!(
                result,
                Ok(()) | Err(StopError::AlreadyStopped(Exit::Normal))
            ),
            "{result:?}"
        );
    }
    assert_eq!(probe.starting_with("terminate"), ["terminate Normal 7"]);
    assert_eq!(
        counter.stop().await,
        Err(StopError::AlreadyStopped(Exit::Normal))
    );
}

/// A stopped child leaves its dynamic supervisor; `terminate_child` refuses strangers.
#[tokio::test]
async fn terminate_child() {
    let (sup, other) = (DynamicSupervisor::new(), DynamicSupervisor::new());
    let probe = Probe::default();
    let child = sup
        .start_child(Counter::builder(Counter {
            value: 3,
            probe: probe.clone(),
            ..Counter::default()
        }))
        .await
        .unwrap();
    assert_eq!(
        other.terminate_child(child.branch()).await,
        Err(StopError::NotAChild)
    );
    assert_eq!(child.get().await, Ok(3));
    sup.terminate_child(child.branch()).await.unwrap();
    assert!(sup.which_children().is_empty());
    assert_eq!(probe.starting_with("terminate"), ["terminate Normal 3"]);
    assert_eq!(
        sup.terminate_child(child.branch()).await,
        Err(StopError::NotAChild)
    );
}

/// `Branch`: three distinct tasks, the keeper listed first; the worker changes with every
/// restart, the keeper and supervisor do not; all gone once the branch has ended.
#[tokio::test]
async fn branch_introspection() {
    let name = unique("seen");
    let counter = Counter::builder(Counter::at(1))
        .name(&name)
        .start()
        .await
        .unwrap();
    let branch = counter.branch().clone();
    assert_eq!(branch.name(), Some(name.as_str()));
    assert!(branch.server().ends_with("Counter"), "{}", branch.server());
    assert!(branch.is_running());
    assert_eq!(branch.exit(), None);

    // One task supervises the branch and runs its worker: the handlers run in it.
    let task = branch.task_id().unwrap();
    assert_eq!(
        counter.call(CounterCall::TaskId).await,
        Ok(CounterReply::Task(task))
    );
    assert_eq!((branch.incarnation(), branch.restarts()), (0, 0));

    // The next worker runs in the same task.
    assert_eq!(kill_and_wait(&counter).await, 1);
    assert_eq!(branch.task_id(), Some(task));
    assert_eq!(
        counter.call(CounterCall::TaskId).await,
        Ok(CounterReply::Task(task))
    );

    let crash = counter.call(CounterCall::Panic("introspected")).await;
    assert!(crash.is_err());
    assert_eq!(counter.get().await, Ok(1)); // handled by incarnation 2
    assert_eq!((branch.incarnation(), branch.restarts()), (2, 2));

    counter.stop().await.unwrap();
    assert_eq!(branch.task_id(), None);
    assert!(!branch.is_running());
    assert_eq!(branch.exit(), Some(Exit::Normal));
    assert_eq!(branch.restarts(), 2);
}

/// Branch ids are unique and stable; a transfer keeps the branch id but brings a new task.
#[tokio::test]
async fn branch_ids_across_a_transfer() {
    let name = unique("moved");
    let (from, to) = (DynamicSupervisor::new(), DynamicSupervisor::new());
    let counter = from
        .start_child(Counter::builder(Counter::at(1)).name(&name))
        .await
        .unwrap();
    let other = Counter::start(Counter::at(2)).await.unwrap();
    assert_ne!(counter.branch().id(), other.branch().id());
    assert_eq!(
        counter.branch().id().to_string(),
        format!("{}", counter.branch().id())
    );
    assert!(counter.branch().id().to_string().starts_with("branch#"));

    let task = counter.branch().task_id();
    assert!(task.is_some());
    let id = counter.branch().id();
    let moved = counter.branch().next_restart();
    peeper::transfer(&name, &from, &to).await.unwrap();
    assert_eq!(moved.await, Ok(1));
    assert_eq!(counter.branch().id(), id);
    assert!(counter.branch().task_id().is_some());
    assert_ne!(counter.branch().task_id(), task);
    assert_eq!(counter.get().await, Ok(1));
    counter.stop().await.unwrap();
    other.stop().await.unwrap();
}

/// A kill that lands while `terminate` is running does not undo the stop: the branch still
/// ends normally, `terminate` is not run a second time, and `stop()` resolves.
#[tokio::test(start_paused = true)]
async fn a_kill_during_terminate_still_stops() {
    let (gate, probe) = (Gate::default(), Probe::default());
    let state = Counter {
        value: 4,
        slow_terminate: true,
        ..counter_with(&gate, &probe)
    };
    let counter = Counter::start(state).await.unwrap();
    let stopping = queue(counter.stop()).await;
    gate.entered().await; // terminate is running
    counter.branch().kill_worker().unwrap();
    // A guard, not a synchronisation: a stop that never resolves fails the test instead of hanging.
    let stopped = tokio::time::timeout(Duration::from_secs(60), stopping.output()).await;
    assert_eq!(stopped, Ok(Ok(())));
    assert_eq!(counter.branch().exit(), Some(Exit::Normal));
    assert_eq!(probe.starting_with("terminate"), ["terminate Normal 4"]);
}

/// The same with a stop asked for by a handler.
#[tokio::test(start_paused = true)]
async fn a_kill_during_a_handler_stops_terminate_still_stops() {
    let (gate, probe) = (Gate::default(), Probe::default());
    let state = Counter {
        value: 4,
        slow_terminate: true,
        ..counter_with(&gate, &probe)
    };
    let counter = Counter::start(state).await.unwrap();
    let ended = counter.branch().ended();
    counter.cast(CounterCast::Stop).unwrap();
    gate.entered().await;
    counter.branch().kill_worker().unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(60), ended).await;
    assert_eq!(ended, Ok(Exit::Normal));
    assert_eq!(probe.starting_with("terminate"), ["terminate Normal 4"]);
}
