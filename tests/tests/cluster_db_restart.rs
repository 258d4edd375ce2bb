//! The database goes down under running nodes and comes back: calls fail with typed errors
//! during the outage, and succeed again after it, without restarting the nodes; handoffs work
//! again too (the `LISTEN` connections came back).
//!
//! In a file of its own: the restart would break the other cluster tests' connections, and test
//! files run one after the other. Needs `PEEPER_PG_CTL` (set by `scripts/with-postgres`) to stop
//! and start the database; without it (or `PEEPER_PG_URL`), it says `skipped` on stderr and
//! passes, except under CI (`CI=true`), where it fails.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod cluster_common;

use std::process::Command;

use cluster_common::{Cluster, NodeOptions, drop_schema, parse_ack, pg_ctl, pg_url, schema};

fn run_pg_ctl(pg_ctl: &str, action: &str) {
    let output = Command::new(pg_ctl)
        .args(match action {
            "stop" => vec!["stop", "-m", "fast"],
            other => vec![other],
        })
        .output()
        .unwrap();
    assert!(output.status.success(), "pg_ctl {action}: {output:?}");
}

#[test]
fn a_database_restart_fails_calls_typed_and_the_nodes_recover_without_a_restart() {
    let Some(url) = pg_url() else { return };
    let Some(pg_ctl) = pg_ctl() else { return };
    let schema = schema("restart");
    let mut cluster = Cluster::new(&url, &schema);
    // A lease far longer than the outage: nobody's leases expire meanwhile.
    let options = NodeOptions {
        take_over: true,
        lease_ms: 30_000,
        pump_ms: 5,
        ..NodeOptions::default()
    };
    cluster.spawn("a", &options);
    cluster.spawn("b", &options);
    let names = ["d0", "d1", "d2", "d3"];
    for (i, name) in names.iter().enumerate() {
        let id = ["a", "b"][i % 2];
        cluster.send(id, &format!("start {name}"));
        cluster.expect(|node, line| node == id && line == format!("started {name} 0"));
        cluster.send(id, &format!("pump {name} 5"));
    }
    for name in names {
        cluster.expect(|_, line| line == format!("ack {name} 3"));
    }
    let pids: Vec<u32> = cluster.nodes.iter().map(|node| node.pid()).collect();

    run_pg_ctl(&pg_ctl, "stop");
    let outage = cluster.log.len();
    // Every pump hears a typed error from the store.
    for name in names {
        let (_, line) = cluster.expect(|_, line| line.starts_with(&format!("err {name} ")));
        assert!(
            line.contains("the state could not be stored: the store failed: postgres: "),
            "{line}"
        );
    }
    run_pg_ctl(&pg_ctl, "start");
    // Recovery: every counter acknowledges writes again, on the same processes. A node prints
    // its lines in order, so an ack after that counter's error is a write committed after the
    // database came back.
    cluster.until(|log| {
        names.iter().all(|name| {
            let failed = log
                .iter()
                .position(|(_, line)| line.starts_with(&format!("err {name} ")));
            failed.is_some_and(|failed| {
                log[failed..]
                    .iter()
                    .any(|(_, line)| parse_ack(line).is_some_and(|(acked, _)| acked == *name))
            })
        })
    });
    for node in &mut cluster.nodes {
        assert!(node.alive(), "node {} is still the same process", node.id);
    }
    assert_eq!(
        cluster
            .nodes
            .iter()
            .map(|node| node.pid())
            .collect::<Vec<_>>(),
        pids
    );
    // Handoffs work again: `b` listens again, and takes over `a`'s counters.
    cluster.send("a", "shutdown");
    cluster.expect(|node, line| node == "a" && line == "handed-off 2");
    for name in ["d0", "d2"] {
        cluster.expect(|node, line| node == "b" && line.starts_with(&format!("took-over {name} ")));
    }
    let errors = cluster.log[outage..]
        .iter()
        .filter(|(_, line)| line.starts_with("err "))
        .count();
    println!(
        "database restarted under 2 nodes: {errors} typed errors during the outage, then recovery"
    );
    drop(cluster);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(drop_schema(&url, &schema));
}
