//! [`Context`]: what a handler knows about the branch it runs in.

use std::collections::VecDeque;
use std::fmt;
use std::mem;
use std::sync::Arc;
use std::time::Duration;

use crate::mailbox::Caller;
use crate::reply::Gate;
use crate::resources::{Resources, Values};
use crate::{CallError, Client, Exit, ReplyTo, Server};

mod kept;

/// What a handler knows about its branch, and what it can ask of it.
///
/// Every handler may take it as its last-but-any argument (`ctx: &mut peeper::Context<Self>`).
///
/// ```
/// use peeper::{Context, Server, Tracked};
///
/// #[derive(Clone, Default)]
/// struct Restarts(u64);
///
/// impl Server for Restarts {
///     type Call = ();
///     type Reply = u64;
///     type Cast = ();
///     type Info = ();
///     type Keep = peeper::keep::Snapshot;
///
///     async fn init(state: &mut Tracked<Self>, ctx: &mut Context<Self>) -> Result<(), peeper::InitError> {
///         state.0 = ctx.incarnation(); // 0 at the first start, then 1, 2, ... after each crash
///         Ok(())
///     }
///     async fn handle_call(state: &mut Tracked<Self>, (): (), _: &mut Context<Self>) -> u64 {
///         state.0
///     }
///     async fn handle_cast(_: &mut Tracked<Self>, (): (), ctx: &mut Context<Self>) {
///         ctx.stop(); // stop normally once this handler returns
///     }
/// }
/// ```
pub struct Context<S: Server> {
    incarnation: u64,
    client: Client<S>,
    /// A stop asked for by the running handler, with its reason.
    stop: Option<Exit>,
    /// Casts to handle before the next message, in order. Boxed, and only once a handler asks
    /// for one: the context sits in every server's task, and an empty `VecDeque` is four words.
    #[allow(clippy::box_collection)]
    continuations: Option<Box<VecDeque<S::Cast>>>,
    /// `handle_timeout` after this long without a message, as asked by the last handler.
    timeout: Option<Duration>,
    /// The reply of the call being handled, until the handler returns or takes it.
    caller: Option<Caller<S>>,
    /// The reply the running call handler took, held until its state is kept.
    deferred: Option<Arc<Gate<S::Reply>>>,
    /// The branch's kept values, moved here for this worker's life so that handlers borrow them
    /// with no lock, and moved back when the context drops: whatever ends the worker (a return,
    /// a panic, an abort by `kill_worker`) drops its context first.
    values: Values,
}

impl<S: Server> Context<S> {
    pub(crate) fn new(incarnation: u64, client: Client<S>) -> Self {
        let values = client
            .branch()
            .existing_resources()
            .map(Resources::take_values)
            .unwrap_or_default();
        Context {
            incarnation,
            client,
            stop: None,
            continuations: None,
            timeout: None,
            caller: None,
            deferred: None,
            values,
        }
    }

    /// Which worker this is: 0 for the first, then one more after every restart.
    #[must_use]
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// A client of this very server, to send itself messages (`ctx.client().cast(..)`) or to
    /// hand out. A *call* to yourself from a handler fails at once with
    /// [`CallError::CallingSelf`]: the worker handles one message at a time, so it would wait
    /// for itself.
    #[must_use]
    pub fn client(&self) -> &Client<S> {
        &self.client
    }

    /// Asks for a normal stop once the current handler returns: the branch ends with
    /// [`Exit::Normal`], `terminate` runs, and messages still queued are answered with
    /// [`CallError::Stopped`]. Continuations not run yet are dropped.
    pub fn stop(&mut self) {
        self.stop = Some(Exit::Normal);
    }

