//! Everything a GenServer callback can answer, at the public API: deferred replies, continue,
//! handler timeouts, stop reasons, start timeouts, `ignore`, and the three cases of Erlang/OTP's
//! own `gen_server_SUITE` that `main` used to fail (`calling_self`, `loop_start_fail`,
//! `undef_in_terminate`), replayed in Rust.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peeper::{CallError, Exit, Ignore, Listener, ReplyTo, Server as _, StartError, StopError};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

/// A name no other test of this file uses (the registry is process-wide).
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

// ---- calling_self ----------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
pub struct Narcissus {
    /// Where a task the handler spawned reports what its call got.
    heard: Option<tokio::sync::mpsc::UnboundedSender<Result<u64, CallError>>>,
}

#[peeper::server]
impl Narcissus {
    #[call]
    async fn call_self(&self, ctx: &mut peeper::Context<Self>) -> Result<u64, CallError> {
        let me = NarcissusClient::from(ctx.client().clone());
        me.answer().await
    }

    #[call]
    async fn call_self_with_timeout(
        &self,
        ctx: &mut peeper::Context<Self>,
    ) -> Result<u64, CallError> {
        let me = NarcissusClient::from(ctx.client().clone());
        me.with_timeout(Duration::from_secs(3600)).answer().await
    }

    #[call]
    async fn stop_self(&self, ctx: &mut peeper::Context<Self>) -> Result<(), StopError> {
        ctx.client().stop().await
    }

    /// A task the handler spawns is not the handler: it may call the server.
    #[call]
    async fn spawn_caller(&self, ctx: &mut peeper::Context<Self>) -> u64 {
        let me = NarcissusClient::from(ctx.client().clone());
        let heard = self.heard.clone().unwrap();
        tokio::spawn(async move { heard.send(me.answer().await).unwrap() });
        7
    }

    #[call]
    fn answer(&self) -> u64 {
        42
    }
}

/// OTP `calling_self`: a server calling itself fails at once, with and without a timeout, and
/// the server goes on serving.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn calling_self_fails_at_once() {
    let (heard, mut calls) = tokio::sync::mpsc::unbounded_channel();
    let server = Narcissus::start(Narcissus { heard: Some(heard) })
        .await
        .unwrap();
    let before = Instant::now();
    assert_eq!(server.call_self().await, Ok(Err(CallError::CallingSelf)));
    assert_eq!(
        server.call_self_with_timeout().await,
        Ok(Err(CallError::CallingSelf))
    );
    assert_eq!(server.stop_self().await, Ok(Err(StopError::CallingSelf)));
    // On a paused clock a wait for a timeout would show as time passed.
    assert_eq!(Instant::now(), before, "no call waited for anything");
    assert_eq!(server.spawn_caller().await, Ok(7));
    assert_eq!(
        calls.recv().await,
        Some(Ok(42)),
        "the spawned task's call went through"
    );
    assert_eq!(server.answer().await, Ok(42));
    assert_eq!(server.branch().restarts(), 0);
    server.stop().await.unwrap();
}

#[derive(Clone, Debug, Default)]
pub struct SelfInit {
    heard: Option<CallError>,
}

#[peeper::server]
impl SelfInit {
    #[init]
    async fn init(&mut self, ctx: &mut peeper::Context<Self>) {
        self.heard = ctx.client().call(SelfInitCall::Heard).await.err();
    }

    #[call]
    fn heard(&self) -> Option<CallError> {
        self.heard.clone()
    }
}

/// `init` is a handler too: calling itself there fails at once, not at the start's expense.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn calling_self_from_init_fails_at_once() {
    let before = Instant::now();
    let server = SelfInit::start(SelfInit::default()).await.unwrap();
    assert_eq!(Instant::now(), before);
    assert_eq!(server.heard().await, Ok(Some(CallError::CallingSelf)));
}

