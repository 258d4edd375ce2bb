//! Clusters of node processes (`tests/bin/cluster_node.rs`) on one PostgreSQL, on loopback:
//! an owner SIGKILLed mid-stream, a stale owner paused past its lease, two nodes racing for one
//! name, a rolling restart under traffic, a transfer to a named node.
//!
//! Nothing sleeps to synchronise: the tests wait for the lines nodes print (acks, events), for
//! processes to exit, and read the lease rows. Without `PEEPER_PG_URL` (set by
//! `scripts/with-postgres`) each test says `skipped` on stderr and passes, except under CI
//! (`CI=true`), where it fails.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod cluster_common;

use std::collections::{BTreeMap, BTreeSet};

use cluster_common::{
    Cluster, EOF, NodeOptions, connect, drop_schema, lease, pg_url, schema, sql, word,
};
use peeper::store::{Key, Memory, Storage, Store};
use rand::RngExt;
use serde::{Deserialize, Serialize};

/// The nodes' server, as this process decodes it: same kind, same fields.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Counter {
    count: u64,
}

#[peeper::server]
impl Counter {
    #[call]
    fn get(&self) -> u64 {
        self.count
    }
}

impl peeper::Persist for Counter {
    const KIND: &'static str = "counter";
}

/// The count stored for `name`, read from PostgreSQL and decoded as peeper does (a server started
/// on a copy of the bytes).
async fn stored(url: &str, schema: &str, name: &str) -> u64 {
    let observer = connect(url, schema, "observer", std::time::Duration::from_secs(30)).await;
    let bytes = observer
        .read(&Key::new("counter", name))
        .await
        .unwrap()
        .expect("a stored state");
    let memory = Memory::new();
    let copy = format!("decoded-{name}-{}", rand::rng().random_range(0..u64::MAX));
    memory.put_raw(Key::new("counter", &copy), bytes);
    let counter = Counter::builder(Counter::default())
        .name(&copy)
        .store(Storage::new(memory))
        .start()
        .await
        .unwrap();
    let count = counter.get().await.unwrap();
    counter.stop().await.unwrap();
    count
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The node-loss test, five rounds: the owner of a counter pumping `add(1)` is SIGKILLed
/// after a random number of acknowledgements; one of the two other nodes (adopting orphans)
/// revives it once the lease expires, with exactly the last acknowledged count, or one more (the
/// call in flight when the kill landed may have committed without its reply being printed). The
/// killed node comes back under the same id, and the new owner pumps the next round.
#[test]
fn an_owner_killed_mid_stream_is_adopted_with_every_acknowledged_write() {
    let Some(url) = pg_url() else { return };
    let schema = schema("kill");
    let mut cluster = Cluster::new(&url, &schema);
    let options = NodeOptions {
        adopt: true,
        lease_ms: 1_000,
        ..NodeOptions::default()
    };
    for id in ["a", "b", "c"] {
        cluster.spawn(id, &options);
    }
    cluster.send("a", "start c1");
    cluster.expect(|node, line| node == "a" && line == "started c1 0");

    let mut rng = rand::rng();
    let (mut owner, mut count) = ("a".to_owned(), 0);
    let mut in_flight_kept = 0;
    for round in 0..5 {
        cluster.send(&owner, "pump c1 2");
        let mut acked = count;
        for _ in 0..rng.random_range(0..=20) {
            let (_, line) =
                cluster.expect(|node, line| node == owner && line.starts_with("ack c1 "));
            let ack: u64 = word(&line, 2).parse().unwrap();
            assert_eq!(ack, acked + 1, "round {round}");
            acked = ack;
        }
        cluster.node(&owner).kill();
        cluster.expect(|node, line| node == owner && line == EOF);
        // Whatever it printed before dying was acknowledged too.
        let printed = cluster.acks("c1");
        acked = printed
            .iter()
            .filter(|(node, _)| *node == owner)
            .map(|(_, ack)| *ack)
            .max()
            .unwrap_or(count)
            .max(acked);

        let dead = owner.clone();
        let (adopter, line) = cluster.expect(|node, line| {
            node != dead && line.starts_with("adopted c1 ") && word(line, 2) == dead
        });
        let revived: u64 = word(&line, 3).parse().unwrap();
        assert!(
            revived == acked || revived == acked + 1,
            "round {round}: revived with {revived}, last acknowledged {acked}"
        );
        in_flight_kept += u64::from(revived == acked + 1);
        // The killed node comes back under its id (it may adopt in later rounds).
        cluster.spawn(&dead, &options);
        owner = adopter;
        count = revived;
    }
    let rt = runtime();
    assert_eq!(rt.block_on(stored(&url, &schema, "c1")), count);
    println!(
        "5 SIGKILLed owners, every acknowledged write adopted; {in_flight_kept} rounds also kept the call in flight"
    );
    drop(cluster);
    rt.block_on(drop_schema(&url, &schema));
}

/// Retried calls across nodes (`idempotent(key)` on PostgreSQL): a keyed call is answered on
/// `a`; `a` hands the counter to `b` (a transfer: a graceful handoff), where a retry with the key
/// gets the first reply without adding again; then `b` is SIGKILLed after another keyed call,
/// another node adopts the counter once the lease expires, and the retry there gets that call's
/// reply too; last the adopter shuts down (a rolling deploy's handoff) and the taker answers both
/// retries again.
/// Each call was applied once: the record travelled with the state, in the same commit.
#[test]
fn keyed_calls_retried_after_a_handoff_and_a_node_loss_are_applied_once() {
    let Some(url) = pg_url() else { return };
    let schema = schema("keyed");
    let mut cluster = Cluster::new(&url, &schema);
    let options = NodeOptions {
        adopt: true,
        take_over: true,
        lease_ms: 1_000,
        ..NodeOptions::default()
    };
    for id in ["a", "b", "c"] {
        cluster.spawn(id, &options);
    }
    cluster.send("a", "start k1");
    cluster.expect(|node, line| node == "a" && line == "started k1 0");
    cluster.send("a", "keyed k1 first 5");
    cluster.expect(|node, line| node == "a" && line == "keyed k1 first 5");

    cluster.send("a", "transfer k1 b");
    cluster.expect(|node, line| node == "a" && line == "transferred k1");
    cluster.expect(|node, line| node == "b" && line == "took-over k1 5");
    cluster.send("b", "keyed k1 first 5");
    cluster.expect(|node, line| node == "b" && line == "keyed k1 first 5");
    cluster.send("b", "keyed k1 first 6");
    let (_, reused) = cluster.expect(|node, line| node == "b" && line.starts_with("err k1 "));
    assert!(reused.contains("was used before"), "{reused}");

    cluster.send("b", "keyed k1 second 2");
    cluster.expect(|node, line| node == "b" && line == "keyed k1 second 7");
    cluster.node("b").kill();
    cluster.expect(|node, line| node == "b" && line == EOF);
    let (adopter, _) = cluster.expect(|_, line| line == "adopted k1 b 7");
    cluster.send(&adopter, "keyed k1 second 2");
    cluster.expect(|node, line| node == adopter && line == "keyed k1 second 7");
    cluster.send(&adopter, "keyed k1 first 5");
    cluster.expect(|node, line| node == adopter && line == "keyed k1 first 5");
    cluster.send(&adopter, "get k1");
    cluster.expect(|node, line| node == adopter && line == "count k1 7");

    // A rolling deploy: the owner shuts down and hands everything off; the node that takes the
    // counter over answers both retries from the records.
    cluster.send(&adopter, "shutdown");
    cluster.expect(|node, line| node == adopter && line == "handed-off 1");
    let (taker, _) = cluster.expect(|node, line| node != adopter && line == "took-over k1 7");
    cluster.send(&taker, "keyed k1 second 2");
    cluster.expect(|node, line| node == taker && line == "keyed k1 second 7");
    cluster.send(&taker, "keyed k1 first 5");
    cluster.expect(|node, line| node == taker && line == "keyed k1 first 5");
    drop(cluster);
    runtime().block_on(drop_schema(&url, &schema));
}

/// Fencing across processes: the owner is paused with SIGSTOP while it pumps; its lease expires
/// and another node adopts the counter and writes to it; resumed with SIGCONT, the old owner's
/// next write is refused (naming the new owner) and its server ends. The stored state is the new
/// owner's, untouched.
#[test]
fn a_paused_owner_whose_lease_expired_cannot_overwrite_the_new_owners_state() {
    let Some(url) = pg_url() else { return };
    let schema = schema("pause");
    let rt = runtime();
    let client = rt.block_on(sql(&url));
    let mut cluster = Cluster::new(&url, &schema);
    cluster.spawn(
        "a",
        &NodeOptions {
            lease_ms: 1_000,
            ..NodeOptions::default()
        },
    );
    cluster.spawn(
        "b",
        &NodeOptions {
            adopt: true,
            lease_ms: 1_000,
            ..NodeOptions::default()
        },
    );
    cluster.send("a", "start s1");
    cluster.expect(|node, line| node == "a" && line == "started s1 0");
    let key = Key::new("counter", "s1");
    let (_, epoch_a, _) = rt.block_on(lease(&client, &schema, &key)).unwrap();
    cluster.send("a", "pump s1 5");
    for _ in 0..5 {
        cluster.expect(|node, line| node == "a" && line.starts_with("ack s1 "));
    }

    cluster.node("a").signal("STOP");
    let (_, adopted) =
        cluster.expect(|node, line| node == "b" && line.starts_with("adopted s1 a "));
    let revived: u64 = word(&adopted, 3).parse().unwrap();
    let (owner, epoch_b, live) = rt.block_on(lease(&client, &schema, &key)).unwrap();
    assert_eq!((owner.as_deref(), live), (Some("b"), true));
    assert!(epoch_b > epoch_a);
    cluster.send("b", "add s1 1000");
    let expected = revived + 1000;
    cluster.expect(|node, line| node == "b" && line == format!("added s1 {expected}"));

    cluster.node("a").signal("CONT");
    let (_, gone) = cluster.expect(|node, line| node == "a" && line.starts_with("gone s1 "));
    assert!(gone.contains("node `b`"), "{gone}");
    // The resumed owner wrote nothing: the state is the one `b` left, and `b` still owns it.
    assert_eq!(rt.block_on(stored(&url, &schema, "s1")), expected);
    cluster.send("b", "get s1");
    cluster.expect(|node, line| node == "b" && line == format!("count s1 {expected}"));
    assert_eq!(
        rt.block_on(lease(&client, &schema, &key)),
        Some((Some("b".to_owned()), epoch_b, true))
    );
    // And `a`'s clients are told who owns it.
    cluster.send("a", "get s1");
    let (_, refused) = cluster.expect(|node, line| node == "a" && line.starts_with("err s1 "));
    assert!(
        refused.contains("node `b`") || refused.contains("not running here"),
        "{refused}"
    );
    drop(cluster);
    rt.block_on(drop_schema(&url, &schema));
}

/// Two nodes told to start the same name at the same moment, twenty times: each time exactly one
/// starts it, and the other is told which node won.
#[test]
fn two_nodes_racing_to_start_one_name_exactly_one_wins() {
    let Some(url) = pg_url() else { return };
    let schema = schema("race");
    let mut cluster = Cluster::new(&url, &schema);
    cluster.spawn("a", &NodeOptions::default());
    cluster.spawn("b", &NodeOptions::default());
    let mut wins = BTreeMap::new();
    for i in 0..20 {
        let name = format!("r{i}");
        let start = format!("start {name}");
        // Alternate who is told first.
        let (first, second) = if i % 2 == 0 { ("a", "b") } else { ("b", "a") };
        cluster.send(first, &start);
        cluster.send(second, &start);
        let mut outcomes = BTreeMap::new();
        for node in ["a", "b"] {
            let (_, line) = cluster.expect(|from, line| {
                from == node
                    && (line == format!("started {name} 0")
                        || line.starts_with(&format!("owned {name} ")))
            });
            outcomes.insert(node, line);
        }
        let winners: Vec<&&str> = outcomes
            .iter()
            .filter(|(_, line)| line.starts_with("started"))
            .map(|(node, _)| node)
            .collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        let winner = *winners[0];
        let loser = if winner == "a" { "b" } else { "a" };
        assert_eq!(outcomes[loser], format!("owned {name} {winner}"));
        *wins.entry(winner).or_insert(0) += 1;
    }
    println!("20 races: {wins:?}");
    drop(cluster);
    runtime().block_on(drop_schema(&url, &schema));
}

/// The rolling deploy: three nodes taking over, nine counters pumped all along; each node
/// in turn is shut down gracefully (its counters handed off and taken over by the two others,
/// which keep pumping them) and started again. Across all the nodes' output, every count of every
/// counter was acknowledged exactly once, from 1 up: no acknowledged message was lost (a lost
/// one would show as a count acknowledged twice) and none was skipped.
#[test]
fn a_rolling_restart_of_three_nodes_under_traffic_loses_no_acknowledged_message() {
    let Some(url) = pg_url() else { return };
    let schema = schema("rolling");
    let mut cluster = Cluster::new(&url, &schema);
    let options = NodeOptions {
        take_over: true,
        pump_ms: 3,
        ..NodeOptions::default()
    };
    let ids = ["a", "b", "c"];
    for id in ids {
        cluster.spawn(id, &options);
    }
    let names: Vec<String> = (0..9).map(|i| format!("s{i}")).collect();
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let id = ids[i % 3];
        cluster.send(id, &format!("start {name}"));
        cluster.expect(|node, line| node == id && line == format!("started {name} 0"));
        cluster.send(id, &format!("pump {name} 3"));
        owners.insert(name.clone(), id.to_owned());
    }
    let enough = |cluster: &mut Cluster, names: &[String], more: usize| {
        let before: Vec<usize> = names.iter().map(|name| cluster.acks(name).len()).collect();
        cluster.until(|log| {
            names.iter().zip(&before).all(|(name, before)| {
                log.iter()
                    .filter(|(_, line)| line.starts_with(&format!("ack {name} ")))
                    .count()
                    >= before + more
            })
        });
    };
    enough(&mut cluster, &names, 10);

    for id in ids {
        cluster.send(id, "shutdown");
        let (_, handed) =
            cluster.expect(|node, line| node == id && line.starts_with("handed-off "));
        let leaving: Vec<String> = owners
            .iter()
            .filter(|(_, owner)| *owner == id)
            .map(|(name, _)| name.clone())
            .collect();
        assert_eq!(handed, format!("handed-off {}", leaving.len()));
        assert!(cluster.node(id).wait().success());
        for name in &leaving {
            let (taker, _) = cluster
                .expect(|node, line| node != id && line.starts_with(&format!("took-over {name} ")));
            owners.insert(name.clone(), taker);
        }
        cluster.spawn(id, &options);
        // Traffic goes on, on the takers.
        enough(&mut cluster, &names, 10);
    }

    let mut total = 0;
    for name in &names {
        let acks: Vec<u64> = cluster.acks(name).iter().map(|(_, count)| *count).collect();
        let distinct: BTreeSet<u64> = acks.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            acks.len(),
            "{name}: a count acknowledged twice"
        );
        let max = *distinct.last().unwrap();
        assert_eq!(distinct, (1..=max).collect(), "{name}: a count skipped");
        total += acks.len();
    }
    let moved: usize = cluster
        .log
        .iter()
        .filter(|(_, line)| line.starts_with("took-over "))
        .count();
    println!(
        "rolling restart of 3 nodes: {total} acknowledged writes over {} counters, {moved} takeovers, none lost",
        names.len()
    );
    drop(cluster);
    runtime().block_on(drop_schema(&url, &schema));
}

