//! Kept tables: which concurrent map peeper builds on, what its handle costs, and what a crash
//! costs with a big table.
//!
//! Run with `cargo bench -p peeper-tests --bench tables` (add a filter such as `-- maps/` while
//! developing).
//!
//! Groups:
//! - `maps/*`: the candidate maps, raw (no peeper): dashmap, papaya and scc's `HashMap` for hash
//!   tables, crossbeam-skiplist and scc's `TreeIndex` for ordered ones; `get` and `insert` from
//!   one thread, and a 90 % read mix on two threads;
//! - `handle/*`: `get` and `insert` through peeper's handles (the worker's own, and an outside
//!   `ReadOnly`/`ReadWrite`) against the same calls on the raw map peeper wraps, on 1,000 entries;
//! - `restart/*`: a kill, then the time until the next call is answered, with a kept table of
//!   1,000 and of 1,000,000 entries.
//!
//! Criterion measures one function after the other, so on a busy machine a change of load between
//! two of them shows up as a difference between them. The `handle` comparisons are therefore also
//! made *interleaved*: batches of the raw call and of peeper's call alternate, and the median of
//! the per-round ratios is printed at the end (`peeper / raw`, target <= 1.05).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use peeper::{OrderedTable, ReadOnly, ReadWrite, Table};
use tokio::runtime::Runtime;

/// Entries in the tables of the `maps` groups.
const ENTRIES: u64 = 100_000;

/// Entries in the tables of the `handle` groups: few enough to stay in cache, so that what is
/// compared is the call, not where two maps happen to lie in memory.
const HANDLE_ENTRIES: u64 = 1_000;

/// A cheap, well-spread sequence of keys in `0..ENTRIES`, so lookups do not walk memory in order.
fn key(i: u64) -> u64 {
    spread(i) % ENTRIES
}

fn spread(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A key in `0..HANDLE_ENTRIES`.
fn small(i: u64) -> u64 {
    spread(i) % HANDLE_ENTRIES
}

/// Operations per iteration of the two-thread groups.
const MIXED_OPS: u64 = 10_000;

trait Map: Send + Sync + 'static {
    const NAME: &'static str;
    fn new() -> Self;
    fn get(&self, key: u64) -> Option<u64>;
    fn insert(&self, key: u64, value: u64);
}

impl Map for dashmap::DashMap<u64, u64> {
    const NAME: &'static str = "dashmap";
    fn new() -> Self {
        dashmap::DashMap::new()
    }
    fn get(&self, key: u64) -> Option<u64> {
        self.get(&key).map(|value| *value)
    }
    fn insert(&self, key: u64, value: u64) {
        self.insert(key, value);
    }
}

impl Map for papaya::HashMap<u64, u64> {
    const NAME: &'static str = "papaya";
    fn new() -> Self {
        papaya::HashMap::new()
    }
    fn get(&self, key: u64) -> Option<u64> {
        self.pin().get(&key).copied()
    }
    fn insert(&self, key: u64, value: u64) {
        self.pin().insert(key, value);
    }
}

impl Map for scc::HashMap<u64, u64> {
    const NAME: &'static str = "scc";
    fn new() -> Self {
        scc::HashMap::new()
    }
    fn get(&self, key: u64) -> Option<u64> {
        self.read_sync(&key, |_, value| *value)
    }
    fn insert(&self, key: u64, value: u64) {
        self.upsert_sync(key, value);
    }
}

impl Map for crossbeam_skiplist::SkipMap<u64, u64> {
    const NAME: &'static str = "crossbeam-skiplist";
    fn new() -> Self {
        crossbeam_skiplist::SkipMap::new()
    }
    fn get(&self, key: u64) -> Option<u64> {
        self.get(&key).map(|entry| *entry.value())
    }
    fn insert(&self, key: u64, value: u64) {
        self.insert(key, value);
    }
}

impl Map for scc::TreeIndex<u64, u64> {
    const NAME: &'static str = "scc-treeindex";
    fn new() -> Self {
        scc::TreeIndex::new()
    }
    fn get(&self, key: u64) -> Option<u64> {
        self.peek_with(&key, |_, value| *value)
    }
    fn insert(&self, key: u64, value: u64) {
        self.upsert_sync(key, value);
    }
}

fn filled<M: Map>() -> M {
    filled_with(ENTRIES)
}

fn filled_with<M: Map>(entries: u64) -> M {
    let map = M::new();
    for i in 0..entries {
        map.insert(i, i);
    }
    map
}

/// One operation on every candidate of a kind, in one criterion group.
fn group<M1: Map, M2: Map, M3: Map>(c: &mut Criterion, name: &str, op: Op) {
    let mut group = c.benchmark_group(name);
    run::<M1>(&mut group, op);
    run::<M2>(&mut group, op);
    run::<M3>(&mut group, op);
    group.finish();
}