/// Calls itself from `terminate`, and tells the test what it heard. Written by hand: the
/// macro's `#[terminate]` takes no context.
#[derive(Clone)]
struct Farewell {
    heard: tokio::sync::mpsc::UnboundedSender<Result<(), CallError>>,
}

impl peeper::Server for Farewell {
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();
    type Keep = peeper::keep::Snapshot;

    async fn handle_call(_: &mut peeper::Tracked<Self>, (): (), _: &mut peeper::Context<Self>) {}

    async fn handle_cast(_: &mut peeper::Tracked<Self>, (): (), _: &mut peeper::Context<Self>) {
        panic!("a deliberate crash");
    }

    async fn terminate(&mut self, _: &Exit, ctx: &mut peeper::Context<Self>) {
        let heard = ctx.client().call(()).await;
        self.heard.send(heard).unwrap();
    }
}

/// `terminate` is a handler too, wherever it runs: after a stop it runs in the worker, after the
/// restart intensity is spent it runs in the supervisor. Calling itself fails at once in both.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn calling_self_from_terminate_fails_at_once() {
    let (heard, mut hear) = tokio::sync::mpsc::unbounded_channel();
    let before = Instant::now();

    let stopped = Farewell::start(Farewell {
        heard: heard.clone(),
    })
    .await
    .unwrap();
    stopped.stop().await.unwrap();
    assert_eq!(hear.recv().await, Some(Err(CallError::CallingSelf)));

    let given_up = Farewell::builder(Farewell { heard })
        .max_restarts(0)
        .start()
        .await
        .unwrap();
    let ended = given_up.branch().ended();
    given_up.cast(()).unwrap();
    assert!(matches!(ended.await, Exit::RestartLimit { .. }));
    assert_eq!(hear.recv().await, Some(Err(CallError::CallingSelf)));
    assert_eq!(Instant::now(), before, "no call waited for its timeout");
}

// ---- loop_start_fail and cancel-safe starts --------------------------------------------------

/// How many starts have run `init`; `init` never completes while `hang` is above it.
#[derive(Clone, Debug)]
pub struct Hanging {
    starts: Arc<AtomicU32>,
    hang: u32,
}

#[peeper::server]
impl Hanging {
    #[init]
    async fn init(&mut self) {
        if self.starts.fetch_add(1, Ordering::SeqCst) < self.hang {
            std::future::pending::<()>().await;
        }
    }

    #[call]
    fn starts(&self) -> u32 {
        self.starts.load(Ordering::SeqCst)
    }
}

/// OTP `loop_start_fail`: a start whose `init` runs past its time is killed and fails with a
/// typed error, leaving nothing behind; five in a row, then a clean start under the same name.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn five_timed_out_starts_in_a_row_then_a_clean_one() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    let starts = Arc::new(AtomicU32::new(0));
    let name = unique("hanging");
    for round in 1..=5 {
        let started = Hanging::builder(Hanging {
            starts: Arc::clone(&starts),
            hang: 5,
        })
        .name(&name)
        .start_timeout(Duration::from_secs(2))
        .start()
        .await;
        assert_eq!(
            started.unwrap_err(),
            StartError::Timeout(Duration::from_secs(2)),
            "round {round}"
        );
        assert!(
            Hanging::whereis(&name).is_none(),
            "round {round}: the name is free"
        );
        assert_eq!(
            metrics.num_alive_tasks(),
            tasks_before,
            "round {round}: no task is left"
        );
    }
    let server = Hanging::builder(Hanging {
        starts: Arc::clone(&starts),
        hang: 5,
    })
    .name(&name)
    .start_timeout(Duration::from_secs(2))
    .start()
    .await
    .unwrap();
    assert_eq!(server.starts().await, Ok(6));
    server.stop().await.unwrap();
}

