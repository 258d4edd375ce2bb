//! How peeper scales with the number of servers, side by side with a hand-written tokio actor
//! (the baseline: one task, an unbounded tokio mpsc mailbox, a oneshot per reply, a `JoinHandle`
//! to wait for the stop), ractor and kameo. Every contender is a counter: a call `get` (the
//! count) and a cast `inc`; peeper's is a `#[peeper::server]` with the default keep (Snapshot).
//!
//! `cargo bench -p peeper-tests --bench scale` prints one markdown table (and writes the same
//! numbers to `target/scale.csv`). Rows:
//!
//! - `start_call_stop_ct`: current-thread runtime; start a server, one call, stop it and wait
//!   until it is gone (peeper `stop().await`; the baseline drops its sender and awaits the
//!   `JoinHandle`; ractor `stop` and its `JoinHandle`; kameo `stop_gracefully` and
//!   `wait_for_shutdown`). ns per cycle, rounds of `CYCLES` cycles.
//! - `start_mt`, `stop_mt`: a 2-worker multi-thread runtime; one task starts N servers one after
//!   the other (ns per server; a start is complete when the contender's `start` returns: ractor
//!   waits for the server's init, kameo for `wait_for_startup`, the baseline only spawns, and
//!   peeper waits for `init` only when there is one: this counter has none), then the same task stops all N with at most 64 stops in flight
//!   (`futures::stream::buffer_unordered(64)`, each stop waiting until its server is gone; ns per
//!   server). One unmeasured start + stop at the largest N comes first, to pre-fault the memory.
//! - `heap_idle`: bytes still allocated (a counting allocator, `stats_alloc`, is the global one)
//!   after starting N idle servers on a current-thread runtime, per server; after a warm-up start
//!   + stop of N, as in the `memory` bench. One round: it is deterministic.
//! - `heap_hibernated_*` (peeper only, N = 10,000): durable servers on a `Memory` store with
//!   `idle_after(1 ms)`, once every one has hibernated (`Branch::hibernated`): `total` is all the
//!   heap they keep, store included; `store` is what the same states cost in a fresh `Memory`
//!   store (the stored envelopes committed into it under the same keys); `less_store` is the
//!   difference: what peeper itself keeps per hibernating server (client, branch, registry name).
//!   The `released_*` rows are the same once the bench has dropped the clients it held: nothing
//!   holds the servers any more, and each is released into a record in the registry.
//! - `call_mt_8_p50`, `call_mt_8_tput`: a 2-worker multi-thread runtime, N servers; 8 caller tasks
//!   each make `CALLS_PER_CALLER` calls to servers drawn uniformly at random (xorshift, a fixed
//!   seed per round and caller: every contender sees the same sequence). The median latency of
//!   the round's calls (ns, each call timed on its own, pooled over the callers) and the round's
//!   throughput (calls/s, from the spawn of the callers to the last one's end; for this row a
//!   ratio above 1 is better).
//! - `call_ct`: one call round trip on a current-thread runtime, back to back (ns per call).
//! - `cast_ct`: batches of 1,000 casts flushed by one call (ns per cast).
//! - `cast_mt_8_one`: a 2-worker multi-thread runtime, one server; 8 sender tasks at once, each
//!   sending batches of 1,000 casts flushed by one call: the mailbox under contention (ns per cast,
//!   from the spawn of the senders to the last one's end).
//!
//! Method: not criterion. The contenders run in one process and take turns: every round measures
//! each contender once, in an order that rotates from round to round, so that a burst of noise
//! (this is a shared 2-core machine) lands on all of them alike. Each cell is the median over the
//! rounds, with the lowest and the highest round in parentheses; `ratio` is peeper's median over
//! the baseline's, and the ractor and kameo cells end with theirs. The time rows (not `start_mt`
//! and `stop_mt`) begin with one unmeasured round. Every time includes the counting allocator's
//! bookkeeping (a few atomic additions per allocation), for every contender alike.
//!
//! Environment:
//! - `PEEPER_SCALE_ROUNDS`: rounds of the time rows (default 7);
//! - `PEEPER_SCALE_MAX`: the largest N (default 100,000; `1000000` adds N = 1,000,000 to
//!   `start_mt` / `stop_mt`; a smaller value drops the larger N, e.g. `10000` for a quick check);
//! - `PEEPER_SCALE_OTHERS=0`: baseline and peeper only (no ractor, no kameo);
//! - `PEEPER_SCALE_ONLY=call_mt,heap`: only the rows whose workload starts with one of these.
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::alloc::System;
use std::fmt::Write as _;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use peeper::store::{Memory, Storage, Store, Write};
use serde::{Deserialize, Serialize};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, Stats, StatsAlloc};
use tokio::runtime::Runtime;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Start + call + stop cycles per round of `start_call_stop_ct`.
const CYCLES: usize = 2_000;
/// Calls per round of `call_ct`.
const CALLS: usize = 20_000;
/// Casts flushed by one call in `cast_ct`, and batches of them per round.
const CAST_BATCH: usize = 1_000;
const CAST_BATCHES: usize = 20;
/// Caller tasks of `call_mt_8`, and calls each makes per round.
const CALLERS: usize = 8;
const CALLS_PER_CALLER: usize = 10_000;
/// Sender tasks of `cast_mt_8_one`.
const SENDERS: usize = 8;
/// Stops in flight at once in `stop_mt`.
const STOPS_IN_FLIGHT: usize = 64;
/// Servers of the `heap_hibernated_*` rows (fewer if `PEEPER_SCALE_MAX` is lower).
const HIBERNATED: usize = 10_000;

