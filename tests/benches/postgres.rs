//! Clusters on PostgreSQL, measured against the local database of `scripts/with-postgres`:
//!
//! - write-through latency (a call that changes the state, replied once committed): p50/p99 for
//!   one server calling alone, and for 100 servers calling at once (group commit);
//! - handoff time: from `Node::shutdown` on one node until another has revived every server,
//!   for 1 server and for 1,000;
//! - lease renewal: one `UPDATE` per renewal period for all the leases of a node, its duration
//!   for 1,000 leases, and the queries per second it costs per 1,000 owned servers.
//!
//! `scripts/with-postgres cargo bench -p peeper-tests --bench postgres` (prints a table; without
//! `PEEPER_PG_URL`, prints a notice and exits).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use peeper::cluster::{Node, NodeEvent, NodeId, Postgres};
use peeper::store::{Key, Storage, Store};
use serde::{Deserialize, Serialize};

#[derive(Clone, Default, Serialize, Deserialize)]
struct Counter {
    count: u64,
}

#[peeper::server]
impl Counter {
    #[call]
    fn add(&mut self, by: u64) -> u64 {
        self.count += by;
        self.count
    }
}

impl peeper::Persist for Counter {
    const KIND: &'static str = "bench-counter";
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

fn ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1_000.0)
}

async fn connect(url: &str, schema: &str, node: &str) -> Postgres {
    Postgres::builder(url)
        .node(NodeId::new(node))
        .schema(schema)
        .pool_size(16)
        .connect()
        .await
        .unwrap()
}