    /// Asks for a stop with a reason once the current handler returns, GenServer's
    /// `{:stop, reason, state}`: as [`stop`](Context::stop), with [`Exit::Stopped`] carrying
    /// `reason` to `terminate`, the listener and [`Branch::ended`](crate::Branch::ended).
    ///
    /// ```
    /// use peeper::Exit;
    ///
    /// #[derive(Clone, Default)]
    /// pub struct Session;
    ///
    /// #[peeper::server]
    /// impl Session {
    ///     #[cast]
    ///     fn log_out(&mut self, ctx: &mut peeper::Context<Self>) {
    ///         ctx.stop_with("logged out");
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let session = Session::start(Session).await?;
    /// let ended = session.branch().ended();
    /// session.log_out()?;
    /// assert_eq!(ended.await, Exit::Stopped { reason: "logged out".into() });
    /// # Ok(()) }
    /// ```
    pub fn stop_with(&mut self, reason: impl Into<String>) {
        self.stop = Some(Exit::Stopped {
            reason: reason.into(),
        });
    }

    /// Handles `cast` right after the current handler (or `init`), before any queued message,
    /// GenServer's `{:continue, term}`. The state the current handler leaves is kept (and, for a
    /// durable server that writes through, committed) first; the continuation then runs as any cast handler does: its
    /// state is kept like a handler's, and a panic in it is a crash, after which it is not run
    /// again. Several continuations run in the order they were asked for. A crash of the
    /// current handler, or a stop, drops them.
    ///
    /// ```
    /// #[derive(Clone, Default)]
    /// pub struct Loader { loaded: bool }
    ///
    /// #[peeper::server]
    /// impl Loader {
    ///     /// Starts fast: the slow part runs after `start` has returned, before any message.
    ///     #[init]
    ///     fn init(&mut self, ctx: &mut peeper::Context<Self>) {
    ///         ctx.continue_with(LoaderCast::Load);
    ///     }
    ///
    ///     #[cast]
    ///     fn load(&mut self) { self.loaded = true }
    ///
    ///     #[call]
    ///     fn loaded(&self) -> bool { self.loaded }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let loader = Loader::start(Loader::default()).await?;
    /// assert!(loader.loaded().await?);   // `load` ran before this call
    /// # Ok(()) }
    /// ```
    pub fn continue_with(&mut self, cast: S::Cast) {
        self.continuations.get_or_insert_default().push_back(cast);
    }

    /// Asks for [`Server::handle_timeout`] (`#[timeout]` with the macro) if no message arrives
    /// within `timeout` after the current handler, GenServer's `{:noreply, state, timeout}`. The
    /// next message cancels it, and every handler sets it again or not: only the last handler's
    /// request counts. A server waiting for its timeout does not hibernate
    /// ([`Builder::idle_after`](crate::Builder::idle_after)) before it fires; a crash, a
    /// transfer or a stop drops it, as it drops the worker.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    ///
    /// #[derive(Clone, Default)]
    /// pub struct Door { open: bool }
    ///
    /// #[peeper::server]
    /// impl Door {
    ///     #[cast]
    ///     fn open(&mut self, ctx: &mut peeper::Context<Self>) {
    ///         self.open = true;
    ///         ctx.set_timeout(Duration::from_secs(30)); // closes itself if nobody comes by
    ///     }
    ///
    ///     #[timeout]
    ///     fn close(&mut self) { self.open = false }
    ///
    ///     #[call]
    ///     fn is_open(&self) -> bool { self.open }
    /// }
    ///
    /// let door = Door::start(Door::default()).await?;
    /// door.open()?;
    /// assert!(door.is_open().await?);        // a message: the timeout is cancelled
    /// door.open()?;
    /// tokio::time::sleep(Duration::from_secs(31)).await; // a paused clock: instant
    /// assert!(!door.is_open().await?);
    /// # Ok(()) }
    /// ```
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = Some(timeout);
    }

    /// Takes the reply of the call being handled, to answer it later (GenServer's
    /// `{:noreply, state}` and `GenServer.reply/2`): the value the handler returns is then
    /// dropped, and the caller gets what is sent through the handle. `None` outside a call
    /// handler, or if the handle was taken already. See [`ReplyTo`] for what the caller gets in
    /// each case. With `#[peeper::server]`, take a `ReplyTo<T>` argument instead.
    ///
    /// ```
    /// use peeper::{Context, ReplyTo, Server, Tracked};
    ///
    /// #[derive(Clone, Default)]
    /// struct Later;
    ///
    /// impl Server for Later {
    ///     type Call = u64;
    ///     type Reply = u64;
    ///     type Cast = ();
    ///     type Info = ();
    ///     type Keep = peeper::keep::Snapshot;
    ///
    ///     async fn handle_call(_: &mut Tracked<Self>, n: u64, ctx: &mut Context<Self>) -> u64 {
    ///         if let Some(reply) = ctx.defer_reply() {
    ///             tokio::spawn(async move { reply.send(n + 1) });
    ///         }
    ///         0 // dropped: the reply was taken
    ///     }
    ///     async fn handle_cast(_: &mut Tracked<Self>, (): (), _: &mut Context<Self>) {}
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let later = Later::start(Later).await?;
    /// assert_eq!(later.call(41).await?, 42);
    /// # Ok(()) }
    /// ```
    pub fn defer_reply(&mut self) -> Option<ReplyTo<S::Reply>> {
        self.defer_reply_as(|reply| reply)
    }

    /// [`defer_reply`](Context::defer_reply) for a handle of another type, wrapped into
    /// `S::Reply` when sent: what `#[peeper::server]` uses for a `ReplyTo<T>` argument.
    pub fn defer_reply_as<T>(
        &mut self,
        wrap: impl FnOnce(T) -> S::Reply + Send + 'static,
    ) -> Option<ReplyTo<T>> {
        let caller = self.caller.take()?;
        let gate = Gate::new(caller);
        self.deferred = Some(Arc::clone(&gate));
        Some(ReplyTo::new(gate, wrap))
    }

    /// What the generated dispatch of a `ReplyTo<T>` argument calls: always a handle, detached
    /// (it reaches nobody) if there is no call to answer.
    #[doc(hidden)]
    pub fn __reply_to<T>(
        &mut self,
        wrap: impl FnOnce(T) -> S::Reply + Send + 'static,
    ) -> ReplyTo<T> {
        self.defer_reply_as(wrap).unwrap_or_else(ReplyTo::detached)
    }
}