const CONTENDERS: [&str; 4] = ["baseline", "peeper", "ractor", "kameo"];

/// peeper's durable counter, for the `heap_hibernated_*` rows.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Sleeper {
    count: u64,
}

#[peeper::server]
impl Sleeper {
    #[call]
    fn get(&self) -> u64 {
        self.count
    }
}

impl peeper::Persist for Sleeper {
    const KIND: &'static str = "scale-bench-sleeper";
}

/// Every contender's counter.
#[path = "shared/counters.rs"]
mod servers;

use servers::{Counter, CounterClient};

/// One contender: how to start an idle counter, cast and call it, and stop it (waiting until it
/// is gone). The futures are `Send`: the multi-thread rows run them in spawned tasks.
trait Contender: 'static {
    type Handle: Send + Sync + 'static;
    fn start() -> impl Future<Output = Self::Handle> + Send;
    fn cast(handle: &Self::Handle);
    fn call(handle: &Self::Handle) -> impl Future<Output = u64> + Send;
    fn stop(handle: Self::Handle) -> impl Future<Output = ()> + Send;
}

struct Baseline;

impl Contender for Baseline {
    type Handle = servers::Actor;
    async fn start() -> Self::Handle {
        servers::Actor::start()
    }
    fn cast(handle: &Self::Handle) {
        handle.inc();
    }
    async fn call(handle: &Self::Handle) -> u64 {
        handle.get().await
    }
    async fn stop(handle: Self::Handle) {
        handle.stop().await;
    }
}

struct Peeper;

impl Contender for Peeper {
    type Handle = CounterClient;
    async fn start() -> Self::Handle {
        Counter::start(Counter::default()).await.expect("start")
    }
    fn cast(handle: &Self::Handle) {
        handle.inc().expect("cast");
    }
    async fn call(handle: &Self::Handle) -> u64 {
        handle.get().await.expect("call")
    }
    async fn stop(handle: Self::Handle) {
        handle.stop().await.expect("stop");
    }
}

struct Ractor;

impl Contender for Ractor {
    type Handle = (
        ractor::ActorRef<servers::RactorMsg>,
        tokio::task::JoinHandle<()>,
    );
    async fn start() -> Self::Handle {
        ractor::Actor::spawn(None, servers::Ractor, 0)
            .await
            .expect("spawn")
    }
    fn cast((actor, _): &Self::Handle) {
        actor.cast(servers::RactorMsg::Inc).expect("cast");
    }
    async fn call((actor, _): &Self::Handle) -> u64 {
        match actor.call(servers::RactorMsg::Get, None).await {
            Ok(ractor::rpc::CallResult::Success(value)) => value,
            _ => panic!("the ractor call failed"),
        }
    }
    async fn stop((actor, task): Self::Handle) {
        actor.stop(None);
        task.await.expect("ractor ended");
    }
}

struct Kameo;

