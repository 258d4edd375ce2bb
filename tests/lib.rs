//! Shared helpers for peeper's integration tests.
//!
//! Hand-written servers (against [`peeper::Server`], no macro) that the `tests/tests/runtime_*.rs`
//! files share, a [`Listener`] that records every callback, and a few synchronisation helpers that
//! let tests wait on events instead of sleeping:
//!
//! - [`Gate`]: a handler announces that it has started and waits until the test releases it;
//! - [`queue`]: polls a future exactly once, so that a call is in the mailbox (in a known order)
//!   before the test does the next thing, and awaits its answer later;
//! - [`Probe`]: a shared log that survives restarts (it is an `Arc`), written by `init`,
//!   `terminate` and listeners.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;

use peeper::keep::{InPlace, Project, Projection, Snapshot};
use peeper::{CallError, Client, Context, Exit, InitError, Listener, Server, Tracked};
use tokio::sync::{Notify, watch};

// ---------------------------------------------------------------------------------------------
// Synchronisation helpers
// ---------------------------------------------------------------------------------------------

/// A name no other test uses, for the process-wide registry (tests of a file share a process).
#[must_use]
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Holds a handler until the test releases it, and tells the test when the handler got there.
///
/// Both sides use [`Notify::notify_one`], which stores a permit when nobody waits yet, so neither
/// side can miss the other whatever the scheduling.
#[derive(Clone, Debug, Default)]
pub struct Gate {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

impl Gate {
    /// In a handler: announce arrival, then wait for [`release`](Gate::release).
    pub async fn pass(&self) {
        self.entered.notify_one();
        self.release.notified().await;
    }

    /// In the test: resolves once a handler has reached [`pass`](Gate::pass).
    pub async fn entered(&self) {
        self.entered.notified().await;
    }

    /// In the test: lets the handler waiting in [`pass`](Gate::pass) go on (or the next one).
    pub fn release(&self) {
        self.release.notify_one();
    }
}

/// A log shared by every copy of a state (and by listeners): it survives restarts and transfers,
/// and tests can wait for a line to appear in it.
#[derive(Clone, Debug, Default)]
pub struct Probe(Arc<watch::Sender<Vec<String>>>);

impl Probe {
    /// Appends one line and wakes whoever waits for it.
    pub fn push(&self, line: impl Into<String>) {
        let line = line.into();
        self.0.send_modify(|lines| lines.push(line));
    }

    /// Everything logged so far.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        self.0.borrow().clone()
    }

    /// The lines that start with `prefix`.
    #[must_use]
    pub fn starting_with(&self, prefix: &str) -> Vec<String> {
        self.0
            .borrow()
            .iter()
            .filter(|line| line.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Resolves once `line` has been logged (at once if it already was).
    pub async fn logged(&self, line: &str) {
        let mut lines = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = lines
            .wait_for(|lines| lines.iter().any(|logged| logged == line))
            .await;
    }
}

/// A future polled once and kept for later; see [`queue`].
pub struct Queued<F: Future> {
    future: Pin<Box<F>>,
    output: Option<F::Output>,
}

impl<F: Future> fmt::Debug for Queued<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queued")
            .field("done", &self.output.is_some())
            .finish()
    }
}

impl<F: Future> Queued<F> {
    /// Awaits the rest of the future.
    pub async fn output(self) -> F::Output {
        match self.output {
            Some(output) => output,
            None => self.future.await,
        }
    }
}

/// Polls `future` exactly once and returns it, to be awaited later.
///
/// A `Client::call` puts its message in the mailbox on its first poll, so after
/// `queue(client.call(..)).await` the call is queued, in order, without a spawned task and
/// without waiting for its reply.
pub async fn queue<F: Future>(future: F) -> Queued<F> {
    let mut future = Box::pin(future);
    let output = std::future::poll_fn(|cx| {
        Poll::Ready(match future.as_mut().poll(cx) {
            Poll::Ready(output) => Some(output),
            Poll::Pending => None,
        })
    })
    .await;
    Queued { future, output }
}

// ---------------------------------------------------------------------------------------------
// Counter: the workhorse, kept with `Snapshot`
// ---------------------------------------------------------------------------------------------

