//! Time benchmarks: peeper side by side with a hand-written tokio actor (the baseline: one task,
//! an unbounded tokio mpsc mailbox, a oneshot reply), kameo and ractor, all on a current-thread
//! tokio runtime.
//!
//! Run with `cargo bench -p peeper-tests --bench runtime` (add `-- --quick` or a filter such as
//! `-- call/` while developing). Memory per idle server is the separate `memory` bench.
//!
//! Groups:
//! - `call`: one call round trip (a counter `get`);
//! - `call_isolation`: the baseline actor with one of peeper's extra costs added at a time (the
//!   5 s reply timeout, `catch_unwind` around the handler, the `Result<_, CallError>` reply);
//! - `cast`: batches of 1,000 casts (`inc`) flushed by one call; criterion reports per-cast
//!   throughput;
//! - `start_call_stop`: start a server, one call, stop it and wait until it is gone;
//! - `state_1mib_read` / `state_1mib_write`: a `&self` and a `&mut self` call on a 1 MiB state,
//!   for every keep strategy of peeper;
//! - `crash_then_call`: a crash, then the time until the next call is answered.

use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use kameo::actor::Spawn;
use peeper::Server;
use tokio::runtime::Runtime;

/// The state size of the `state_1mib_*` groups.
const BIG: usize = 1 << 20;
/// Casts per measured iteration of the `cast` group.
const CAST_BATCH: u64 = 1_000;
/// The panic message of the crash benchmarks, which the panic hook keeps quiet.
const BOOM: &str = "bench boom";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// Runs `f` `iters` times inside one `block_on` and returns the total time.
fn timed(rt: &Runtime, iters: u64, mut f: impl AsyncFnMut()) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            f().await;
        }
        start.elapsed()
    })
}

/// Registers one benchmark whose every iteration runs `f` on `rt`.
fn bench<F>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, rt: &Runtime, mut f: F)
where
    F: AsyncFnMut(),
{
    group.bench_function(name, |b| b.iter_custom(|iters| timed(rt, iters, &mut f)));
}

/// The hand-written baseline: one tokio task per actor, an unbounded mpsc mailbox and a oneshot
/// per reply. `CATCH` runs every handler under `catch_unwind` (as peeper's worker does) and
/// `TIMEOUT` waits for replies under `tokio::time::timeout` (as `peeper::Client::call` does); `R`
/// is the reply type (`u64`, or peeper's `Result<u64, CallError>`).
mod baseline {
    use std::panic::AssertUnwindSafe;
    use std::time::Duration;

    use futures::FutureExt;
    use tokio::sync::{mpsc, oneshot};
    use tokio::task::JoinHandle;

    use super::BOOM;

