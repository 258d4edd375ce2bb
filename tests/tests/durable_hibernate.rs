//! Hibernation: a durable server idle for its `idle_after` lets its tasks go and keeps its state
//! in the store only; the next message through any handle revives it, exactly once however many
//! arrive together, and nothing sent meanwhile is lost.
//!
//! Most tests run on a paused clock (`start_paused`): the idle period then passes instantly and
//! deterministically once every task is waiting, and `Branch::hibernated` is the event to wait
//! on. No test sleeps to let something happen.
#![allow(clippy::unwrap_used)]

mod durable_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use durable_common::{DropHook, Note, Tally, TallyClient, inits, key, stored_tally, unique};
use peeper::store::{Memory, Storage, StoreError};
use peeper::{CallError, DynamicSupervisor, Exit, OnStop, WritePolicy};

const IDLE: Duration = Duration::from_secs(1);

async fn sleepy(name: &str, storage: &Storage) -> TallyClient {
    Tally::builder(Tally::default())
        .name(name)
        .store(storage.clone())
        .idle_after(IDLE)
        .start()
        .await
        .unwrap()
}

/// Waits until the server hibernates and checks what that means: no tasks, state in the store.
async fn asleep(tally: &TallyClient, storage: &Storage, count: u64) {
    tally.branch().hibernated().await.unwrap();
    assert!(tally.branch().is_hibernating());
    assert!(tally.branch().is_running(), "hibernating is not ending");
    assert_eq!(tally.branch().task_id(), None);
    let name = tally.branch().name().unwrap();
    assert_eq!(stored_tally(storage, name).await, Some(count));
}

#[tokio::test(start_paused = true)]
async fn idle_server_hibernates_and_comes_back_with_its_state() {
    let name = unique("idle");
    let storage = Storage::new(Memory::new());
    let tally = sleepy(&name, &storage).await;
    assert_eq!(tally.add(3).await, Ok(3));
    asleep(&tally, &storage, 3).await;
    assert_eq!(inits(&name), 1);

    assert_eq!(tally.get().await, Ok(3));
    assert!(!tally.branch().is_hibernating());
    assert_eq!(inits(&name), 2);
    assert_eq!(tally.branch().incarnation(), 1);
    assert_eq!(tally.branch().restarts(), 0, "a revival is not a restart");
    assert_eq!(tally.incarnation().await, Ok(1));
    tally.stop().await.unwrap();
}

/// A revival that changes nothing writes nothing: the state just read from the store is still
/// there once `init` (which takes `&mut self` here) has run. A read-only call after a revival
/// costs no commit; a change does, and the next revival reads it back.
#[tokio::test(start_paused = true)]
async fn a_revival_that_changes_nothing_writes_nothing() {
    let name = unique("read-only-revival");
    let storage = Storage::new(Memory::new());
    let tally = sleepy(&name, &storage).await;
    assert_eq!(tally.add(3).await, Ok(3));
    asleep(&tally, &storage, 3).await;
    let commits = storage.commits();
    assert_eq!(tally.get().await, Ok(3));
    assert_eq!(inits(&name), 2, "revived");
    assert_eq!(
        storage.commits(),
        commits,
        "a read-only revival commits nothing"
    );
    asleep(&tally, &storage, 3).await;
    assert_eq!(storage.commits(), commits);
    assert_eq!(tally.add(1).await, Ok(4));
    assert_eq!(
        storage.commits(),
        commits + 1,
        "one commit: the change, none for the revival"
    );
    asleep(&tally, &storage, 4).await;
    tally.stop().await.unwrap();
}