/// A start future dropped by its caller (a `select!`, a timeout of its own) leaves no server
/// holding the name, and its tasks end: the next start goes through at once.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_dropped_start_leaves_the_name_free() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    let starts = Arc::new(AtomicU32::new(0));
    let name = unique("dropped");
    for round in 1..=5 {
        let start = Hanging::builder(Hanging {
            starts: Arc::clone(&starts),
            hang: 5,
        })
        .name(&name)
        .start();
        let timed_out = tokio::time::timeout(Duration::from_secs(1), start).await;
        assert!(timed_out.is_err());
        assert!(
            Hanging::whereis(&name).is_none(),
            "round {round}: the name is free at once"
        );
        // On a paused clock a sleep ends once every other task is idle: the branch, stopped in
        // the background, has ended by then.
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            metrics.num_alive_tasks(),
            tasks_before,
            "round {round}: no task is left"
        );
    }
    let server = Hanging::builder(Hanging {
        starts: Arc::clone(&starts),
        hang: 5,
    })
    .name(&name)
    .start()
    .await
    .unwrap();
    assert_eq!(server.starts().await, Ok(6));
}

// ---- undef_in_terminate ------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
pub struct BadTerminate;

#[peeper::server]
impl BadTerminate {
    #[call]
    fn ping(&self) {}

    #[terminate]
    fn terminate(&mut self) {
        panic!("terminate is broken");
    }
}

/// OTP `undef_in_terminate`: a `terminate` that fails makes the stop fail with the error, and
/// the server is gone all the same.
#[tokio::test(flavor = "current_thread")]
async fn a_panicking_terminate_fails_the_stop() {
    let name = unique("bad-terminate");
    let server = BadTerminate::builder(BadTerminate)
        .name(&name)
        .start()
        .await
        .unwrap();
    server.ping().await.unwrap();
    assert_eq!(
        server.stop().await,
        Err(StopError::Terminate {
            message: "terminate is broken".to_owned()
        })
    );
    assert!(BadTerminate::whereis(&name).is_none());
    assert_eq!(server.branch().ended().await, Exit::Normal);
    assert!(matches!(
        server.ping().await,
        Err(CallError::Stopped(Exit::Normal))
    ));
}

// ---- deferred replies --------------------------------------------------------------------------

/// Replies to `later` come from outside, through the test's channel; `count` counts calls.
#[derive(Debug)]
pub struct Deferring {
    count: u64,
    /// Where each taken reply handle goes.
    handles: tokio::sync::mpsc::UnboundedSender<ReplyTo<u64>>,
}

impl Clone for Deferring {
    fn clone(&self) -> Self {
        Deferring {
            count: self.count,
            handles: self.handles.clone(),
        }
    }
}

#[peeper::server]
impl Deferring {
    /// Hands its reply handle to the test, which answers whenever it likes.
    #[call]
    fn later(&mut self, reply: ReplyTo<u64>) {
        self.count += 1;
        self.handles.send(reply).unwrap();
    }

    /// Replies from inside the handler, then panics: the reply must not reach the caller.
    #[call]
    fn reply_then_panic(&mut self, reply: ReplyTo<u64>) {
        self.count += 100;
        reply.send(1);
        panic!("after the reply");
    }

    /// Changes the state, hands its handle away, then waits forever: killed there, the caller
    /// hears the kill and the change is gone.
    #[call]
    async fn later_then_hang(&mut self, reply: ReplyTo<u64>) {
        self.count += 1;
        self.handles.send(reply).unwrap();
        std::future::pending::<()>().await;
    }

    #[call]
    fn drop_it(&self, reply: ReplyTo<u64>) {
        drop(reply);
    }

    #[call]
    fn count(&self) -> u64 {
        self.count
    }
}

fn deferring() -> (
    Deferring,
    tokio::sync::mpsc::UnboundedReceiver<ReplyTo<u64>>,
) {
    let (handles, taken) = tokio::sync::mpsc::unbounded_channel();
    (Deferring { count: 0, handles }, taken)
}