    pub(crate) trait Reply: Send + 'static {
        fn wrap(value: u64) -> Self;
        fn value(self) -> u64;
    }

    impl Reply for u64 {
        fn wrap(value: u64) -> Self {
            value
        }
        fn value(self) -> u64 {
            self
        }
    }

    impl Reply for Result<u64, peeper::CallError> {
        fn wrap(value: u64) -> Self {
            Ok(value)
        }
        fn value(self) -> u64 {
            self.expect("a reply")
        }
    }

    pub(crate) enum Msg<R> {
        Get(oneshot::Sender<R>),
        Inc,
        Boom(oneshot::Sender<R>),
    }

    pub(crate) struct Counter<R = u64, const CATCH: bool = false, const TIMEOUT: bool = false> {
        mailbox: mpsc::UnboundedSender<Msg<R>>,
        task: JoinHandle<()>,
    }

    async fn get(count: &u64) -> u64 {
        *count
    }

    async fn inc(count: &mut u64) {
        *count += 1;
    }

    async fn boom(_: &mut u64) -> u64 {
        panic!("{BOOM}")
    }

    impl<R: Reply, const CATCH: bool, const TIMEOUT: bool> Counter<R, CATCH, TIMEOUT> {
        /// Spawns the actor on the current runtime.
        pub(crate) fn start(mut count: u64) -> Self {
            let (mailbox, mut inbox) = mpsc::unbounded_channel::<Msg<R>>();
            let task = tokio::spawn(async move {
                while let Some(msg) = inbox.recv().await {
                    match msg {
                        Msg::Get(reply) => {
                            let value = if CATCH {
                                match AssertUnwindSafe(get(&count)).catch_unwind().await {
                                    Ok(value) => value,
                                    Err(_) => continue,
                                }
                            } else {
                                get(&count).await
                            };
                            let _ = reply.send(R::wrap(value));
                        }
                        Msg::Inc => {
                            if CATCH {
                                let _ = AssertUnwindSafe(inc(&mut count)).catch_unwind().await;
                            } else {
                                inc(&mut count).await;
                            }
                        }
                        // Only sent to `CATCH` actors: the panic drops `reply`, the actor goes on
                        // with its state as the handler left it.
                        Msg::Boom(reply) => {
                            if let Ok(value) =
                                AssertUnwindSafe(boom(&mut count)).catch_unwind().await
                            {
                                let _ = reply.send(R::wrap(value));
                            }
                        }
                    }
                }
            });
            Counter { mailbox, task }
        }

        pub(crate) async fn get(&self) -> u64 {
            let (reply, answer) = oneshot::channel();
            self.mailbox
                .send(Msg::Get(reply))
                .unwrap_or_else(|_| panic!("the actor is gone"));
            let answer = if TIMEOUT {
                tokio::time::timeout(Duration::from_secs(5), answer)
                    .await
                    .expect("no timeout")
            } else {
                answer.await
            };
            answer.expect("a reply").value()
        }

        pub(crate) fn inc(&self) {
            self.mailbox
                .send(Msg::Inc)
                .unwrap_or_else(|_| panic!("the actor is gone"));
        }

        /// Sends a message whose handler panics; `true` if the caller saw the crash.
        pub(crate) async fn boom(&self) -> bool {
            let (reply, answer) = oneshot::channel();
            self.mailbox
                .send(Msg::Boom(reply))
                .unwrap_or_else(|_| panic!("the actor is gone"));
            answer.await.is_err()
        }

        /// Closes the mailbox and waits for the task to end.
        pub(crate) async fn stop(self) {
            drop(self.mailbox);
            self.task.await.expect("the actor task ended");
        }
    }

    pub(crate) enum BigMsg {
        Read(oneshot::Sender<u64>),
        Write(oneshot::Sender<u64>),
    }

    pub(crate) struct Big {
        mailbox: mpsc::UnboundedSender<BigMsg>,
        task: JoinHandle<()>,
    }

    impl Big {
        pub(crate) fn start(mut state: super::BigState) -> Self {
            let (mailbox, mut inbox) = mpsc::unbounded_channel();
            let task = tokio::spawn(async move {
                while let Some(msg) = inbox.recv().await {
                    match msg {
                        BigMsg::Read(reply) => {
                            let _ = reply.send(state.read());
                        }
                        BigMsg::Write(reply) => {
                            let _ = reply.send(state.write());
                        }
                    }
                }
            });
            Big { mailbox, task }
        }

        pub(crate) async fn call(&self, msg: fn(oneshot::Sender<u64>) -> BigMsg) -> u64 {
            let (reply, answer) = oneshot::channel();
            self.mailbox
                .send(msg(reply))
                .unwrap_or_else(|_| panic!("the actor is gone"));
            answer.await.expect("a reply")
        }

        pub(crate) async fn stop(self) {
            drop(self.mailbox);
            self.task.await.expect("the actor task ended");
        }
    }
}

/// The 1 MiB state shared by every `state_1mib_*` server.
#[derive(Clone)]
struct BigState {
    data: Vec<u8>,
    small: u64,
}

impl BigState {
    fn new() -> Self {
        BigState {
            data: vec![0; BIG],
            small: 0,
        }
    }

    /// A `&self` handler's work: one byte and one field.
    fn read(&self) -> u64 {
        u64::from(self.data[self.small as usize % BIG]) + self.small
    }

    /// A `&mut self` handler's work: one byte and one field.
    fn write(&mut self) -> u64 {
        let at = self.small as usize % BIG;
        self.data[at] = self.data[at].wrapping_add(1);
        self.small += 1;
        self.small
    }
}