/// `Node::transfer`: one server moves to the named node (not to another node that takes over
/// handoffs), with its state; the old node's clients are told where it went.
#[test]
fn a_transfer_moves_one_server_to_the_named_node() {
    let Some(url) = pg_url() else { return };
    let schema = schema("transfer");
    let mut cluster = Cluster::new(&url, &schema);
    cluster.spawn("a", &NodeOptions::default());
    cluster.spawn("b", &NodeOptions::default());
    cluster.spawn(
        "c",
        &NodeOptions {
            take_over: true,
            ..NodeOptions::default()
        },
    );
    cluster.send("a", "start t1");
    cluster.expect(|node, line| node == "a" && line == "started t1 0");
    cluster.send("a", "add t1 5");
    cluster.expect(|node, line| node == "a" && line == "added t1 5");

    cluster.send("a", "transfer t1 b");
    cluster.expect(|node, line| node == "a" && line == "transferred t1");
    cluster.expect(|node, line| node == "b" && line == "took-over t1 5");
    cluster.send("b", "owner t1");
    cluster.expect(|node, line| node == "b" && line == "owner t1 b");
    cluster.send("a", "add t1 1");
    let (_, refused) = cluster.expect(|node, line| node == "a" && line.starts_with("err t1 "));
    assert!(
        refused.contains("handed off to node `b`") || refused.contains("not running here"),
        "{refused}"
    );
    // Starting it on `a` again: owned by `b`.
    cluster.send("a", "start t1");
    cluster.expect(|node, line| node == "a" && line == "owned t1 b");
    // `c` takes over handoffs to any node, not transfers to `b`.
    assert!(
        !cluster
            .log
            .iter()
            .any(|(node, line)| node == "c" && line.starts_with("took-over"))
    );
    drop(cluster);
    runtime().block_on(drop_schema(&url, &schema));
}
