//! Calls made with an idempotency key against the same calls without one, and what the records
//! cost in memory.
//!
//! `cargo bench -p peeper-tests --bench keyed` (add `scripts/with-postgres` in front to measure
//! PostgreSQL too; without `PEEPER_PG_URL` that store is skipped, with a notice). Prints:
//!
//! - per store (redb in the temp folder; PostgreSQL): one durable write-through server, one caller
//!   making calls back to back, rounds of `CALLS` calls alternating keyed (a fresh key per call)
//!   and unkeyed in one process, `ROUNDS` rounds each; the median of the per-round mean latency,
//!   with the spread (lowest and highest round), and keyed / unkeyed;
//! - the heap one server keeps for 1,000 records (keys of 16 bytes, `u64` replies): bytes
//!   allocated after 1,000 keyed calls less after 1,000 unkeyed ones, counted by a counting
//!   allocator (`stats_alloc`), on an in-memory server and on a durable one.
//!
//! Not a criterion benchmark (it prints a table): interleaved rounds with the spread shown are
//! what stays stable on a shared 2-core machine.
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::alloc::System;
use std::time::{Duration, Instant};

use peeper::store::{Memory, Redb, Storage};
use serde::{Deserialize, Serialize};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ROUNDS: usize = 11;
const CALLS: usize = 200;
const RECORDS: usize = 1_000;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[peeper::server]
impl Account {
    #[call]
    fn deposit(&mut self, amount: u64) -> u64 {
        self.balance += amount;
        self.balance
    }
}

impl peeper::Persist for Account {
    const KIND: &'static str = "keyed-bench-account";
}

/// One round of `CALLS` calls, keyed or not: the mean latency.
async fn round(account: &AccountClient, keyed: bool, next_key: &mut u64) -> Duration {
    let began = Instant::now();
    for _ in 0..CALLS {
        if keyed {
            *next_key += 1;
            let key = format!("request-{:08}", *next_key);
            account.idempotent(key).deposit(1).await.unwrap();
        } else {
            account.deposit(1).await.unwrap();
        }
    }
    began.elapsed() / u32::try_from(CALLS).unwrap()
}

fn median_and_spread(mut rounds: Vec<Duration>) -> (Duration, Duration, Duration) {
    rounds.sort_unstable();
    (
        rounds[rounds.len() / 2],
        rounds[0],
        rounds[rounds.len() - 1],
    )
}

fn us(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1e6)
}

/// Interleaved keyed and unkeyed rounds on one server of `storage`; prints a table row.
async fn compare(label: &str, storage: Storage) {
    let account = Account::builder(Account::default())
        .name(format!("bench-{label}"))
        .store(storage)
        .start()
        .await
        .unwrap();
    let mut next_key = 0;
    // Warm-up: connections, prepared statements, the records table.
    round(&account, true, &mut next_key).await;
    round(&account, false, &mut next_key).await;
    let (mut keyed, mut plain) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        // Alternating which goes first, so neither always follows the other.
        if i % 2 == 0 {
            keyed.push(round(&account, true, &mut next_key).await);
            plain.push(round(&account, false, &mut next_key).await);
        } else {
            plain.push(round(&account, false, &mut next_key).await);
            keyed.push(round(&account, true, &mut next_key).await);
        }
    }
    account.stop().await.unwrap();
    let (k, k_low, k_high) = median_and_spread(keyed);
    let (p, p_low, p_high) = median_and_spread(plain);
    println!(
        "| {label} | {} ({}-{}) | {} ({}-{}) | {:.2}x |",
        us(p),
        us(p_low),
        us(p_high),
        us(k),
        us(k_low),
        us(k_high),
        k.as_secs_f64() / p.as_secs_f64()
    );
}

/// Heap bytes a server keeps for `RECORDS` records: after keyed calls, less after unkeyed ones.
async fn memory_per_records(storage: Option<Storage>) -> i64 {
    let mut kept = [0_i64; 2];
    for (keyed, kept) in [false, true].into_iter().zip(&mut kept) {
        let builder = Account::builder(Account::default());
        let account = match &storage {
            Some(storage) => {
                builder
                    .name(format!("memory-{keyed}"))
                    .store(storage.clone())
                    .start()
                    .await
            }
            None => builder.start().await,
        }
        .unwrap();
        // The first keyed call allocates the records' table: counted, it is part of the cost.
        let region = Region::new(GLOBAL);
        for i in 0..RECORDS {
            if keyed {
                account
                    .idempotent(format!("request-{i:08}"))
                    .deposit(1)
                    .await
                    .unwrap();
            } else {
                account.deposit(1).await.unwrap();
            }
        }
        let change = region.change();
        *kept = i64::try_from(change.bytes_allocated).unwrap()
            - i64::try_from(change.bytes_deallocated).unwrap();
        account.stop().await.unwrap();
    }
    kept[1] - kept[0]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!(
            "one durable write-through server, one caller; mean latency per call in us, median of \
             {ROUNDS} interleaved rounds of {CALLS} calls (lowest-highest round):\n"
        );
        println!("| store | without a key | with a key | keyed / plain |");
        println!("|---|---|---|---|");
        let dir = tempfile::tempdir().unwrap();
        compare("redb", Storage::new(Redb::open(dir.path().join("keyed.redb")).unwrap())).await;
        match std::env::var("PEEPER_PG_URL") {
            Ok(url) if !url.is_empty() => {
                let schema = format!("keyed_bench_{}", std::process::id());
                let postgres = peeper::store::Postgres::builder(&url)
                    .schema(&schema)
                    .connect()
                    .await
                    .unwrap();
                compare("postgres", Storage::new(postgres)).await;
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                    .await
                    .unwrap();
            }
            _ => println!("| postgres | skipped: PEEPER_PG_URL is not set (run through `scripts/with-postgres`) | | |"),
        }

        println!("\nheap kept for {RECORDS} records (16-byte keys, u64 replies), keyed less unkeyed calls:\n");
        println!("| server | bytes | per record |");
        println!("|---|---|---|");
        for (label, storage) in [
            ("in memory", None),
            ("durable (Memory store)", Some(Storage::new(Memory::new()))),
        ] {
            let bytes = memory_per_records(storage).await;
            println!(
                "| {label} | {bytes} | {:.0} |",
                bytes as f64 / RECORDS as f64
            );
        }
    });
}