/// The server keeps serving while a reply is outstanding; the caller gets it when it is sent.
#[tokio::test(flavor = "current_thread")]
async fn a_deferred_reply_arrives_when_sent_and_the_server_keeps_serving() {
    let (state, mut taken) = deferring();
    let server = Deferring::start(state).await.unwrap();
    let waiting = tokio::spawn({
        let server = server.clone();
        async move { server.later().await }
    });
    let handle = taken.recv().await.unwrap();
    assert_eq!(server.count().await, Ok(1), "served while the reply is out");
    assert!(!waiting.is_finished());
    handle.send(144);
    assert_eq!(waiting.await.unwrap(), Ok(144));
}

/// A handle dropped unsent answers the caller with a typed error; the handler's state is kept.
#[tokio::test(flavor = "current_thread")]
async fn a_dropped_reply_handle_is_a_typed_error() {
    let (state, _taken) = deferring();
    let server = Deferring::start(state).await.unwrap();
    assert_eq!(server.drop_it().await, Err(CallError::ReplyDropped));
    assert_eq!(server.count().await, Ok(0));
}

/// A reply sent by a handler that then crashes never reaches its caller: the caller hears the
/// crash, and the state is the one before the call.
#[tokio::test(flavor = "current_thread")]
async fn a_reply_from_a_crashing_handler_is_not_delivered() {
    let (state, _taken) = deferring();
    let server = Deferring::start(state).await.unwrap();
    assert_eq!(
        server.reply_then_panic().await,
        Err(CallError::Crashed(Exit::Panicked {
            message: "after the reply".to_owned()
        }))
    );
    assert_eq!(server.count().await, Ok(0));
}

/// A handle whose handler completed outlives the worker: the caller still gets its reply after
/// a crash and restart of the server.
#[tokio::test(flavor = "current_thread")]
async fn a_reply_handle_survives_a_restart() {
    let (state, mut taken) = deferring();
    let server = Deferring::start(state).await.unwrap();
    let waiting = tokio::spawn({
        let server = server.clone();
        async move { server.later().await }
    });
    let handle = taken.recv().await.unwrap();
    let restarted = server.branch().next_restart();
    server.branch().kill_worker().unwrap();
    assert_eq!(restarted.await, Ok(1));
    handle.send(9);
    assert_eq!(waiting.await.unwrap(), Ok(9));
    assert_eq!(server.count().await, Ok(1), "the handler's state was kept");
}

/// Killed while the handler that took the handle still runs, the caller hears the kill, and a
/// reply sent later through the handle is dropped.
#[tokio::test(flavor = "current_thread")]
async fn a_kill_before_the_handler_completes_fails_the_deferred_call() {
    let (state, mut taken) = deferring();
    let server = Deferring::start(state).await.unwrap();
    let waiting = tokio::spawn({
        let server = server.clone();
        async move { server.later_then_hang().await }
    });
    let handle = taken.recv().await.unwrap();
    server.branch().kill_worker().unwrap();
    assert_eq!(
        waiting.await.unwrap(),
        Err(CallError::Crashed(Exit::Killed))
    );
    handle.send(1); // dropped: nobody is owed it
    assert_eq!(server.count().await, Ok(0));
}

/// A caller whose reply never comes times out as usual.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_deferred_call_times_out_as_usual() {
    let (state, mut taken) = deferring();
    let server = Deferring::start(state).await.unwrap();
    let answer = server.with_timeout(Duration::from_secs(1)).later().await;
    assert_eq!(answer, Err(CallError::Timeout(Duration::from_secs(1))));
    let handle = taken.recv().await.unwrap();
    handle.send(3); // too late: dropped
}

// ---- continue ----------------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
pub struct Steps {
    log: Vec<String>,
}

#[peeper::server]
impl Steps {
    #[init]
    fn init(&mut self, ctx: &mut peeper::Context<Self>) {
        if ctx.incarnation() == 0 {
            self.log.push("init".to_owned());
            ctx.continue_with(StepsCast::Step {
                label: "after init".to_owned(),
            });
        }
    }