impl Contender for Kameo {
    type Handle = kameo::actor::ActorRef<servers::Kameo>;
    async fn start() -> Self::Handle {
        let actor = kameo::actor::Spawn::spawn_with_mailbox(
            servers::Kameo::default(),
            kameo::mailbox::unbounded(),
        );
        actor.wait_for_startup().await;
        actor
    }
    fn cast(handle: &Self::Handle) {
        handle.tell(servers::Inc).try_send().expect("tell");
    }
    async fn call(handle: &Self::Handle) -> u64 {
        handle.ask(servers::Get).await.expect("ask")
    }
    async fn stop(handle: Self::Handle) {
        handle.stop_gracefully().await.expect("stop");
        handle.wait_for_shutdown().await;
    }
}

/// Runs `$body` with `$K` the contender numbered `$which` (an index of `CONTENDERS`).
macro_rules! with_contender {
    ($which:expr, $K:ident => $body:expr) => {
        match $which {
            0 => {
                type $K = Baseline;
                $body
            }
            1 => {
                type $K = Peeper;
                $body
            }
            2 => {
                type $K = Ractor;
                $body
            }
            _ => {
                type $K = Kameo;
                $body
            }
        }
    };
}

/// One [`Run`] per contender in `$active`: `$body`, with `$c` the contender's index and `$K` its
/// type (see [`with_contender!`]).
macro_rules! runs {
    ($active:expr, |$c:ident| $K:ident => $body:expr) => {
        $active
            .iter()
            .map(|&$c| with_contender!($c, $K => $body))
            .collect()
    };
}

/// One contender's part of a measurement: `measure` takes the round's number and returns `M`
/// values; `finish` stops what the measurement keeps running between rounds.
struct Run<'a, const M: usize> {
    contender: usize,
    measure: Box<dyn FnMut(usize) -> [f64; M] + 'a>,
    finish: Box<dyn FnOnce() + 'a>,
}

impl<'a, const M: usize> Run<'a, M> {
    fn new(
        contender: usize,
        measure: impl FnMut(usize) -> [f64; M] + 'a,
        finish: impl FnOnce() + 'a,
    ) -> Self {
        Run {
            contender,
            measure: Box::new(measure),
            finish: Box::new(finish),
        }
    }
}

/// What every contender measured: `samples[run][metric]` holds one value per round.
struct Samples<const M: usize> {
    contenders: Vec<usize>,
    samples: Vec<[Vec<f64>; M]>,
}

/// Runs `rounds` rounds (after one unmeasured one if `warm_up`): each round measures every run
/// once, starting one further along than the round before. Then finishes every run.
fn interleave<const M: usize>(
    rounds: usize,
    warm_up: bool,
    mut runs: Vec<Run<'_, M>>,
) -> Samples<M> {
    let mut samples: Vec<[Vec<f64>; M]> = (0..runs.len())
        .map(|_| std::array::from_fn(|_| Vec::with_capacity(rounds)))
        .collect();
    if warm_up {
        for run in &mut runs {
            (run.measure)(rounds);
        }
    }
    for round in 0..rounds {
        for turn in 0..runs.len() {
            let at = (round + turn) % runs.len();
            let values = (runs[at].measure)(round);
            for (metric, value) in values.into_iter().enumerate() {
                samples[at][metric].push(value);
            }
        }
    }
    let contenders = runs.iter().map(|run| run.contender).collect();
    for run in runs {
        let Run {
            measure, finish, ..
        } = run;
        // The measurement lets go of what it shares with `finish` first.
        drop(measure);
        finish();
    }
    Samples {
        contenders,
        samples,
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Ns,
    Bytes,
    PerSec,
}

impl Unit {
    fn label(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::Bytes => "B",
            Unit::PerSec => "/s",
        }
    }

    fn show(self, value: f64) -> String {
        match self {
            Unit::Ns | Unit::Bytes => format!("{value:.0}"),
            Unit::PerSec if value >= 1e6 => format!("{:.2}M", value / 1e6),
            Unit::PerSec => format!("{:.0}k", value / 1e3),
        }
    }
}

/// The median of `values` (of the middle two for an even count), the lowest and the highest.
#[derive(Clone, Copy)]
struct Spread {
    median: f64,
    low: f64,
    high: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        Spread {
            median: if sorted.len().is_multiple_of(2) {
                f64::midpoint(sorted[middle - 1], sorted[middle])
            } else {
                sorted[middle]
            },
            low: sorted[0],
            high: sorted[sorted.len() - 1],
        }
    }

    fn show(self, unit: Unit) -> String {
        format!(
            "{} ({}-{})",
            unit.show(self.median),
            unit.show(self.low),
            unit.show(self.high)
        )
    }
}

/// The printed table and its CSV copy.
struct Table {
    csv: String,
}