/// peeper servers, written against the `Server` trait; `K` is the keep strategy.
mod pe {
    use std::marker::PhantomData;

    use peeper::keep::{Keep, Project};
    use peeper::{Context, Server, Tracked};

    use super::{BOOM, BigState};

    pub(crate) enum Call {
        Get,
        Boom,
    }

    #[derive(Clone, Default)]
    pub(crate) struct Counter<K> {
        count: u64,
        keep: PhantomData<fn() -> K>,
    }

    impl<K> Server for Counter<K>
    where
        K: Keep<Counter<K>>,
    {
        type Call = Call;
        type Reply = u64;
        type Cast = ();
        type Info = ();
        type Keep = K;

        async fn handle_call(state: &mut Tracked<Self>, call: Call, _: &mut Context<Self>) -> u64 {
            match call {
                Call::Get => state.count,
                Call::Boom => panic!("{BOOM}"),
            }
        }

        async fn handle_cast(state: &mut Tracked<Self>, (): (), _: &mut Context<Self>) {
            state.count += 1;
        }
    }

    pub(crate) enum BigCall {
        Read,
        Write,
    }

    #[derive(Clone)]
    pub(crate) struct Big<K> {
        state: BigState,
        keep: PhantomData<fn() -> K>,
    }

    impl<K> Big<K> {
        pub(crate) fn new() -> Self {
            Big {
                state: BigState::new(),
                keep: PhantomData,
            }
        }
    }

    /// `Projection` keeps the small field only; the 1 MiB buffer is rebuilt empty.
    impl<K> Project for Big<K> {
        type Projection = u64;
        fn project(&self) -> u64 {
            self.state.small
        }
        fn rebuild(small: &u64) -> Self {
            let mut big = Big::new();
            big.state.small = *small;
            big
        }
    }

    impl<K> Server for Big<K>
    where
        K: Keep<Big<K>>,
    {
        type Call = BigCall;
        type Reply = u64;
        type Cast = ();
        type Info = ();
        type Keep = K;

        async fn handle_call(
            state: &mut Tracked<Self>,
            call: BigCall,
            _: &mut Context<Self>,
        ) -> u64 {
            match call {
                BigCall::Read => state.state.read(),
                BigCall::Write => state.state.write(),
            }
        }

        async fn handle_cast(_: &mut Tracked<Self>, (): (), _: &mut Context<Self>) {}
    }
}

/// kameo actors. `RESUME`: a panicking handler is skipped and the actor goes on with its state
/// (`on_panic` returns `Continue`); otherwise a panic stops the actor (and a supervisor restarts
/// it from its spawn arguments).
mod ka {
    use std::ops::ControlFlow;

    use kameo::actor::{Actor, ActorRef, WeakActorRef};
    use kameo::error::{ActorStopReason, Infallible, PanicError};
    use kameo::message::{Context, Message};

    use super::{BOOM, BigState};

    #[derive(Clone, Default)]
    pub(crate) struct Counter<const RESUME: bool = false> {
        count: u64,
    }

    impl<const RESUME: bool> Actor for Counter<RESUME> {
        type Args = Self;
        type Error = Infallible;

        async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
            Ok(state)
        }