    #[cast]
    fn step(&mut self, label: String) {
        self.log.push(label);
    }

    /// Logs, then asks for two continuations that run before any queued message.
    #[cast]
    fn twice(&mut self, ctx: &mut peeper::Context<Self>) {
        self.log.push("twice".to_owned());
        ctx.continue_with(StepsCast::Step {
            label: "first".to_owned(),
        });
        ctx.continue_with(StepsCast::Crash);
    }

    #[cast]
    fn crash(&mut self) {
        self.log.push("lost".to_owned());
        panic!("in a continuation");
    }

    #[call]
    fn log(&self) -> Vec<String> {
        self.log.clone()
    }
}

/// A continuation runs right after the handler that asked for it (or `init`), before any
/// queued message; its state is kept as a handler's, and a panic in it is a crash that keeps
/// the state before it.
#[tokio::test(flavor = "current_thread")]
async fn continuations_run_before_the_next_message() {
    let steps = Steps::start(Steps::default()).await.unwrap();
    let restarted = steps.branch().next_restart();
    steps.twice().unwrap();
    steps.step("queued".to_owned()).unwrap();
    assert_eq!(
        restarted.await,
        Ok(1),
        "the crashing continuation is a crash"
    );
    assert_eq!(
        steps.log().await.unwrap(),
        ["init", "after init", "twice", "first", "queued"],
        "each continuation ran before `queued`; the crashed one's change is gone"
    );
}

// ---- handler timeouts --------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
pub struct Door {
    open: bool,
    timeouts: u32,
}

#[peeper::server]
impl Door {
    #[cast]
    fn open(&mut self, ctx: &mut peeper::Context<Self>) {
        self.open = true;
        ctx.set_timeout(Duration::from_secs(30));
    }

    #[cast]
    fn touch(&self) {}

    #[timeout]
    fn close(&mut self) {
        self.open = false;
        self.timeouts += 1;
    }

    #[call]
    fn state(&self) -> (bool, u32) {
        (self.open, self.timeouts)
    }
}

/// The timeout fires after the time asked for without a message, once; the next message
/// cancels it.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_handler_timeout_fires_unless_a_message_comes_first() {
    let door = Door::start(Door::default()).await.unwrap();
    door.open().unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    door.touch().unwrap(); // a message: cancels it
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(door.state().await, Ok((true, 0)), "cancelled by `touch`");

    door.open().unwrap();
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(door.state().await, Ok((false, 1)));
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(door.state().await, Ok((false, 1)), "fired once");
}

// ---- stop reasons ------------------------------------------------------------------------------

/// Reports `terminate`'s reason and the listener's to the test.
#[derive(Clone, Debug)]
pub struct Quitter {
    terminated: Arc<Mutex<Option<oneshot::Sender<Exit>>>>,
}

#[peeper::server]
impl Quitter {
    #[cast]
    fn quit(&mut self, why: String, ctx: &mut peeper::Context<Self>) {
        ctx.stop_with(why);
    }

    #[terminate]
    fn terminate(&mut self, reason: &Exit) {
        if let Some(terminated) = self.terminated.lock().unwrap().take() {
            terminated.send(reason.clone()).unwrap();
        }
    }
}

struct Heard(Arc<Mutex<Option<Exit>>>, Arc<Notify>);

impl Listener<Quitter> for Heard {
    fn on_terminate(&self, reason: &Exit, _: &Quitter) {
        *self.0.lock().unwrap() = Some(reason.clone());
        self.1.notify_one();
    }

    fn wants_state_changes(&self) -> bool {
        false
    }
}