/// A counter with a log, a gate, and switches that make `init` fail on purpose.
#[derive(Clone, Debug, Default)]
pub struct Counter {
    /// The count.
    pub value: u64,
    /// What `Push` casts and infos appended, in order.
    pub log: Vec<String>,
    /// Held by the `Wait*` messages.
    pub gate: Gate,
    /// `init` and `terminate` write here: `init <incarnation>`, `terminate <exit:?> <value>`.
    pub probe: Probe,
    /// `init` returns an error at this incarnation (after setting `value` to 999).
    pub fail_init_at: Option<u64>,
    /// `init` panics at this incarnation (after setting `value` to 999).
    pub panic_init_at: Option<u64>,
    /// `init` returns an error at this incarnation and every later one.
    pub fail_init_from: Option<u64>,
    /// `init` panics whenever this is set: a state that crashes every incarnation.
    pub poison: bool,
    /// `terminate` waits at the gate (after logging).
    pub slow_terminate: bool,
}

impl Counter {
    /// A counter at `value`, everything else default.
    #[must_use]
    pub fn at(value: u64) -> Self {
        Counter {
            value,
            ..Counter::default()
        }
    }
}

/// `Counter`'s calls.
#[derive(Debug)]
pub enum CounterCall {
    /// Replies with the value.
    Get,
    /// Adds and replies with the new value.
    Add(u64),
    /// Replies with the log.
    Log,
    /// Waits at the gate, then replies with the value.
    Wait,
    /// Adds `n`, waits at the gate, adds `n` again, replies with the value.
    AddWaitAdd(u64),
    /// Panics with this message.
    Panic(&'static str),
    /// Sets the value, then panics with the message.
    SetThenPanic(u64, &'static str),
    /// Adds, asks for a normal stop, replies with the new value.
    AddThenStop(u64),
    /// Replies with the worker's incarnation.
    Incarnation,
    /// Replies with the name of the thread running the handler.
    Thread,
    /// Replies with the id of the task running the handler (the worker).
    TaskId,
}

/// `Counter`'s replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterReply {
    /// A number.
    Value(u64),
    /// The log.
    Log(Vec<String>),
    /// A thread name.
    Text(Option<String>),
    /// A task id.
    Task(tokio::task::Id),
}

impl CounterReply {
    /// The number in a `Value` reply.
    ///
    /// # Panics
    /// On any other reply.
    #[must_use]
    pub fn value(self) -> u64 {
        match self {
            CounterReply::Value(value) => value,
            other => panic!("expected a value, got {other:?}"),
        }
    }
}

/// `Counter`'s casts.
#[derive(Debug)]
pub enum CounterCast {
    /// Adds one.
    Inc,
    /// Adds `n`.
    Add(u64),
    /// Appends to the log.
    Push(String),
    /// Panics.
    Panic(&'static str),
    /// Sets the value, then panics.
    SetThenPanic(u64, &'static str),
    /// Sets `poison`: every later `init` panics.
    Poison,
    /// Asks for a normal stop.
    Stop,
    /// Writes `cast <text>` to the probe (does not change the state).
    Note(String),
}

/// `Counter`'s raw messages.
#[derive(Debug)]
pub enum CounterInfo {
    /// Adds one.
    Inc,
    /// Appends to the log.
    Push(String),
    /// Writes `info <text>` to the probe (does not change the state).
    Note(String),
}

impl Server for Counter {
    type Call = CounterCall;
    type Reply = CounterReply;
    type Cast = CounterCast;
    type Info = CounterInfo;
    type Keep = Snapshot;

    async fn init(state: &mut Tracked<Self>, ctx: &mut Context<Self>) -> Result<(), InitError> {
        let incarnation = ctx.incarnation();
        state.probe.push(format!("init {incarnation}"));
        if state.poison {
            panic!("poisoned at incarnation {incarnation}");
        }
        if state.fail_init_at == Some(incarnation) {
            state.value = 999;
            return Err(format!("init refused at incarnation {incarnation}").into());
        }
        if state.fail_init_from.is_some_and(|from| incarnation >= from) {
            return Err(format!("init always refused, now at incarnation {incarnation}").into());
        }
        if state.panic_init_at == Some(incarnation) {
            state.value = 999;
            panic!("init panicked at incarnation {incarnation}");
        }
        Ok(())
    }

    async fn handle_call(
        state: &mut Tracked<Self>,
        call: CounterCall,
        ctx: &mut Context<Self>,
    ) -> CounterReply {
        match call {
            CounterCall::Get => CounterReply::Value(state.value),
            CounterCall::Add(n) => {
                state.value += n;
                CounterReply::Value(state.value)
            }
            CounterCall::Log => CounterReply::Log(state.log.clone()),
            CounterCall::Wait => {
                let gate = state.gate.clone();
                gate.pass().await;
                CounterReply::Value(state.value)
            }
            CounterCall::AddWaitAdd(n) => {
                state.value += n;
                let gate = state.gate.clone();
                gate.pass().await;
                state.value += n;
                CounterReply::Value(state.value)
            }
            CounterCall::Panic(message) => panic!("{message}"),
            CounterCall::SetThenPanic(value, message) => {
                state.value = value;
                panic!("{message}");
            }
            CounterCall::AddThenStop(n) => {
                state.value += n;
                ctx.stop();
                CounterReply::Value(state.value)
            }
            CounterCall::Incarnation => CounterReply::Value(ctx.incarnation()),
            CounterCall::Thread => {
                CounterReply::Text(std::thread::current().name().map(str::to_owned))
            }
            CounterCall::TaskId => CounterReply::Task(tokio::task::id()),
        }
    }

    async fn handle_cast(state: &mut Tracked<Self>, cast: CounterCast, ctx: &mut Context<Self>) {
        match cast {
            CounterCast::Inc => state.value += 1,
            CounterCast::Add(n) => state.value += n,
            CounterCast::Push(line) => state.log.push(line),
            CounterCast::Panic(message) => panic!("{message}"),
            CounterCast::SetThenPanic(value, message) => {
                state.value = value;
                panic!("{message}");
            }
            CounterCast::Poison => state.poison = true,
            CounterCast::Stop => ctx.stop(),
            CounterCast::Note(text) => state.probe.push(format!("cast {text}")),
        }
    }

    async fn handle_info(state: &mut Tracked<Self>, info: CounterInfo, _: &mut Context<Self>) {
        match info {
            CounterInfo::Inc => state.value += 1,
            CounterInfo::Push(line) => state.log.push(line),
            CounterInfo::Note(text) => state.probe.push(format!("info {text}")),
        }
    }

    async fn terminate(&mut self, reason: &Exit, _: &mut Context<Self>) {
        self.probe
            .push(format!("terminate {reason:?} {}", self.value));
        if self.slow_terminate {
            self.gate.pass().await;
        }
    }
}

/// Typed calls on a `Client<Counter>`, as the macro will generate them.
pub trait CounterClient {
    /// The value.
    fn get(&self) -> impl Future<Output = Result<u64, CallError>> + Send;
    /// Adds `n`; the new value.
    fn add(&self, n: u64) -> impl Future<Output = Result<u64, CallError>> + Send;
    /// The log.
    fn log(&self) -> impl Future<Output = Result<Vec<String>, CallError>> + Send;
}

impl CounterClient for Client<Counter> {
    async fn get(&self) -> Result<u64, CallError> {
        self.call(CounterCall::Get).await.map(CounterReply::value)
    }

    async fn add(&self, n: u64) -> Result<u64, CallError> {
        self.call(CounterCall::Add(n))
            .await
            .map(CounterReply::value)
    }

    async fn log(&self) -> Result<Vec<String>, CallError> {
        match self.call(CounterCall::Log).await? {
            CounterReply::Log(log) => Ok(log),
            other => panic!("expected the log, got {other:?}"),
        }
    }
}

/// Arms `next_restart`, kills the worker and waits for the next incarnation to be ready.
///
/// # Panics
/// If the branch has ended or ends instead of restarting.
pub async fn kill_and_wait<S: Server>(client: &Client<S>) -> u64 {
    let restarted = client.branch().next_restart();
    client
        .branch()
        .kill_worker()
        .expect("the branch is running");
    restarted.await.expect("the worker restarts after a kill")
}

// ---------------------------------------------------------------------------------------------
// A listener that records everything
// ---------------------------------------------------------------------------------------------

/// Records every callback as a line in a [`Probe`]; optionally panics in one callback.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    /// The lines: `changed <old>-><new>`, `restart <incarnation> <exit:?>`,
    /// `terminate <exit:?> <value>`.
    pub events: Probe,
    /// Panics (after recording) in the callback with this name: `on_state_changed`,
    /// `on_restart` or `on_terminate`.
    pub panic_in: Option<&'static str>,
}

impl Recorder {
    fn maybe_panic(&self, callback: &str) {
        if self.panic_in == Some(callback) {
            panic!("listener bug in {callback}");
        }
    }
}

impl Listener<Counter> for Recorder {
    fn on_state_changed(&self, old: &Counter, new: &Counter) {
        self.events
            .push(format!("changed {}->{}", old.value, new.value));
        self.maybe_panic("on_state_changed");
    }

