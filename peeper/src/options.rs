//! [`Builder`]: how a server is started, and the options of its branch.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use crate::keeper::BoxedListener;
use crate::{Client, DynamicSupervisor, Listener, Server, StartError};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) name: Option<String>,
    pub(crate) max_restarts: u32,
    pub(crate) within: Duration,
    pub(crate) crash_loop: CrashLoop,
    pub(crate) crash_loop_after: u32,
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
        }
    }
}

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
    pub(crate) supervisor: Option<DynamicSupervisor>,
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
        self.listener = Some(Box::new(listener));
        self
    }

    /// Hosts the branch under a [`DynamicSupervisor`] (the same as
    /// [`DynamicSupervisor::start_child`]).
    pub fn supervisor(mut self, supervisor: &DynamicSupervisor) -> Self {
        self.supervisor = Some(supervisor.clone());
        self
    }

    /// Starts the branch and returns once the first `init` has completed.
    ///
    /// # Errors
    /// [`StartError::NameTaken`], [`StartError::Init`] if `init` failed or panicked,
    /// [`StartError::SupervisorStopped`], or [`StartError::InvalidOptions`].
    pub async fn start(self) -> Result<C, StartError> {
        crate::supervisor::start(self).await.map(C::from)
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
