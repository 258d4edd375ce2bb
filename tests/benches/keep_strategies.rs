//! What keeping the state costs, by keep strategy and state size: the round trip of one call on
//! a server whose state holds `size` bytes, for
//!
//! - `Snapshot`, a `&mut self` call: the state is copied (`clone_from`) after the handler;
//! - `Projection`, a `&mut self` call on a state that keeps an 8-byte counter and skips the
//!   `size` bytes (`#[keep(skip)]`, rebuilt after a crash): only the kept part is copied;
//! - `InPlace`, a `&mut self` call: nothing is copied;
//! - a `&self` call (any strategy): nothing is copied, the floor.
//!
//! Not criterion: an interleaved harness, so that the numbers hold on a shared 2-core machine.
//! For each size, the four servers run in one process, on one current-thread runtime, and take
//! turns: each round times one batch of calls per server (about 2 ms each, the batch sized by a
//! calibration), in an order that rotates from round to round. A burst of noise then lands on
//! every strategy alike instead of on one. The result per (size, strategy) is the median over
//! the rounds of the time per call, with the 10th and 90th percentiles as the spread.
//!
//! `cargo bench -p peeper-tests --bench keep_strategies` prints the table and writes it to
//! `target/keep-strategies.csv`; `python3 scripts/keep-chart.py` draws
//! `book/src/keep-strategies.svg` and the table of `book/src/choosing-a-strategy.md` from it.
//! `-- --quick` runs fewer rounds.
#![allow(
    clippy::unwrap_used,
    missing_docs,
    unreachable_pub,
    missing_debug_implementations
)]

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Snap {
    data: Vec<u8>,
}

#[peeper::server]
impl Snap {
    #[call]
    fn touch(&mut self) -> u8 {
        self.data[0] = self.data[0].wrapping_add(1);
        self.data[0]
    }

    #[call]
    fn read(&self) -> u8 {
        self.data[0]
    }
}

#[derive(Default, peeper::State)]
pub struct Proj {
    touched: u64,
    #[keep(skip)]
    data: Vec<u8>,
}

#[peeper::server(keep = projection)]
impl Proj {
    #[call]
    fn touch(&mut self) -> u8 {
        self.touched += 1;
        self.data[0] = self.data[0].wrapping_add(1);
        self.data[0]
    }
}

pub struct Inplace {
    data: Vec<u8>,
}

#[peeper::server(keep = in_place)]
impl Inplace {
    #[call]
    fn touch(&mut self) -> u8 {
        self.data[0] = self.data[0].wrapping_add(1);
        self.data[0]
    }
}

const SIZES: [usize; 7] = [64, 1 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20];
const STRATEGIES: [&str; 4] = ["Snapshot", "Projection", "InPlace", "&self (no copy)"];
const BATCH_TARGET: Duration = Duration::from_millis(2);

struct Servers {
    snap: SnapClient,
    proj: ProjClient,
    inplace: InplaceClient,
}

impl Servers {
    async fn call(&self, strategy: usize) {
        let reply = match strategy {
            0 => self.snap.touch().await,
            1 => self.proj.touch().await,
            2 => self.inplace.touch().await,
            _ => self.snap.read().await,
        };
        black_box(reply.unwrap());
    }

    /// The time per call over `calls` calls.
    async fn time(&self, strategy: usize, calls: u32) -> f64 {
        let start = Instant::now();
        for _ in 0..calls {
            self.call(strategy).await;
        }
        start.elapsed().as_secs_f64() * 1e9 / f64::from(calls)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = p * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}

fn main() {
    // `cargo bench` passes `--bench`; `--quick` asks for fewer rounds.
    let quick = std::env::args().any(|arg| arg == "--quick");
    let rounds: usize = if quick { 11 } else { 51 };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    runtime.block_on(async {
        for size in SIZES {
            let servers = Servers {
                snap: Snap::start(Snap {
                    data: vec![1; size],
                })
                .await
                .unwrap(),
                proj: Proj::start(Proj {
                    touched: 0,
                    data: vec![1; size],
                })
                .await
                .unwrap(),
                inplace: Inplace::start(Inplace {
                    data: vec![1; size],
                })
                .await
                .unwrap(),
            };
            // Warm up, then size each strategy's batch to about `BATCH_TARGET`.
            let mut batch = [0u32; STRATEGIES.len()];
            for (strategy, calls) in batch.iter_mut().enumerate() {
                servers.time(strategy, 20).await;
                let per_call = servers.time(strategy, 50).await;
                *calls = ((BATCH_TARGET.as_secs_f64() * 1e9 / per_call) as u32).clamp(5, 20_000);
            }
            let mut samples = vec![Vec::with_capacity(rounds); STRATEGIES.len()];
            for round in 0..rounds {
                for turn in 0..STRATEGIES.len() {
                    let strategy = (round + turn) % STRATEGIES.len();
                    samples[strategy].push(servers.time(strategy, batch[strategy]).await);
                }
            }
            for (strategy, mut times) in samples.into_iter().enumerate() {
                times.sort_by(f64::total_cmp);
                rows.push((
                    size,
                    STRATEGIES[strategy],
                    percentile(&times, 0.5),
                    percentile(&times, 0.1),
                    percentile(&times, 0.9),
                    batch[strategy],
                ));
            }
            servers.snap.stop().await.unwrap();
            servers.proj.stop().await.unwrap();
            servers.inplace.stop().await.unwrap();
        }
    });

    let mut csv =
        String::from("size_bytes,strategy,median_ns,p10_ns,p90_ns,calls_per_batch,rounds\n");
    println!(
        "{:>10}  {:<16} {:>12} {:>12} {:>12}",
        "state", "strategy", "median", "p10", "p90"
    );
    for (size, strategy, median, p10, p90, calls) in &rows {
        println!("{size:>10}  {strategy:<16} {median:>10.0}ns {p10:>10.0}ns {p90:>10.0}ns");
        csv.push_str(&format!(
            "{size},{strategy},{median:.1},{p10:.1},{p90:.1},{calls},{rounds}\n"
        ));
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("keep-strategies.csv");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(csv.as_bytes()).unwrap();
    println!("written to {}", path.display());
}