impl Table {
    fn new() -> Self {
        println!("| workload | N | baseline | peeper | ratio | ractor | kameo |");
        println!("|---|---:|---|---|---:|---|---|");
        Table {
            csv: String::from("workload,unit,n,contender,median,low,high,rounds\n"),
        }
    }

    /// Prints one row: metric `metric` of `samples`.
    fn row<const M: usize>(
        &mut self,
        workload: &str,
        unit: Unit,
        n: usize,
        samples: &Samples<M>,
        metric: usize,
    ) {
        let mut cells = [None; CONTENDERS.len()];
        for (contender, values) in samples.contenders.iter().zip(&samples.samples) {
            cells[*contender] = Some((Spread::of(&values[metric]), values[metric].len()));
        }
        self.print(workload, unit, n, &cells);
    }

    fn print(
        &mut self,
        workload: &str,
        unit: Unit,
        n: usize,
        cells: &[Option<(Spread, usize)>; CONTENDERS.len()],
    ) {
        let base = cells[0].map(|(spread, _)| spread.median);
        let ratio = |spread: Spread| base.map(|base| spread.median / base);
        let show = |at: usize| match cells[at] {
            None => "-".to_owned(),
            Some((spread, _)) => spread.show(unit),
        };
        let peeper_ratio = cells[1]
            .and_then(|(spread, _)| ratio(spread))
            .map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}x"));
        let other = |at: usize| match (cells[at], cells[at].and_then(|(s, _)| ratio(s))) {
            (Some((spread, _)), Some(ratio)) => format!("{} {ratio:.2}x", spread.show(unit)),
            _ => show(at),
        };
        println!(
            "| {workload} [{}] | {n} | {} | {} | {peeper_ratio} | {} | {} |",
            unit.label(),
            show(0),
            show(1),
            other(2),
            other(3),
        );
        for (contender, cell) in CONTENDERS.iter().zip(cells) {
            if let Some((spread, rounds)) = cell {
                writeln!(
                    self.csv,
                    "{workload},{},{n},{contender},{:.1},{:.1},{:.1},{rounds}",
                    unit.label(),
                    spread.median,
                    spread.low,
                    spread.high
                )
                .unwrap();
            }
        }
    }
}

fn ns_per(elapsed: Duration, operations: usize) -> f64 {
    elapsed.as_secs_f64() * 1e9 / operations as f64
}

/// Live heap bytes in `stats`.
fn live_bytes(stats: &Stats) -> isize {
    stats.bytes_allocated.cast_signed() - stats.bytes_deallocated.cast_signed()
        + stats.bytes_reallocated
}

/// `start_call_stop_ct`: ns per start + call + stop cycle.
fn start_call_stop_ct<K: Contender>(rt: &Runtime, contender: usize) -> Run<'_, 1> {
    Run::new(
        contender,
        move |_| {
            rt.block_on(async {
                let began = Instant::now();
                for _ in 0..CYCLES {
                    let handle = K::start().await;
                    black_box(K::call(&handle).await);
                    K::stop(handle).await;
                }
                [ns_per(began.elapsed(), CYCLES)]
            })
        },
        || {},
    )
}

/// A run whose rounds all measure the one server it starts first (in a task of `rt`, so that on a
/// multi-thread runtime it runs on a worker thread); the server stops after the last round.
fn on_one_server<'a, K: Contender, const M: usize>(
    rt: &'a Runtime,
    contender: usize,
    mut round: impl FnMut(&Arc<K::Handle>) -> [f64; M] + 'a,
) -> Run<'a, M> {
    let handle = Arc::new(rt.block_on(async { tokio::spawn(K::start()).await.unwrap() }));
    let kept = handle.clone();
    Run::new(
        contender,
        move |_| round(&handle),
        move || {
            let handle = Arc::into_inner(kept).unwrap();
            rt.block_on(async { tokio::spawn(K::stop(handle)).await.unwrap() });
        },
    )
}

/// `call_ct` and `cast_ct` on one server: ns per call, ns per cast.
fn calls_ct<K: Contender>(rt: &Runtime, contender: usize) -> Run<'_, 2> {
    on_one_server::<K, 2>(rt, contender, |handle| {
        rt.block_on(async {
            let began = Instant::now();
            for _ in 0..CALLS {
                black_box(K::call(handle).await);
            }
            let call = ns_per(began.elapsed(), CALLS);
            let began = Instant::now();
            for _ in 0..CAST_BATCHES {
                for _ in 0..CAST_BATCH {
                    K::cast(handle);
                }
                black_box(K::call(handle).await);
            }
            [call, ns_per(began.elapsed(), CAST_BATCH * CAST_BATCHES)]
        })
    })
}

