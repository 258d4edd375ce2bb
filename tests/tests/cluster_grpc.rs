//! Calls between node processes (`tests/bin/cluster_node.rs`) through `Node::get`, over gRPC,
//! on one PostgreSQL, on loopback: clients on every node calling servers owned by others, a
//! rolling restart under traffic, a node SIGKILLed, an activation storm, two builds that differ
//! by one message, mutual TLS and a stranger refused.
//!
//! Nothing sleeps to synchronise: the tests wait for the lines the nodes print. Without
//! `PEEPER_PG_URL` (set by `scripts/with-postgres`) each test says `skipped` on stderr, and fails
//! under CI (`CI=true`).
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod cluster_common;

use std::collections::BTreeMap;

use cluster_common::{Cluster, NodeOptions, drop_schema, pg_url, schema, word};

fn listening(extra: &[&str]) -> NodeOptions {
    let mut extra: Vec<String> = extra.iter().map(|arg| (*arg).to_owned()).collect();
    if !extra.iter().any(|arg| arg == "--listen") {
        extra.extend(["--listen".to_owned(), "plain".to_owned()]);
    }
    NodeOptions {
        lease_ms: 2_000,
        extra,
        ..NodeOptions::default()
    }
}

/// Waits for `node`'s answer about `name`: `called`/`doubled` or `call-err`.
fn answer(cluster: &mut Cluster, node: &str, name: &str) -> String {
    let (_, line) = cluster.expect(|from, line| {
        from == node
            && (line.starts_with("called ")
                || line.starts_with("doubled ")
                || line.starts_with("call-err "))
            && word(line, 1) == name
    });
    line
}

#[test]
fn clients_on_every_node_call_servers_owned_by_others() {
    let Some(url) = pg_url() else { return };
    let schema = schema("grpc_calls");
    let mut cluster = Cluster::new(&url, &schema);
    for id in ["a", "b", "c"] {
        cluster.spawn(id, &listening(&[]));
    }
    // Each server is started (activated) where it is first asked for: `a` starts p-a, ...
    for id in ["a", "b", "c"] {
        cluster.send(id, &format!("call p-{id} 1"));
        assert_eq!(
            answer(&mut cluster, id, &format!("p-{id}")),
            format!("called p-{id} 1")
        );
    }
    // ... and every node calls the servers the others own, through the same `get`.
    let mut expected: BTreeMap<String, u64> = ["a", "b", "c"]
        .iter()
        .map(|id| (format!("p-{id}"), 1))
        .collect();
    for round in 0..3 {
        for caller in ["a", "b", "c"] {
            for owner in ["a", "b", "c"] {
                let name = format!("p-{owner}");
                let by = 1 + round;
                cluster.send(caller, &format!("call {name} {by}"));
                let count = expected.get_mut(&name).unwrap();
                *count += by;
                assert_eq!(
                    answer(&mut cluster, caller, &name),
                    format!("called {name} {count}")
                );
            }
        }
    }
    // The servers stayed where they were started.
    for id in ["a", "b", "c"] {
        cluster.send(id, &format!("owner p-{id}"));
        cluster.expect(|from, line| from == id && line == format!("owner p-{id} {id}"));
    }
    drop(cluster);
    drop_schema_now(&url, &schema);
}

#[test]
fn a_keyed_call_is_applied_once_whichever_node_retries_it() {
    let Some(url) = pg_url() else { return };
    let schema = schema("grpc_keyed");
    let mut cluster = Cluster::new(&url, &schema);
    for id in ["a", "b", "c"] {
        cluster.spawn(id, &listening(&[]));
    }
    cluster.send("a", "call ada 1");
    assert_eq!(answer(&mut cluster, "a", "ada"), "called ada 1");
    let keyed = |cluster: &mut Cluster, node: &str, command: &str| {
        cluster.send(node, command);
        cluster
            .expect(|from, line| {
                from == node
                    && (line.starts_with("kcalled ada")
                        || line.starts_with("call-err ada")
                        || line.starts_with("keyed ada")
                        || line.starts_with("err ada"))
            })
            .1
    };
    // From another node, then retried from a third, then from the owner's own (local) client:
    // one application, the same reply each time.
    assert_eq!(
        keyed(&mut cluster, "b", "kcall ada pay-1 5"),
        "kcalled ada pay-1 6"
    );
    assert_eq!(
        keyed(&mut cluster, "c", "kcall ada pay-1 5"),
        "kcalled ada pay-1 6"
    );
    assert_eq!(
        keyed(&mut cluster, "a", "keyed ada pay-1 5"),
        "keyed ada pay-1 6"
    );
    // And the other way round: first local, then retried remotely.
    assert_eq!(
        keyed(&mut cluster, "a", "keyed ada pay-2 10"),
        "keyed ada pay-2 16"
    );
    assert_eq!(
        keyed(&mut cluster, "b", "kcall ada pay-2 10"),
        "kcalled ada pay-2 16"
    );
    // The key with another message is refused, typed, wherever it comes from.
    let reused = keyed(&mut cluster, "c", "kcall ada pay-1 7");
    assert!(
        reused.starts_with("call-err ada other") && reused.contains("pay-1"),
        "{reused}"
    );
    cluster.send("b", "call ada 0");
    assert_eq!(answer(&mut cluster, "b", "ada"), "called ada 16");
    drop(cluster);
    drop_schema_now(&url, &schema);
}

