//! Release: a durable server that hibernates while nothing outside holds it (no client, no
//! `Branch`, no status waiter) is kept as a record in the registry only, its branch, its mailbox
//! and its parked parts freed. A lookup by name revives it at once, in a new branch with the same
//! id, and the client it returns queues what is sent until the server runs again.
//!
//! The tests run on a paused clock, as the hibernation tests do: the idle period passes instantly
//! once every task waits, and `Branch::hibernated` and `Branch::next_restart` are the events
//! waited on. Whether a server was released (rather than parked in place) shows in what a lookup
//! does: it revives a released server at once, and only looks at a parked one.
#![allow(clippy::unwrap_used)]

mod durable_common;

use std::time::Duration;

use durable_common::{Tally, TallyClient, inits, key, stored_tally, unique};
use peeper::store::{Memory, Storage};
use peeper::{BranchId, CallError, DynamicSupervisor, Entities, Exit, OnStop, StartError};
use serde::{Deserialize, Serialize};

const IDLE: Duration = Duration::from_secs(1);

fn builder(name: &str, storage: &Storage) -> peeper::Builder<Tally, TallyClient> {
    Tally::builder(Tally::default())
        .name(name)
        .store(storage.clone())
        .idle_after(IDLE)
}

/// Starts `name`, adds `count`, waits until it hibernates and lets go of it: released. Returns
/// its branch's id.
async fn released(name: &str, storage: &Storage, count: u64) -> BranchId {
    let tally = builder(name, storage).start().await.unwrap();
    if count > 0 {
        tally.add(count).await.unwrap();
    }
    tally.branch().hibernated().await.unwrap();
    let id = tally.branch().id();
    drop(tally);
    id
}

/// Looks `name` up and waits for the revival the lookup started, which only a released server
/// gets from a lookup. The deadline, on the paused clock, passes only once every task waits:
/// then no revival is under way, and the server was not released.
async fn revived_by_name(name: &str) -> TallyClient {
    let tally = Tally::whereis(name).expect("a released name stays registered");
    assert!(tally.branch().is_hibernating(), "revival under way");
    let revival = tally.branch().next_restart();
    tokio::time::timeout(IDLE / 2, revival)
        .await
        .expect("not released: the lookup did not revive it")
        .unwrap();
    tally
}

/// Lets every task run until all of them wait: on the paused clock, this sleep returns only
/// then. What a lookup of a parked server must not do (revive it) would have happened by then.
async fn settle() {
    tokio::time::sleep(IDLE / 2).await;
}

/// Asserts that `name`, hibernating, is parked in place and not released: a lookup finds the
/// branch asleep and revives nothing.
async fn assert_parked(name: &str, inits_so_far: usize) {
    let looked = Tally::whereis(name).unwrap();
    settle().await;
    assert!(
        looked.branch().is_hibernating(),
        "a lookup alone does not wake it"
    );
    assert_eq!(
        inits(name),
        inits_so_far,
        "parked, not released: nothing revived"
    );
}

#[tokio::test(start_paused = true)]
async fn a_released_server_comes_back_by_name_with_its_state_id_and_counts() {
    let name = unique("released");
    let storage = Storage::new(Memory::new());
    let id = released(&name, &storage, 5).await;
    assert_eq!(stored_tally(&storage, &name).await, Some(5));
    assert_eq!(inits(&name), 1);

    let tally = revived_by_name(&name).await;
    assert_eq!(tally.branch().id(), id, "the same branch id");
    assert_eq!(tally.branch().name(), Some(name.as_str()));
    assert!(!tally.branch().is_hibernating());
    assert_eq!(inits(&name), 2, "one revival");
    assert_eq!(tally.get().await, Ok(5));
    assert_eq!(tally.branch().incarnation(), 1);
    assert_eq!(tally.incarnation().await, Ok(1));
    assert_eq!(tally.branch().restarts(), 0, "a revival is not a restart");
    tally.stop().await.unwrap();
}