/// `cast_mt_8_one`: `SENDERS` tasks casting to one server at once, each flushing its batches with
/// a call; ns per cast.
fn casts_mt<K: Contender>(rt: &Runtime, contender: usize) -> Run<'_, 1> {
    on_one_server::<K, 1>(rt, contender, |handle| {
        rt.block_on(async {
            let began = Instant::now();
            let senders: Vec<_> = (0..SENDERS)
                .map(|_| {
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        for _ in 0..CAST_BATCHES {
                            for _ in 0..CAST_BATCH {
                                K::cast(&handle);
                            }
                            black_box(K::call(&handle).await);
                        }
                    })
                })
                .collect();
            for sender in senders {
                sender.await.unwrap();
            }
            [ns_per(began.elapsed(), SENDERS * CAST_BATCHES * CAST_BATCH)]
        })
    })
}

/// Starts `n` servers one after the other, then stops them all with `STOPS_IN_FLIGHT` stops in
/// flight: ns per start, ns per stop. Runs in a task of `rt`.
fn start_stop_mt<K: Contender>(rt: &Runtime, n: usize) -> [f64; 2] {
    rt.block_on(async {
        tokio::spawn(async move {
            let mut handles = Vec::with_capacity(n);
            let began = Instant::now();
            for _ in 0..n {
                handles.push(K::start().await);
            }
            let start = ns_per(began.elapsed(), n);
            let began = Instant::now();
            stop_all::<K>(handles).await;
            [start, ns_per(began.elapsed(), n)]
        })
        .await
        .unwrap()
    })
}

async fn stop_all<K: Contender>(handles: Vec<K::Handle>) {
    futures::stream::iter(handles)
        .map(K::stop)
        .buffer_unordered(STOPS_IN_FLIGHT)
        .for_each(|()| std::future::ready(()))
        .await;
}

/// A xorshift64 generator: cheap, and the same sequence for every contender.
struct XorShift(u64);

impl XorShift {
    fn new(round: usize, caller: usize) -> Self {
        XorShift(0x9E37_79B9_7F4A_7C15 ^ ((round as u64) << 16 | caller as u64))
    }

    fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x % n as u64) as usize
    }
}

/// `call_mt_8` on `n` servers started once: p50 ns per call, calls per second.
fn calls_mt<K: Contender>(rt: &Runtime, contender: usize, n: usize) -> Run<'_, 2> {
    let fleet = rt.block_on(async {
        tokio::spawn(async move {
            let mut handles = Vec::with_capacity(n);
            for _ in 0..n {
                handles.push(K::start().await);
            }
            Arc::new(handles)
        })
        .await
        .unwrap()
    });
    let kept = fleet.clone();
    Run::new(
        contender,
        move |round| rt.block_on(call_round::<K>(fleet.clone(), round)),
        move || {
            let handles = Arc::into_inner(kept).unwrap();
            rt.block_on(async { tokio::spawn(stop_all::<K>(handles)).await.unwrap() });
        },
    )
}

async fn call_round<K: Contender>(fleet: Arc<Vec<K::Handle>>, round: usize) -> [f64; 2] {
    let began = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let fleet = fleet.clone();
            tokio::spawn(async move {
                let mut random = XorShift::new(round, caller);
                let mut latencies = Vec::with_capacity(CALLS_PER_CALLER);
                for _ in 0..CALLS_PER_CALLER {
                    let server = &fleet[random.below(fleet.len())];
                    let at = Instant::now();
                    black_box(K::call(server).await);
                    latencies.push(at.elapsed());
                }
                (latencies, Instant::now())
            })
        })
        .collect();
    let mut pooled = Vec::with_capacity(CALLERS * CALLS_PER_CALLER);
    let mut ended = began;
    for caller in callers {
        let (latencies, end) = caller.await.unwrap();
        pooled.extend(latencies);
        ended = ended.max(end);
    }
    let middle = pooled.len() / 2;
    let (_, p50, _) = pooled.select_nth_unstable(middle);
    [
        p50.as_secs_f64() * 1e9,
        pooled.len() as f64 / (ended - began).as_secs_f64(),
    ]
}

