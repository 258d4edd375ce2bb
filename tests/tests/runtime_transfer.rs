//! `transfer` between dynamic supervisors: the branch moves with its state, its queued messages,
//! its listener and its name, to another runtime too; a failed transfer leaves it where it was.
#![allow(clippy::unwrap_used)]

use peeper::{Client, DynamicSupervisor, Exit, Server, TransferError};
use peeper_tests::{
    Counter, CounterCall, CounterCast, CounterClient, CounterReply, Gate, Probe, Quiet, Recorder,
    kill_and_wait, queue, unique,
};

fn ids(sup: &DynamicSupervisor) -> Vec<peeper::BranchId> {
    sup.which_children()
        .iter()
        .map(peeper::Branch::id)
        .collect()
}

/// Peeper: "transfer keeps the state", and beyond Peeper: the messages queued during the move,
/// the listener, the clients and the name all come along.
#[tokio::test]
async fn transfer_keeps_state_messages_listener_and_name() {
    let name = unique("moving");
    let (from, to) = (DynamicSupervisor::new(), DynamicSupervisor::new());
    let (gate, recorder) = (Gate::default(), Recorder::default());
    let state = Counter {
        value: 42,
        gate: gate.clone(),
        ..Counter::default()
    };
    let counter = from
        .start_child(
            Counter::builder(state)
                .name(&name)
                .listener(recorder.clone()),
        )
        .await
        .unwrap();
    let id = counter.branch().id();

    // Hold the worker, so that the handoff request queues behind "before".
    let stuck = queue(counter.call(CounterCall::Wait)).await;
    gate.entered().await;
    counter.cast(CounterCast::Push("before".into())).unwrap();
    let moving = queue(peeper::transfer(&name, &from, &to)).await;
    gate.release();
    assert_eq!(stuck.output().await, Ok(CounterReply::Value(42)));

    // The old worker has handed the branch over; no worker runs until the transfer completes,
    // and what is sent meanwhile waits in the mailbox.
    recorder.events.logged("terminate Transferred 42").await;
    counter
        .cast(CounterCast::Push("in transit".into()))
        .unwrap();
    let logged = queue(counter.log()).await;
    moving.output().await.unwrap();
    assert_eq!(logged.output().await.unwrap(), ["before", "in transit"]);

    assert!(ids(&from).is_empty());
    assert_eq!(ids(&to), [id]);
    let found = peeper::whereis::<Counter>(&name).expect("the name still resolves");
    assert_eq!(found.branch().id(), id);
    assert_eq!(found.get().await, Ok(42));
    assert_eq!(
        counter.call(CounterCall::Incarnation).await,
        Ok(CounterReply::Value(1))
    );
    assert_eq!(
        (counter.branch().incarnation(), counter.branch().restarts()),
        (1, 0)
    );

    // It restarts under its new supervisor like before.
    counter.cast(CounterCast::Inc).unwrap();
    kill_and_wait(&counter).await;
    assert_eq!(counter.get().await, Ok(43));
    assert_eq!(ids(&to), [id]);

    to.terminate_child(counter.branch()).await.unwrap();
    assert!(ids(&to).is_empty());
    assert_eq!(
        recorder.events.lines(),
        [
            "changed 42->42", // "before"
            "terminate Transferred 42",
            "changed 42->42", // "in transit", heard on the new branch
            "changed 42->43",
            "restart 2 Killed",
            "terminate Normal 43",
        ]
    );
}

/// The same across runtimes: the target supervisor runs on a second multi-thread runtime.
#[tokio::test]
async fn transfer_to_a_supervisor_on_another_runtime() {
    let other = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("peeper-other")
        .enable_all()
        .build()
        .unwrap();
    let name = unique("far");
    let home = DynamicSupervisor::new();
    let away = DynamicSupervisor::on(other.handle().clone());
    let counter: Client<Counter> = home
        .start_child(Counter::builder(Counter::at(40)).name(&name))
        .await
        .unwrap();
    let thread = || async { counter.call(CounterCall::Thread).await.unwrap() };
    assert_ne!(
        thread().await,
        CounterReply::Text(Some("peeper-other".into()))
    );
    counter.cast(CounterCast::Inc).unwrap();

    peeper::transfer(&name, &home, &away).await.unwrap();
    assert_eq!(
        thread().await,
        CounterReply::Text(Some("peeper-other".into()))
    );
    assert_eq!(counter.add(1).await, Ok(42));
    kill_and_wait(&counter).await;
    assert_eq!(
        thread().await,
        CounterReply::Text(Some("peeper-other".into()))
    );
    assert_eq!(counter.get().await, Ok(42));

    // And back home.
    peeper::transfer(&name, &away, &home).await.unwrap();
    assert_ne!(
        thread().await,
        CounterReply::Text(Some("peeper-other".into()))
    );
    assert_eq!(counter.get().await, Ok(42));
    assert_eq!(ids(&home), [counter.branch().id()]);
    assert!(ids(&away).is_empty());

    counter.stop().await.unwrap();
    other.shutdown_background();
}