#[derive(Clone, Copy)]
enum Op {
    /// `get` of a present key, from one thread.
    Get,
    /// `insert` over a present key, from one thread.
    Insert,
    /// 90 % `get`, 10 % `insert`, on two threads at once.
    Mixed,
}

fn run<M: Map>(group: &mut BenchmarkGroup<'_, WallTime>, op: Op) {
    if M::NAME.is_empty() {
        return;
    }
    let map = filled::<M>();
    let mut i = 0;
    match op {
        Op::Get => group.bench_function(M::NAME, |b| {
            b.iter(|| {
                i += 1;
                black_box(map.get(key(i)))
            })
        }),
        Op::Insert => group.bench_function(M::NAME, |b| {
            b.iter(|| {
                i += 1;
                map.insert(key(i), i)
            })
        }),
        Op::Mixed => group.bench_function(M::NAME, |b| {
            b.iter(|| {
                std::thread::scope(|scope| {
                    for thread in 0..2 {
                        let map = &map;
                        scope.spawn(move || {
                            for op in 0..MIXED_OPS {
                                let k = key(op * 2 + thread);
                                if op % 10 == 0 {
                                    map.insert(k, op);
                                } else {
                                    black_box(map.get(k));
                                }
                            }
                        });
                    }
                })
            })
        }),
    };
}

/// A stand-in for "no third candidate".
struct None_;
impl Map for None_ {
    const NAME: &'static str = "";
    fn new() -> Self {
        None_
    }
    fn get(&self, _: u64) -> Option<u64> {
        None
    }
    fn insert(&self, _: u64, _: u64) {}
}

/// The candidate maps, raw: no peeper involved.
fn maps(c: &mut Criterion, summary: &mut Vec<String>) {
    type Dash = dashmap::DashMap<u64, u64>;
    type Papaya = papaya::HashMap<u64, u64>;
    type Scc = scc::HashMap<u64, u64>;
    type Skip = crossbeam_skiplist::SkipMap<u64, u64>;
    type Tree = scc::TreeIndex<u64, u64>;
    let (dash, papaya, scc) = (filled::<Dash>(), filled::<Papaya>(), filled::<Scc>());
    let (skip, tree) = (filled::<Skip>(), filled::<Tree>());
    summary.push(candidates(
        "hash get",
        vec![
            (
                "dashmap",
                Box::new(|i| {
                    black_box(Map::get(&dash, key(i)));
                }),
            ),
            (
                "papaya",
                Box::new(|i| {
                    black_box(Map::get(&papaya, key(i)));
                }),
            ),
            (
                "scc",
                Box::new(|i| {
                    black_box(Map::get(&scc, key(i)));
                }),
            ),
        ],
    ));
    summary.push(candidates(
        "hash insert",
        vec![
            ("dashmap", Box::new(|i| Map::insert(&dash, key(i), i))),
            ("papaya", Box::new(|i| Map::insert(&papaya, key(i), i))),
            ("scc", Box::new(|i| Map::insert(&scc, key(i), i))),
        ],
    ));
    summary.push(candidates(
        "ordered get",
        vec![
            (
                "crossbeam-skiplist",
                Box::new(|i| {
                    black_box(Map::get(&skip, key(i)));
                }),
            ),
            (
                "scc-treeindex",
                Box::new(|i| {
                    black_box(Map::get(&tree, key(i)));
                }),
            ),
        ],
    ));
    summary.push(candidates(
        "ordered insert",
        vec![
            (
                "crossbeam-skiplist",
                Box::new(|i| Map::insert(&skip, key(i), i)),
            ),
            ("scc-treeindex", Box::new(|i| Map::insert(&tree, key(i), i))),
        ],
    ));
    group::<Dash, Papaya, Scc>(c, "maps/hash_get", Op::Get);
    group::<Dash, Papaya, Scc>(c, "maps/hash_insert", Op::Insert);
    group::<Dash, Papaya, Scc>(c, "maps/hash_mixed_2_threads", Op::Mixed);
    group::<Skip, Tree, None_>(c, "maps/ordered_get", Op::Get);
    group::<Skip, Tree, None_>(c, "maps/ordered_insert", Op::Insert);
    group::<Skip, Tree, None_>(c, "maps/ordered_mixed_2_threads", Op::Mixed);
}

/// Serves its kept tables' handles, and answers `get` after a restart.
#[derive(Clone, Debug, Default)]
pub struct Holder;

#[peeper::server]
impl Holder {
    #[init]
    fn init(&mut self, ctx: &mut peeper::Context<Self>) -> Result<(), peeper::TableError> {
        ctx.table_with::<u64, u64>("hash", peeper::Access::Public)?;
        ctx.ordered_table_with::<u64, u64>("ordered", peeper::Access::Public)?;
        Ok(())
    }