        async fn on_panic(
            &mut self,
            _: WeakActorRef<Self>,
            err: PanicError,
        ) -> Result<ControlFlow<ActorStopReason>, Infallible> {
            Ok(if RESUME {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(ActorStopReason::Panicked(err))
            })
        }
    }

    pub(crate) struct Get;
    pub(crate) struct Inc;
    pub(crate) struct Boom;

    impl<const RESUME: bool> Message<Get> for Counter<RESUME> {
        type Reply = u64;
        async fn handle(&mut self, _: Get, _: &mut Context<Self, u64>) -> u64 {
            self.count
        }
    }

    impl<const RESUME: bool> Message<Inc> for Counter<RESUME> {
        type Reply = ();
        async fn handle(&mut self, _: Inc, _: &mut Context<Self, ()>) {
            self.count += 1;
        }
    }

    impl<const RESUME: bool> Message<Boom> for Counter<RESUME> {
        type Reply = u64;
        async fn handle(&mut self, _: Boom, _: &mut Context<Self, u64>) -> u64 {
            panic!("{BOOM}")
        }
    }

    /// A supervisor with no behaviour of its own, for the restart benchmark.
    pub(crate) struct Sup;

    impl Actor for Sup {
        type Args = ();
        type Error = Infallible;

        async fn on_start((): (), _: ActorRef<Self>) -> Result<Self, Infallible> {
            Ok(Sup)
        }
    }

    pub(crate) struct Big(pub(crate) BigState);
    pub(crate) struct Read;
    pub(crate) struct Write;

    impl Actor for Big {
        type Args = Self;
        type Error = Infallible;

        async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
            Ok(state)
        }
    }

    impl Message<Read> for Big {
        type Reply = u64;
        async fn handle(&mut self, _: Read, _: &mut Context<Self, u64>) -> u64 {
            self.0.read()
        }
    }

    impl Message<Write> for Big {
        type Reply = u64;
        async fn handle(&mut self, _: Write, _: &mut Context<Self, u64>) -> u64 {
            self.0.write()
        }
    }
}

/// ractor actors.
mod ra {
    use ractor::rpc::CallResult;
    use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

    use super::BigState;

    pub(crate) struct Counter;

    pub(crate) enum Msg {
        Get(RpcReplyPort<u64>),
        Inc,
    }

    impl Actor for Counter {
        type Msg = Msg;
        type State = u64;
        type Arguments = u64;

        async fn pre_start(&self, _: ActorRef<Msg>, count: u64) -> Result<u64, ActorProcessingErr> {
            Ok(count)
        }

        async fn handle(
            &self,
            _: ActorRef<Msg>,
            msg: Msg,
            count: &mut u64,
        ) -> Result<(), ActorProcessingErr> {
            match msg {
                Msg::Get(reply) => {
                    let _ = reply.send(*count);
                }
                Msg::Inc => *count += 1,
            }
            Ok(())
        }
    }

    pub(crate) struct Big;

    pub(crate) enum BigMsg {
        Read(RpcReplyPort<u64>),
        Write(RpcReplyPort<u64>),
    }

    impl Actor for Big {
        type Msg = BigMsg;
        type State = BigState;
        type Arguments = BigState;

        async fn pre_start(
            &self,
            _: ActorRef<BigMsg>,
            state: BigState,
        ) -> Result<BigState, ActorProcessingErr> {
            Ok(state)
        }

        async fn handle(
            &self,
            _: ActorRef<BigMsg>,
            msg: BigMsg,
            state: &mut BigState,
        ) -> Result<(), ActorProcessingErr> {
            match msg {
                BigMsg::Read(reply) => {
                    let _ = reply.send(state.read());
                }
                BigMsg::Write(reply) => {
                    let _ = reply.send(state.write());
                }
            }
            Ok(())
        }
    }

    /// A call without a timeout, unwrapped.
    pub(crate) async fn call<M: ractor::Message>(
        actor: &ActorRef<M>,
        msg: fn(RpcReplyPort<u64>) -> M,
    ) -> u64 {
        match actor.call(msg, None).await {
            Ok(CallResult::Success(value)) => value,
            _ => panic!("the ractor call failed"),
        }
    }
}

/// Starts what `start` returns on `rt`.
fn on<T>(rt: &Runtime, start: impl Future<Output = T>) -> T {
    rt.block_on(start)
}

/// The same counter as `pe::Counter<Snapshot>`, generated by `#[peeper::server]` (the one the
/// other benches share): its typed client must cost what the generic client costs (issue 3).
#[path = "shared/counters.rs"]
#[allow(dead_code)] // this bench has tokio, kameo and ractor counters of its own
mod generated;

type Snapshot = peeper::keep::Snapshot;
type InPlace = peeper::keep::InPlace;
type Projection = peeper::keep::Projection;