/// Peeper: "transfer errors": each leaves the branch running where it was, state intact.
#[tokio::test]
async fn transfer_errors_leave_it_intact() {
    let name = unique("staying");
    let (home, other, target) = (
        DynamicSupervisor::new(),
        DynamicSupervisor::new(),
        DynamicSupervisor::new(),
    );
    let counter = home
        .start_child(Counter::builder(Counter::at(41)).name(&name))
        .await
        .unwrap();
    counter.cast(CounterCast::Inc).unwrap();
    let id = counter.branch().id();

    let intact = || async {
        assert_eq!(counter.get().await, Ok(42));
        assert_eq!(ids(&home), [id]);
        assert!(ids(&target).is_empty());
        assert!(counter.branch().is_running());
        // No handoff happened: still the first worker.
        assert_eq!(counter.branch().incarnation(), 0);
    };

    let unknown = unique("nobody");
    assert_eq!(
        peeper::transfer(&unknown, &home, &target).await,
        Err(TransferError::NotFound { name: unknown })
    );
    intact().await;
    assert_eq!(
        peeper::transfer(&name, &other, &target).await,
        Err(TransferError::WrongSource { name: name.clone() })
    );
    intact().await;
    assert_eq!(
        peeper::transfer(&name, &home, &home).await,
        Err(TransferError::SameSupervisor)
    );
    intact().await;
    target.shutdown().await;
    assert_eq!(
        peeper::transfer(&name, &home, &target).await,
        Err(TransferError::TargetStopped)
    );
    intact().await;
    counter.stop().await.unwrap();
}

/// Two children of different types may share a name; moving "it" is then ambiguous.
#[tokio::test]
async fn transfer_of_a_shared_name_is_ambiguous() {
    let name = unique("twins");
    let (from, to) = (DynamicSupervisor::new(), DynamicSupervisor::new());
    let counter = from
        .start_child(Counter::builder(Counter::at(1)).name(&name))
        .await
        .unwrap();
    let quiet = from
        .start_child(Quiet::builder(Quiet { value: 2 }).name(&name))
        .await
        .unwrap();
    assert_eq!(
        peeper::transfer(&name, &from, &to).await,
        Err(TransferError::Ambiguous { name: name.clone() })
    );
    assert_eq!(counter.get().await, Ok(1));
    assert_eq!(quiet.call(()).await, Ok(2));
    assert_eq!(from.which_children().len(), 2);
    from.shutdown().await;
}

/// A target that shuts down while the branch is being handed over: the branch goes back home,
/// with its state and its queued messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_stopping_during_the_handoff_sends_it_home() {
    let name = unique("homesick");
    let (from, to) = (DynamicSupervisor::new(), DynamicSupervisor::new());
    let gate = Gate::default();
    let counter = from
        .start_child(
            Counter::builder(Counter {
                value: 42,
                gate: gate.clone(),
                ..Counter::default()
            })
            .name(&name),
        )
        .await
        .unwrap();
    let stuck = queue(counter.call(CounterCall::Wait)).await;
    gate.entered().await;
    let moving = queue(peeper::transfer(&name, &from, &to)).await;
    to.shutdown().await;
    counter.cast(CounterCast::Inc).unwrap();
    gate.release();

    assert_eq!(stuck.output().await, Ok(CounterReply::Value(42)));
    assert_eq!(moving.output().await, Err(TransferError::TargetStopped));
    assert_eq!(counter.get().await, Ok(43));
    assert_eq!(ids(&from), [counter.branch().id()]);
    assert!(ids(&to).is_empty());
    assert!(peeper::whereis::<Counter>(&name).is_some());
    counter.stop().await.unwrap();
}

/// A branch that stops before it reaches the handoff: `TransferError::Stopped`, and it is gone.
#[tokio::test]
async fn a_branch_that_stops_first_cannot_move() {
    let name = unique("leaving");
    let (from, to) = (DynamicSupervisor::new(), DynamicSupervisor::new());
    let probe = Probe::default();
    let counter = from
        .start_child(
            Counter::builder(Counter {
                value: 42,
                probe: probe.clone(),
                ..Counter::default()
            })
            .name(&name),
        )
        .await
        .unwrap();
    counter.cast(CounterCast::Stop).unwrap(); // queued before the handoff request
    assert_eq!(
        peeper::transfer(&name, &from, &to).await,
        Err(TransferError::Stopped(Exit::Normal))
    );
    assert_eq!(counter.branch().ended().await, Exit::Normal);
    assert!(ids(&from).is_empty());
    assert!(ids(&to).is_empty());
    assert_eq!(probe.starting_with("terminate"), ["terminate Normal 42"]);
}

/// A stop asked for while the branch is in transit (handed over by its old supervisor, not yet
/// restarted by the new one) is not lost: it stops the branch at its new place.
#[tokio::test(start_paused = true)]
async fn a_stop_during_a_transfer_is_not_lost() {
    let name = unique("interrupted");
    let (from, to) = (DynamicSupervisor::new(), DynamicSupervisor::new());
    let (probe, recorder) = (Probe::default(), Recorder::default());
    let state = Counter {
        value: 42,
        probe: probe.clone(),
        ..Counter::default()
    };
    let counter = from
        .start_child(
            Counter::builder(state)
                .name(&name)
                .listener(recorder.clone()),
        )
        .await
        .unwrap();

    let moving = queue(peeper::transfer(&name, &from, &to)).await;
    recorder.events.logged("terminate Transferred 42").await; // handed over
    let stopping = queue(counter.stop()).await;
    moving.output().await.unwrap();

    // A guard, not a synchronisation: a lost stop fails the test instead of hanging it.
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(60), stopping.output()).await;
    assert_eq!(stopped, Ok(Ok(())));
    assert_eq!(counter.branch().exit(), Some(Exit::Normal));
    assert_eq!(probe.starting_with("terminate"), ["terminate Normal 42"]);
    assert!(ids(&to).is_empty());
    assert!(peeper::whereis::<Counter>(&name).is_none());
}