/// Released, revived, and released again, round after round: each round is one revival, and the
/// state carries on.
#[tokio::test(start_paused = true)]
async fn a_server_is_released_again_each_time_it_hibernates_unheld() {
    let name = unique("rounds");
    let storage = Storage::new(Memory::new());
    let id = released(&name, &storage, 1).await;
    for round in 1..=3 {
        let tally = revived_by_name(&name).await;
        assert_eq!(tally.branch().id(), id);
        assert_eq!(tally.add(1).await, Ok(1 + round));
        tally.branch().hibernated().await.unwrap();
        drop(tally);
    }
    assert_eq!(inits(&name), 4);
    assert_eq!(stored_tally(&storage, &name).await, Some(4));
    let tally = revived_by_name(&name).await;
    tally.stop().await.unwrap();
}

/// What is sent through the client a lookup returned, before the revival has loaded the state,
/// waits in the new mailbox and is handled in order.
#[tokio::test(start_paused = true)]
async fn messages_sent_to_a_server_being_revived_are_handled_in_order() {
    let name = unique("queued");
    let storage = Storage::new(Memory::new());
    released(&name, &storage, 0).await;

    let tally = Tally::whereis(&name).unwrap();
    assert!(tally.branch().is_hibernating());
    tally.push("cast 1".to_owned()).unwrap();
    tally
        .send(durable_common::Note("info 1".to_owned()))
        .unwrap();
    Tally::whereis(&name)
        .unwrap()
        .push("cast 2, by name".to_owned())
        .unwrap();
    assert_eq!(
        tally.log().await.unwrap(),
        ["cast 1", "note info 1", "cast 2, by name"]
    );
    assert_eq!(inits(&name), 2, "one revival for every lookup and message");
    tally.stop().await.unwrap();
}

/// A restart's count, and the incarnation, are part of what the record keeps.
#[tokio::test(start_paused = true)]
async fn a_released_server_keeps_its_restart_count() {
    let name = unique("restarts");
    let storage = Storage::new(Memory::new());
    let tally = builder(&name, &storage).start().await.unwrap();
    tally.add(2).await.unwrap();
    assert!(matches!(tally.boom().await, Err(CallError::Crashed(_))));
    assert_eq!(tally.get().await, Ok(2), "the crash kept the state");
    assert_eq!(tally.branch().restarts(), 1);
    tally.branch().hibernated().await.unwrap();
    drop(tally);

    let tally = revived_by_name(&name).await;
    assert_eq!(tally.branch().restarts(), 1);
    assert_eq!(tally.branch().incarnation(), 2);
    assert_eq!(tally.get().await, Ok(2));
    tally.stop().await.unwrap();
}

/// A handle kept anywhere (here a `Branch`, not a client) keeps the server parked in place, so
/// that the handle goes on seeing its status; dropping it releases the server.
#[tokio::test(start_paused = true)]
async fn a_kept_branch_handle_keeps_the_server_in_place_until_dropped() {
    let name = unique("kept-handle");
    let storage = Storage::new(Memory::new());
    let tally = builder(&name, &storage).start().await.unwrap();
    let branch = tally.branch().clone();
    drop(tally);
    branch.hibernated().await.unwrap();

    // Parked, not released: a lookup looks, and revives nothing.
    assert_parked(&name, 1).await;
    assert!(branch.is_hibernating());

    drop(branch);
    let tally = revived_by_name(&name).await;
    assert_eq!(inits(&name), 2);
    tally.stop().await.unwrap();
}

/// Stopping a released server goes through the name, as for any server: the stop revives it,
/// `terminate` runs, the stored state is wiped (the default `OnStop`), the name is free.
#[tokio::test(start_paused = true)]
async fn stopping_a_released_server_by_name_ends_it_and_wipes_its_state() {
    let name = unique("stop-released");
    let storage = Storage::new(Memory::new());
    released(&name, &storage, 3).await;

    Tally::whereis(&name).unwrap().stop().await.unwrap();
    assert!(Tally::whereis(&name).is_none());
    assert!(storage.keys(None).await.unwrap().is_empty());
    let again = builder(&name, &storage).start().await.unwrap();
    assert_eq!(again.get().await, Ok(0));
    again.stop().await.unwrap();
}