fn call(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("call");

    let peeper = on(&rt, pe::Counter::<Snapshot>::start(pe::Counter::default())).expect("start");
    bench(&mut group, "peeper", &rt, async || {
        black_box(peeper.call(pe::Call::Get).await.expect("call"));
    });
    on(&rt, peeper.stop()).expect("stop");

    let generated = on(
        &rt,
        generated::Counter::start(generated::Counter::default()),
    )
    .expect("start");
    bench(&mut group, "peeper_macro", &rt, async || {
        black_box(generated.get().await.expect("call"));
    });
    on(&rt, generated.stop()).expect("stop");

    let actor = on(&rt, async { baseline::Counter::<u64>::start(0) });
    bench(&mut group, "tokio_actor", &rt, async || {
        black_box(actor.get().await);
    });
    on(&rt, actor.stop());

    let kameo = on(&rt, async { kameo_counter::<false>() });
    bench(&mut group, "kameo", &rt, async || {
        black_box(kameo.ask(ka::Get).await.expect("ask"));
    });
    on(&rt, kameo_stop(&kameo));

    let (ractor, handle) = on(&rt, ractor::Actor::spawn(None, ra::Counter, 0)).expect("spawn");
    bench(&mut group, "ractor", &rt, async || {
        black_box(ra::call(&ractor, ra::Msg::Get).await);
    });
    ractor.stop(None);
    on(&rt, handle).expect("ractor ended");
    group.finish();
}

/// The baseline with one of peeper's extra costs at a time; `peeper` is repeated for reference.
fn call_isolation(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("call_isolation");

    let plain = on(&rt, async { baseline::Counter::<u64>::start(0) });
    bench(&mut group, "tokio_actor", &rt, async || {
        black_box(plain.get().await);
    });
    on(&rt, plain.stop());

    let timeout = on(&rt, async {
        baseline::Counter::<u64, false, true>::start(0)
    });
    bench(&mut group, "tokio_actor+timeout", &rt, async || {
        black_box(timeout.get().await);
    });
    on(&rt, timeout.stop());

    let catch = on(&rt, async {
        baseline::Counter::<u64, true, false>::start(0)
    });
    bench(&mut group, "tokio_actor+catch_unwind", &rt, async || {
        black_box(catch.get().await);
    });
    on(&rt, catch.stop());

    let result = on(&rt, async {
        baseline::Counter::<Result<u64, peeper::CallError>>::start(0)
    });
    bench(&mut group, "tokio_actor+result_reply", &rt, async || {
        black_box(result.get().await);
    });
    on(&rt, result.stop());

    let all = on(&rt, async {
        baseline::Counter::<Result<u64, peeper::CallError>, true, true>::start(0)
    });
    bench(&mut group, "tokio_actor+all_three", &rt, async || {
        black_box(all.get().await);
    });
    on(&rt, all.stop());

    let peeper = on(&rt, pe::Counter::<Snapshot>::start(pe::Counter::default())).expect("start");
    bench(&mut group, "peeper", &rt, async || {
        black_box(peeper.call(pe::Call::Get).await.expect("call"));
    });
    // The timer is armed only if the reply has not come after one scheduler turn (`Answer` in
    // `client.rs`); with `Duration::MAX` it can never fire: this is peeper minus the timer.
    bench(&mut group, "peeper_call_timeout_max", &rt, async || {
        black_box(
            peeper
                .call_timeout(pe::Call::Get, Duration::MAX)
                .await
                .expect("call"),
        );
    });
    on(&rt, peeper.stop()).expect("stop");
    group.finish();
}