    #[call]
    fn hash(&self, ctx: &mut peeper::Context<Self>) -> Option<Table<u64, u64>> {
        ctx.table_with("hash", peeper::Access::Public).ok()
    }

    #[call]
    fn ordered(&self, ctx: &mut peeper::Context<Self>) -> Option<OrderedTable<u64, u64>> {
        ctx.ordered_table_with("ordered", peeper::Access::Public)
            .ok()
    }

    #[call]
    fn get(&self, key: u64, ctx: &mut peeper::Context<Self>) -> Option<u64> {
        ctx.table_with::<u64, u64>("hash", peeper::Access::Public)
            .ok()?
            .get(&key)
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// Operations per batch of an interleaved comparison.
const BATCH: u64 = 5_000;
/// Rounds of an interleaved comparison (odd, for a plain median).
const ROUNDS: usize = 401;

/// Times `BATCH` calls of `op`, in ns per call.
fn per_op(op: &mut impl FnMut(u64), start: u64) -> f64 {
    let started = Instant::now();
    for i in start..start + BATCH {
        op(i);
    }
    started.elapsed().as_nanos() as f64 / BATCH as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One contender of an interleaved comparison: a name and one operation on key `i`.
type Contender<'a> = (&'a str, Box<dyn FnMut(u64) + 'a>);

/// Times batches of every contender in turn (starting with a different one each round), and
/// returns the median time of each and the median of its per-round ratio to the first one.
fn interleaved(mut contenders: Vec<Contender<'_>>) -> Vec<(String, f64, f64)> {
    let n = contenders.len();
    let mut times = vec![Vec::new(); n];
    for (_, op) in &mut contenders {
        per_op(op, 0); // warm up
    }
    for round in 0..ROUNDS {
        let start = round as u64 * BATCH;
        let mut this = vec![0.0; n];
        for k in 0..n {
            let c = (round + k) % n;
            this[c] = per_op(&mut contenders[c].1, start);
        }
        for c in 0..n {
            times[c].push(this[c]);
        }
    }
    (0..n)
        .map(|c| {
            let ratios = times[c].iter().zip(&times[0]).map(|(t, f)| t / f).collect();
            (
                contenders[c].0.to_owned(),
                median(times[c].clone()),
                median(ratios),
            )
        })
        .collect()
}

/// The candidates of one operation, as a summary line.
fn candidates(name: &str, contenders: Vec<Contender<'_>>) -> String {
    let results = interleaved(contenders);
    let mut line = format!("{name:<18}");
    for (contender, time, ratio) in results {
        line.push_str(&format!("  {contender} {time:>7.1} ns ({ratio:.2}x)"));
    }
    line
}

/// peeper's handle against the raw map, as a summary line checked against the 1.05 target.
fn overhead<'a>(name: &str, raw: impl FnMut(u64) + 'a, peeper: impl FnMut(u64) + 'a) -> String {
    let results = interleaved(vec![("raw", Box::new(raw)), ("peeper", Box::new(peeper))]);
    let ratio = results[1].2;
    format!(
        "{name:<24} raw {:>7.1} ns   peeper {:>7.1} ns   peeper/raw {ratio:.3} {}",
        results[0].1,
        results[1].1,
        if ratio <= 1.05 {
            "(<= 1.05)"
        } else {
            "(ABOVE 1.05)"
        },
    )
}

/// `get` and `insert` through each of peeper's handles, next to the raw map it wraps.
fn handle(c: &mut Criterion, summary: &mut Vec<String>) {
    let rt = runtime();
    let name = "handle-bench";
    let server = rt
        .block_on(Holder::builder(Holder).name(name).start())
        .expect("start");
    let hash = rt.block_on(server.hash()).expect("call").expect("a table");
    let ordered = rt
        .block_on(server.ordered())
        .expect("call")
        .expect("a table");
    let hash_reader: ReadOnly<Table<u64, u64>> =
        peeper::table::<Holder, _>(name, "hash").expect("public");
    let hash_writer: ReadWrite<Table<u64, u64>> =
        peeper::table::<Holder, _>(name, "hash").expect("public");
    let ordered_writer: ReadWrite<OrderedTable<u64, u64>> =
        peeper::table::<Holder, _>(name, "ordered").expect("public");
    let raw_hash: Arc<dashmap::DashMap<u64, u64>> = Arc::new(filled_with(HANDLE_ENTRIES));
    let raw_ordered: Arc<crossbeam_skiplist::SkipMap<u64, u64>> =
        Arc::new(filled_with(HANDLE_ENTRIES));
    for i in 0..HANDLE_ENTRIES {
        hash.insert(i, i);
        ordered.insert(i, i);
    }

    let mut i = 0;
    let mut group = c.benchmark_group("handle/hash_get");
    group.bench_function("raw_dashmap", |b| {
        b.iter(|| {
            i += 1;
            black_box(raw_hash.get(&small(i)).map(|value| *value))
        })
    });
    group.bench_function("peeper_table", |b| {
        b.iter(|| {
            i += 1;
            black_box(hash.get(&small(i)))
        })
    });
    group.bench_function("peeper_read_only", |b| {
        b.iter(|| {
            i += 1;
            black_box(hash_reader.get(&small(i)).expect("attached"))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("handle/hash_insert");
    group.bench_function("raw_dashmap", |b| {
        b.iter(|| {
            i += 1;
            black_box(raw_hash.insert(small(i), i))
        })
    });
    group.bench_function("peeper_table", |b| {
        b.iter(|| {
            i += 1;
            black_box(hash.insert(small(i), i))
        })
    });
    group.bench_function("peeper_read_write", |b| {
        b.iter(|| {
            i += 1;
            black_box(hash_writer.insert(small(i), i).expect("attached"))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("handle/ordered_get");
    group.bench_function("raw_skiplist", |b| {
        b.iter(|| {
            i += 1;
            black_box(raw_ordered.get(&small(i)).map(|entry| *entry.value()))
        })
    });
    group.bench_function("peeper_ordered_table", |b| {
        b.iter(|| {
            i += 1;
            black_box(ordered.get(&small(i)))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("handle/ordered_insert");
    group.bench_function("raw_skiplist", |b| {
        b.iter(|| {
            i += 1;
            raw_ordered.insert(small(i), i);
        })
    });
    group.bench_function("peeper_ordered_table", |b| {
        b.iter(|| {
            i += 1;
            ordered.insert(small(i), i);
        })
    });
    group.bench_function("peeper_read_write", |b| {
        b.iter(|| {
            i += 1;
            ordered_writer.insert(small(i), i).expect("attached");
        })
    });
    group.finish();

    summary.push(overhead(
        "hash get",
        |i| {
            black_box(raw_hash.get(&small(i)).map(|value| *value));
        },
        |i| {
            black_box(hash.get(&small(i)));
        },
    ));
    summary.push(overhead(
        "hash get (ReadOnly)",
        |i| {
            black_box(raw_hash.get(&small(i)).map(|value| *value));
        },
        |i| {
            black_box(hash_reader.get(&small(i)).expect("attached"));
        },
    ));
    summary.push(overhead(
        "hash insert",
        |i| {
            black_box(raw_hash.insert(small(i), i));
        },
        |i| {
            black_box(hash.insert(small(i), i));
        },
    ));
    summary.push(overhead(
        "hash insert (ReadWrite)",
        |i| {
            black_box(raw_hash.insert(small(i), i));
        },
        |i| {
            black_box(hash_writer.insert(small(i), i).expect("attached"));
        },
    ));
    summary.push(overhead(
        "ordered get",
        |i| {
            black_box(raw_ordered.get(&small(i)).map(|entry| *entry.value()));
        },
        |i| {
            black_box(ordered.get(&small(i)));
        },
    ));
    summary.push(overhead(
        "ordered insert",
        |i| {
            black_box(raw_ordered.insert(small(i), i));
        },
        |i| {
            ordered.insert(small(i), i);
        },
    ));
    rt.block_on(server.stop()).expect("stop");
}

/// A kill, then the next call answered, with a kept table of each size: nothing is copied or
/// rebuilt, so the size must not matter.
fn restart(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("restart/kill_then_call");
    for entries in [1_000_u64, 1_000_000] {
        let server = rt
            .block_on(Holder::builder(Holder).max_restarts(u32::MAX).start())
            .expect("start");
        let table = rt.block_on(server.hash()).expect("call").expect("a table");
        for i in 0..entries {
            table.insert(i, i);
        }
        assert_eq!(table.len() as u64, entries);
        group.bench_function(format!("table_{entries}_entries"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let restarted = server.branch().next_restart();
                        server.branch().kill_worker().expect("kill");
                        let answer = server.get(entries - 1).await.expect("call after the kill");
                        assert_eq!(answer, Some(entries - 1));
                        restarted.await.expect("restarted");
                    }
                    start.elapsed()
                })
            })
        });
        assert_eq!(table.len() as u64, entries, "the same table, untouched");
        rt.block_on(server.stop()).expect("stop");
    }
    group.finish();
}

/// Short runs: every benchmark measures for 2 s after a 1 s warm-up.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args()
}

fn main() {
    let mut c = config();
    let mut summary = Vec::new();
    maps(&mut c, &mut summary);
    handle(&mut c, &mut summary);
    restart(&mut c);
    c.final_summary();
    println!("\ninterleaved, medians of {ROUNDS} rounds of {BATCH} operations:");
    for line in summary {
        println!("  {line}");
    }
}
