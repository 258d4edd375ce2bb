//! The [`Server`] trait: what the runtime needs from a server, and what `#[peeper::server]`
//! implements for you.

use std::future::Future;
use std::ops::{Deref, DerefMut};

use crate::keep::Keep;
use crate::{Builder, Client, Context, Exit, StartError};

/// The error an `init` may return; any error type converts into it with `?` or `.into()`.
pub type InitError = Box<dyn std::error::Error + Send + Sync>;

/// What an `init` returns to decline to run the server, GenServer's `:ignore`: at the first start
/// the start fails with [`StartError::Ignored`] and nothing is registered; after a restart the
/// branch ends quietly with [`Exit::Ignored`].
///
/// ```
/// #[derive(Clone, Default)]
/// pub struct Optional { enabled: bool }
///
/// #[peeper::server]
/// impl Optional {
///     #[init]
///     fn init(&mut self) -> Result<(), peeper::Ignore> {
///         if self.enabled { Ok(()) } else { Err(peeper::Ignore) }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let declined = Optional::builder(Optional::default()).name("optional").start().await;
/// assert!(matches!(declined, Err(peeper::StartError::Ignored)));
/// assert!(Optional::whereis("optional").is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ignore;

impl std::fmt::Display for Ignore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("init declined to run the server (ignore)")
    }
}

impl std::error::Error for Ignore {}