fn cast(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("cast");
    group.throughput(Throughput::Elements(CAST_BATCH));

    let snapshot = on(&rt, pe::Counter::<Snapshot>::start(pe::Counter::default())).expect("start");
    bench(&mut group, "peeper", &rt, async || {
        for _ in 0..CAST_BATCH {
            snapshot.cast(()).expect("cast");
        }
        black_box(snapshot.call(pe::Call::Get).await.expect("call"));
    });
    on(&rt, snapshot.stop()).expect("stop");

    let generated = on(
        &rt,
        generated::Counter::start(generated::Counter::default()),
    )
    .expect("start");
    bench(&mut group, "peeper_macro", &rt, async || {
        for _ in 0..CAST_BATCH {
            generated.inc().expect("cast");
        }
        black_box(generated.get().await.expect("call"));
    });
    on(&rt, generated.stop()).expect("stop");

    let in_place = on(&rt, pe::Counter::<InPlace>::start(pe::Counter::default())).expect("start");
    bench(&mut group, "peeper_inplace", &rt, async || {
        for _ in 0..CAST_BATCH {
            in_place.cast(()).expect("cast");
        }
        black_box(in_place.call(pe::Call::Get).await.expect("call"));
    });
    on(&rt, in_place.stop()).expect("stop");

    let actor = on(&rt, async { baseline::Counter::<u64>::start(0) });
    bench(&mut group, "tokio_actor", &rt, async || {
        for _ in 0..CAST_BATCH {
            actor.inc();
        }
        black_box(actor.get().await);
    });
    on(&rt, actor.stop());

    let catch = on(&rt, async {
        baseline::Counter::<u64, true, false>::start(0)
    });
    bench(&mut group, "tokio_actor+catch_unwind", &rt, async || {
        for _ in 0..CAST_BATCH {
            catch.inc();
        }
        black_box(catch.get().await);
    });
    on(&rt, catch.stop());

    let kameo = on(&rt, async { kameo_counter::<false>() });
    bench(&mut group, "kameo", &rt, async || {
        for _ in 0..CAST_BATCH {
            kameo.tell(ka::Inc).try_send().expect("tell");
        }
        black_box(kameo.ask(ka::Get).await.expect("ask"));
    });
    on(&rt, kameo_stop(&kameo));

    let (ractor, handle) = on(&rt, ractor::Actor::spawn(None, ra::Counter, 0)).expect("spawn");
    bench(&mut group, "ractor", &rt, async || {
        for _ in 0..CAST_BATCH {
            ractor.cast(ra::Msg::Inc).expect("cast");
        }
        black_box(ra::call(&ractor, ra::Msg::Get).await);
    });
    ractor.stop(None);
    on(&rt, handle).expect("ractor ended");
    group.finish();
}

fn start_call_stop(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("start_call_stop");

    bench(&mut group, "peeper", &rt, async || {
        let server = pe::Counter::<Snapshot>::start(pe::Counter::default())
            .await
            .expect("start");
        black_box(server.call(pe::Call::Get).await.expect("call"));
        server.stop().await.expect("stop");
    });
    bench(&mut group, "tokio_actor", &rt, async || {
        let actor = baseline::Counter::<u64>::start(0);
        black_box(actor.get().await);
        actor.stop().await;
    });
    bench(&mut group, "kameo", &rt, async || {
        let actor = kameo_counter::<false>();
        black_box(actor.ask(ka::Get).await.expect("ask"));
        kameo_stop(&actor).await;
    });
    bench(&mut group, "ractor", &rt, async || {
        let (actor, handle) = ractor::Actor::spawn(None, ra::Counter, 0)
            .await
            .expect("spawn");
        black_box(ra::call(&actor, ra::Msg::Get).await);
        actor.stop(None);
        handle.await.expect("ractor ended");
    });
    group.finish();
}

/// Where `start_call_stop` spends its time: each entry times one phase of the same cycle.
fn start_phases(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("start_phases");
    for (phase, name) in [
        (0, "peeper_start"),
        (1, "peeper_first_call"),
        (2, "peeper_stop"),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut spent = [Duration::ZERO; 3];
                    for _ in 0..iters {
                        let at = Instant::now();
                        let server = pe::Counter::<Snapshot>::start(pe::Counter::default())
                            .await
                            .expect("start");
                        let started = Instant::now();
                        black_box(server.call(pe::Call::Get).await.expect("call"));
                        let called = Instant::now();
                        server.stop().await.expect("stop");
                        spent[0] += started - at;
                        spent[1] += called - started;
                        spent[2] += called.elapsed();
                    }
                    spent[phase]
                })
            });
        });
    }
    for (phase, name) in [
        (0, "tokio_actor_start"),
        (1, "tokio_actor_first_call"),
        (2, "tokio_actor_stop"),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut spent = [Duration::ZERO; 3];
                    for _ in 0..iters {
                        let at = Instant::now();
                        let actor = baseline::Counter::<u64>::start(0);
                        let started = Instant::now();
                        black_box(actor.get().await);
                        let called = Instant::now();
                        actor.stop().await;
                        spent[0] += started - at;
                        spent[1] += called - started;
                        spent[2] += called.elapsed();
                    }
                    spent[phase]
                })
            });
        });
    }
    group.finish();
}

