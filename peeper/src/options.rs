//! [`Builder`]: how a server is started, and the options of its branch.

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use crate::durable::Durable;
use crate::keeper::BoxedListener;

use crate::{Client, DynamicSupervisor, Listener, Server};

/// What to do when the kept state itself cannot start: several incarnations in a row fail in
/// `init` (an `Err`, a panic, or a panic while restoring the kept copy).
///
/// Only failed starts count. A handler that panics has consumed its message, and the next
/// incarnation handles a different one, so repeated handler crashes say nothing certain about the
/// state (a client retrying one bad request would look the same); they are bounded by the restart
/// intensity instead. Kills do not count either.
///
/// ```
/// use peeper::CrashLoop;
/// assert_eq!(CrashLoop::default(), CrashLoop::Stop);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CrashLoop {
    /// End the branch with [`Exit::CrashLoop`](crate::Exit::CrashLoop) (the default): restarting
    /// on the same state would only crash again.
    #[default]
    Stop,
    /// Fall back to the state the server was started with (the keep strategy copies it at start),
    /// and run `init` on it. If that fails to start too, the branch stops with [`Exit::CrashLoop`](crate::Exit::CrashLoop). Not available with
    /// [`InPlace`](crate::keep::InPlace), which keeps no copy.
    ResetToInitial,
}

/// The options of a branch; the defaults are those of [`Builder::new`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Options {
    pub(crate) name: Option<String>,
    pub(crate) max_restarts: u32,
    pub(crate) within: Duration,
    pub(crate) crash_loop: CrashLoop,
    pub(crate) crash_loop_after: u32,
    pub(crate) write: WritePolicy,
    pub(crate) on_stop: OnStop,
    pub(crate) idle_after: Option<Duration>,
    pub(crate) listener_backlog: usize,
    pub(crate) start_timeout: Option<Duration>,
    pub(crate) retention: crate::retained::Retention,
}

/// When a durable server writes its state (see [`Builder::store`]).
///
/// ```
/// assert_eq!(peeper::WritePolicy::default(), peeper::WritePolicy::Through);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum WritePolicy {
    /// After every handler that changed the state, and the reply waits for the commit (the
    /// default): a reply means the state is on disk. Group commit shares each transaction between
    /// every server that changed meanwhile, so this costs one fsync per round, not per call.
    #[default]
    Through,
    /// At most once per period, and replies do not wait. **A process crash can lose the last
    /// period's changes**, even acknowledged ones; a worker crash loses nothing (the kept state in
    /// memory is still there). The state is also written when the branch ends or hibernates.
    Batched(Duration),
}

/// What a normal stop ([`Client::stop`](crate::Client::stop)) does to a durable server's stored
/// state.
///
/// ```
/// assert_eq!(peeper::OnStop::default(), peeper::OnStop::Wipe);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum OnStop {
    /// Delete it (the default, as PersistentGenServer does): a stopped server is done. Every other
    /// end (restart limit, crash loop, shutdown of its supervisor) keeps it, so that the next
    /// start under the same name picks it up.
    #[default]
    Wipe,
    /// Keep it: the next start under the same name picks it up.
    Keep,
}

/// Default restart intensity: more than this many restarts...
pub const DEFAULT_MAX_RESTARTS: u32 = 1_000;
/// ...within this window, and the branch gives up.
pub const DEFAULT_RESTART_WINDOW: Duration = Duration::from_secs(10);
/// Default number of incarnations in a row that fail to start before the [`CrashLoop`] policy
/// applies.
pub const DEFAULT_CRASH_LOOP_AFTER: u32 = 3;

impl Default for Options {
    fn default() -> Self {
        Options {
            name: None,
            max_restarts: DEFAULT_MAX_RESTARTS,
            within: DEFAULT_RESTART_WINDOW,
            crash_loop: CrashLoop::default(),
            crash_loop_after: DEFAULT_CRASH_LOOP_AFTER,
            write: WritePolicy::default(),
            on_stop: OnStop::default(),
            idle_after: None,
            listener_backlog: crate::keeper::DEFAULT_LISTENER_BACKLOG,
            retention: crate::retained::Retention::default(),
            start_timeout: None,
        }
    }
}