    fn on_restart(&self, incarnation: u64, reason: &Exit) {
        self.events
            .push(format!("restart {incarnation} {reason:?}"));
        self.maybe_panic("on_restart");
    }

    fn on_terminate(&self, reason: &Exit, last: &Counter) {
        self.events
            .push(format!("terminate {reason:?} {}", last.value));
        self.maybe_panic("on_terminate");
    }
}

// ---------------------------------------------------------------------------------------------
// Small servers for one property each
// ---------------------------------------------------------------------------------------------

/// A server that keeps the default `handle_info`: raw messages are ignored.
#[derive(Clone, Debug, Default)]
pub struct Quiet {
    /// The count.
    pub value: u64,
}

impl Server for Quiet {
    type Call = ();
    type Reply = u64;
    type Cast = u64;
    type Info = String;
    type Keep = Snapshot;

    async fn handle_call(state: &mut Tracked<Self>, (): (), _: &mut Context<Self>) -> u64 {
        state.value
    }

    async fn handle_cast(state: &mut Tracked<Self>, by: u64, _: &mut Context<Self>) {
        state.value += by;
    }
}

/// A state with no data at all (a unit struct).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unit;

impl Server for Unit {
    type Call = ();
    type Reply = Unit;
    type Cast = ();
    type Info = ();
    type Keep = Snapshot;