#[test]
fn a_call_follows_a_server_transferred_to_another_node() {
    let Some(url) = pg_url() else { return };
    let schema = schema("grpc_moved");
    let mut cluster = Cluster::new(&url, &schema);
    for id in ["a", "b", "c"] {
        cluster.spawn(id, &listening(&[]));
    }
    cluster.send("a", "call ada 5");
    assert_eq!(answer(&mut cluster, "a", "ada"), "called ada 5");
    // b holds a client, whose link caches a as the owner...
    cluster.send("b", "hold ada");
    cluster.expect(|from, line| from == "b" && line == "holding ada");
    cluster.send("b", "hcall ada 1");
    cluster.expect(|from, line| from == "b" && line == "held ada 6");
    // ... the server moves to c while a keeps running: a answers "moved to c" (with its epoch
    // and address), and the held client follows, without being taken again.
    cluster.send("a", "transfer ada c");
    cluster.expect(|from, line| from == "a" && line == "transferred ada");
    cluster.expect(|from, line| from == "c" && line.starts_with("took-over ada"));
    for expected in [7, 8] {
        cluster.send("b", "hcall ada 1");
        cluster.expect(|from, line| from == "b" && line == format!("held ada {expected}"));
    }
    cluster.send("b", "owner ada");
    cluster.expect(|from, line| from == "b" && line == "owner ada c");
    drop(cluster);
    drop_schema_now(&url, &schema);
}

#[test]
fn a_node_killed_its_servers_answer_from_another_after_the_lease() {
    let Some(url) = pg_url() else { return };
    let schema = schema("grpc_kill");
    let mut cluster = Cluster::new(&url, &schema);
    cluster.spawn("a", &listening(&[]));
    cluster.spawn("b", &listening(&[]));
    cluster.send("a", "call ada 5");
    assert_eq!(answer(&mut cluster, "a", "ada"), "called ada 5");
    cluster.send("b", "call ada 1");
    assert_eq!(answer(&mut cluster, "b", "ada"), "called ada 6");

    cluster.node("a").kill();
    // Until the lease expires, `a` still owns it and cannot be reached: "not applied", never
    // "maybe applied" (nothing was sent). After it, `b` revives it from the last commit.
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(
            attempts < 60,
            "ada never came back: {:?}",
            cluster.log.iter().rev().take(3).collect::<Vec<_>>()
        );
        cluster.send("b", "call ada 1");
        let line = answer(&mut cluster, "b", "ada");
        if line == "called ada 7" {
            break;
        }
        assert!(line.starts_with("call-err ada not-applied"), "{line}");
    }
    cluster.send("b", "owner ada");
    cluster.expect(|from, line| from == "b" && line == "owner ada b");
    drop(cluster);
    drop_schema_now(&url, &schema);
}