impl Options {
    /// These options without their name, as one copy shared by every caller with the same ones:
    /// what a released server keeps (see `supervisor::hibernation`), so that a million released
    /// servers started alike keep a pointer each rather than a copy each. The name is the
    /// registry's key, given back on revival.
    ///
    /// Copies no one shares any more are let go as the set grows: it stays within twice the
    /// number of distinct options in use.
    pub(crate) fn shared(mut self) -> Arc<Options> {
        static SHARED: LazyLock<Mutex<Shared>> = LazyLock::new(Mutex::default);
        self.name = None;
        // Nothing panics while the lock is held.
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = shared.set.get(&self) {
            return Arc::clone(found);
        }
        if shared.set.len() >= shared.prune_at {
            shared.set.retain(|options| Arc::strong_count(options) > 1);
            shared.prune_at = (2 * shared.set.len()).max(16);
        }
        let options = Arc::new(self);
        shared.set.insert(Arc::clone(&options));
        options
    }
}

/// The options [`Options::shared`] hands out.
#[derive(Default)]
struct Shared {
    set: HashSet<Arc<Options>>,
    /// The size at which the set is next cleared of the copies only it holds.
    prune_at: usize,
}

/// How a dynamic supervisor adopts a branch: the runtime the branch runs on, or `None` once it
/// has shut down.
pub(crate) type Adopt<S> = fn(&DynamicSupervisor, &Client<S>) -> Option<tokio::runtime::Handle>;

/// Starts a server with options: a name, restart intensity, a crash-loop policy, a listener, a
/// dynamic supervisor to host it.
///
/// `C` is the client type `start` returns: [`Client<S>`] by default; `#[peeper::server]` makes
/// it the server's typed client.
///
/// # Defaults, and why
/// - **Restart intensity: [`DEFAULT_MAX_RESTARTS`] (1,000) within [`DEFAULT_RESTART_WINDOW`]
///   (10 s)**, Elixir Peeper's own. OTP's classic 3-in-5 s exists to stop a child whose state is
///   broken; here a restart is cheap and keeps the state, and the case OTP guards against (the
///   same state crashing every time) is caught much sooner by the crash-loop policy. A low limit
///   would instead let a handful of bad requests take a healthy server down.
/// - **Crash loop: [`CrashLoop::Stop`] after [`DEFAULT_CRASH_LOOP_AFTER`] (3)** incarnations in a
///   row whose `init` fails on the kept state.
///
/// ```
/// # use peeper::{Context, Server, Tracked};
/// # #[derive(Clone, Default)] struct Counter(u64);
/// # impl Server for Counter { type Call = (); type Reply = u64; type Cast = (); type Info = (); type Keep = peeper::keep::Snapshot;
/// #   async fn handle_call(s: &mut Tracked<Self>, _: (), _: &mut Context<Self>) -> u64 { s.0 }
/// #   async fn handle_cast(s: &mut Tracked<Self>, _: (), _: &mut Context<Self>) { s.0 += 1 } }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
///
/// let counter = Counter::builder(Counter::default())
///     .name("counter")
///     .max_restarts(3)
///     .within(Duration::from_secs(5))
///     .crash_loop(peeper::CrashLoop::ResetToInitial)
///     .start()
///     .await?;
/// assert!(peeper::whereis::<Counter>("counter").is_some());
/// # counter.stop().await?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `.start().await`"]
pub struct Builder<S: Server, C = Client<S>> {
    pub(crate) state: S,
    pub(crate) options: Options,
    pub(crate) listener: Option<BoxedListener<S>>,
    /// The dynamic supervisor to host the branch, with how it adopts a branch of this server
    /// type (set here, so that a server never hosted does not compile the hosting code).
    pub(crate) supervisor: Option<(DynamicSupervisor, Adopt<S>)>,
    pub(crate) durable: Option<Durable<S>>,
    client: PhantomData<fn() -> C>,
}