/// A released name is taken: a second start is refused without claiming the key (in a cluster a
/// claim would fence the server), and the record is left as it was.
#[tokio::test(start_paused = true)]
async fn starting_a_released_name_again_is_refused_and_leaves_it_released() {
    let name = unique("taken");
    let storage = Storage::new(Memory::new());
    released(&name, &storage, 7).await;
    let commits = storage.commits();

    let second = builder(&name, &storage).start().await;
    assert!(
        matches!(second, Err(StartError::NameTaken { .. })),
        "{second:?}"
    );
    assert_eq!(storage.commits(), commits, "no claim, no write");
    assert_eq!(inits(&name), 1, "the refused start revived nothing");

    let tally = revived_by_name(&name).await;
    assert_eq!(tally.get().await, Ok(7));
    tally.stop().await.unwrap();
}

/// An entity looked up by name is revived from its record, not started again from the factory.
#[tokio::test(start_paused = true)]
async fn entities_revive_a_released_entity() {
    let name = unique("entity");
    let storage = Storage::new(Memory::new());
    let entities = Entities::new(storage.clone(), |_: &str| {
        Tally::builder(Tally::default()).idle_after(IDLE)
    });
    let tally: TallyClient = entities.get(&name).await.unwrap();
    tally.add(9).await.unwrap();
    tally.branch().hibernated().await.unwrap();
    let id = tally.branch().id();
    drop(tally);

    let tally: TallyClient = entities.get(&name).await.unwrap();
    assert_eq!(tally.branch().id(), id);
    assert_eq!(tally.get().await, Ok(9));
    assert_eq!(inits(&name), 2);
    tally.stop().await.unwrap();
    assert_eq!(
        stored_tally(&storage, &name).await,
        Some(9),
        "entities keep on stop"
    );
}

/// A released server whose stored state was deleted meanwhile cannot come back: the lookup still
/// returns a client (the revival runs in its own task), and the first call hears why.
#[tokio::test(start_paused = true)]
async fn a_released_server_whose_state_is_gone_fails_typed_on_revival() {
    let name = unique("gone");
    let storage = Storage::new(Memory::new());
    released(&name, &storage, 1).await;
    storage.delete(&key(&name)).await.unwrap();

    let tally = Tally::whereis(&name).unwrap();
    assert!(matches!(
        tally.get().await,
        Err(CallError::Stopped(Exit::ReviveFailed { .. }))
    ));
    assert!(matches!(
        tally.branch().ended().await,
        Exit::ReviveFailed { .. }
    ));
    assert!(Tally::whereis(&name).is_none(), "the name is free");
}

/// `OnStop::Keep` and a release together: the stop through the name keeps the state, and a new
/// start finds it.
#[tokio::test(start_paused = true)]
async fn a_released_server_stopped_with_keep_starts_again_from_its_state() {
    let name = unique("keep-released");
    let storage = Storage::new(Memory::new());
    let start = || builder(&name, &storage).on_stop(OnStop::Keep).start();
    let tally = start().await.unwrap();
    tally.add(4).await.unwrap();
    tally.branch().hibernated().await.unwrap();
    drop(tally);

    Tally::whereis(&name).unwrap().stop().await.unwrap();
    assert_eq!(stored_tally(&storage, &name).await, Some(4));
    let again = start().await.unwrap();
    assert_eq!(again.get().await, Ok(4));
    again.stop().await.unwrap();
}

/// Many lookups at once, on many threads, revive a released server once, round after round.
/// Whether the last handle to go is the test's or the hibernating task's own, and whether a
/// lookup comes before or after the release, each round is one revival.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lookups_on_many_threads_revive_a_released_server_once() {
    const ROUNDS: u64 = 5;
    const CALLERS: u64 = 50;
    let name = unique("crowd-released");
    let storage = Storage::new(Memory::new());
    // A short idle time: this runtime's clock is real, not paused.
    let mut first = Some(
        builder(&name, &storage)
            .idle_after(Duration::from_millis(5))
            .start()
            .await
            .unwrap(),
    );
    let id = first.as_ref().unwrap().branch().id();
    for round in 0..ROUNDS {
        let tally = first
            .take()
            .unwrap_or_else(|| Tally::whereis(&name).unwrap());
        tally.branch().hibernated().await.unwrap();
        let before = inits(&name);
        drop(tally);
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let name = name.clone();
                tokio::spawn(async move { Tally::whereis(&name).unwrap().add(1).await })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap().unwrap();
        }
        assert_eq!(inits(&name), before + 1, "one revival in round {round}");
    }
    let tally = Tally::whereis(&name).unwrap();
    assert_eq!(tally.branch().id(), id);
    assert_eq!(tally.get().await, Ok(ROUNDS * CALLERS));
    tally.stop().await.unwrap();
}