/// `heap_idle`: live heap bytes per idle server after starting `n`, on a current-thread runtime.
fn heap_idle<K: Contender>(rt: &Runtime, contender: usize, n: usize) -> Run<'_, 1> {
    Run::new(
        contender,
        move |_| {
            rt.block_on(async {
                // Warm up the runtime, the allocator and any lazy statics with as many servers
                // as measured, so that only per-server memory is left to count.
                let mut handles = Vec::with_capacity(n);
                for _ in 0..n {
                    handles.push(K::start().await);
                }
                for handle in &handles {
                    K::call(handle).await;
                }
                for handle in handles.drain(..) {
                    K::stop(handle).await;
                }
                let region = Region::new(GLOBAL);
                for _ in 0..n {
                    handles.push(K::start().await);
                }
                // One call each: every server has run (a peeper server allocates its worker's
                // future at its task's first poll, which a few yields here did not reach for
                // most of them) and waits at its idle `await` again, having handled a message.
                for handle in &handles {
                    K::call(handle).await;
                }
                let bytes = live_bytes(&region.change());
                for handle in handles {
                    K::stop(handle).await;
                }
                [bytes as f64 / n as f64]
            })
        },
        || {},
    )
}

/// Starts `n` durable servers named `{prefix}-{i}` on `storage` and waits until all hibernate.
async fn hibernate(n: usize, prefix: &str, storage: &Storage, into: &mut Vec<SleeperClient>) {
    for i in 0..n {
        let client = Sleeper::builder(Sleeper::default())
            .name(format!("{prefix}-{i}"))
            .store(storage.clone())
            .idle_after(Duration::from_millis(1))
            .start()
            .await
            .unwrap();
        into.push(client);
    }
    for client in into.iter() {
        client.branch().hibernated().await.unwrap();
    }
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

/// What [`heap_hibernated`] measures, per server.
struct Hibernated {
    /// Everything, while the bench holds a client of each server.
    held: f64,
    /// Everything, once the bench has let go of every client: the servers are released.
    released: f64,
    /// The store's part.
    store: f64,
}

/// `heap_hibernated_*`: live heap bytes per hibernated durable server (everything, with its
/// client held and released, and the store's part alone).
fn heap_hibernated(rt: &Runtime, n: usize) -> Hibernated {
    rt.block_on(async {
        // Warm up as `heap_idle` does (a stop deletes the server's state from the store).
        let storage = Storage::new(Memory::new());
        let mut clients = Vec::with_capacity(n);
        hibernate(n, "warm-up", &storage, &mut clients).await;
        for client in clients.drain(..) {
            client.stop().await.unwrap();
        }
        storage.close().await.unwrap();
        drop(storage);

        let storage = Storage::new(Memory::new());
        let region = Region::new(GLOBAL);
        hibernate(n, "hibernated", &storage, &mut clients).await;
        let held = live_bytes(&region.change());
        // Nothing holds them now: each is released as its client goes.
        clients.clear();
        let released = live_bytes(&region.change());

        // The same states, committed into a fresh store under the same keys.
        let mut stored = Vec::with_capacity(n);
        for key in storage.keys(Some("scale-bench-sleeper")).await.unwrap() {
            let bytes = storage.read(&key).await.unwrap().unwrap();
            stored.push((key, bytes));
        }
        assert_eq!(stored.len(), n, "every server's state is in the store");
        let copy = Memory::new();
        let region = Region::new(GLOBAL);
        for (key, bytes) in &stored {
            copy.commit(vec![Write::put(key.clone(), bytes.clone())])
                .await
                .unwrap();
        }
        let store = live_bytes(&region.change());
        drop(copy);

        // Each revived by its name, and stopped.
        for i in 0..n {
            let client = Sleeper::whereis(&format!("hibernated-{i}")).unwrap();
            client.stop().await.unwrap();
        }
        storage.close().await.unwrap();
        let per_server = |bytes: isize| bytes as f64 / n as f64;
        Hibernated {
            held: per_server(held),
            released: per_server(released),
            store: per_server(store),
        }
    })
}

fn setting(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value}: not a number")),
        Err(_) => default,
    }
}