/// A `&self` (`read`) or `&mut self` (`write`) call on a 1 MiB state.
fn state_1mib(c: &mut Criterion, write: bool) {
    let rt = runtime();
    let mut group = c.benchmark_group(if write {
        "state_1mib_write"
    } else {
        "state_1mib_read"
    });

    macro_rules! peeper_big {
        ($name:literal, $keep:ty) => {{
            let server = on(&rt, pe::Big::<$keep>::start(pe::Big::new())).expect("start");
            bench(&mut group, $name, &rt, async || {
                let call = if write {
                    pe::BigCall::Write
                } else {
                    pe::BigCall::Read
                };
                black_box(server.call(call).await.expect("call"));
            });
            on(&rt, server.stop()).expect("stop");
        }};
    }
    peeper_big!("peeper_snapshot", Snapshot);
    peeper_big!("peeper_projection", Projection);
    peeper_big!("peeper_inplace", InPlace);

    let actor = on(&rt, async { baseline::Big::start(BigState::new()) });
    let msg = if write {
        baseline::BigMsg::Write
    } else {
        baseline::BigMsg::Read
    };
    bench(&mut group, "tokio_actor", &rt, async || {
        black_box(actor.call(msg).await);
    });
    on(&rt, actor.stop());

    let kameo = on(&rt, async {
        ka::Big::spawn_with_mailbox(ka::Big(BigState::new()), kameo::mailbox::unbounded())
    });
    bench(&mut group, "kameo", &rt, async || {
        let value = if write {
            kameo.ask(ka::Write).await.expect("ask")
        } else {
            kameo.ask(ka::Read).await.expect("ask")
        };
        black_box(value);
    });
    on(&rt, kameo_stop(&kameo));

    let (ractor, handle) =
        on(&rt, ractor::Actor::spawn(None, ra::Big, BigState::new())).expect("spawn");
    let msg = if write {
        ra::BigMsg::Write
    } else {
        ra::BigMsg::Read
    };
    bench(&mut group, "ractor", &rt, async || {
        black_box(ra::call(&ractor, msg).await);
    });
    ractor.stop(None);
    on(&rt, handle).expect("ractor ended");
    group.finish();
}

fn state_1mib_read(c: &mut Criterion) {
    state_1mib(c, false);
}

fn state_1mib_write(c: &mut Criterion) {
    state_1mib(c, true);
}