/// A server: the state, the messages it takes, and how each is handled.
///
/// `#[peeper::server]` implements this trait from an `impl` block; this page is what it
/// generates, for anyone who writes a server by hand. The struct implementing it *is* the
/// state. Every handler receives it as a [`Tracked`], which notices whether the handler borrowed
/// it mutably: only then is the state kept again (see [`keep`](crate::keep)), so read-only
/// handlers never copy, whatever the strategy.
///
/// Handlers run one at a time, in mailbox order, in the server's task. A panic in any of them, or
/// an `Err` from [`init`](Server::init), is a crash: the worker is replaced and the state goes
/// back to the one the last completed handler left.
///
/// ```
/// use peeper::{Context, Server, Tracked};
///
/// #[derive(Clone, Debug, Default)]
/// pub struct Counter { count: u64 }
///
/// pub enum Call { Get, Add(u64) }
///
/// impl Server for Counter {
///     type Call = Call;
///     type Reply = u64;
///     type Cast = ();   // `inc`
///     type Info = std::convert::Infallible;
///     type Keep = peeper::keep::Snapshot;
///
///     async fn handle_call(state: &mut Tracked<Self>, call: Call, _: &mut Context<Self>) -> u64 {
///         match call {
///             Call::Get => state.count,                              // read: not kept again
///             Call::Add(by) => { state.count += by; state.count }    // write: kept before the reply
///         }
///     }
///
///     async fn handle_cast(state: &mut Tracked<Self>, (): (), _: &mut Context<Self>) {
///         state.count += 1;
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let counter = Counter::start(Counter::default()).await?;
/// counter.cast(())?;
/// assert_eq!(counter.call(Call::Add(2)).await?, 3);
/// counter.stop().await?;
/// # Ok(()) }
/// ```
pub trait Server: Sized + Send + 'static {
    /// The messages answered with a reply ([`Client::call`](crate::Client::call)).
    type Call: Send + 'static;
    /// What a call is answered with. The macro generates one enum variant per `#[call]` handler
    /// and unpacks it in each typed client method.
    type Reply: Send + 'static;
    /// The messages that get no reply ([`Client::cast`](crate::Client::cast)).
    type Cast: Send + 'static;
    /// Raw messages ([`Client::send`](crate::Client::send)), the counterpart of `handle_info`.
    type Info: Send + 'static;
    /// How the state is kept between handlers: [`Snapshot`](crate::keep::Snapshot),
    /// [`Projection`](crate::keep::Projection) or [`InPlace`](crate::keep::InPlace).
    type Keep: Keep<Self>;

    /// `true` when `init` is the default one, which changes nothing and cannot fail: a start
    /// then has nothing to wait for. `#[peeper::server]` sets it for a server without `#[init]`;
    /// a hand-written server keeps `false` (a start waits for its `init`), which is always right.
    #[doc(hidden)]
    const __INIT_IS_DEFAULT: bool = false;

    /// `true` when `terminate` is the default one, which does nothing: a stop then skips it.
    /// `#[peeper::server]` sets it for a server without `#[terminate]`; a hand-written server
    /// keeps `false` (its `terminate` runs), which is always right.
    #[doc(hidden)]
    const __TERMINATE_IS_DEFAULT: bool = false;

    /// How the messages of a remote server (`#[peeper::server(remote)]`) are encoded, so that a
    /// node can answer calls from other nodes to any server kind it hosts; `None` for the others.
    #[doc(hidden)]
    const __WIRE: Option<crate::remote::Wire<Self>> = None;

    /// Runs at every start of a worker: the first time on the state given to `start` (an error
    /// or a panic then fails the start), after a crash on the kept state
    /// (`ctx.incarnation() > 0`; an error or a panic is then another crash). Returning
    /// `Err(Ignore.into())` declines to run the server ([`Ignore`]); asking to stop
    /// ([`Context::stop_with`]) ends it before it starts, without `terminate`.
    fn init(
        state: &mut Tracked<Self>,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<(), InitError>> + Send {
        let _ = (state, ctx);
        async { Ok(()) }
    }

    /// Handles a call; the returned value is the reply, unless the handler took the reply
    /// handle with [`Context::defer_reply`] to answer later (the returned value is then
    /// dropped).
    fn handle_call(
        state: &mut Tracked<Self>,
        call: Self::Call,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Self::Reply> + Send;

    /// Handles a cast.
    fn handle_cast(
        state: &mut Tracked<Self>,
        cast: Self::Cast,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = ()> + Send;

    /// Handles a raw message. The default ignores it (with a `debug` trace), as `GenServer`
    /// does with unexpected messages.
    fn handle_info(
        state: &mut Tracked<Self>,
        info: Self::Info,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (state, info, ctx);
        async { crate::log::info_ignored(std::any::type_name::<Self>()) }
    }

    /// Runs when no message arrived within the time a handler asked for with
    /// [`Context::set_timeout`], GenServer's `handle_info(:timeout, state)`. It is a handler like
    /// the others: its state is kept, and a panic in it is a crash. The default does nothing.
    fn handle_timeout(
        state: &mut Tracked<Self>,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (state, ctx);
        async {}
    }

    /// Runs once when the branch ends for good: on a normal stop (after every message queued
    /// before the stop) and when it gives up after too many restarts (on the kept state). Not on
    /// a crash that is followed by a restart, and not on a transfer (the branch lives on). A
    /// panic in it is logged and makes [`Client::stop`] return
    /// [`StopError::Terminate`](crate::StopError::Terminate); the branch ends all the same.
    fn terminate(
        &mut self,
        reason: &Exit,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (reason, ctx);
        async {}
    }

    /// Starts a branch from `state` with the default options and returns once the first `init`
    /// has completed; the same as `Self::builder(state).start()`. (`#[peeper::server]` generates
    /// an inherent `start` that returns the typed client instead.)
    ///
    /// # Errors
    /// As [`Builder::start`].
    fn start(state: Self) -> impl Future<Output = Result<Client<Self>, StartError>> + Send {
        Builder::new(state).start()
    }

    /// A [`Builder`] to start a branch from `state` with options.
    fn builder(state: Self) -> Builder<Self> {
        Builder::new(state)
    }
}

/// The live state, as handlers see it: it derefs to the state and records whether a handler
/// borrowed it mutably.
///
/// Reading through it (`state.count`) costs nothing; the first mutable borrow (`state.count += 1`,
/// a `&mut self` method call) marks the state as changed, and the worker then keeps it with the
/// server's [keep strategy](crate::keep) before replying.
///
/// ```
/// # use peeper::Tracked;
/// fn read(state: &Tracked<Vec<u8>>) -> usize { state.len() }      // never marks
/// fn write(state: &mut Tracked<Vec<u8>>) { state.push(1) }         // marks
/// # let _ = (read, write);
/// ```
#[derive(Debug, Default)]
pub struct Tracked<S> {
    state: S,
    changed: bool,
}

impl<S> Tracked<S> {
    pub(crate) fn new(state: S) -> Self {
        Tracked {
            state,
            changed: false,
        }
    }

    /// Whether the current handler has borrowed the state mutably so far.
    ///
    /// ```
    /// # use peeper::{Context, Server, Tracked};
    /// # #[derive(Clone)] struct S(u8);
    /// # impl Server for S { type Call = (); type Reply = bool; type Cast = (); type Info = (); type Keep = peeper::keep::Snapshot;
    /// async fn handle_call(state: &mut Tracked<Self>, _: (), _: &mut Context<Self>) -> bool {
    ///     let _ = state.0;
    ///     state.changed() // false: only read so far
    /// }
    /// # async fn handle_cast(_: &mut Tracked<Self>, _: (), _: &mut Context<Self>) {} }
    /// ```
    #[must_use]
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Starts a new handler: nothing changed yet.
    pub(crate) fn reset(&mut self) {
        self.changed = false;
    }

    /// The live state without marking it: for the runtime's own copies and restores.
    pub(crate) fn untracked_mut(&mut self) -> &mut S {
        &mut self.state
    }
}

impl<S> Deref for Tracked<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.state
    }
}

impl<S> DerefMut for Tracked<S> {
    fn deref_mut(&mut self) -> &mut S {
        self.changed = true;
        &mut self.state
    }
}
