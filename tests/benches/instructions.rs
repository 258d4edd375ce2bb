//! Instructions per operation, for callgrind: one workload, one contender, `n` operations, on a
//! current-thread runtime. Counting instructions is deterministic where timing on a shared
//! 2-core machine is not, so this is how a change to a hot path is judged before the timed
//! benches confirm it. `scripts/instructions` runs it under `valgrind --tool=callgrind` at two
//! values of `n` and prints the difference per operation, which leaves out the start-up.
//!
//! `instructions <workload> <contender> <n>`:
//! - workload `cast`: `n` casts (`inc`), then one call to flush them;
//! - workload `call`: `n` call round trips (`get`);
//! - workload `cycle`: `n` times start a server, one call, stop it and wait until it is gone;
//! - workload `scatter`: start [`SCATTER`] servers, then `n` call round trips, each to one of
//!   them picked by a fixed pseudo-random sequence, after one call to each: run with
//!   `--cache-sim=yes`, it counts the cache misses a call costs when its server is cold, as at
//!   100k servers in the scale bench (`scripts/cache-misses`);
//! - contender `baseline` (the hand-written tokio actor of `shared/counters.rs`) or `peeper`
//!   (a `#[peeper::server]` counter with the default keep, as in the `scale` bench).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

#[path = "shared/counters.rs"]
#[allow(dead_code)] // the peers' counters are the other benches'
mod counters;

use counters::Counter;

/// The servers of the `scatter` workload: far more than any cache holds.
const SCATTER: usize = 100_000;

/// The fixed pseudo-random server order of `scatter` (a 64-bit LCG, Knuth's MMIX constants).
fn scatter(n: u64) -> impl Iterator<Item = usize> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n).map(move |_| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(x >> 33).unwrap() % SCATTER
    })
}

async fn baseline(workload: &str, n: u64) {
    match workload {
        "cast" => {
            let actor = counters::Actor::start();
            for _ in 0..n {
                actor.inc();
            }
            assert_eq!(actor.get().await, n);
            actor.stop().await;
        }
        "call" => {
            let actor = counters::Actor::start();
            for _ in 0..n {
                black_box(actor.get().await);
            }
            actor.stop().await;
        }
        "cycle" => {
            for _ in 0..n {
                let actor = counters::Actor::start();
                black_box(actor.get().await);
                actor.stop().await;
            }
        }
        "scatter" => {
            let actors: Vec<_> = (0..SCATTER).map(|_| counters::Actor::start()).collect();
            // Each server called once: what is measured is the steady state, not a first call.
            for actor in &actors {
                black_box(actor.get().await);
            }
            for i in scatter(n) {
                black_box(actors[i].get().await);
            }
            // Not the 100k servers' teardown, whose cost depends on the memory's layout.
            std::process::exit(0);
        }
        other => panic!("unknown workload `{other}`: cast, call, cycle or scatter"),
    }
}

async fn peeper(workload: &str, n: u64) {
    match workload {
        "cast" => {
            let counter = Counter::start(Counter::default()).await.unwrap();
            for _ in 0..n {
                counter.inc().unwrap();
            }
            assert_eq!(counter.get().await.unwrap(), n);
            counter.stop().await.unwrap();
        }
        "call" => {
            let counter = Counter::start(Counter::default()).await.unwrap();
            for _ in 0..n {
                black_box(counter.get().await.unwrap());
            }
            counter.stop().await.unwrap();
        }
        "cycle" => {
            for _ in 0..n {
                let counter = Counter::start(Counter::default()).await.unwrap();
                black_box(counter.get().await.unwrap());
                counter.stop().await.unwrap();
            }
        }
        "scatter" => {
            let mut counters = Vec::with_capacity(SCATTER);
            for _ in 0..SCATTER {
                counters.push(Counter::start(Counter::default()).await.unwrap());
            }
            for counter in &counters {
                black_box(counter.get().await.unwrap());
            }
            for i in scatter(n) {
                black_box(counters[i].get().await.unwrap());
            }
            // Not the 100k servers' teardown, whose cost depends on the memory's layout.
            std::process::exit(0);
        }
        other => panic!("unknown workload `{other}`: cast, call, cycle or scatter"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` runs every bench binary with `--bench`: nothing to do then.
    let [workload, contender, n] = &args[..] else {
        if args.iter().any(|arg| arg == "--bench") {
            return;
        }
        panic!("usage: instructions <cast|call|cycle|scatter> <baseline|peeper> <n>");
    };
    let n: u64 = n.parse().expect("n is a count");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match contender.as_str() {
        "baseline" => runtime.block_on(baseline(workload, n)),
        "peeper" => runtime.block_on(peeper(workload, n)),
        other => panic!("unknown contender `{other}`: baseline or peeper"),
    }
}
