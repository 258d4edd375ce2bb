//! [`Context`]: what a handler knows about the branch it runs in.

use std::any::{Any, TypeId};
use std::collections::VecDeque;
use std::fmt;
use std::mem;
use std::sync::Arc;
use std::time::Duration;

use crate::mailbox::Caller;
use crate::reply::Gate;
use crate::resources::Values;
use crate::{Access, CallError, Client, Exit, OrderedTable, ReplyTo, Server, Table, TableError};

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
    /// Casts to handle before the next message, in order.
    continuations: VecDeque<S::Cast>,
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
        let values = client.branch().resources().take_values();
        Context {
            incarnation,
            client,
            stop: None,
            continuations: VecDeque::new(),
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
        self.continuations.push_back(cast);
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
        self.continuations.pop_front()
    }

    pub(crate) fn drop_continuations(&mut self) {
        self.continuations.clear();
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

/// Kept resources: tables and values that the branch keeps across crashes and moves with
/// transfers. See the book's chapter on kept resources for when to use them rather than the
/// state.
impl<S: Server> Context<S> {
    /// The branch's hash table named `name`, [`Access::Protected`], created empty on first use,
    /// and the very same table (not a copy) for every later call, in this incarnation or any
    /// later one, after any number of crashes, and after a [`transfer`](crate::transfer).
    /// Dropped when the branch ends.
    ///
    /// The kind of table is chosen by the method (this one, or
    /// [`ordered_table`](Context::ordered_table)) rather than by an option, because it decides the
    /// handle type: its key bounds (`Hash + Eq` or `Ord`) and its methods (ranges only on ordered
    /// tables) are then checked at compile time. The access level is a plain value
    /// ([`table_with`](Context::table_with)), since it only decides what *other* tasks may do.
    ///
    /// Writes are never rolled back: a handler that writes and then panics has written.
    ///
    /// # Errors
    /// [`TableError::WrongType`] if `name` holds a table of other types or kind,
    /// [`TableError::AccessMismatch`] if it was created with another access level.
    ///
    /// ```
    /// #[derive(Clone, Default)]
    /// pub struct Cache;
    ///
    /// #[peeper::server]
    /// impl Cache {
    ///     #[call]
    ///     fn square(&self, n: u64, ctx: &mut peeper::Context<Self>) -> Result<u64, peeper::TableError> {
    ///         let squares = ctx.table::<u64, u64>("squares")?;
    ///         Ok(squares.get_or_insert_with(n, || n * n))
    ///     }
    ///
    ///     #[call]
    ///     fn cached(&self, ctx: &mut peeper::Context<Self>) -> Result<usize, peeper::TableError> {
    ///         Ok(ctx.table::<u64, u64>("squares")?.len())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = Cache::start(Cache).await?;
    /// assert_eq!(cache.square(12).await??, 144);
    ///
    /// let restarted = cache.branch().next_restart();
    /// cache.branch().kill_worker()?;
    /// restarted.await?;
    /// assert_eq!(cache.cached().await??, 1);   // still warm
    /// # Ok(()) }
    /// ```
    pub fn table<K, V>(&self, name: &str) -> Result<Table<K, V>, TableError>
    where
        K: std::hash::Hash + Eq + Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        self.table_with(name, Access::default())
    }

    /// [`table`](Context::table), with an access level other than the default
    /// [`Access::Protected`]. The first call decides the level; a later call asking for another
    /// fails with [`TableError::AccessMismatch`].
    ///
    /// # Errors
    /// As [`table`](Context::table).
    ///
    /// ```
    /// use peeper::{Access, ReadWrite, Table};
    ///
    /// #[derive(Clone, Default)]
    /// pub struct Hits;
    ///
    /// #[peeper::server]
    /// impl Hits {
    ///     #[init]
    ///     fn init(&mut self, ctx: &mut peeper::Context<Self>) -> Result<(), peeper::TableError> {
    ///         ctx.table_with::<String, u64>("hits", Access::Public)?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let _hits = Hits::builder(Hits).name("hits").start().await?;
    /// let hits: ReadWrite<Table<String, u64>> = peeper::table::<Hits, _>("hits", "hits")?;
    /// hits.insert("/".to_owned(), 1)?;   // anyone may write a public table
    /// # Ok(()) }
    /// ```
    pub fn table_with<K, V>(&self, name: &str, access: Access) -> Result<Table<K, V>, TableError>
    where
        K: std::hash::Hash + Eq + Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        Table::open(self.client.branch().resources(), name, access)
    }

    /// The branch's ordered table named `name`, [`Access::Protected`]: as
    /// [`table`](Context::table), sorted by key, with range queries.
    ///
    /// # Errors
    /// As [`table`](Context::table).
    ///
    /// ```
    /// #[derive(Clone, Default)]
    /// pub struct Log;
    ///
    /// #[peeper::server]
    /// impl Log {
    ///     #[cast]
    ///     fn record(&self, at: u64, line: String, ctx: &mut peeper::Context<Self>) -> Result<(), peeper::TableError> {
    ///         ctx.ordered_table::<u64, String>("lines")?.insert(at, line);
    ///         Ok(())
    ///     }
    ///
    ///     #[call]
    ///     fn since(&self, at: u64, ctx: &mut peeper::Context<Self>) -> Result<Vec<(u64, String)>, peeper::TableError> {
    ///         Ok(ctx.ordered_table::<u64, String>("lines")?.range(at..))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let log = Log::start(Log).await?;
    /// log.record(20, "b".to_owned())?;
    /// log.record(10, "a".to_owned())?;
    /// log.record(30, "c".to_owned())?;
    /// assert_eq!(log.since(20).await??, vec![(20, "b".to_owned()), (30, "c".to_owned())]);
    /// # Ok(()) }
    /// ```
    pub fn ordered_table<K, V>(&self, name: &str) -> Result<OrderedTable<K, V>, TableError>
    where
        K: Ord + Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        self.ordered_table_with(name, Access::default())
    }

    /// [`ordered_table`](Context::ordered_table), with an access level other than the default.
    ///
    /// # Errors
    /// As [`table_with`](Context::table_with).
    ///
    /// ```
    /// use peeper::{Access, ReadOnly, OrderedTable, TableError};
    ///
    /// #[derive(Clone, Default)]
    /// pub struct Secret;
    ///
    /// #[peeper::server]
    /// impl Secret {
    ///     #[init]
    ///     fn init(&mut self, ctx: &mut peeper::Context<Self>) -> Result<(), TableError> {
    ///         ctx.ordered_table_with::<u64, String>("keys", Access::Private)?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let _secret = Secret::builder(Secret).name("secret").start().await?;
    /// let denied = peeper::table::<Secret, ReadOnly<OrderedTable<u64, String>>>("secret", "keys");
    /// assert!(matches!(denied, Err(TableError::Private { .. })));
    /// # Ok(()) }
    /// ```
    pub fn ordered_table_with<K, V>(
        &self,
        name: &str,
        access: Access,
    ) -> Result<OrderedTable<K, V>, TableError>
    where
        K: Ord + Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        OrderedTable::open(self.client.branch().resources(), name, access)
    }

    /// Keeps `value` across crashes and transfers, the counterpart of `Process.put/2`: one value
    /// per type (wrap values in newtypes to keep several of one type), and returns the value of
    /// that type kept before, if any.
    ///
    /// Kept values are the worker's alone (no other task can reach them), are borrowed with no
    /// lock ([`kept`](Context::kept), [`kept_mut`](Context::kept_mut)), and, like tables, are
    /// not rolled back when a handler panics after changing them. They are dropped when the
    /// branch ends.
    ///
    /// ```
    /// #[derive(Clone, Default)]
    /// pub struct Worker;
    ///
    /// /// A connection that is expensive to open: kept, not part of the state.
    /// pub struct Connection { opened: u64 }
    ///
    /// #[peeper::server]
    /// impl Worker {
    ///     #[init]
    ///     fn init(&mut self, ctx: &mut peeper::Context<Self>) {
    ///         if ctx.kept::<Connection>().is_none() {
    ///             let opened = ctx.incarnation();
    ///             ctx.keep(Connection { opened });
    ///         }
    ///     }
    ///
    ///     #[call]
    ///     fn opened_by(&self, ctx: &mut peeper::Context<Self>) -> Option<u64> {
    ///         ctx.kept::<Connection>().map(|connection| connection.opened)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let worker = Worker::start(Worker).await?;
    /// let restarted = worker.branch().next_restart();
    /// worker.branch().kill_worker()?;
    /// assert_eq!(restarted.await?, 1);
    /// assert_eq!(worker.opened_by().await?, Some(0));   // opened by incarnation 0, kept
    /// # Ok(()) }
    /// ```
    pub fn keep<T: Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        let old = self.values.insert(TypeId::of::<T>(), Box::new(value))?;
        downcast(old)
    }

    /// The kept value of type `T`, if any, the counterpart of `Process.get/1`.
    ///
    /// ```
    /// #[derive(Clone, Default)]
    /// pub struct Greeter;
    ///
    /// #[peeper::server]
    /// impl Greeter {
    ///     #[call]
    ///     fn greet(&self, ctx: &mut peeper::Context<Self>) -> String {
    ///         let greeting = ctx.kept::<String>().cloned().unwrap_or_else(|| "hello".to_owned());
    ///         ctx.keep(greeting.to_uppercase());
    ///         greeting
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let greeter = Greeter::start(Greeter).await?;
    /// assert_eq!(greeter.greet().await?, "hello");
    /// assert_eq!(greeter.greet().await?, "HELLO");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn kept<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values.get(&TypeId::of::<T>())?.downcast_ref::<T>()
    }

    /// The kept value of type `T`, mutably, if any.
    ///
    /// ```
    /// #[derive(Clone, Default)]
    /// pub struct Visits;
    ///
    /// /// How many calls all incarnations have answered.
    /// pub struct Answered(u64);
    ///
    /// #[peeper::server]
    /// impl Visits {
    ///     #[call]
    ///     fn visit(&self, ctx: &mut peeper::Context<Self>) -> u64 {
    ///         match ctx.kept_mut::<Answered>() {
    ///             Some(answered) => { answered.0 += 1; answered.0 }
    ///             None => { ctx.keep(Answered(1)); 1 }
    ///         }
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let visits = Visits::start(Visits).await?;
    /// assert_eq!(visits.visit().await?, 1);
    /// assert_eq!(visits.visit().await?, 2);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn kept_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        self.values.get_mut(&TypeId::of::<T>())?.downcast_mut::<T>()
    }

    /// Removes the kept value of type `T` and returns it, the counterpart of
    /// `Process.delete/1`.
    ///
    /// ```
    /// #[derive(Clone, Default)]
    /// pub struct Once;
    ///
    /// #[peeper::server]
    /// impl Once {
    ///     #[init]
    ///     fn init(&mut self, ctx: &mut peeper::Context<Self>) {
    ///         if ctx.incarnation() == 0 {
    ///             ctx.keep("a ticket".to_owned());
    ///         }
    ///     }
    ///
    ///     #[call]
    ///     fn take(&self, ctx: &mut peeper::Context<Self>) -> Option<String> {
    ///         ctx.take_kept::<String>()
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let once = Once::start(Once).await?;
    /// assert_eq!(once.take().await?, Some("a ticket".to_owned()));
    /// assert_eq!(once.take().await?, None);
    /// # Ok(()) }
    /// ```
    pub fn take_kept<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        downcast(self.values.remove(&TypeId::of::<T>())?)
    }
}

/// A kept value, back to its type. Values are stored under their own type id, so this cannot
/// fail; `None` would mean a bug in this module.
fn downcast<T: Send + Sync + 'static>(value: Box<dyn Any + Send + Sync>) -> Option<T> {
    value.downcast::<T>().ok().map(|value| *value)
}

impl<S: Server> Drop for Context<S> {
    fn drop(&mut self) {
        // Dropped mid-call only when the worker is aborted (a kill): the deferred reply of the
        // handler that was running fails as the call would have. (An untaken caller, dropped
        // here, tells its client the same through the closed channel.)
        if let Some(gate) = self.deferred.take() {
            gate.fail(CallError::Crashed(Exit::Killed));
        }
        self.client
            .branch()
            .resources()
            .give_back(mem::take(&mut self.values));
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