/// A dynamic supervisor's child is its supervisor's to end: it stays parked in place, whoever
/// else lets go of it, and its supervisor can still stop it.
#[tokio::test(start_paused = true)]
async fn a_dynamic_supervisors_child_stays_parked() {
    let name = unique("child");
    let storage = Storage::new(Memory::new());
    let supervisor = DynamicSupervisor::new();
    let tally = supervisor
        .start_child(builder(&name, &storage))
        .await
        .unwrap();
    tally.add(2).await.unwrap();
    tally.branch().hibernated().await.unwrap();
    drop(tally);

    assert_parked(&name, 1).await;
    assert_eq!(supervisor.which_children().len(), 1);
    supervisor.shutdown().await;
    assert!(Tally::whereis(&name).is_none());
    assert_eq!(
        stored_tally(&storage, &name).await,
        Some(2),
        "a shutdown keeps the state"
    );
}

/// A durable server with a kept table.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ledger {
    entries: u64,
}

#[peeper::server]
impl Ledger {
    #[call]
    fn record(&mut self, entry: String, ctx: &mut peeper::Context<Self>) -> u64 {
        let table = ctx.table::<String, u64>("entries").unwrap();
        self.entries += 1;
        table.insert(entry, self.entries);
        self.entries
    }

    #[call]
    fn position(&self, entry: String, ctx: &mut peeper::Context<Self>) -> Option<u64> {
        ctx.table::<String, u64>("entries").unwrap().get(&entry)
    }
}

impl peeper::Persist for Ledger {
    const KIND: &'static str = "ledger";
}

/// Tables live in the branch, not in the store: a server that keeps one stays parked in place,
/// so that its table is still there when it wakes.
#[tokio::test(start_paused = true)]
async fn a_server_with_a_kept_table_stays_parked_and_keeps_it() {
    let name = unique("ledger");
    let storage = Storage::new(Memory::new());
    let ledger = Ledger::builder(Ledger::default())
        .name(&name)
        .store(storage.clone())
        .idle_after(IDLE)
        .start()
        .await
        .unwrap();
    assert_eq!(ledger.record("first".to_owned()).await, Ok(1));
    ledger.branch().hibernated().await.unwrap();
    drop(ledger);

    let looked = Ledger::whereis(&name).unwrap();
    settle().await;
    assert!(
        looked.branch().is_hibernating(),
        "parked: the lookup revived nothing"
    );
    assert_eq!(looked.position("first".to_owned()).await, Ok(Some(1)));
    looked.stop().await.unwrap();
}

/// A released server whose runtime has shut down cannot be revived there: a lookup from another
/// runtime gets a client whose calls hear why, and the name is free again. Before, the revival
/// task was dropped unrun and its callers waited forever.
#[test]
fn a_released_server_whose_runtime_is_gone_ends_with_a_typed_error() {
    let name = unique("orphan");
    let storage = Storage::new(Memory::new());
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    };
    runtime().block_on(released(&name, &storage, 3));

    runtime().block_on(async {
        let tally = Tally::whereis(&name).expect("released, so registered");
        assert!(matches!(
            tally.get().await,
            Err(CallError::Stopped(Exit::ReviveFailed { .. }))
        ));
        assert!(Tally::whereis(&name).is_none(), "the name is free");
        // The state is still in the store: a new start here comes back with it.
        let tally = builder(&name, &storage).start().await.unwrap();
        assert_eq!(tally.get().await, Ok(3));
        tally.stop().await.unwrap();
    });
}