/// A stop reason reaches `terminate`, the listener and `Branch::ended`, from inside
/// (`ctx.stop_with`) and from outside (`stop_with`).
#[tokio::test(flavor = "current_thread")]
async fn a_stop_reason_reaches_terminate_the_listener_and_ended() {
    for inside in [true, false] {
        let (terminated, reason) = oneshot::channel();
        let heard = Arc::new(Mutex::new(None));
        let told = Arc::new(Notify::new());
        let quitter = Quitter::builder(Quitter {
            terminated: Arc::new(Mutex::new(Some(terminated))),
        })
        .listener(Heard(Arc::clone(&heard), Arc::clone(&told)))
        .start()
        .await
        .unwrap();
        let ended = quitter.branch().ended();
        let listened = told.notified();
        if inside {
            quitter.quit("done here".to_owned()).unwrap();
        } else {
            quitter.stop_with("done here").await.unwrap();
        }
        let expected = Exit::Stopped {
            reason: "done here".to_owned(),
        };
        assert_eq!(reason.await.unwrap(), expected);
        assert_eq!(ended.await, expected);
        listened.await;
        assert_eq!(heard.lock().unwrap().clone(), Some(expected));
    }
}

// ---- init: ignore and stop ---------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Picky {
    /// From this incarnation on, `init` declines.
    decline_from: u64,
}

#[peeper::server]
impl Picky {
    #[init]
    fn init(&mut self, ctx: &mut peeper::Context<Self>) -> Result<(), Ignore> {
        if ctx.incarnation() >= self.decline_from {
            return Err(Ignore);
        }
        Ok(())
    }

    #[cast]
    fn crash(&self) {
        panic!("crash");
    }
}

/// An `init` that declines at the first start: a typed result, nothing registered.
#[tokio::test(flavor = "current_thread")]
async fn an_ignoring_init_starts_nothing() {
    let name = unique("picky");
    let started = Picky::builder(Picky { decline_from: 0 })
        .name(&name)
        .start()
        .await;
    assert_eq!(started.unwrap_err(), StartError::Ignored);
    assert!(Picky::whereis(&name).is_none());
}

/// After a restart, an `init` that declines ends the branch quietly with `Exit::Ignored`.
#[tokio::test(flavor = "current_thread")]
async fn an_ignoring_init_after_a_restart_ends_the_branch() {
    let picky = Picky::start(Picky { decline_from: 1 }).await.unwrap();
    picky.crash().unwrap();
    assert_eq!(picky.branch().ended().await, Exit::Ignored);
}

#[derive(Clone, Debug, Default)]
pub struct Quits;

#[peeper::server]
impl Quits {
    #[init]
    fn init(&mut self, ctx: &mut peeper::Context<Self>) {
        ctx.stop_with("not today");
    }
}

/// `init` asking to stop is GenServer's `{:stop, reason}`: the start fails with the reason.
#[tokio::test(flavor = "current_thread")]
async fn an_init_that_stops_fails_the_start_with_its_reason() {
    let started = Quits::start(Quits).await;
    assert_eq!(
        started.unwrap_err(),
        StartError::Init(Exit::Stopped {
            reason: "not today".to_owned()
        })
    );
}

// ---- with a store: timeouts and hibernation, ignore after a restart ----------------------------

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Lamp {
    on: bool,
    switched_off: u32,
    tries: u32,
    decline_restarts: bool,
}

#[peeper::server]
impl Lamp {
    #[init]
    fn init(&mut self, ctx: &mut peeper::Context<Self>) -> Result<(), Ignore> {
        if ctx.incarnation() > 0 && self.decline_restarts {
            self.tries += 1; // changed, then declined: not kept
            return Err(Ignore);
        }
        Ok(())
    }

    #[cast]
    fn switch_on(&mut self, ctx: &mut peeper::Context<Self>) {
        self.on = true;
        ctx.set_timeout(Duration::from_secs(30));
    }

    #[timeout]
    fn switch_off(&mut self) {
        self.on = false;
        self.switched_off += 1;
    }