fn main() {
    let rounds = setting("PEEPER_SCALE_ROUNDS", 7).max(1);
    let max = setting("PEEPER_SCALE_MAX", 100_000);
    let others = setting("PEEPER_SCALE_OTHERS", 1) != 0;
    let only = std::env::var("PEEPER_SCALE_ONLY").unwrap_or_default();
    let wants = |workload: &str| {
        only.is_empty()
            || only
                .split(',')
                .any(|prefix| workload.starts_with(prefix.trim()))
    };
    let active: Vec<usize> = if others { vec![0, 1, 2, 3] } else { vec![0, 1] };
    let sizes = |candidates: &[usize]| -> Vec<usize> {
        candidates.iter().copied().filter(|&n| n <= max).collect()
    };

    let ct = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    println!(
        "scale: {rounds} interleaved rounds (rotating order), max N {max}; median (lowest-highest \
         round); `cargo bench -p peeper-tests --bench scale`\n"
    );
    let mut table = Table::new();

    if wants("start_call_stop_ct") {
        let samples = interleave(
            rounds,
            true,
            runs!(active, |c| K => start_call_stop_ct::<K>(&ct, c)),
        );
        table.row("start_call_stop_ct", Unit::Ns, 1, &samples, 0);
    }

    if wants("call_ct") || wants("cast_ct") {
        let samples = interleave(rounds, true, runs!(active, |c| K => calls_ct::<K>(&ct, c)));
        table.row("call_ct", Unit::Ns, 1, &samples, 0);
        table.row("cast_ct", Unit::Ns, 1, &samples, 1);
    }

    if wants("cast_mt_8_one") {
        let samples = interleave(rounds, true, runs!(active, |c| K => casts_mt::<K>(&mt, c)));
        table.row("cast_mt_8_one", Unit::Ns, 1, &samples, 0);
    }

    let start_sizes = if wants("start_mt") || wants("stop_mt") {
        sizes(&[1_000, 10_000, 100_000, 1_000_000])
    } else {
        Vec::new()
    };
    if let Some(&largest) = start_sizes.last() {
        // Pre-faults the memory the largest N needs.
        for &c in &active {
            with_contender!(c, K => start_stop_mt::<K>(&mt, largest));
        }
    }
    for &n in &start_sizes {
        let mt = &mt;
        let samples = interleave(
            rounds,
            false,
            active
                .iter()
                .map(|&c| {
                    Run::new(
                        c,
                        move |_| with_contender!(c, K => start_stop_mt::<K>(mt, n)),
                        || {},
                    )
                })
                .collect(),
        );
        table.row("start_mt", Unit::Ns, n, &samples, 0);
        table.row("stop_mt", Unit::Ns, n, &samples, 1);
    }

    for n in sizes(&[1_000, 10_000, 100_000])
        .into_iter()
        .filter(|_| wants("call_mt"))
    {
        let samples = interleave(
            rounds,
            true,
            runs!(active, |c| K => calls_mt::<K>(&mt, c, n)),
        );
        table.row("call_mt_8_p50", Unit::Ns, n, &samples, 0);
        table.row("call_mt_8_tput", Unit::PerSec, n, &samples, 1);
    }

    for n in sizes(&[10_000, 100_000])
        .into_iter()
        .filter(|_| wants("heap_idle"))
    {
        let samples = interleave(1, false, runs!(active, |c| K => heap_idle::<K>(&ct, c, n)));
        table.row("heap_idle", Unit::Bytes, n, &samples, 0);
    }

    let n = HIBERNATED.min(max);
    let hibernated = if wants("heap_hibernated") {
        heap_hibernated(&ct, n)
    } else {
        Hibernated {
            held: 0.0,
            released: 0.0,
            store: 0.0,
        }
    };
    for (workload, bytes) in [
        ("heap_hibernated_total", hibernated.held),
        ("heap_hibernated_store", hibernated.store),
        (
            "heap_hibernated_less_store",
            hibernated.held - hibernated.store,
        ),
        ("heap_hibernated_released_total", hibernated.released),
        (
            "heap_hibernated_released_less_store",
            hibernated.released - hibernated.store,
        ),
    ]
    .into_iter()
    .filter(|_| wants("heap_hibernated"))
    {
        let spread = Spread {
            median: bytes,
            low: bytes,
            high: bytes,
        };
        table.print(
            workload,
            Unit::Bytes,
            n,
            &[None, Some((spread, 1)), None, None],
        );
    }

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target");
    std::fs::create_dir_all(&path).unwrap();
    let path = path.join("scale.csv");
    std::fs::write(&path, &table.csv).unwrap();
    println!("\nwritten to {}", path.display());
}
