//! Stopping one child of a `DynamicSupervisor` that holds many: the cost must not grow with the
//! number of children (it grew linearly while children were kept in a `Vec` and an ended one was
//! removed with `retain`: stopping all of N children was O(N²)).
//!
//! `cargo bench -p peeper-tests --bench dynamic_scale` prints, for 1k, 10k and 100k idle children
//! on a current-thread runtime: the mean time of `terminate_child` over 1,000 children spread
//! across the supervisor, median of 5 rounds with the lowest and highest round. Not a criterion
//! benchmark (it prints a table): each size is set up once, which criterion's iteration model does
//! not fit.
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::time::{Duration, Instant};

use peeper::DynamicSupervisor;

#[derive(Clone, Default)]
struct Idle;

#[peeper::server]
impl Idle {
    #[call]
    fn ping(&self) {}
}

const STOPS_PER_ROUND: usize = 200;
const ROUNDS: usize = 5;

async fn per_stop(children: usize) -> (Duration, Duration, Duration) {
    let supervisor = DynamicSupervisor::new();
    let mut clients = Vec::with_capacity(children);
    for _ in 0..children {
        clients.push(supervisor.start_child(Idle::builder(Idle)).await.unwrap());
    }
    // Children spread over the whole supervisor, the first round's from the front, the next
    // round's a little further in, and so on: no round stops only recently started ones.
    let stride = children / (STOPS_PER_ROUND * ROUNDS);
    let mut rounds = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let chosen: Vec<_> = (0..STOPS_PER_ROUND)
            .map(|i| clients[(i * ROUNDS + round) * stride].clone())
            .collect();
        let began = Instant::now();
        for child in &chosen {
            supervisor.terminate_child(child.branch()).await.unwrap();
        }
        rounds.push(began.elapsed() / u32::try_from(STOPS_PER_ROUND).unwrap());
    }
    supervisor.shutdown().await;
    rounds.sort_unstable();
    (rounds[ROUNDS / 2], rounds[0], rounds[ROUNDS - 1])
}

fn us(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1e6)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!(
            "`terminate_child` of one idle child, us per stop: median of {ROUNDS} rounds of \
             {STOPS_PER_ROUND} stops (lowest-highest round)\n"
        );
        println!("| children | per stop |");
        println!("|---:|---|");
        for children in [1_000, 10_000, 100_000] {
            let (median, low, high) = per_stop(children).await;
            println!("| {children} | {} ({}-{}) |", us(median), us(low), us(high));
        }
    });
}
