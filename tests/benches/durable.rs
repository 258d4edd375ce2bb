//! Durable state: group commit against one commit per write, and the cost of a revival.
//!
//! `cargo bench -p peeper-tests --bench durable` prints, for a redb file in the temp folder:
//!
//! - 1,000 durable servers each taking write-through calls back to back, all at once, for a
//!   fixed time: writes per second and the p50 / p99 call latency, with group commit
//!   (`Storage::new`) and with one commit per write (`Storage::with_max_batch(_, 1)`);
//! - the latency of the first reply from a hibernated server (revival: load, decode, start).
//!
//! These are throughput and latency distributions, which criterion does not report, so this
//! bench prints its own table; the numbers land in the issue notes and the book.
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)] // a benchmark: failing loudly is right

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use peeper::store::{Redb, Storage};

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Account {
    balance: u64,
}

#[peeper::server]
impl Account {
    #[call]
    fn deposit(&mut self, amount: u64) -> u64 {
        self.balance += amount;
        self.balance
    }

    #[call]
    fn balance(&self) -> u64 {
        self.balance
    }
}

impl peeper::Persist for Account {
    const KIND: &'static str = "account";
}

const SERVERS: usize = 1_000;
const RUN_FOR: Duration = Duration::from_secs(3);

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("peeper-bench-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("state.redb")
}

struct Run {
    writes: usize,
    commits: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn write_through(storage: Storage, label: &str) -> Run {
    let mut accounts = Vec::with_capacity(SERVERS);
    for i in 0..SERVERS {
        let name = format!("{label}-{i}");
        accounts.push(
            Account::builder(Account::default())
                .name(name)
                .store(storage.clone())
                .start()
                .await
                .unwrap(),
        );
    }
    let commits_before = storage.commits();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = accounts
        .iter()
        .cloned()
        .map(|account| {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let call = Instant::now();
                    account
                        .with_timeout(Duration::from_secs(600))
                        .deposit(1)
                        .await
                        .unwrap();
                    latencies.push(call.elapsed());
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(RUN_FOR).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    let commits = storage.commits() - commits_before;
    for account in accounts {
        account.stop().await.unwrap();
    }
    latencies.sort_unstable();
    Run {
        writes: latencies.len(),
        commits,
        elapsed,
        latencies,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn report(label: &str, run: &Run) -> f64 {
    let per_second = run.writes as f64 / run.elapsed.as_secs_f64();
    println!(
        "| {label} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
        run.writes,
        run.commits,
        per_second,
        run.writes as f64 / run.commits.max(1) as f64,
        percentile(&run.latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&run.latencies, 0.99).as_secs_f64() * 1e3,
    );
    per_second
}

async fn revival(storage: Storage) -> Vec<Duration> {
    let mut samples = Vec::new();
    for i in 0..100 {
        let account = Account::builder(Account { balance: 7 })
            .name(format!("sleeper-{i}"))
            .store(storage.clone())
            .idle_after(Duration::from_millis(1))
            .start()
            .await
            .unwrap();
        account.branch().hibernated().await.unwrap();
        let call = Instant::now();
        assert_eq!(account.balance().await.unwrap(), 7);
        samples.push(call.elapsed());
        account.stop().await.unwrap();
    }
    samples.sort_unstable();
    samples
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("{SERVERS} durable servers on one redb file, write-through calls back to back for {RUN_FOR:?}:\n");
        println!("| storage | writes | commits | writes/s | writes per commit | p50 ms | p99 ms |");
        println!("|---|---|---|---|---|---|---|");
        let grouped_path = scratch("grouped");
        let grouped = report("group commit", &write_through(Storage::new(Redb::open(&grouped_path).unwrap()), "g").await);
        let single_path = scratch("single");
        let single =
            report("one commit per write", &write_through(Storage::with_max_batch(Redb::open(&single_path).unwrap(), 1), "s").await);
        println!("\ngroup commit / one commit per write: {:.1}x the writes per second", grouped / single);

        let revival_path = scratch("revival");
        let samples = revival(Storage::new(Redb::open(&revival_path).unwrap())).await;
        println!(
            "\nrevival (hibernated -> first reply, redb): p50 {:.3} ms, p99 {:.3} ms over {} revivals",
            percentile(&samples, 0.50).as_secs_f64() * 1e3,
            percentile(&samples, 0.99).as_secs_f64() * 1e3,
            samples.len()
        );
        for path in [grouped_path, single_path, revival_path] {
            let _ = std::fs::remove_dir_all(path.parent().unwrap());
        }
    });
}