/// A crash, then the time until the next call is answered.
///
/// - peeper `kill`: arm `next_restart`, `kill_worker`, call; the new worker restores the kept
///   state (a 1 MiB `clone_from` for `kill_1mib_snapshot`) and answers the queued call.
/// - peeper `panic`: a call whose handler panics (answered `Crashed`), then a call.
/// - `tokio_actor+catch_unwind`: the floor: a caught panic, the task goes on.
/// - kameo `resume`: `on_panic` returns `Continue`: the actor goes on with the state the panicking
///   handler left (no restart, like peeper's `InPlace`).
/// - kameo `supervised_restart`: a supervised actor panics and its supervisor restarts it **from
///   its spawn arguments** (the state is lost); calls sent meanwhile fail with `ActorRestarting`
///   and are retried.
/// - ractor: no entry. Its supervisors hear `ActorFailed` and must spawn a new actor themselves:
///   a new `ActorRef`, a new mailbox (queued messages are lost) and a state from scratch.
fn crash_then_call(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("crash_then_call");

    let killed = on(
        &rt,
        pe::Counter::<Snapshot>::builder(pe::Counter::default())
            .max_restarts(u32::MAX)
            .start(),
    )
    .expect("start");
    bench(&mut group, "peeper_kill", &rt, async || {
        let restarted = killed.branch().next_restart();
        killed.branch().kill_worker().expect("kill");
        black_box(
            killed
                .call(pe::Call::Get)
                .await
                .expect("call after the kill"),
        );
        restarted.await.expect("restarted");
    });
    assert!(killed.branch().restarts() > 0);
    on(&rt, killed.stop()).expect("stop");

    macro_rules! kill_big {
        ($name:literal, $keep:ty) => {{
            let server = on(
                &rt,
                pe::Big::<$keep>::builder(pe::Big::new())
                    .max_restarts(u32::MAX)
                    .start(),
            )
            .expect("start");
            bench(&mut group, $name, &rt, async || {
                let restarted = server.branch().next_restart();
                server.branch().kill_worker().expect("kill");
                black_box(
                    server
                        .call(pe::BigCall::Read)
                        .await
                        .expect("call after the kill"),
                );
                restarted.await.expect("restarted");
            });
            on(&rt, server.stop()).expect("stop");
        }};
    }
    kill_big!("peeper_kill_1mib_snapshot", Snapshot);
    kill_big!("peeper_kill_1mib_inplace", InPlace);

    let panicked = on(
        &rt,
        pe::Counter::<Snapshot>::builder(pe::Counter::default())
            .max_restarts(u32::MAX)
            .start(),
    )
    .expect("start");
    bench(&mut group, "peeper_panic", &rt, async || {
        assert!(panicked.call(pe::Call::Boom).await.is_err());
        black_box(
            panicked
                .call(pe::Call::Get)
                .await
                .expect("call after the panic"),
        );
    });
    on(&rt, panicked.stop()).expect("stop");

    let actor = on(&rt, async {
        baseline::Counter::<u64, true, false>::start(0)
    });
    bench(
        &mut group,
        "tokio_actor+catch_unwind_panic",
        &rt,
        async || {
            assert!(actor.boom().await);
            black_box(actor.get().await);
        },
    );
    on(&rt, actor.stop());

    let resume = on(&rt, async { kameo_counter::<true>() });
    bench(&mut group, "kameo_resume_panic", &rt, async || {
        assert!(resume.ask(ka::Boom).await.is_err());
        black_box(resume.ask(ka::Get).await.expect("ask after the panic"));
    });
    on(&rt, kameo_stop(&resume));

    let (sup, child) = on(&rt, async {
        let sup = Spawn::spawn(());
        let child = ka::Counter::<false>::supervise(&sup, ka::Counter::default())
            .restart_limit(u32::MAX, Duration::from_secs(1))
            .spawn_with_mailbox(kameo::mailbox::unbounded())
            .await;
        (sup, child)
    });
    let sup: kameo::actor::ActorRef<ka::Sup> = sup;
    bench(
        &mut group,
        "kameo_supervised_restart_panic",
        &rt,
        async || {
            assert!(child.ask(ka::Boom).await.is_err());
            let value = loop {
                match child.ask(ka::Get).await {
                    Ok(value) => break value,
                    Err(kameo::error::SendError::ActorRestarting(_)) => {
                        tokio::task::yield_now().await;
                    }
                    Err(other) => panic!("kameo ask after the restart: {other:?}"),
                }
            };
            black_box(value);
        },
    );
    on(&rt, kameo_stop(&sup));
    group.finish();
}

fn kameo_counter<const RESUME: bool>() -> kameo::actor::ActorRef<ka::Counter<RESUME>> {
    Spawn::spawn_with_mailbox(ka::Counter::default(), kameo::mailbox::unbounded())
}

async fn kameo_stop<A: kameo::Actor>(actor: &kameo::actor::ActorRef<A>) {
    actor.stop_gracefully().await.expect("stop");
    actor.wait_for_shutdown().await;
}

/// Quick settings: every benchmark measures for 2.5 s after a 1 s warm-up.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_millis(2_500))
        .sample_size(50)
        .configure_from_args()
}

fn main() {
    // The crash benchmarks panic on purpose thousands of times: keep those panics quiet.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied());
        if message != Some(BOOM) {
            default_hook(info);
        }
    }));
    let mut c = config();
    call(&mut c);
    call_isolation(&mut c);
    cast(&mut c);
    start_call_stop(&mut c);
    start_phases(&mut c);
    state_1mib_read(&mut c);
    state_1mib_write(&mut c);
    crash_then_call(&mut c);
    c.final_summary();
}