/// The scenario: 100 callers, through clones of the client and through the name, reach
/// a hibernating server at once. One revival (one more incarnation, one more `init`), and every
/// caller answered from the right state.
#[tokio::test(start_paused = true)]
async fn revival_under_100_concurrent_callers_happens_once_and_answers_all() {
    let name = unique("crowd");
    let storage = Storage::new(Memory::new());
    let tally = sleepy(&name, &storage).await;
    assert_eq!(tally.add(10).await, Ok(10));
    asleep(&tally, &storage, 10).await;
    assert_eq!((inits(&name), tally.branch().incarnation()), (1, 0));

    let revived = tally.branch().next_restart();
    // Spawned together: the first caller to send wakes the server; on this one-thread runtime
    // the other 99 send before the revival task even runs, so they all race the wake-up.
    let callers: Vec<_> = (0..100)
        .map(|i| {
            let (tally, name) = (tally.clone(), name.clone());
            tokio::spawn(async move {
                if i % 2 == 0 {
                    tally.add(1).await
                } else {
                    let by_name = Tally::whereis(&name).expect("a hibernating name stays");
                    by_name.add(1).await
                }
            })
        })
        .collect();
    let mut answers = Vec::new();
    for caller in callers {
        answers.push(caller.await.unwrap().unwrap());
    }
    answers.sort_unstable();
    assert_eq!(answers, (11..=110).collect::<Vec<_>>());

    assert_eq!(revived.await, Ok(1));
    assert_eq!(inits(&name), 2, "exactly one revival");
    assert_eq!(tally.branch().incarnation(), 1);
    assert_eq!(tally.branch().restarts(), 0);
    assert_eq!(stored_tally(&storage, &name).await, Some(110));
    tally.stop().await.unwrap();
}

