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
//! - contender `baseline` (the hand-written tokio actor of `shared/counters.rs`) or `peeper`
//!   (a `#[peeper::server]` counter with the default keep, as in the `scale` bench).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

#[path = "shared/counters.rs"]
#[allow(dead_code)] // the peers' counters are the other benches'
mod counters;

use counters::Counter;

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
        other => panic!("unknown workload `{other}`: cast, call or cycle"),
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
        other => panic!("unknown workload `{other}`: cast, call or cycle"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` runs every bench binary with `--bench`: nothing to do then.
    let [workload, contender, n] = &args[..] else {
        if args.iter().any(|arg| arg == "--bench") {
            return;
        }
        panic!("usage: instructions <cast|call|cycle> <baseline|peeper> <n>");
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