impl<S: Server, C: From<Client<S>>> Builder<S, C> {
    /// A builder for a server starting from `state`, with the default options.
    pub fn new(state: S) -> Self {
        Builder {
            state,
            options: Options::default(),
            listener: None,
            supervisor: None,
            durable: None,
            client: PhantomData,
        }
    }

    /// Registers the server under `name`, unique per server type, for [`whereis`](crate::whereis).
    /// The name is freed when the branch ends.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = Some(name.into());
        self
    }

    /// Restart intensity: the branch gives up (with [`Exit::RestartLimit`](crate::Exit)) on the
    /// crash that makes more than `max_restarts` restarts within the window.
    pub fn max_restarts(mut self, max_restarts: u32) -> Self {
        self.options.max_restarts = max_restarts;
        self
    }

    /// The window of [`max_restarts`](Builder::max_restarts).
    pub fn within(mut self, window: Duration) -> Self {
        self.options.within = window;
        self
    }

    /// What to do when the state crash-loops; see [`CrashLoop`].
    pub fn crash_loop(mut self, policy: CrashLoop) -> Self {
        self.options.crash_loop = policy;
        self
    }

    /// How many incarnations in a row must fail to start to count as a crash loop (at least 1).
    pub fn crash_loop_after(mut self, incarnations: u32) -> Self {
        self.options.crash_loop_after = incarnations.max(1);
        self
    }

    /// The listener that hears about state changes, restarts and the end; see [`Listener`].
    pub fn listener(mut self, listener: impl Listener<S>) -> Self {
        self.listener = Some(BoxedListener::new(listener));
        self
    }

    /// How many state changes may wait for a slow listener (1,024 by default, at least 1).
    /// Each one holds a copy of the state; past the bound, the newest change replaces the ones
    /// the listener has not heard yet, and it is told how many it missed
    /// ([`Listener::on_state_changes_skipped`]). Restarts and the end are always heard, in
    /// order.
    ///
    /// ```
    /// # #[derive(Clone, Default)] struct Big(Vec<u8>);
    /// # #[peeper::server] impl Big { #[call] fn len(&self) -> usize { self.0.len() } }
    /// let builder = Big::builder(Big::default()).listener_backlog(8);
    /// # drop(builder);
    /// ```
    pub fn listener_backlog(mut self, changes: usize) -> Self {
        self.options.listener_backlog = changes.max(1);
        self
    }

    /// Hosts the branch under a [`DynamicSupervisor`] (the same as
    /// [`DynamicSupervisor::start_child`]).
    pub fn supervisor(mut self, supervisor: &DynamicSupervisor) -> Self {
        self.supervisor = Some((supervisor.clone(), DynamicSupervisor::adopt::<S>));
        self
    }

    /// When a durable server writes its state; see [`WritePolicy`]. Only used with
    /// [`store`](Builder::store).
    pub fn write_policy(mut self, policy: WritePolicy) -> Self {
        self.options.write = policy;
        self
    }

    /// What a normal stop does to the stored state; see [`OnStop`]. Only used with
    /// [`store`](Builder::store).
    pub fn on_stop(mut self, on_stop: OnStop) -> Self {
        self.options.on_stop = on_stop;
        self
    }

    /// Hibernates the server after `idle` without a message: its tasks end and its state is
    /// dropped from memory (it is in the store); its name and every client stay valid, and the
    /// next message through any of them revives it, exactly once however many arrive together,
    /// with nothing lost. Needs [`store`](Builder::store).
    ///
    /// A hibernating server that nothing holds (no client, no [`Branch`](crate::Branch), no
    /// future waiting on its status) is *released*: its branch, its mailbox and its options go,
    /// and what is left under its name is a record of about a hundred bytes, with a pointer to
    /// options shared by the servers started alike. A lookup by name ([`whereis`](crate::whereis),
    /// the typed client's `whereis`, [`Entities::get`](crate::Entities::get), a call from another
    /// node) revives it at once, in a new branch with the same id, restart count and incarnation;
    /// the client it returns queues messages until the state is loaded. A server that keeps
    /// tables or values ([`Context::table`](crate::Context::table)), or that a dynamic
    /// supervisor hosts, stays in place.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use peeper::store::{Memory, Storage};
    /// # #[derive(Clone, Default, serde::Serialize, serde::Deserialize)] pub struct Player { score: u64 }
    /// # #[peeper::server] impl Player { #[call] fn won(&mut self, points: u64) -> u64 { self.score += points; self.score } }
    /// # impl peeper::Persist for Player { const KIND: &'static str = "doc-idle-player"; }
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let player = Player::builder(Player::default())
    ///     .name("ada")
    ///     .store(Storage::new(Memory::new()))
    ///     .idle_after(Duration::from_secs(60))
    ///     .start()
    ///     .await?;
    /// player.won(3).await?;
    /// let id = player.branch().id();
    ///
    /// player.branch().hibernated().await?;      // a minute later (the clock is paused here)
    /// drop(player);                             // nothing holds it now: released
    ///
    /// let player = Player::whereis("ada").expect("a released name stays registered");
    /// assert_eq!(player.branch().id(), id);     // revived, as the same branch
    /// assert_eq!(player.won(4).await?, 7);      // with its state
    /// # Ok(()) }
    /// ```
    pub fn idle_after(mut self, idle: Duration) -> Self {
        self.options.idle_after = Some(idle);
        self
    }

    /// How long the reply of a call made with an idempotency key is kept to answer its retries
    /// (24 h by default, [`DEFAULT_RETENTION`](crate::DEFAULT_RETENTION)), and how many such
    /// replies the server keeps at most (10,000 by default,
    /// [`DEFAULT_RETAINED_MAX`](crate::DEFAULT_RETAINED_MAX); at least 1): past either, the
    /// oldest record is forgotten, and a retry with its key runs the handler again. Costs
    /// nothing per call: only the oldest records are looked at.
    ///
    /// ```
    /// # #[derive(Clone, Default)] struct Cart(Vec<String>);
    /// # #[peeper::server] impl Cart { #[call] fn add(&mut self, item: String) -> usize { self.0.push(item); self.0.len() } }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    ///
    /// let cart = Cart::builder(Cart::default())
    ///     .retain_replies(Duration::from_secs(3600), 1_000)
    ///     .start()
    ///     .await?;
    /// assert_eq!(cart.idempotent("req-1").add("tea".into()).await?, 1);
    /// assert_eq!(cart.idempotent("req-1").add("tea".into()).await?, 1); // a retry: not applied again
    /// # Ok(()) }
    /// ```
    pub fn retain_replies(mut self, window: Duration, max: usize) -> Self {
        self.options.retention = crate::retained::Retention {
            window,
            max: max.max(1),
        };
        self
    }

    /// Gives up a start that has not completed within `timeout` (loading a durable state
    /// included), as `GenServer.start_link/3`'s `:timeout`: the worker is killed at its next
    /// await, and [`start`](Builder::start) returns [`StartError::Timeout`](crate::StartError::Timeout) once its branch has
    /// ended (no task, no name) and its claim is released, so a retry starts clean. No timeout by
    /// default. `start` waits for that release, and for the kill to land: an `init` that blocks
    /// its thread without awaiting delays it. (Dropping the start future instead frees the name
    /// and gives the claim up at once, and the branch ends in the background.)
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    ///
    /// #[derive(Clone, Default)]
    /// pub struct Stuck;
    ///
    /// #[peeper::server]
    /// impl Stuck {
    ///     #[init]
    ///     async fn init(&mut self) {
    ///         std::future::pending::<()>().await; // waits for something that never comes
    ///     }
    /// }
    ///
    /// let started = Stuck::builder(Stuck).name("stuck").start_timeout(Duration::from_secs(1)).start().await;
    /// assert_eq!(started.unwrap_err(), peeper::StartError::Timeout(Duration::from_secs(1)));
    /// assert!(Stuck::whereis("stuck").is_none());
    /// # Ok(()) }
    /// ```
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.options.start_timeout = Some(timeout);
        self
    }
}

impl<S: Server, C> fmt::Debug for Builder<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("server", &std::any::type_name::<S>())
            .field("options", &self.options)
            .field("listener", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}