    async fn handle_call(state: &mut Tracked<Self>, (): (), _: &mut Context<Self>) -> Unit {
        **state
    }

    async fn handle_cast(state: &mut Tracked<Self>, (): (), _: &mut Context<Self>) {
        **state = Unit; // a write, so that it is kept again
    }
}

/// A state with no fields (an empty braced struct).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Empty {}

impl Server for Empty {
    type Call = ();
    type Reply = &'static str;
    type Cast = ();
    type Info = ();
    type Keep = Snapshot;

    async fn handle_call(_: &mut Tracked<Self>, (): (), _: &mut Context<Self>) -> &'static str {
        "empty"
    }

    async fn handle_cast(state: &mut Tracked<Self>, (): (), _: &mut Context<Self>) {
        **state = Empty {};
    }
}

/// A large state: a vector of numbers.
#[derive(Clone, Debug, Default)]
pub struct Big(pub Vec<u64>);

impl Server for Big {
    type Call = ();
    type Reply = Vec<u64>;
    type Cast = u64;
    type Info = ();
    type Keep = Snapshot;

    async fn handle_call(state: &mut Tracked<Self>, (): (), _: &mut Context<Self>) -> Vec<u64> {
        state.0.clone()
    }

    async fn handle_cast(state: &mut Tracked<Self>, item: u64, _: &mut Context<Self>) {
        state.0.push(item);
    }
}

/// A state whose `Clone` counts itself in a shared counter.
#[derive(Debug, Default)]
pub struct Counted {
    /// The count.
    pub value: u64,
    /// How many times any copy of this state was cloned.
    pub clones: Arc<AtomicUsize>,
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Counted {
            value: self.value,
            clones: Arc::clone(&self.clones),
        }
    }
}

/// `Counted`'s calls.
#[derive(Debug, Clone, Copy)]
pub enum CountedCall {
    /// Reads (a `&self` handler).
    Get,
    /// Adds one (a `&mut self` handler).
    Inc,
}

impl Server for Counted {
    type Call = CountedCall;
    type Reply = u64;
    type Cast = ();
    type Info = ();
    type Keep = Snapshot;

    async fn handle_call(
        state: &mut Tracked<Self>,
        call: CountedCall,
        _: &mut Context<Self>,
    ) -> u64 {
        match call {
            CountedCall::Get => state.value,
            CountedCall::Inc => {
                state.value += 1;
                state.value
            }
        }
    }

    async fn handle_cast(state: &mut Tracked<Self>, (): (), _: &mut Context<Self>) {
        state.value += 1;
    }
}

/// A state whose `Clone` panics once `explode` is set.
#[derive(Debug, Default)]
pub struct Fragile {
    /// The count.
    pub value: u64,
    /// Cloning panics while this is set.
    pub explode: bool,
}

impl Clone for Fragile {
    fn clone(&self) -> Self {
        assert!(!self.explode, "clone exploded");
        Fragile {
            value: self.value,
            explode: self.explode,
        }
    }
}

/// `Fragile`'s calls.
#[derive(Debug, Clone, Copy)]
pub enum FragileCall {
    /// The value.
    Get,
    /// Sets the value and makes the state impossible to clone.
    SetAndExplode(u64),
    /// Sets the value.
    Set(u64),
}