    #[call]
    fn state(&self) -> (bool, u32, u32) {
        (self.on, self.switched_off, self.tries)
    }

    #[cast]
    fn crash(&self) {
        panic!("crash");
    }
}

impl peeper::Persist for Lamp {
    const KIND: &'static str = "lamp";
}

/// A server waiting for its handler timeout does not hibernate first (which would drop it): the
/// timeout fires, and the server hibernates after it.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_pending_handler_timeout_keeps_a_durable_server_awake() {
    let storage = peeper::store::Storage::new(peeper::store::Memory::new());
    let lamp = Lamp::builder(Lamp::default())
        .name(unique("lamp"))
        .store(storage)
        .idle_after(Duration::from_secs(10))
        .start()
        .await
        .unwrap();
    lamp.switch_on().unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        !lamp.branch().is_hibernating(),
        "awake: its timeout is pending"
    );
    tokio::time::sleep(Duration::from_secs(11)).await; // 31 s: the timeout fired
    tokio::time::sleep(Duration::from_secs(11)).await; // then idle for 11 s: hibernated
    assert!(lamp.branch().is_hibernating());
    assert_eq!(
        lamp.state().await,
        Ok((false, 1, 0)),
        "revived with the timeout's change"
    );
}

/// An `init` that changes the state and then declines after a restart ends the branch on the
/// kept state: what it changed is neither kept nor stored.
#[tokio::test(flavor = "current_thread")]
async fn an_ignoring_init_after_a_restart_stores_the_kept_state() {
    let storage = peeper::store::Storage::new(peeper::store::Memory::new());
    let name = unique("declining-lamp");
    let lamp = Lamp::builder(Lamp {
        decline_restarts: true,
        ..Lamp::default()
    })
    .name(&name)
    .store(storage.clone())
    .start()
    .await
    .unwrap();
    lamp.crash().unwrap();
    assert_eq!(lamp.branch().ended().await, Exit::Ignored);

    // Started again from what was stored, as a first start (incarnation 0): no decline.
    let again = Lamp::builder(Lamp::default())
        .name(&name)
        .store(storage)
        .start()
        .await
        .unwrap();
    assert_eq!(
        again.state().await,
        Ok((false, 0, 0)),
        "`tries` was not stored"
    );
}

// ---- transfer and shutdown from a server's own handler -----------------------------------------

#[derive(Clone, Debug)]
pub struct Mover {
    from: peeper::DynamicSupervisor,
    to: peeper::DynamicSupervisor,
}

#[peeper::server]
impl Mover {
    #[call]
    async fn move_myself(&self) -> Result<(), peeper::TransferError> {
        peeper::transfer("mover", &self.from, &self.to).await
    }

    #[call]
    async fn shut_my_supervisor_down(&self) {
        self.from.shutdown().await;
    }
}

/// A transfer of itself from its own handler fails at once (it would wait for itself); a
/// shutdown of its own supervisor from its handler stops the others, and it once it returns.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_server_cannot_transfer_itself_and_can_shut_its_supervisor_down() {
    let (from, to) = (
        peeper::DynamicSupervisor::new(),
        peeper::DynamicSupervisor::new(),
    );
    let mover = from
        .start_child(
            Mover::builder(Mover {
                from: from.clone(),
                to: to.clone(),
            })
            .name("mover"),
        )
        .await
        .unwrap();
    let before = Instant::now();
    assert_eq!(
        mover.move_myself().await,
        Ok(Err(peeper::TransferError::CallingSelf))
    );
    assert_eq!(Instant::now(), before, "it did not wait");
    let sibling = from
        .start_child(Narcissus::builder(Narcissus::default()))
        .await
        .unwrap();
    let ended = mover.branch().ended();
    assert_eq!(mover.shut_my_supervisor_down().await, Ok(()));
    assert_eq!(sibling.branch().ended().await, Exit::Shutdown);
    assert_eq!(ended.await, Exit::Shutdown);
}
