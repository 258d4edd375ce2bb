//! Loss paths of clusters on PostgreSQL (see `loss_paths.rs` for the ones every store has): a
//! start dropped at any of its awaits, and lost-lease notices dropped under load. Each of these
//! failed before its fix.
//!
//! Without `PEEPER_PG_URL` (set by `scripts/with-postgres`) each test says `skipped` on stderr
//! and passes, except under CI (`CI=true`), where it fails.
#![allow(clippy::unwrap_used)]

mod cluster_common;

use std::task::Poll;
use std::time::Duration;

use cluster_common::{connect, drop_schema, lease, pg_url, schema, sql};
use peeper::Exit;
use peeper::cluster::Node;
use peeper::store::{Key, NodeId, Storage};
use serde::{Deserialize, Serialize};

const LEASE: Duration = Duration::from_secs(30);

#[derive(Clone, Default, Serialize, Deserialize)]
struct Tally {
    count: u64,
}

#[peeper::server]
impl Tally {
    #[call]
    fn add(&mut self, by: u64) -> u64 {
        self.count += by;
        self.count
    }
}

impl peeper::Persist for Tally {
    const KIND: &'static str = "tally";
}

/// Loss path 3: a start dropped at any of its awaits (the claim's round trip, the load, the
/// first write) gives up what it claimed. Before, the key stayed claimed and renewed for the
/// life of the process, and every later start of that name here failed with `OwnedElsewhere`
/// naming this very node.
#[tokio::test(flavor = "current_thread")]
async fn a_start_dropped_at_any_await_leaves_nothing_claimed() {
    let Some(url) = pg_url() else { return };
    let schema = schema("dropped_start");
    let postgres = connect(&url, &schema, "a", LEASE).await;
    let storage = Storage::new(postgres.clone());
    let key = Key::new("tally", "dropped");
    // Dropped after 1, 2, 3... polls (yielding between them, so the store's own tasks and the
    // database get to answer): every await of the start is a place it is dropped at in some
    // round, until the start completes within its polls.
    let mut completed = false;
    let rounds = (1..100).chain((100..5_000).step_by(25));
    for polls in rounds {
        let mut start = Box::pin(
            Tally::builder(Tally::default())
                .name("dropped")
                .store(storage.clone())
                .start(),
        );
        let mut outcome = None;
        for _ in 0..polls {
            if let Poll::Ready(started) = futures::poll!(start.as_mut()) {
                outcome = Some(started);
                break;
            }
            tokio::task::yield_now().await;
        }
        drop(start);
        if let Some(started) = outcome {
            let tally = started.unwrap();
            tally.stop().await.unwrap();
            completed = true;
            break;
        }
        assert!(
            !postgres.owned().contains(&key),
            "dropped after {polls} polls, the start left its claim held"
        );
    }
    assert!(completed, "no start completed within 5,000 polls");
    // And a start right after all those dropped ones goes through.
    let tally = Tally::builder(Tally::default())
        .name("dropped")
        .store(storage.clone())
        .start()
        .await
        .unwrap();
    assert_eq!(tally.add(1).await, Ok(1));
    tally.stop().await.unwrap();
    drop_schema(&url, &schema).await;
}

/// Loss path 5: a mass loss of leases sends more lost-lease notices than the channel holds, and
/// the task that fences the servers lags. It used to skip what it missed, so those servers kept
/// running (and answering reads) on a node that no longer owned them. On lag, every lease is
/// checked again.
#[tokio::test(flavor = "current_thread")]
async fn a_mass_lease_loss_fences_every_server_even_when_notices_are_dropped() {
    const SERVERS: usize = 1_200; // more than the 1,024 notices the channel holds
    let Some(url) = pg_url() else { return };
    let schema = schema("mass_loss");
    let postgres = connect(&url, &schema, "a", LEASE).await;
    let node = Node::builder(postgres.clone())
        .host(|_: &str| Tally::builder(Tally::default()))
        .start()
        .await
        .unwrap();
    let mut servers = Vec::with_capacity(SERVERS);
    for i in 0..SERVERS {
        let tally = node
            .start(Tally::builder(Tally::default()).name(format!("t{i}")))
            .await
            .unwrap();
        servers.push(tally);
    }
    assert_eq!(postgres.owned().len(), SERVERS);

    // Another node takes every lease at once, as after a long pause of this one.
    sql(&url)
        .await
        .execute(
            &format!("UPDATE {schema}.peeper_leases SET owner = 'b', session = 'b-session'"),
            &[],
        )
        .await
        .unwrap();
    // One renewal finds them all lost: its notices go out before the fencing task runs (one
    // thread), so the channel overflows.
    postgres.renew().await.unwrap();

    let ended = futures::future::join_all(servers.iter().map(|tally| tally.branch().ended()));
    let Ok(exits) = tokio::time::timeout(Duration::from_secs(60), ended).await else {
        let running = servers
            .iter()
            .filter(|tally| tally.branch().is_running())
            .count();
        panic!("{running} servers still run on a node that lost their leases");
    };
    let fenced = Exit::Fenced {
        owner: Some(NodeId::new("b")),
    };
    assert!(exits.iter().all(|exit| *exit == fenced), "{exits:?}");
    drop_schema(&url, &schema).await;
}

/// A durable server whose `init` never completes for the first `hang` starts.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Sluggish {
    #[serde(skip)]
    starts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    hang: usize,
}

#[peeper::server]
impl Sluggish {
    #[init]
    async fn init(&mut self) {
        if self
            .starts
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            < self.hang
        {
            std::future::pending::<()>().await;
        }
    }

    #[call]
    fn ping(&self) {}
}

impl peeper::Persist for Sluggish {
    const KIND: &'static str = "sluggish";
}

/// OTP's `loop_start_fail`, on a cluster: a start whose `init` runs past `start_timeout` leaves
/// no lease behind (released, not just left to expire), five times in a row, then a clean start.
#[tokio::test(flavor = "current_thread")]
async fn timed_out_starts_leave_no_lease() {
    // Long enough for the claim and the load, so that every round times out in `init`.
    const TIMEOUT: Duration = Duration::from_secs(1);
    let Some(url) = pg_url() else { return };
    let schema = schema("timed_out_start");
    let postgres = connect(&url, &schema, "a", LEASE).await;
    let storage = Storage::new(postgres.clone());
    let key = Key::new("sluggish", "slow");
    let client = sql(&url).await;
    let starts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sluggish = || Sluggish {
        starts: std::sync::Arc::clone(&starts),
        hang: 5,
    };
    for round in 1..=5 {
        let started = Sluggish::builder(sluggish())
            .name("slow")
            .store(storage.clone())
            .start_timeout(TIMEOUT)
            .start()
            .await;
        assert_eq!(
            started.map(|_| ()),
            Err(peeper::StartError::Timeout(TIMEOUT)),
            "round {round}"
        );
        assert!(
            !postgres.owned().contains(&key),
            "round {round}: claim held"
        );
        let row = lease(&client, &schema, &key).await;
        assert!(
            row.as_ref().is_none_or(|(owner, _, _)| owner.is_none()),
            "round {round}: the lease is released, not left to expire: {row:?}"
        );
    }
    // Time enough for a claim, a load, `init` and the first write on a loaded machine.
    let server = Sluggish::builder(sluggish())
        .name("slow")
        .store(storage)
        .start_timeout(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    server.ping().await.unwrap();
    server.stop().await.unwrap();
    drop_schema(&url, &schema).await;
}