#[test]
fn a_rolling_restart_under_traffic_applies_every_acknowledged_call_once() {
    let Some(url) = pg_url() else { return };
    let schema = schema("grpc_rolling");
    let mut cluster = Cluster::new(&url, &schema);
    let options = listening(&["--take-over"]);
    let mut options = options;
    options.take_over = true;
    for id in ["a", "b", "c"] {
        cluster.spawn(id, &options);
    }
    let names = ["r0", "r1", "r2"];
    for (name, owner) in names.iter().zip(["a", "b", "c"]) {
        cluster.send(owner, &format!("call {name} 0"));
        assert_eq!(
            answer(&mut cluster, owner, name),
            format!("called {name} 0")
        );
    }
    // Clients on every node call every server, for the whole restart.
    const CALLS: u64 = 150;
    for caller in ["a", "b", "c"] {
        for name in names {
            cluster.send(caller, &format!("traffic {name} {CALLS}"));
        }
    }
    // Restart every node in turn: a graceful shutdown hands its servers off, while the other
    // nodes' clients keep calling them.
    for id in ["a", "b", "c"] {
        cluster.until(|log| {
            log.iter()
                .filter(|(_, line)| line.starts_with("tack "))
                .count()
                >= 40
        });
        cluster.send(id, "shutdown");
        cluster.expect(|from, line| from == id && line.starts_with("handed-off "));
        cluster.node(id).wait();
        cluster.spawn(id, &options);
        for name in names {
            cluster.send(id, &format!("traffic {name} {CALLS}"));
        }
    }
    // The clients of the new processes finish; nothing failed but retried "not applied".
    cluster.until(|log| {
        let lost: Vec<_> = log
            .iter()
            .filter(|(_, line)| line.starts_with("call-err "))
            .collect();
        if !lost.is_empty() {
            for (node, line) in log.iter().filter(|(_, line)| !line.starts_with("tack ")) {
                eprintln!("{node}: {line}");
            }
            panic!("a call failed: {lost:?}");
        }
        ["a", "b", "c"].iter().all(|id| {
            let ready = format!("ready {id}");
            let since = log
                .iter()
                .rposition(|(node, line)| node == id && *line == ready)
                .unwrap();
            names.iter().all(|name| {
                let done = format!("traffic-done {name}");
                log[since..]
                    .iter()
                    .any(|(node, line)| node == id && *line == done)
            })
        })
    });
    // Exactly once: each acknowledged count is distinct, and the final count is the number of
    // acknowledged calls (a node's clients stop at a call boundary before it shuts down, so no
    // call is in flight when a process exits).
    for name in names {
        let mut counts: Vec<u64> = cluster
            .log
            .iter()
            .filter(|(_, line)| line.starts_with("tack ") && word(line, 1) == name)
            .map(|(_, line)| word(line, 2).parse().unwrap())
            .collect();
        counts.sort_unstable();
        let acks = counts.len() as u64;
        counts.dedup();
        assert_eq!(
            counts.len() as u64,
            acks,
            "{name}: a count was acknowledged twice"
        );
        cluster.send("a", &format!("call {name} 0"));
        let line = answer(&mut cluster, "a", name);
        let total: u64 = word(&line, 2).parse().unwrap();
        assert_eq!(total, acks, "{name}: {acks} acknowledged, {total} applied");
        let retried = cluster
            .log
            .iter()
            .filter(|(_, line)| line.starts_with("retried "))
            .count();
        eprintln!(
            "{name}: {acks} acknowledged calls, {total} applied, {retried} retries (not applied)"
        );
    }
    drop(cluster);
    drop_schema_now(&url, &schema);
}

#[test]
fn a_storm_of_gets_activates_each_name_once_cluster_wide() {
    let Some(url) = pg_url() else { return };
    let schema = schema("grpc_storm");
    let mut cluster = Cluster::new(&url, &schema);
    // The default lease (10 s): 30,000 activations at once keep every connection busy, and a
    // 2 s lease would not be renewed in time.
    for id in ["a", "b", "c"] {
        cluster.spawn(
            id,
            &NodeOptions {
                lease_ms: 10_000,
                ..listening(&[])
            },
        );
    }
    // The default lease (10 s): thousands of activations at once keep every connection busy,
    // and a 2 s lease would not always be renewed in time on a loaded 2-core machine.
    for id in ["a", "b", "c"] {
        cluster.spawn(
            id,
            &NodeOptions {
                lease_ms: 10_000,
                ..listening(&[])
            },
        );
    }
    const NAMES: usize = 10_000;
    for id in ["a", "b", "c"] {
        cluster.send(id, &format!("storm s{NAMES}x {NAMES}"));
    }
    for id in ["a", "b", "c"] {
        let (_, line) = cluster.expect(|from, line| from == id && line.starts_with("stormed "));
        assert_eq!(
            line,
            format!("stormed {NAMES} 0"),
            "{:?}",
            cluster.log.iter().rev().take(5).collect::<Vec<_>>()
        );
    }
    // Every name was activated once: its three calls reached one server, so the counts, read
    // through `get` from another node, are 3 each. (Two servers for a name would have split
    // its calls, and one of them would have lost its lease: a smaller sum.)
    cluster.send("b", &format!("total s{NAMES}x {NAMES}"));
    let (_, line) = cluster.expect(|from, line| from == "b" && line.starts_with("total "));
    assert_eq!(line, format!("total {} 0", 3 * NAMES));
    let leases = cluster
        .log
        .iter()
        .filter(|(_, line)| line.starts_with("lost "))
        .count();
    assert_eq!(leases, 0, "a lease was lost during the storm");
    drop(cluster);
    drop_schema_now(&url, &schema);
}