/// The same on a multi-thread runtime, round after round: the callers really run in parallel with
/// the wake-up and with each other, and every round is one revival.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revival_races_on_many_threads_revive_once_per_round() {
    const ROUNDS: u64 = 10;
    const CALLERS: usize = 100;
    let name = unique("parallel");
    let storage = Storage::new(Memory::new());
    let tally = Tally::builder(Tally::default())
        .name(&name)
        .store(storage.clone())
        .idle_after(Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    let mut count = 0;
    for round in 1..=ROUNDS {
        // A generous bound, only so that a lost wake-up fails instead of hanging.
        tokio::time::timeout(Duration::from_secs(30), async {
            tally.branch().hibernated().await.unwrap();
            let revived = tally.branch().next_restart();
            let barrier = Arc::new(tokio::sync::Barrier::new(CALLERS));
            let callers: Vec<_> = (0..CALLERS)
                .map(|i| {
                    let (tally, name, barrier) = (tally.clone(), name.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        if i % 2 == 0 {
                            tally.add(1).await
                        } else {
                            Tally::whereis(&name).unwrap().add(1).await
                        }
                    })
                })
                .collect();
            let mut answers = Vec::new();
            for caller in callers {
                answers.push(caller.await.unwrap().unwrap());
            }
            answers.sort_unstable();
            assert_eq!(
                answers,
                (count + 1..=count + CALLERS as u64).collect::<Vec<_>>()
            );
            count += CALLERS as u64;
            assert_eq!(revived.await, Ok(round));
            assert_eq!(
                inits(&name),
                round as usize + 1,
                "one revival in round {round}"
            );
        })
        .await
        .unwrap_or_else(|_| panic!("round {round} hung: {:?}", tally.branch()));
    }
    assert_eq!(tally.branch().restarts(), 0);
    tally.stop().await.unwrap();
    assert!(storage.keys(None).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_cast_alone_revives_a_hibernating_server() {
    let name = unique("cast-wakes");
    let storage = Storage::new(Memory::new());
    let tally = sleepy(&name, &storage).await;
    asleep(&tally, &storage, 0).await;

    let revived = tally.branch().next_restart();
    tally.push("wake up".to_owned()).unwrap();
    assert_eq!(revived.await, Ok(1));
    assert!(!tally.branch().is_hibernating());
    // It handled the cast (and stored it) before anyone asked.
    tally.branch().hibernated().await.unwrap();
    let bytes = storage.read(&key(&name)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("wake up"));
    assert_eq!(tally.log().await.unwrap(), ["wake up"]);
    tally.stop().await.unwrap();
}

/// Casts, infos, casts by name and delayed casts sent to a hibernating server are all handled,
/// in the order they were sent.
#[tokio::test(start_paused = true)]
async fn messages_sent_during_hibernation_are_all_handled_in_order() {
    let name = unique("mail");
    let storage = Storage::new(Memory::new());
    let tally = sleepy(&name, &storage).await;
    // Scheduled while awake, delivered long after it fell asleep.
    tally
        .after(Duration::from_secs(30))
        .push("delayed, sent awake".to_owned())
        .unwrap();
    asleep(&tally, &storage, 0).await;

    let revived = tally.branch().next_restart();
    tally.push("cast 1".to_owned()).unwrap();
    tally.send(Note("info 1".to_owned())).unwrap();
    Tally::whereis(&name)
        .unwrap()
        .push("cast 2, by name".to_owned())
        .unwrap();
    tally.clone().send(Note("info 2".to_owned())).unwrap();
    tally.push("cast 3".to_owned()).unwrap();
    assert_eq!(
        tally.log().await.unwrap(),
        [
            "cast 1",
            "note info 1",
            "cast 2, by name",
            "note info 2",
            "cast 3"
        ]
    );
    assert_eq!(revived.await, Ok(1));

    // Asleep again; a delayed cast sent now, and the one sent while awake, each wake it.
    tally.branch().hibernated().await.unwrap();
    tally
        .after(Duration::from_secs(5))
        .push("delayed, sent asleep".to_owned())
        .unwrap();
    let revived = tally.branch().next_restart();
    assert_eq!(revived.await, Ok(2));
    tally.branch().hibernated().await.unwrap();
    let revived = tally.branch().next_restart();
    assert_eq!(revived.await, Ok(3));
    assert_eq!(
        tally.log().await.unwrap()[5..],
        ["delayed, sent asleep", "delayed, sent awake"]
    );
    assert_eq!(inits(&name), 4);
    tally.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stopping_a_hibernating_server_wipes_its_state() {
    let name = unique("stop-asleep");
    let storage = Storage::new(Memory::new());
    let tally = sleepy(&name, &storage).await;
    tally.add(4).await.unwrap();
    asleep(&tally, &storage, 4).await;

    tally.stop().await.unwrap();
    assert_eq!(tally.branch().exit(), Some(Exit::Normal));
    assert!(!tally.branch().is_hibernating());
    assert!(storage.keys(None).await.unwrap().is_empty());
    assert!(Tally::whereis(&name).is_none());
    assert_eq!(
        tally.get().await,
        Err(CallError::Stopped(Exit::Normal)),
        "stopped, not revived again"
    );
    let again = sleepy(&name, &storage).await;
    assert_eq!(again.get().await, Ok(0));
    again.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stopping_a_hibernating_server_with_keep_keeps_its_state() {
    let name = unique("stop-keep");
    let storage = Storage::new(Memory::new());
    let start = || {
        Tally::builder(Tally::default())
            .name(&name)
            .store(storage.clone())
            .idle_after(IDLE)
            .on_stop(OnStop::Keep)
            .start()
    };
    let tally = start().await.unwrap();
    tally.add(4).await.unwrap();
    asleep(&tally, &storage, 4).await;
    tally.stop().await.unwrap();
    assert_eq!(stored_tally(&storage, &name).await, Some(4));
    let again = start().await.unwrap();
    assert_eq!(again.get().await, Ok(4));
    again.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn killing_a_hibernating_server_revives_and_restarts_it() {
    let name = unique("kill-asleep");
    let storage = Storage::new(Memory::new());
    let tally = sleepy(&name, &storage).await;
    tally.add(6).await.unwrap();
    asleep(&tally, &storage, 6).await;

    let restarted = tally.branch().next_restart();
    tally.branch().kill_worker().unwrap();
    assert!(restarted.await.unwrap() >= 1);
    assert!(!tally.branch().is_hibernating());
    assert_eq!(tally.get().await, Ok(6));
    tally.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn transferring_a_hibernating_server_moves_it_with_its_state() {
    let name = unique("move-asleep");
    let storage = Storage::new(Memory::new());
    let (from, to) = (DynamicSupervisor::new(), DynamicSupervisor::new());
    let tally = from
        .start_child(
            Tally::builder(Tally::default())
                .name(&name)
                .store(storage.clone())
                .idle_after(IDLE),
        )
        .await
        .unwrap();
    tally.add(8).await.unwrap();
    asleep(&tally, &storage, 8).await;

    peeper::transfer(&name, &from, &to).await.unwrap();
    assert!(from.which_children().is_empty());
    assert_eq!(to.which_children().len(), 1);
    assert_eq!(tally.get().await, Ok(8));
    assert_eq!(Tally::whereis(&name).unwrap().get().await, Ok(8));

    // It hibernates under its new supervisor too, and a shutdown keeps its state.
    asleep(&tally, &storage, 8).await;
    to.shutdown().await;
    assert_eq!(tally.branch().exit(), Some(Exit::Shutdown));
    assert_eq!(stored_tally(&storage, &name).await, Some(8));
    let again = sleepy(&name, &storage).await;
    assert_eq!(again.get().await, Ok(8));
    again.stop().await.unwrap();
}

/// A control request (here a kill) that arrives after the worker went idle but before the branch
/// parked itself must wake it, as a message does: the branch checks its control channel too
/// before going to sleep. The state's drop hook fires at exactly that point: the worker and the
/// keeper have ended, and the branch is about to decide whether to sleep.
#[tokio::test(start_paused = true)]
async fn a_kill_sent_while_falling_asleep_is_not_lost() {
    let name = unique("kill-window");
    let storage = Storage::new(Memory::new());
    let hook = DropHook::default();
    let tally = Tally::builder(Tally {
        hook: hook.clone(),
        ..Tally::default()
    })
    .name(&name)
    .store(storage.clone())
    .idle_after(IDLE)
    .start()
    .await
    .unwrap();
    tally.add(2).await.unwrap();

    let fired = Arc::new(AtomicBool::new(false));
    let (branch, flag) = (tally.branch().clone(), Arc::clone(&fired));
    // Armed after the last change: no copy of the state is dropped until the branch lets go of
    // it on its way to sleep.
    hook.arm(move || {
        flag.store(true, Ordering::SeqCst);
        branch.kill_worker().unwrap();
    });
    let restarted = tally.branch().next_restart();
    // Nothing else will wake it: if the kill were lost, an hour of virtual time would pass.
    let restarted = tokio::time::timeout(Duration::from_secs(3600), restarted).await;
    assert!(fired.load(Ordering::SeqCst), "the hook fired");
    assert!(
        matches!(restarted, Ok(Ok(incarnation)) if incarnation >= 1),
        "the kill was lost: {restarted:?}, {:?}",
        tally.branch()
    );
    assert_eq!(tally.get().await, Ok(2));
    tally.stop().await.unwrap();
}

/// The same window, with a cast: the branch sees it in its mailbox and stays awake.
#[tokio::test(start_paused = true)]
async fn a_cast_sent_while_falling_asleep_is_handled() {
    let name = unique("cast-window");
    let storage = Storage::new(Memory::new());
    let hook = DropHook::default();
    let tally = Tally::builder(Tally {
        hook: hook.clone(),
        ..Tally::default()
    })
    .name(&name)
    .store(storage.clone())
    .idle_after(IDLE)
    .start()
    .await
    .unwrap();
    tally.push("before".to_owned()).unwrap();
    assert_eq!(tally.log().await.unwrap(), ["before"]);

    let client = tally.clone();
    hook.arm(move || client.push("in the window".to_owned()).unwrap());
    let revived = tally.branch().next_restart();
    let revived = tokio::time::timeout(Duration::from_secs(3600), revived).await;
    assert_eq!(revived, Ok(Ok(1)));
    assert_eq!(tally.log().await.unwrap(), ["before", "in the window"]);
    tally.stop().await.unwrap();
}

/// A batched server writes its pending change before it hibernates: nothing is lost by sleeping.
#[tokio::test(start_paused = true)]
async fn a_batched_server_flushes_before_hibernating() {
    let name = unique("batched-sleep");
    let storage = Storage::new(Memory::new());
    let tally = Tally::builder(Tally::default())
        .name(&name)
        .store(storage.clone())
        .write_policy(WritePolicy::Batched(Duration::from_secs(3600)))
        .idle_after(IDLE)
        .start()
        .await
        .unwrap();
    assert_eq!(tally.add(9).await, Ok(9));
    assert_eq!(stored_tally(&storage, &name).await, Some(0), "not yet");
    asleep(&tally, &storage, 9).await;
    assert_eq!(tally.get().await, Ok(9));
    tally.stop().await.unwrap();
}

/// A write that failed leaves the store behind the state in memory. Hibernating drops the state
/// in memory, so the branch must first bring the store up to date (or stay awake): it must not
/// come back with the older stored state.
#[tokio::test(start_paused = true)]
async fn a_failed_write_is_made_good_before_hibernating() {
    let name = unique("behind");
    let memory = Memory::new();
    let storage = Storage::new(memory.clone());
    let tally = sleepy(&name, &storage).await;
    assert_eq!(tally.add(1).await, Ok(1));

    memory.fail_writes(Some("disk full"));
    assert!(matches!(
        tally.add(10).await,
        Err(CallError::Store(StoreError::Backend { .. }))
    ));
    tally
        .push("cast while the disk is full".to_owned())
        .unwrap();
    assert_eq!(tally.get().await, Ok(11), "memory is ahead of the store");
    assert_eq!(stored_tally(&storage, &name).await, Some(1));

    // While the store keeps failing, the server stays awake rather than lose its state.
    tokio::time::sleep(IDLE * 5).await; // paused clock: five idle periods pass at once
    assert!(!tally.branch().is_hibernating());
    assert_eq!(stored_tally(&storage, &name).await, Some(1));

    memory.fail_writes(None);
    asleep(&tally, &storage, 11).await;
    assert_eq!(tally.get().await, Ok(11));
    assert_eq!(tally.log().await.unwrap(), ["cast while the disk is full"]);
    tally.stop().await.unwrap();
}

/// A hibernating server whose stored state turned corrupt cannot come back: the waiting callers
/// hear why, the branch ends, and the bytes are left for an operator to look at.
#[tokio::test(start_paused = true)]
async fn revival_from_corrupt_data_fails_typed_and_leaves_the_bytes() {
    let name = unique("rotten");
    let memory = Memory::new();
    let storage = Storage::new(memory.clone());
    let tally = sleepy(&name, &storage).await;
    tally.add(1).await.unwrap();
    asleep(&tally, &storage, 1).await;

    memory.put_raw(key(&name), b"PEEP rotten".to_vec());
    match tally.get().await {
        Err(CallError::Stopped(Exit::ReviveFailed { message })) => {
            assert!(message.contains("corrupt"), "{message}");
        }
        other => panic!("expected ReviveFailed, got {other:?}"),
    }
    assert!(matches!(
        tally.branch().ended().await,
        Exit::ReviveFailed { .. }
    ));
    assert!(!tally.branch().is_hibernating());
    assert!(Tally::whereis(&name).is_none());
    assert_eq!(
        storage.read(&key(&name)).await.unwrap().as_deref(),
        Some(&b"PEEP rotten"[..])
    );
    assert!(tally.push("late".to_owned()).is_err());
}

/// Deleting a hibernating server's stored state (an operator's decision) means it cannot come
/// back: the next caller hears so.
#[tokio::test(start_paused = true)]
async fn revival_after_the_state_was_deleted_fails_typed() {
    let name = unique("deleted");
    let storage = Storage::new(Memory::new());
    let tally = sleepy(&name, &storage).await;
    asleep(&tally, &storage, 0).await;
    storage.delete(&key(&name)).await.unwrap();
    assert!(matches!(
        tally.get().await,
        Err(CallError::Stopped(Exit::ReviveFailed { .. }))
    ));
    assert!(Tally::whereis(&name).is_none());
}
