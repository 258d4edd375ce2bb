//! Memory per idle server: peeper, a hand-written tokio actor (the baseline), kameo and ractor.
//!
//! Run with `cargo bench -p peeper-tests --bench memory`. A counting allocator
//! (`stats_alloc`, which wraps the system allocator: the workspace forbids `unsafe`) measures the
//! heap bytes still allocated after starting `N` idle counter servers of each kind on a
//! current-thread runtime, divided by `N`, and the allocations one start + cast + call + stop
//! cycle makes. This is not a criterion benchmark: it prints a table.

use std::alloc::System;

use kameo::actor::Spawn;
use peeper::Server;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, Stats, StatsAlloc};
use tokio::runtime::Runtime;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Idle servers started per kind.
const N: usize = 10_000;
/// Start + call + stop cycles whose allocations are counted.
const CYCLES: usize = 1_000;

/// The peers' counters, shared with the `scale` bench (its `#[peeper::server]` counter is not
/// used here: this bench compares each keep strategy, through `servers::Peeper`).
#[path = "shared/counters.rs"]
#[allow(dead_code)]
mod counters;

/// The counter servers, one per runtime.
mod servers {
    use peeper::{Context, Server, Tracked};

    pub(crate) use crate::counters::{Actor, Get, Inc, Kameo, Ractor, RactorMsg};

    #[derive(Clone, Default)]
    pub(crate) struct Peeper<K> {
        count: u64,
        keep: std::marker::PhantomData<fn() -> K>,
    }

    impl<K: peeper::keep::Keep<Peeper<K>>> Server for Peeper<K> {
        type Call = ();
        type Reply = u64;
        type Cast = ();
        type Info = ();
        type Keep = K;

        async fn handle_call(state: &mut Tracked<Self>, (): (), _: &mut Context<Self>) -> u64 {
            state.count
        }

        async fn handle_cast(state: &mut Tracked<Self>, (): (), _: &mut Context<Self>) {
            state.count += 1;
        }
    }
}

/// Live heap bytes and allocations in `stats`.
fn live(stats: &Stats) -> (isize, isize) {
    let bytes = stats.bytes_allocated.cast_signed() - stats.bytes_deallocated.cast_signed()
        + stats.bytes_reallocated;
    let allocations = stats.allocations.cast_signed() - stats.deallocations.cast_signed();
    (bytes, allocations)
}

/// One kind of server: how to start one idle server, call it once, and stop it.
trait Kind {
    type Handle;
    const NAME: &'static str;
    async fn start() -> Self::Handle;
    fn cast(handle: &Self::Handle);
    async fn call(handle: &Self::Handle) -> u64;
    async fn stop(handle: Self::Handle);
}

struct PeeperKind<K>(std::marker::PhantomData<K>);

impl<K: peeper::keep::Keep<servers::Peeper<K>> + Default> Kind for PeeperKind<K> {
    type Handle = peeper::Client<servers::Peeper<K>>;
    const NAME: &'static str = if <K as peeper::keep::Keep<servers::Peeper<K>>>::COPIES {
        "peeper (Snapshot)"
    } else {
        "peeper (InPlace)"
    };
    async fn start() -> Self::Handle {
        servers::Peeper::<K>::start(servers::Peeper::default())
            .await
            .expect("start")
    }
    fn cast(handle: &Self::Handle) {
        handle.cast(()).expect("cast");
    }
    async fn call(handle: &Self::Handle) -> u64 {
        handle.call(()).await.expect("call")
    }
    async fn stop(handle: Self::Handle) {
        handle.stop().await.expect("stop");
    }
}

struct ActorKind;

impl Kind for ActorKind {
    type Handle = servers::Actor;
    const NAME: &'static str = "tokio actor";
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

struct KameoKind;

impl Kind for KameoKind {
    type Handle = kameo::actor::ActorRef<servers::Kameo>;
    const NAME: &'static str = "kameo";
    async fn start() -> Self::Handle {
        let actor = servers::Kameo::spawn_with_mailbox(
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

struct RactorKind;

impl Kind for RactorKind {
    type Handle = (
        ractor::ActorRef<servers::RactorMsg>,
        tokio::task::JoinHandle<()>,
    );
    const NAME: &'static str = "ractor";
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

/// What one kind costs.
struct Row {
    name: &'static str,
    bytes_per_server: f64,
    allocations_per_server: f64,
    cycle_allocations: f64,
    cycle_bytes: f64,
}

fn measure<K: Kind>(rt: &Runtime) -> Row {
    // Warm up the runtime (task lists, queues), the allocator and any lazy statics with as many
    // servers as measured, so that only per-server memory is left to count.
    rt.block_on(async {
        let mut warm = Vec::with_capacity(N);
        for _ in 0..N {
            warm.push(K::start().await);
        }
        for handle in &warm {
            std::hint::black_box(K::call(handle).await);
        }
        for handle in warm {
            K::stop(handle).await;
        }
    });

    let mut handles = Vec::with_capacity(N);
    let region = Region::new(GLOBAL);
    rt.block_on(async {
        for _ in 0..N {
            handles.push(K::start().await);
        }
        // One call each: every server has run and waits at its idle `await` again, having
        // handled a message. (A few yields did not do it: a yield of the `block_on` future lets
        // only a scheduler tick's worth of tasks run, 61, and a peeper server allocates its
        // worker's future at its task's first poll.)
        for handle in &handles {
            std::hint::black_box(K::call(handle).await);
        }
    });
    let (bytes, allocations) = live(&region.change());
    rt.block_on(async {
        for handle in &handles {
            K::cast(handle);
            std::hint::black_box(K::call(handle).await);
        }
        for handle in handles {
            K::stop(handle).await;
        }
    });

    let region = Region::new(GLOBAL);
    rt.block_on(async {
        for _ in 0..CYCLES {
            let handle = K::start().await;
            K::cast(&handle);
            std::hint::black_box(K::call(&handle).await);
            K::stop(handle).await;
        }
    });
    let cycles = region.change();

    Row {
        name: K::NAME,
        bytes_per_server: bytes as f64 / N as f64,
        allocations_per_server: allocations as f64 / N as f64,
        cycle_allocations: cycles.allocations as f64 / CYCLES as f64,
        cycle_bytes: cycles.bytes_allocated as f64 / CYCLES as f64,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let rows = [
        measure::<ActorKind>(&rt),
        measure::<PeeperKind<peeper::keep::Snapshot>>(&rt),
        measure::<PeeperKind<peeper::keep::InPlace>>(&rt),
        measure::<KameoKind>(&rt),
        measure::<RactorKind>(&rt),
    ];
    let baseline = rows[0].bytes_per_server;
    println!("memory per idle counter server, N = {N}, current-thread runtime");
    println!(
        "{:<18} {:>12} {:>8} {:>12} | {:>16} {:>16}",
        "kind", "heap B/srv", "x actor", "allocs/srv", "allocs/cycle", "alloc B/cycle"
    );
    for row in &rows {
        println!(
            "{:<18} {:>12.0} {:>8.2} {:>12.1} | {:>16.1} {:>16.0}",
            row.name,
            row.bytes_per_server,
            row.bytes_per_server / baseline,
            row.allocations_per_server,
            row.cycle_allocations,
            row.cycle_bytes,
        );
    }
    println!(
        "(heap = bytes still allocated while the servers idle; cycle = start + cast + call + stop)"
    );
}