#[test]
fn a_message_over_the_size_cap_is_refused_before_it_is_sent() {
    let Some(url) = pg_url() else { return };
    let schema = schema("grpc_size");
    let mut cluster = Cluster::new(&url, &schema);
    cluster.spawn("a", &listening(&["--max-message", "4096"]));
    cluster.spawn("b", &listening(&["--max-message", "65536"]));
    cluster.send("a", "call ada 1");
    assert_eq!(answer(&mut cluster, "a", "ada"), "called ada 1");
    cluster.send("b", "measure ada 2000");
    cluster.expect(|from, line| from == "b" && line == "measured ada 2000");
    // Over `b`'s own cap: refused before sending. Over `a`'s only: refused by `a`, unread.
    for (bytes, cap) in [(100_000, "65536 bytes"), (10_000, "the receiving node")] {
        cluster.send("b", &format!("measure ada {bytes}"));
        let (_, line) = cluster.expect(|from, line| from == "b" && line.contains(" ada "));
        assert!(line.starts_with("call-err ada not-applied"), "{line}");
        assert!(line.ends_with(&format!("over the cap of {cap}")), "{line}");
    }
    // Both nodes keep serving.
    cluster.send("b", "call ada 1");
    assert_eq!(answer(&mut cluster, "b", "ada"), "called ada 2");
    drop(cluster);
    drop_schema_now(&url, &schema);
}

#[test]
fn a_newer_build_gets_a_typed_unknown_message_from_an_older_one() {
    let Some(url) = pg_url() else { return };
    let schema = schema("grpc_skew");
    let mut cluster = Cluster::new(&url, &schema);
    cluster.spawn("old", &listening(&[]));
    cluster.spawn("new", &listening(&["--v2"]));
    cluster.send("old", "call ada 5");
    assert_eq!(answer(&mut cluster, "old", "ada"), "called ada 5");
    // The messages both know work both ways...
    cluster.send("new", "call ada 1");
    assert_eq!(answer(&mut cluster, "new", "ada"), "called ada 6");
    // ... and the one only the newer build has is refused, typed, and not applied.
    cluster.send("new", "double ada");
    let line = answer(&mut cluster, "new", "ada");
    assert!(line.starts_with("call-err ada not-applied"), "{line}");
    assert!(line.contains("does not know this message"), "{line}");
    cluster.send("new", "call ada 0");
    assert_eq!(answer(&mut cluster, "new", "ada"), "called ada 6");
    drop(cluster);
    drop_schema_now(&url, &schema);
}

/// A CA, and certificates it signs for `nodes` (and one signed by a stranger CA), in a folder.
fn certificates(nodes: &[&str], stranger: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let authority = |name: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        (rcgen::Issuer::new(params, key), cert)
    };
    let (ca, ca_cert) = authority("peeper test cluster");
    let (other, _) = authority("a stranger");
    std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
    let leaf = |node: &str, issuer: &rcgen::Issuer<'_, rcgen::KeyPair>| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["peeper".to_owned()])
            .unwrap()
            .signed_by(&key, issuer)
            .unwrap();
        std::fs::write(dir.path().join(format!("{node}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.path().join(format!("{node}.key")), key.serialize_pem()).unwrap();
    };
    for node in nodes {
        leaf(node, &ca);
    }
    leaf(stranger, &other);
    dir
}

#[test]
fn nodes_talk_mutual_tls_and_refuse_a_stranger() {
    let Some(url) = pg_url() else { return };
    let schema = schema("grpc_tls");
    let certs = certificates(&["a", "b"], "mallory");
    let dir = certs.path().to_str().unwrap().to_owned();
    let mut cluster = Cluster::new(&url, &schema);
    for id in ["a", "b", "mallory"] {
        cluster.spawn(id, &listening(&["--listen", &dir]));
    }
    cluster.send("a", "call ada 5");
    assert_eq!(answer(&mut cluster, "a", "ada"), "called ada 5");
    cluster.send("b", "call ada 1");
    assert_eq!(answer(&mut cluster, "b", "ada"), "called ada 6");
    // Its certificate is not the cluster's: `a` refuses the handshake and reads nothing. (TLS
    // 1.3 tells the client after its side of the handshake is done, as an alert or a closed
    // connection on its first request: mallory cannot know whether it was read, and says
    // "maybe applied", the safe side; a refused connection says "not applied".)
    cluster.send("mallory", "call ada 100");
    let line = answer(&mut cluster, "mallory", "ada");
    assert!(
        line.starts_with("call-err ada not-applied")
            || line.starts_with("call-err ada maybe-applied"),
        "{line}"
    );
    cluster.send("b", "call ada 0");
    assert_eq!(answer(&mut cluster, "b", "ada"), "called ada 6");
    drop(cluster);
    drop_schema_now(&url, &schema);
}

fn drop_schema_now(url: &str, schema: &str) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(drop_schema(url, schema));
}