/// What the worker reads and resets around each handler.
impl<S: Server> Context<S> {
    pub(crate) fn take_stop(&mut self) -> Option<Exit> {
        self.stop.take()
    }

    pub(crate) fn take_continuation(&mut self) -> Option<S::Cast> {
        self.continuations.as_mut()?.pop_front()
    }

    pub(crate) fn drop_continuations(&mut self) {
        self.continuations = None;
    }

    pub(crate) fn take_timeout(&mut self) -> Option<Duration> {
        self.timeout.take()
    }

    /// A call handler is about to run: its reply may be taken through the context.
    pub(crate) fn begin_call(&mut self, caller: Caller<S>) {
        self.caller = Some(caller);
    }

    /// The call handler returned (or crashed): where its reply goes now.
    pub(crate) fn end_call(&mut self) -> Answer<S> {
        match (self.caller.take(), self.deferred.take()) {
            (Some(caller), _) => Answer::Now(caller),
            (None, Some(gate)) => Answer::Deferred(gate),
            (None, None) => Answer::Nobody,
        }
    }
}

/// Where the reply of a call that was just handled goes.
pub(crate) enum Answer<S: Server> {
    /// The handler returned it: to the caller.
    Now(Caller<S>),
    /// The handler took the handle: through its gate.
    Deferred(Arc<Gate<S::Reply>>),
    /// Nowhere: only outside a call.
    Nobody,
}

impl<S: Server> Drop for Context<S> {
    fn drop(&mut self) {
        // Dropped mid-call only when the worker is aborted (a kill): the deferred reply of the
        // handler that was running fails as the call would have. (An untaken caller, dropped
        // here, tells its client the same through the closed channel.)
        if let Some(gate) = self.deferred.take() {
            gate.fail(CallError::Crashed(Exit::Killed));
        }
        if !self.values.is_empty() {
            self.client
                .branch()
                .resources()
                .give_back(mem::take(&mut self.values));
        }
    }
}

impl<S: Server> fmt::Debug for Context<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("server", &std::any::type_name::<S>())
            .field("incarnation", &self.incarnation)
            .field("stop", &self.stop)
            .field("kept_values", &self.values.len())
            .finish()
    }
}