impl Server for Fragile {
    type Call = FragileCall;
    type Reply = u64;
    type Cast = ();
    type Info = ();
    type Keep = Snapshot;

    async fn handle_call(
        state: &mut Tracked<Self>,
        call: FragileCall,
        _: &mut Context<Self>,
    ) -> u64 {
        match call {
            FragileCall::Get => state.value,
            FragileCall::SetAndExplode(value) => {
                state.value = value;
                state.explode = true;
                value
            }
            FragileCall::Set(value) => {
                state.value = value;
                value
            }
        }
    }

    async fn handle_cast(_: &mut Tracked<Self>, (): (), _: &mut Context<Self>) {}
}

/// A state kept with `Projection`: `total` is kept, `cache` is rebuilt (empty) after a crash.
#[derive(Debug, Default)]
pub struct Cached {
    /// Kept.
    pub total: u64,
    /// Not kept: rebuilt empty.
    pub cache: Vec<u64>,
    /// How many times `rebuild` made this state (0 for the state given to `start`).
    pub rebuilds: u32,
}

impl Project for Cached {
    type Projection = (u64, u32);

    fn project(&self) -> (u64, u32) {
        (self.total, self.rebuilds)
    }

    fn rebuild(&(total, rebuilds): &(u64, u32)) -> Self {
        Cached {
            total,
            cache: Vec::new(),
            rebuilds: rebuilds + 1,
        }
    }
}

/// What `Cached` shows of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedView {
    /// The kept part.
    pub total: u64,
    /// The rebuilt part.
    pub cache: Vec<u64>,
    /// How many rebuilds made this state.
    pub rebuilds: u32,
}

/// `Cached`'s calls.
#[derive(Debug, Clone, Copy)]
pub enum CachedCall {
    /// Everything.
    View,
    /// Adds to the total and the cache, then panics.
    PushThenPanic(u64),
}

impl Server for Cached {
    type Call = CachedCall;
    type Reply = CachedView;
    type Cast = u64;
    type Info = ();
    type Keep = Projection;

    async fn handle_call(
        state: &mut Tracked<Self>,
        call: CachedCall,
        _: &mut Context<Self>,
    ) -> CachedView {
        match call {
            CachedCall::View => CachedView {
                total: state.total,
                cache: state.cache.clone(),
                rebuilds: state.rebuilds,
            },
            CachedCall::PushThenPanic(n) => {
                state.total += n;
                state.cache.push(n);
                panic!("projection boom");
            }
        }
    }

    async fn handle_cast(state: &mut Tracked<Self>, n: u64, _: &mut Context<Self>) {
        state.total += n;
        state.cache.push(n);
    }
}

/// A counter kept `InPlace`: no copy, a crashing handler's partial changes stay.
#[derive(Debug, Default)]
pub struct InPlaceCounter {
    /// The count.
    pub value: u64,
}

/// `InPlaceCounter`'s calls.
#[derive(Debug, Clone, Copy)]
pub enum InPlaceCall {
    /// The value.
    Get,
    /// Sets the value, then panics.
    SetThenPanic(u64),
}

impl Server for InPlaceCounter {
    type Call = InPlaceCall;
    type Reply = u64;
    type Cast = u64;
    type Info = ();
    type Keep = InPlace;

    async fn handle_call(
        state: &mut Tracked<Self>,
        call: InPlaceCall,
        _: &mut Context<Self>,
    ) -> u64 {
        match call {
            InPlaceCall::Get => state.value,
            InPlaceCall::SetThenPanic(value) => {
                state.value = value;
                panic!("in-place boom");
            }
        }
    }

    async fn handle_cast(state: &mut Tracked<Self>, by: u64, _: &mut Context<Self>) {
        state.value += by;
    }
}

/// A server whose first `init` fails (`Err`) or panics, depending on the flag.
#[derive(Clone, Debug, Default)]
pub struct BadInit {
    /// Panic instead of returning an error.
    pub panic: bool,
}

impl Server for BadInit {
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();
    type Keep = Snapshot;

    async fn init(state: &mut Tracked<Self>, _: &mut Context<Self>) -> Result<(), InitError> {
        if state.panic {
            panic!("init exploded");
        }
        Err("missing configuration".into())
    }

    async fn handle_call(_: &mut Tracked<Self>, (): (), _: &mut Context<Self>) {}

    async fn handle_cast(_: &mut Tracked<Self>, (): (), _: &mut Context<Self>) {}
}