async fn write_through(url: &str, schema: &str, rows: &mut Vec<[String; 3]>) {
    let postgres = connect(url, schema, "writer").await;
    let storage = Storage::new(postgres);
    // One server, calling alone: every call is a commit of its own.
    let counter = Counter::builder(Counter::default())
        .name("alone")
        .store(storage.clone())
        .start()
        .await
        .unwrap();
    for _ in 0..100 {
        counter.add(1).await.unwrap(); // warm-up: connections, prepared statements
    }
    let mut latencies = Vec::with_capacity(2_000);
    for _ in 0..2_000 {
        let started = Instant::now();
        counter.add(1).await.unwrap();
        latencies.push(started.elapsed());
    }
    latencies.sort();
    rows.push([
        "write-through, 1 server alone".into(),
        format!("p50 {}", ms(percentile(&latencies, 0.5))),
        format!("p99 {}", ms(percentile(&latencies, 0.99))),
    ]);
    counter.stop().await.unwrap();

    // 100 servers calling at once: group commit shares each statement.
    let mut counters = Vec::new();
    for i in 0..100 {
        counters.push(
            Counter::builder(Counter::default())
                .name(format!("crowd-{i}"))
                .store(storage.clone())
                .start()
                .await
                .unwrap(),
        );
    }
    let commits_before = storage.commits();
    let started = Instant::now();
    let tasks: Vec<_> = counters
        .iter()
        .cloned()
        .map(|counter| {
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(200);
                for _ in 0..200 {
                    let started = Instant::now();
                    counter.add(1).await.unwrap();
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let commits = storage.commits() - commits_before;
    rows.push([
        "write-through, 100 servers at once".into(),
        format!("p50 {}", ms(percentile(&latencies, 0.5))),
        format!(
            "p99 {} ({:.0} writes/s, {:.1} writes per commit)",
            ms(percentile(&latencies, 0.99)),
            latencies.len() as f64 / elapsed.as_secs_f64(),
            latencies.len() as f64 / commits as f64
        ),
    ]);
    for counter in counters {
        counter.stop().await.unwrap();
    }
}

/// Hands `servers` servers off from one node to another; the time until all run on the other.
async fn handoff(url: &str, schema: &str, servers: usize) -> Duration {
    let giver = Node::builder(connect(url, schema, "giver").await)
        .host(|_: &str| Counter::builder(Counter::default()))
        .start()
        .await
        .unwrap();
    let taker = Node::builder(connect(url, schema, "taker").await)
        .host(|_: &str| Counter::builder(Counter::default()))
        .take_over(true)
        .start()
        .await
        .unwrap();
    for chunk in (0..servers).collect::<Vec<_>>().chunks(100) {
        let started = futures::future::join_all(chunk.iter().map(|i| {
            giver.start(Counter::builder(Counter::default()).name(format!("h{servers}-{i}")))
        }))
        .await;
        for counter in started {
            counter.unwrap().add(1).await.unwrap();
        }
    }
    let mut events = taker.events();
    let started = Instant::now();
    let handed = giver.shutdown().await.unwrap();
    assert_eq!(handed.len(), servers);
    let mut revived = 0;
    while revived < servers {
        if let NodeEvent::TookOver { .. } = events.recv().await.unwrap() {
            revived += 1;
        }
    }
    let elapsed = started.elapsed();
    taker.shutdown().await.unwrap();
    elapsed
}

async fn renewal(url: &str, schema: &str, rows: &mut Vec<[String; 3]>) {
    let postgres = connect(url, schema, "renewer").await;
    for chunk in (0..1_000).collect::<Vec<_>>().chunks(100) {
        futures::future::join_all(chunk.iter().map(|i| {
            let postgres = postgres.clone();
            async move {
                postgres
                    .claim(&Key::new("bench-counter", format!("lease-{i}")))
                    .await
                    .unwrap();
            }
        }))
        .await;
    }
    let mut durations = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        assert_eq!(postgres.renew().await.unwrap(), 1_000);
        durations.push(started.elapsed());
    }
    durations.sort();
    let period = postgres.lease() / 3;
    rows.push([
        "lease renewal, 1,000 leases".into(),
        format!("1 UPDATE: p50 {}", ms(percentile(&durations, 0.5))),
        format!(
            "every {:.2} s (a third of the {:?} lease): {:.2} queries/s per 1,000 servers (one query per server would be {:.0}/s)",
            period.as_secs_f64(),
            postgres.lease(),
            1.0 / period.as_secs_f64(),
            1_000.0 / period.as_secs_f64()
        ),
    ]);
}

fn main() {
    let Ok(url) = std::env::var("PEEPER_PG_URL") else {
        println!(
            "skipped: PEEPER_PG_URL is not set; run `scripts/with-postgres cargo bench -p peeper-tests --bench postgres`"
        );
        return;
    };
    // `cargo test --benches` runs bench targets with `--bench`-less arguments: only measure for
    // `cargo bench`.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("skipped: run with `cargo bench`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let schema = format!("bench_{}", std::process::id());
        let mut rows = Vec::new();
        write_through(&url, &schema, &mut rows).await;

        // Each handoff in a schema of its own: what a run leaves released is not the next's.
        let mut schemas = vec![schema.clone()];
        let mut one = Vec::new();
        for run in 0..10 {
            schemas.push(format!("{schema}_h{run}"));
            one.push(handoff(&url, &schemas[schemas.len() - 1], 1).await);
        }
        one.sort();
        rows.push([
            "handoff, 1 server".into(),
            format!("p50 {}", ms(percentile(&one, 0.5))),
            "shutdown of the giver until the taker has revived it".into(),
        ]);
        schemas.push(format!("{schema}_h1000"));
        let thousand = handoff(&url, &schemas[schemas.len() - 1], 1_000).await;
        rows.push([
            "handoff, 1,000 servers".into(),
            ms(thousand),
            format!("{} per server", ms(thousand / 1_000)),
        ]);
        renewal(&url, &schema, &mut rows).await;

        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        for schema in schemas {
            client
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .unwrap();
        }

        println!();
        println!("| measure | value | notes |");
        println!("|---|---|---|");
        for [measure, value, notes] in rows {
            println!("| {measure} | {value} | {notes} |");
        }
    });
}
