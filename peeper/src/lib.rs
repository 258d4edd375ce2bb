//! Servers whose state survives their own crashes, on tokio.
//!
//! A peeper server is a **branch**: a *supervisor*, a *keeper* holding the state of the last
//! completed handler, and a *worker* running your handlers, all in one tokio task. When the
//! worker crashes (a panic, an `Err` from `init`, or a kill), the supervisor starts a new one from
//! the keeper's state, with every queued message still queued. This is Elixir's
//! [Peeper](https://hexdocs.pm/peeper) for Rust, minus the messages Peeper loses.
//!
//! One attribute, [`#[peeper::server]`](server), turns the `impl` block of a state struct into a
//! server with a typed client:
//!
//! ```
//! use peeper::CallError;
//!
//! #[derive(Clone, Default)]
//! pub struct Counter {
//!     count: u64,
//! }
//!
//! #[peeper::server]
//! impl Counter {
//!     #[call]
//!     fn get(&self) -> u64 {
//!         self.count
//!     }
//!
//!     #[call]
//!     fn add_then_panic(&mut self, by: u64) -> u64 {
//!         self.count += by;
//!         panic!("boom") // this change is not kept
//!     }
//!
//!     #[cast]
//!     fn add(&mut self, by: u64) {
//!         self.count += by;
//!     }
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let counter = Counter::start(Counter::default()).await?; // a `CounterClient`
//!     counter.add(41)?; // a cast: never waits
//!     let crash = counter.add_then_panic(1000).await;
//!     assert!(matches!(crash, Err(CallError::Crashed(_))));
//!     counter.add(1)?; // queued behind the crash: not lost
//!     assert_eq!(counter.get().await?, 42); // 41 was kept, the +1000 was not
//!     Ok(())
//! }
//! ```
//!
//! # The parts
//!
//! | to | use |
//! |---|---|
//! | write a server | [`#[peeper::server]`](server) on the `impl` block (or implement [`Server`] by hand); [`Context`] in a handler: its incarnation, its own client, `stop_with`, `continue_with`, `set_timeout`, tables; [`ReplyTo`] to answer a call later; [`Ignore`] to decline in `init` |
//! | start one, with options | `S::start(state)`, or `S::builder(state)`: a [`Builder`] for a name, restart intensity, a [`CrashLoop`] policy, a [`Listener`], a store, hibernation |
//! | talk to it | the generated typed client, which wraps a [`Client`]; its [`Branch`] for restarts, `kill_worker`, and waiting for an end |
//! | retry a call safely | `client.idempotent(key)`: the first call with a key runs, a retry gets its reply ([`Idempotent`], [`IdempotencyKey`]); recorded with the state, in the same commit for a durable server |
//! | know what went wrong | one error enum per operation: [`CallError`], [`SendError`], [`StartError`], [`StopError`], [`TransferError`], [`TableError`], [`store::StoreError`]; and [`Exit`], why a worker or a server ended |
//! | choose what a crash keeps | [`keep`]: [`Snapshot`](keep::Snapshot) (the default), [`Projection`](keep::Projection) with [`#[derive(peeper::State)]`](State), [`InPlace`](keep::InPlace) |
//! | run many, find them, move them | [`DynamicSupervisor`], [`whereis`], [`transfer`], [`servers`] |
//! | keep data outside the state | kept tables ([`Context::table`], [`Table`], [`OrderedTable`], [`table()`] from other tasks) and kept values ([`Context::keep`]): never copied, kept across crashes |
//! | survive the process | [`store`]: [`Persist`] and [`Builder::store`], a [`Redb`](store::Redb) file, hibernation with [`Builder::idle_after`], [`revive_all`](store::revive_all) |
#![cfg_attr(
    feature = "postgres",
    doc = "| survive the machine | [`cluster`]: nodes sharing a PostgreSQL database ([`cluster::Node`], [`store::Postgres`]), handoff, adoption, fencing (the `postgres` feature) |"
)]
#![cfg_attr(
    not(feature = "postgres"),
    doc = "| survive the machine | `cluster`: nodes sharing a PostgreSQL database (`cluster::Node`, `store::Postgres`), handoff, adoption, fencing (the `postgres` feature) |"
)]
//! | watch it | a [`Listener`] (state changes, restarts, the end, in order) and `tracing` events |
//!
//! # Feature flags
//!
//! None is on by default: a program on redb builds no PostgreSQL or TLS code.
//!
//! | feature | what it adds |
//! |---|---|
//! | `json` | JSON as a codec for stored state (`store::Codec::Json`), next to the default MessagePack |
//! | `postgres` | clusters on PostgreSQL: `peeper::cluster` (`Node`: handoff, transfer between nodes, adoption of orphans) and `store::Postgres` (states, and leases with fencing) |
//! | `postgres-tls` | `postgres`, with TLS for its connections by rustls (`store::PostgresTls`) |
//!
//! # The guide
//!
//! The book ([`book/` in the repository](https://github.com/peeper-rs/peeper/blob/main/book/src/SUMMARY.md))
//! starts with [getting started](https://github.com/peeper-rs/peeper/blob/main/book/src/getting-started.md)
//! (a new project to a durable server), then a tutorial, what a crash keeps, options and defaults,
//! every error with what to do about it, deploying, clusters and testing. Every code block in it
//! runs with the tests.
//!
//! # How the data flows
//!
//! ```text
//!   Client (clone per user) ──mailbox (unbounded mpsc)──►  Cell { live, good, scratch, mailbox rx }
//!      │                                                      ▲ locked once per worker lifetime
//!      │ control (kill, stop, handoff)                        │
//!      ▼                                                      │
//!   ┌─ the branch's task ───────────────────────────────────────────┐
//!   │ Supervisor ──polls, under catch_unwind──► Worker future ───────┘
//!   └──│───────────────────────────────────────────│─────────────────┘
//!      │  restarts, end                            │ state changes
//!      └──────────► events (mpsc) ◄────────────────┘  (only with a listener)
//!                       ▼
//!                  Listener task: runs the Listener in order (only with a listener)
//! ```
//!
//! - **One task per server.** The supervisor and the worker run in the branch's one task: the
//!   worker is a future the supervisor polls beside the control queue. A server without a
//!   listener is that one task; a listener adds a task of its own, so that its callbacks never
//!   run on the worker's path. Hibernation ends the task; a revival starts a new one.
//! - **The mailbox** is one unbounded channel per branch. Its receiver lives in the cell, not in
//!   a worker, so a worker's death never drops a queued message.
//! - **The cell** (the keeper) holds the live state, the last good copy and the mailbox receiver.
//!   A worker locks it once for its whole life, so keeping the state after a handler is a plain
//!   write, with no message and no wake-up. When the worker ends, however it ends, its lock
//!   guard drops and the cell is intact.
//! - **The worker** runs every handler under `catch_unwind`. After a handler that changed the state
//!   (it borrowed the [`Tracked`] state mutably), it keeps the state with the server's
//!   [keep strategy](keep), *then* replies. A panic is answered to the crashing caller with
//!   [`CallError::Crashed`] and the panic's message.
//! - **The supervisor** polls the worker and the control queue. A kill drops the worker's future
//!   at the `.await` it is suspended at, as an abort would. On a crash the supervisor marks the
//!   cell for restore, applies the restart intensity and the [`CrashLoop`] policy, and polls the
//!   next incarnation on the same cell; the new worker brings the live state back to the last good
//!   copy and runs `init`. It also carries out stops and transfers, and ends the branch in order.
//! - **Kept resources** ([tables](Context::table) and [kept values](Context::keep)) hang off the
//!   branch, next to the cell: every incarnation gets the same ones back (no copy), a transfer
//!   moves them, and the end of the branch drops them. Writes to them are not rolled back.
//!
//! # What each kind of crash does
//!
//! | crash | the crashing caller | the state | queued messages |
//! |---|---|---|---|
//! | panic in a handler | `CallError::Crashed(Exit::Panicked { message })` | last completed handler's | kept, in order |
//! | `kill_worker()` | `CallError::Crashed(Exit::Killed)` | last completed handler's (in-place: as left) | kept, in order |
//! | `init` error or panic after a restart | — | last completed handler's | kept, in order |
//! | `init` error or panic at start | `start` returns `StartError::Init` | — | — |
//! | too many restarts | `CallError::Stopped(Exit::RestartLimit { .. })` for every waiting caller | `terminate` runs on it | refused |
//!
//! `tracing` events are emitted at every step: `started`, `worker crashed` (with the message),
//! `restarting worker`, `stopped`, `transferred`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod branch;
mod client;
#[cfg(feature = "postgres")]
pub mod cluster;
mod context;
mod durable;
mod dynamic;
mod error;
mod exit;
mod handling;
pub mod keep;
mod keeper;
mod kinds;
mod listener;
mod mailbox;
mod options;
mod panics;
mod registry;
mod reply;
mod resources;
mod retained;
mod server;
pub mod store;
mod supervisor;
mod table;
mod worker;

pub use branch::{Branch, BranchId};
pub use client::Idempotent;
pub use client::{Client, DEFAULT_CALL_TIMEOUT, Timer};
pub use context::Context;
pub use dynamic::{DynamicSupervisor, transfer};
pub use error::{CallError, SendError, StartError, StopError, TransferError};
pub use exit::Exit;
pub use listener::Listener;
pub use options::{
    Builder, CrashLoop, DEFAULT_CRASH_LOOP_AFTER, DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_WINDOW,
    OnStop, WritePolicy,
};
pub use panics::quiet_caught_panics;
pub use registry::whereis;
pub use reply::ReplyTo;
pub use retained::{
    Comparable, DEFAULT_RETAINED_MAX, DEFAULT_RETENTION, IdempotencyKey, Retainable,
};
pub use server::{Ignore, InitError, Server, Tracked};
pub use store::Persist;
pub use table::{
    Access, Lookup, OrderedTable, ReadOnly, ReadWrite, Table, TableError, TableId, table,
};

pub use kinds::{ServerKind, servers};

/// Turns the `impl` block of a state struct into a server: its message enums, its typed client and
/// its [`Server`] impl, from one attribute.
///
/// The struct *is* the state. Each method marked with a handler attribute handles one kind of
/// message; every other method stays an ordinary method.
///
/// ```
/// use std::time::Duration;
///
/// /// The state: a plain struct.
/// #[derive(Clone, Debug, Default)]
/// pub struct Counter {
///     count: u64,
/// }
///
/// /// A raw message.
/// #[derive(Debug)]
/// pub struct Tick;
///
/// #[peeper::server]
/// impl Counter {
///     /// Runs at every start of the worker: the first time with the initial state,
///     /// after a crash with the preserved state (`ctx.incarnation() > 0`).
///     #[init]
///     async fn init(&mut self, ctx: &mut peeper::Context<Self>) {
///         println!("incarnation {}", ctx.incarnation());
///     }
///
///     /// The current count.
///     #[call]
///     fn get(&self) -> u64 {
///         self.count
///     }
///
///     /// Adds `by` and returns the new count.
///     #[call]
///     async fn add(&mut self, by: u64) -> u64 {
///         self.count += by;
///         self.count
///     }
///
///     /// Adds one.
///     #[cast]
///     fn inc(&mut self) {
///         self.count += 1
///     }
///
///     /// Raw ("info") messages, sent with `send`, may carry any owned type.
///     #[info]
///     fn tick(&mut self, tick: Tick, ctx: &mut peeper::Context<Self>) {
///         println!("{tick:?} in incarnation {}", ctx.incarnation());
///     }
///
///     /// Runs on a normal stop and when the branch gives up after too many restarts.
///     #[terminate]
///     fn terminate(&mut self, reason: &peeper::Exit) {
///         println!("stopped: {reason}");
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let counter: CounterClient = Counter::start(Counter::default()).await?;
/// counter.inc()?;                                    // a cast: never waits
/// assert_eq!(counter.add(2).await?, 3);              // a call: waits for the reply
/// counter.send(Tick)?;                               // `From<Tick> for CounterInfo`
/// assert_eq!(counter.with_timeout(Duration::from_millis(100)).get().await?, 3);
/// counter.after(Duration::from_millis(10)).inc()?;  // a delayed cast
/// counter.stop().await?;                             // `#[terminate]` runs
/// # Ok(()) }
/// ```
///
/// # Handlers
///
/// | attribute | receiver | arguments | returns | on the client |
/// |---|---|---|---|---|
/// | `#[call]` | `&self` or `&mut self` | owned values | the reply, any owned type | `async fn get(&self, ..) -> Result<Reply, CallError>` |
/// | `#[cast]` | `&self` or `&mut self` | owned values | `()`, or `Result<(), E>` | `fn inc(&self, ..) -> Result<(), SendError>` |
/// | `#[info]` | `&self` or `&mut self` | owned values | `()`, or `Result<(), E>` | `fn send(&self, impl Into<CounterInfo>)` |
/// | `#[init]`, at most one | `&mut self` | none | `()`, or `Result<(), E>` | (runs before `start` returns) |
/// | `#[terminate]`, at most one | `&mut self` | `reason: &peeper::Exit`, optional | `()` | (runs on `stop`) |
/// | `#[timeout]`, at most one | `&self` or `&mut self` | none | `()`, or `Result<(), E>` | (runs after [`Context::set_timeout`] without a message) |
///
/// A `#[call]` may take `reply: peeper::ReplyTo<T>` (recognised by its type, a path ending in
/// `ReplyTo<T>`) and return nothing, to answer later through the handle: its client method
/// returns `Result<T, CallError>` (see [`ReplyTo`]).
///
/// - Any handler may be `async`, and may take `ctx: &mut peeper::Context<Self>` at any position
///   (recognised by its type: a path ending in `Context<Self>` or `Context<Counter>`).
/// - Arguments are moved into the message, so they are owned: `String`, not `&str`. A reply is sent
///   to another task, so it is owned too.
/// - A `#[call]` returning `Result<T, E>` answers with the whole `Result`: an `Err` is a reply like
///   any other, not a crash. An `Err` from a `#[cast]` or `#[info]` (`E: Display`) is a crash, since
///   nobody waits for it; so is an `Err` from `#[init]` (`E: Into<InitError>`), which at the first
///   start fails [`Builder::start`] with [`StartError::Init`].
/// - `&self` handlers read the state through `Deref` and the worker then keeps nothing: they never
///   copy the state, whatever the keep strategy. `&mut self` handlers get it through `DerefMut`,
///   which marks it changed, and the worker keeps it before replying (see [`Tracked`] and [`keep`]).
/// - Doc comments and `#[cfg]` on a handler are carried onto its variant, its match arm and its
///   client methods; `#[cfg]` on the `impl` block applies to everything generated.
///
/// # What is generated
///
/// For `impl Counter` (the names derive from the type's):
///
/// - `CounterCall`, `CounterCast`, `CounterInfo`: public enums, one variant per handler in
///   UpperCamelCase (`add_item` becomes `AddItem`), whose fields are the handler's arguments.
///   `CounterInfo` gets a `From<T>` for each `#[info]` handler taking a single argument of a type
///   `T` no other such handler takes, and that names no generic parameter of the server.
/// - `CounterClient`: the typed client, `Clone + Send + Sync`, as cheap to clone as a
///   [`Client<Counter>`](Client) (which it wraps, adding no cost: every method is an inlined call
///   of the generic one), valid across crashes and restarts. Besides one method per handler it has
///   `with_timeout(d)` (the calls, with another timeout than 5 s), `after(d)` (the casts and
///   `send`, delayed, returning a [`Timer`]), `branch()`, `stop()`, `stop_with(reason)`,
///   `whereis(name)`, `inner()` and
///   `into_inner()` (the generic client), and `From<Client<Counter>>`.
/// - `impl peeper::Server for Counter`: the dispatch, with `type Keep` from the `keep` option.
/// - `Counter::start(state)`, `Counter::builder(state)` and `Counter::whereis(name)`, inherent
///   functions that return the typed client (they take precedence over [`Server::start`] and
///   [`Server::builder`], which return the generic one).
/// - A registration in [`servers()`] (not for generic servers: a registration is a `static`, and a
///   `static` cannot be generic).
/// - `CounterReply`, hidden: [`Server::Reply`] is one type, and the client unpacks it.
///
/// So a handler may not be named `start`, `builder` or `whereis` (any method of the block), nor
/// `send`, `with_timeout`, `after`, `branch`, `stop`, `stop_with`, `inner`, `into_inner` or `clone` (handlers
/// that get a client method). The generated items are `pub`, so that they are at least as visible
/// as the server whatever its visibility; the generated code allows `private_interfaces` for the
/// case of a private server or argument type.
///
/// # Options
///
/// - `keep = snapshot` (the default, needs `Clone`), `keep = projection` (what
///   [`keep::Project`] keeps, which [`#[derive(peeper::State)]`](State) writes), or
///   `keep = in_place` (no copy; a crashing handler's partial changes stay). See [`keep`].
/// - `crate = path`: where the runtime is, when it is not `::peeper` (a renamed dependency, or a
///   crate that re-exports it): `#[peeper::server(crate = ::my_runtime::peeper)]`.
/// - `client = Name`: the typed client's name, instead of `CounterClient`, when that name is
///   taken: `#[peeper::server(client = CounterHandle)]`.
/// - `prefix = Name`: the base of every generated type's name instead of the server's
///   (`prefix = Tally` generates `TallyCall`, `TallyClient`, ...).
///
/// The parameters and locals the expansion introduces start with `__`, so that a unit struct or
/// constant of yours named `state` or `name` cannot turn them into patterns.
///
/// # Generic servers
///
/// ```
/// use std::fmt::Debug;
///
/// #[derive(Clone, Debug)]
/// pub struct Queue<T> {
///     items: Vec<T>,
/// }
///
/// #[peeper::server]
/// impl<T> Queue<T>
/// where
///     T: Clone + Debug + Send + Sync + 'static,
/// {
///     #[cast]
///     fn push(&mut self, item: T) {
///         self.items.push(item);
///     }
///
///     #[call]
///     fn pop(&mut self) -> Option<T> {
///         self.items.pop()
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let queue: QueueClient<String> = Queue::start(Queue { items: Vec::new() }).await?;
/// queue.push("job".to_owned())?;
/// assert_eq!(queue.pop().await?, Some("job".to_owned()));
/// # Ok(()) }
/// ```
///
/// # Mistakes are compile errors
///
/// A handler with two attributes, `self` by value, no receiver, a reference or `impl Trait`
/// argument, a pattern argument, a generic or `unsafe` or `extern` handler, two `#[init]`,
/// `#[init]` with arguments, a `#[terminate]` with another signature, a context of the wrong type,
/// a name that clashes with a generated one, an unknown, repeated or invalid option, the attribute
/// on a trait impl or on something else than an `impl` block: each is reported at the offending
/// token, with how to fix it, and all of them at once. The `impl` block is still emitted next to
/// the errors, so the rest of the crate (and an IDE) keeps seeing its methods. For instance:
///
/// ```text
/// error: a message argument cannot borrow, the message outlives the caller's borrows: take `String` instead of `&str` (clone what you need, or use `Arc` to share)
///  --> src/main.rs:9:32
///   |
/// 9 |     fn rename(&mut self, name: &str) {
///   |                                ^^^^
/// ```
///
/// # The expansion
///
/// <details><summary>What <code>#[peeper::server]</code> generates for the example above (this
/// block compiles on its own, and a test checks that it is what the macro emits)</summary>
///
/// ```
/// # #[derive(Clone, Debug, Default)]
/// # pub struct Counter {
/// #     count: u64,
/// # }
/// #
/// # #[derive(Debug)]
/// # pub struct Tick;
/// #
/// impl Counter {
///     /// Runs at every start of the worker: the first time with the initial state,
///     /// after a crash with the preserved state (`ctx.incarnation() > 0`).
///     async fn init(&mut self, ctx: &mut peeper::Context<Self>) {
///         println!("incarnation {}", ctx.incarnation());
///     }
///
///     /// The current count.
///     fn get(&self) -> u64 {
///         self.count
///     }
///
///     /// Adds `by` and returns the new count.
///     #[allow(clippy::needless_pass_by_value)]
///     async fn add(&mut self, by: u64) -> u64 {
///         self.count += by;
///         self.count
///     }
///
///     /// Adds one.
///     fn inc(&mut self) {
///         self.count += 1
///     }
///
///     /// Raw ("info") messages, sent with `send`, may carry any owned type.
///     #[allow(clippy::needless_pass_by_value)]
///     fn tick(&mut self, tick: Tick, ctx: &mut peeper::Context<Self>) {
///         println!("{tick:?} in incarnation {}", ctx.incarnation());
///     }
///
///     /// Runs on a normal stop and when the branch gives up after too many restarts.
///     fn terminate(&mut self, reason: &peeper::Exit) {
///         println!("stopped: {reason}");
///     }
/// }
///
/// /// The calls `Counter` answers: one variant per `#[call]` handler, generated by
/// /// `#[peeper::server]`.
/// ///
/// /// Each has a method on [`CounterClient`] that sends it and waits for the reply; it can also be
/// /// sent with `peeper::Client::call`.
/// #[allow(private_interfaces, private_bounds)]
/// pub enum CounterCall {
///     /// The current count.
///     Get,
///     /// Adds `by` and returns the new count.
///     Add {
///         /// The `by` argument of `add`.
///         by: u64,
///     },
/// }
///
/// /// The replies of `Counter`'s calls, one variant per `#[call]` handler (`peeper::Server::Reply`
/// /// is one type). [`CounterClient`] unpacks them; nothing else needs to name this type.
/// #[doc(hidden)]
/// #[allow(private_interfaces, private_bounds)]
/// pub enum CounterReply {
///     /// The reply of `get`.
///     Get(u64),
///     /// The reply of `add`.
///     Add(u64),
/// }
///
/// /// The casts `Counter` handles: one variant per `#[cast]` handler, generated by
/// /// `#[peeper::server]`.
/// ///
/// /// Each has a method on [`CounterClient`] that queues it without waiting; it can also be sent
/// /// with `peeper::Client::cast`.
/// #[allow(private_interfaces, private_bounds)]
/// pub enum CounterCast {
///     /// Adds one.
///     Inc,
/// }
///
/// /// The raw ("info") messages `Counter` handles: one variant per `#[info]` handler, generated by
/// /// `#[peeper::server]`.
/// ///
/// /// Send them with [`CounterClient::send`], which takes anything that converts into this type:
/// /// every `#[info]` handler with a single argument gets a `From` conversion from that argument's
/// /// type (unless two handlers share the type, or it involves a generic parameter of the server).
/// #[allow(private_interfaces, private_bounds)]
/// pub enum CounterInfo {
///     /// Raw ("info") messages, sent with `send`, may carry any owned type.
///     Tick {
///         /// The `tick` argument of `tick`.
///         tick: Tick,
///     },
/// }
///
/// impl ::core::convert::From<Tick> for CounterInfo {
///     #[inline]
///     fn from(tick: Tick) -> Self {
///         Self::Tick { tick }
///     }
/// }
///
/// /// Generated by `#[peeper::server]` from the handlers of `impl Counter`.
/// impl ::peeper::Server for Counter {
///     type Call = CounterCall;
///     type Reply = CounterReply;
///     type Cast = CounterCast;
///     type Info = CounterInfo;
///     type Keep = ::peeper::keep::Snapshot;
///     async fn init(
///         __state: &mut ::peeper::Tracked<Self>,
///         __ctx: &mut ::peeper::Context<Self>,
///     ) -> ::core::result::Result<(), ::peeper::InitError> {
///         Self::init(&mut **__state, __ctx).await;
///         ::core::result::Result::Ok(())
///     }
///
///     async fn handle_call(
///         __state: &mut ::peeper::Tracked<Self>,
///         __call: CounterCall,
///         __ctx: &mut ::peeper::Context<Self>,
///     ) -> CounterReply {
///         match __call {
///             CounterCall::Get => CounterReply::Get(Self::get(&**__state)),
///             CounterCall::Add { by: __arg0 } => {
///                 CounterReply::Add(Self::add(&mut **__state, __arg0).await)
///             }
///         }
///     }
///
///     async fn handle_cast(
///         __state: &mut ::peeper::Tracked<Self>,
///         __cast: CounterCast,
///         __ctx: &mut ::peeper::Context<Self>,
///     ) {
///         match __cast {
///             CounterCast::Inc => {
///                 Self::inc(&mut **__state);
///             }
///         }
///     }
///
///     async fn handle_info(
///         __state: &mut ::peeper::Tracked<Self>,
///         __info: CounterInfo,
///         __ctx: &mut ::peeper::Context<Self>,
///     ) {
///         match __info {
///             CounterInfo::Tick { tick: __arg0 } => {
///                 Self::tick(&mut **__state, __arg0, __ctx);
///             }
///         }
///     }
///
///     async fn terminate(
///         &mut self,
///         __reason: &::peeper::Exit,
///         __ctx: &mut ::peeper::Context<Self>,
///     ) {
///         Self::terminate(self, __reason);
///     }
/// }
///
/// impl Counter {
///     /// Starts a `Counter` server from `state` with the default options, and returns its typed
///     /// client once the first `#[init]` has completed.
///     ///
///     /// The same as `Counter::builder(state).start()`; generated by `#[peeper::server]`.
///     ///
///     /// # Errors
///     ///
///     /// `peeper::StartError::Init` if `#[init]` failed or panicked.
///     pub async fn start(
///         __state: Self,
///     ) -> ::core::result::Result<CounterClient, ::peeper::StartError> {
///         ::peeper::Builder::<Self, CounterClient>::new(__state)
///             .start()
///             .await
///     }
///
///     /// A `peeper::Builder` to start a `Counter` server from `state` with options (a name,
///     /// restart intensity, a listener, ...); its `start` returns a [`CounterClient`]. Generated
///     /// by `#[peeper::server]`.
///     pub fn builder(__state: Self) -> ::peeper::Builder<Self, CounterClient> {
///         ::peeper::Builder::new(__state)
///     }
///
///     /// The client of the running `Counter` registered as `name` (with `builder(..).name(..)`),
///     /// if any. Generated by `#[peeper::server]`.
///     #[must_use]
///     pub fn whereis(__name: &str) -> ::core::option::Option<CounterClient> {
///         ::core::option::Option::map(::peeper::whereis::<Self>(__name), CounterClient)
///     }
/// }
///
/// /// The typed client of a running `Counter`, generated by `#[peeper::server]`: one method per
/// /// handler.
/// ///
/// /// - `#[call]` handlers: `async` methods that wait for the reply (up to 5 s; see
/// ///   [`with_timeout`](CounterClient::with_timeout)) and return `Result<Reply,
/// ///   peeper::CallError>`;
/// /// - `#[cast]` handlers: plain methods that queue the message and return at once, `Result<(),
/// ///   peeper::SendError>` (delayed: [`after`](CounterClient::after));
/// /// - `#[info]` handlers: [`send`](CounterClient::send).
/// ///
/// /// Cheap to clone, `Send + Sync`, and valid across crashes and restarts of the server. It wraps
/// /// a `peeper::Client`, which [`inner`](CounterClient::inner) gives back, and adds nothing to
/// /// its cost.
/// #[allow(private_interfaces, private_bounds)]
/// pub struct CounterClient(::peeper::Client<Counter>);
/// impl ::core::clone::Clone for CounterClient {
///     #[inline]
///     fn clone(&self) -> Self {
///         Self(::core::clone::Clone::clone(&self.0))
///     }
/// }
///
/// impl ::core::fmt::Debug for CounterClient {
///     fn fmt(&self, __f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
///         __f.debug_tuple("CounterClient").field(&self.0).finish()
///     }
/// }
///
/// impl ::core::convert::From<::peeper::Client<Counter>> for CounterClient {
///     #[inline]
///     fn from(__client: ::peeper::Client<Counter>) -> Self {
///         Self(__client)
///     }
/// }
///
/// impl CounterClient {
///     /// The current count.
///     ///
///     /// # Errors
///     ///
///     /// `peeper::CallError::Crashed` if the handler panicked or the worker was killed while
///     /// handling it (the state is then the one before this call), `Timeout` if no reply came
///     /// within 5 s, `Stopped` if the server has stopped, `Store` if a durable server could not
///     /// store the new state, `CallingSelf` if called from a handler of this very server (see
///     /// `peeper::CallError`).
///     #[inline]
///     #[allow(unreachable_patterns)]
///     pub async fn get(&self) -> ::core::result::Result<u64, ::peeper::CallError> {
///         let __message = CounterCall::Get;
///         match self.0.call(__message).await {
///             ::core::result::Result::Ok(CounterReply::Get(__reply)) => {
///                 ::core::result::Result::Ok(__reply)
///             }
///             ::core::result::Result::Ok(_) => ::core::unreachable!(
///                 "the worker answers `CounterCall::Get` with `CounterReply::Get`"
///             ),
///             ::core::result::Result::Err(__error) => ::core::result::Result::Err(__error),
///         }
///     }
///
///     /// Adds `by` and returns the new count.
///     ///
///     /// # Errors
///     ///
///     /// `peeper::CallError::Crashed` if the handler panicked or the worker was killed while
///     /// handling it (the state is then the one before this call), `Timeout` if no reply came
///     /// within 5 s, `Stopped` if the server has stopped, `Store` if a durable server could not
///     /// store the new state, `CallingSelf` if called from a handler of this very server (see
///     /// `peeper::CallError`).
///     #[inline]
///     #[allow(unreachable_patterns)]
///     pub async fn add(&self, by: u64) -> ::core::result::Result<u64, ::peeper::CallError> {
///         let __message = CounterCall::Add { by };
///         match self.0.call(__message).await {
///             ::core::result::Result::Ok(CounterReply::Add(__reply)) => {
///                 ::core::result::Result::Ok(__reply)
///             }
///             ::core::result::Result::Ok(_) => ::core::unreachable!(
///                 "the worker answers `CounterCall::Add` with `CounterReply::Add`"
///             ),
///             ::core::result::Result::Err(__error) => ::core::result::Result::Err(__error),
///         }
///     }
///
///     /// Adds one.
///     ///
///     /// # Errors
///     ///
///     /// `peeper::SendError::Stopped` if the server has stopped.
///     #[inline]
///     pub fn inc(&self) -> ::core::result::Result<(), ::peeper::SendError> {
///         self.0.cast(CounterCast::Inc)
///     }
///
///     /// Queues a raw (`#[info]`) message, without waiting: a [`CounterInfo`], or the argument of
///     /// an `#[info]` handler that takes one.
///     ///
///     /// # Errors
///     ///
///     /// `peeper::SendError::Stopped` if the server has stopped.
///     #[inline]
///     pub fn send(
///         &self,
///         __message: impl ::core::convert::Into<CounterInfo>,
///     ) -> ::core::result::Result<(), ::peeper::SendError> {
///         self.0.send(__message)
///     }
///
///     /// The call methods, with a timeout other than the default 5 s:
///     /// `client.with_timeout(Duration::from_secs(1)).some_call(..).await`.
///     #[inline]
///     pub fn with_timeout(&self, __timeout: ::core::time::Duration) -> CounterWithTimeout<'_> {
///         CounterWithTimeout {
///             client: &self.0,
///             timeout: __timeout,
///         }
///     }
///
///     /// The call methods, made with an idempotency key: the first call with `key` runs its
///     /// handler, a retry with the same key gets the first reply without running it again
///     /// (`peeper::Idempotent`): `client.idempotent(request_id).some_call(..).await`.
///     #[inline]
///     pub fn idempotent(
///         &self,
///         __key: impl ::core::convert::Into<::peeper::IdempotencyKey>,
///     ) -> CounterIdempotent<'_> {
///         CounterIdempotent(self.0.idempotent(__key))
///     }
///
///     /// The cast methods and `send`, delivering after `delay` (the counterpart of
///     /// `Process.send_after/3`): `client.after(Duration::from_secs(1)).some_cast(..)`.
///     #[inline]
///     pub fn after(&self, __delay: ::core::time::Duration) -> CounterAfter<'_> {
///         CounterAfter {
///             client: &self.0,
///             delay: __delay,
///         }
///     }
///
///     /// The server's branch: its tasks, restarts, `kill_worker`, waiting for restarts.
///     #[inline]
///     #[must_use]
///     pub fn branch(&self) -> &::peeper::Branch {
///         self.0.branch()
///     }
///
///     /// Stops the server normally: every message queued before is handled, `#[terminate]`
///     /// runs, the name is freed. Resolves once all of that is done.
///     ///
///     /// # Errors
///     ///
///     /// `peeper::StopError::AlreadyStopped` if the server had already stopped, `Terminate`
///     /// if `#[terminate]` panicked, `Store` if a durable server's last state is not stored
///     /// yet, `CallingSelf` if called from one of its own handlers (see `peeper::StopError`).
///     pub async fn stop(&self) -> ::core::result::Result<(), ::peeper::StopError> {
///         self.0.stop().await
///     }
///
///     /// Stops the server with a reason (`peeper::Exit::Stopped`), which `#[terminate]`,
///     /// the listener and `branch().ended()` receive; otherwise as `stop`.
///     ///
///     /// # Errors
///     ///
///     /// As `stop`.
///     pub async fn stop_with(
///         &self,
///         __reason: impl ::core::convert::Into<::std::string::String>,
///     ) -> ::core::result::Result<(), ::peeper::StopError> {
///         self.0.stop_with(__reason).await
///     }
///
///     /// The client of the running `Counter` registered as `name`, if any.
///     #[must_use]
///     pub fn whereis(__name: &str) -> ::core::option::Option<Self> {
///         ::core::option::Option::map(::peeper::whereis::<Counter>(__name), Self)
///     }
///
///     /// The generic `peeper::Client` this typed client wraps.
///     #[inline]
///     #[must_use]
///     pub fn inner(&self) -> &::peeper::Client<Counter> {
///         &self.0
///     }
///
///     /// The generic `peeper::Client` this typed client wraps.
///     #[inline]
///     #[must_use]
///     pub fn into_inner(self) -> ::peeper::Client<Counter> {
///         self.0
///     }
/// }
///
/// /// The calls of a [`CounterClient`] with a timeout, from [`CounterClient::with_timeout`].
/// /// Generated by `#[peeper::server]`.
/// #[must_use = "these methods send nothing until one of them is called"]
/// #[allow(private_interfaces, private_bounds)]
/// pub struct CounterWithTimeout<'client> {
///     client: &'client ::peeper::Client<Counter>,
///     timeout: ::core::time::Duration,
/// }
///
/// impl<'client> CounterWithTimeout<'client> {
///     /// The current count.
///     ///
///     /// # Errors
///     ///
///     /// `peeper::CallError::Crashed` if the handler panicked or the worker was killed while
///     /// handling it (the state is then the one before this call), `Timeout` if no reply came
///     /// within the timeout, `Stopped` if the server has stopped, `Store` if a durable server
///     /// could not store the new state, `CallingSelf` if called from a handler of this very
///     /// server (see `peeper::CallError`).
///     #[inline]
///     #[allow(unreachable_patterns)]
///     pub async fn get(&self) -> ::core::result::Result<u64, ::peeper::CallError> {
///         let __message = CounterCall::Get;
///         match self.client.call_timeout(__message, self.timeout).await {
///             ::core::result::Result::Ok(CounterReply::Get(__reply)) => {
///                 ::core::result::Result::Ok(__reply)
///             }
///             ::core::result::Result::Ok(_) => ::core::unreachable!(
///                 "the worker answers `CounterCall::Get` with `CounterReply::Get`"
///             ),
///             ::core::result::Result::Err(__error) => ::core::result::Result::Err(__error),
///         }
///     }
///
///     /// Adds `by` and returns the new count.
///     ///
///     /// # Errors
///     ///
///     /// `peeper::CallError::Crashed` if the handler panicked or the worker was killed while
///     /// handling it (the state is then the one before this call), `Timeout` if no reply came
///     /// within the timeout, `Stopped` if the server has stopped, `Store` if a durable server
///     /// could not store the new state, `CallingSelf` if called from a handler of this very
///     /// server (see `peeper::CallError`).
///     #[inline]
///     #[allow(unreachable_patterns)]
///     pub async fn add(&self, by: u64) -> ::core::result::Result<u64, ::peeper::CallError> {
///         let __message = CounterCall::Add { by };
///         match self.client.call_timeout(__message, self.timeout).await {
///             ::core::result::Result::Ok(CounterReply::Add(__reply)) => {
///                 ::core::result::Result::Ok(__reply)
///             }
///             ::core::result::Result::Ok(_) => ::core::unreachable!(
///                 "the worker answers `CounterCall::Add` with `CounterReply::Add`"
///             ),
///             ::core::result::Result::Err(__error) => ::core::result::Result::Err(__error),
///         }
///     }
/// }
///
/// impl<'client> ::core::clone::Clone for CounterWithTimeout<'client> {
///     #[inline]
///     fn clone(&self) -> Self {
///         CounterWithTimeout {
///             client: self.client,
///             timeout: self.timeout,
///         }
///     }
/// }
///
/// impl<'client> ::core::fmt::Debug for CounterWithTimeout<'client> {
///     fn fmt(&self, __f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
///         __f.debug_struct("CounterWithTimeout")
///             .field("client", self.client)
///             .field("timeout", &self.timeout)
///             .finish()
///     }
/// }
///
/// /// The casts and raw messages of a [`CounterClient`], delivered after a delay, from
/// /// [`CounterClient::after`]. Generated by `#[peeper::server]`.
/// #[must_use = "these methods send nothing until one of them is called"]
/// #[allow(private_interfaces, private_bounds)]
/// pub struct CounterAfter<'client> {
///     client: &'client ::peeper::Client<Counter>,
///     delay: ::core::time::Duration,
/// }
///
/// impl<'client> CounterAfter<'client> {
///     /// Adds one.
///     ///
///     /// # Errors
///     ///
///     /// `peeper::SendError::Stopped` if the server has already stopped; a server that stops
///     /// during the delay drops the message.
///     #[inline]
///     pub fn inc(&self) -> ::core::result::Result<::peeper::Timer, ::peeper::SendError> {
///         self.client.cast_after(self.delay, CounterCast::Inc)
///     }
///
///     /// Queues a raw (`#[info]`) message after the delay.
///     ///
///     /// # Errors
///     ///
///     /// `peeper::SendError::Stopped` if the server has already stopped; a server that stops
///     /// during the delay drops the message.
///     #[inline]
///     pub fn send(
///         &self,
///         __message: impl ::core::convert::Into<CounterInfo>,
///     ) -> ::core::result::Result<::peeper::Timer, ::peeper::SendError> {
///         self.client.send_after(self.delay, __message)
///     }
/// }
///
/// impl<'client> ::core::clone::Clone for CounterAfter<'client> {
///     #[inline]
///     fn clone(&self) -> Self {
///         CounterAfter {
///             client: self.client,
///             delay: self.delay,
///         }
///     }
/// }
///
/// impl<'client> ::core::fmt::Debug for CounterAfter<'client> {
///     fn fmt(&self, __f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
///         __f.debug_struct("CounterAfter")
///             .field("client", self.client)
///             .field("delay", &self.delay)
///             .finish()
///     }
/// }
///
/// /// The calls of a [`CounterClient`] made with an idempotency key, from
/// /// [`CounterClient::idempotent`]: the first call with the key runs its handler, a retry gets its
/// /// reply without running it again (see `peeper::Idempotent`). Generated by `#[peeper::server]`.
/// #[must_use = "these methods send nothing until one of them is called"]
/// pub struct CounterIdempotent<'client>(::peeper::Idempotent<'client, Counter>);
///
/// impl<'client> CounterIdempotent<'client> {
///     /// The same calls with a timeout other than the default 5 s. A timed-out call may have been
///     /// applied: retry it with the same key to find out.
///     #[inline]
///     pub fn timeout(self, __timeout: ::core::time::Duration) -> Self {
///         CounterIdempotent(self.0.timeout(__timeout))
///     }
///
///     /// The key these calls carry.
///     #[inline]
///     #[must_use]
///     pub fn key(&self) -> &::peeper::IdempotencyKey {
///         self.0.key()
///     }
///
///     /// The current count.
///     ///
///     /// # Errors
///     ///
///     /// As the call without a key, and `peeper::CallError::KeyReused` if the key was used before
///     /// with a different message (nothing was applied). A `Timeout` may have been applied: retry
///     /// with the same key to find out.
///     #[inline]
///     #[allow(unreachable_patterns)]
///     pub async fn get(&self) -> ::core::result::Result<u64, ::peeper::CallError>
///     where
///         for<'__keyed> u64: ::peeper::Retainable,
///     {
///         // What tells this message from another one under the same key.
///         let __digest = ::peeper::__private::digest("get", &());
///         let __message = CounterCall::Get;
///         let __answer = self
///             .0
///             .__call(
///                 __message,
///                 __digest,
///                 // How the reply is recorded, and read back for a retry.
///                 |__reply| match __reply {
///                     CounterReply::Get(__reply) => ::peeper::__private::encode_reply(__reply),
///                     _ => ::core::result::Result::Err(
///                         <::std::string::String as ::core::convert::From<&str>>::from(
///                             "the worker answers `CounterCall::Get` with `CounterReply::Get`",
///                         ),
///                     ),
///                 },
///                 |__bytes| ::peeper::__private::decode_reply::<u64>(__bytes).map(CounterReply::Get),
///             )
///             .await;
///         match __answer {
///             ::core::result::Result::Ok(CounterReply::Get(__reply)) => {
///                 ::core::result::Result::Ok(__reply)
///             }
///             ::core::result::Result::Ok(_) => ::core::unreachable!(
///                 "the worker answers `CounterCall::Get` with `CounterReply::Get`"
///             ),
///             ::core::result::Result::Err(__error) => ::core::result::Result::Err(__error),
///         }
///     }
///
///     /// Adds `by` and returns the new count.
///     ///
///     /// # Errors
///     ///
///     /// As the call without a key, and `peeper::CallError::KeyReused` if the key was used before
///     /// with a different message (nothing was applied). A `Timeout` may have been applied: retry
///     /// with the same key to find out.
///     #[inline]
///     #[allow(unreachable_patterns)]
///     pub async fn add(&self, by: u64) -> ::core::result::Result<u64, ::peeper::CallError>
///     where
///         for<'__keyed> u64: ::peeper::Retainable,
///         for<'__keyed> u64: ::peeper::Comparable,
///     {
///         let __digest = ::peeper::__private::digest("add", &(&by,));
///         let __message = CounterCall::Add { by };
///         let __answer = self
///             .0
///             .__call(
///                 __message,
///                 __digest,
///                 |__reply| match __reply {
///                     CounterReply::Add(__reply) => ::peeper::__private::encode_reply(__reply),
///                     _ => ::core::result::Result::Err(
///                         <::std::string::String as ::core::convert::From<&str>>::from(
///                             "the worker answers `CounterCall::Add` with `CounterReply::Add`",
///                         ),
///                     ),
///                 },
///                 |__bytes| ::peeper::__private::decode_reply::<u64>(__bytes).map(CounterReply::Add),
///             )
///             .await;
///         match __answer {
///             ::core::result::Result::Ok(CounterReply::Add(__reply)) => {
///                 ::core::result::Result::Ok(__reply)
///             }
///             ::core::result::Result::Ok(_) => ::core::unreachable!(
///                 "the worker answers `CounterCall::Add` with `CounterReply::Add`"
///             ),
///             ::core::result::Result::Err(__error) => ::core::result::Result::Err(__error),
///         }
///     }
/// }
///
/// impl<'client> ::core::clone::Clone for CounterIdempotent<'client> {
///     #[inline]
///     fn clone(&self) -> Self {
///         CounterIdempotent(::core::clone::Clone::clone(&self.0))
///     }
/// }
///
/// impl<'client> ::core::fmt::Debug for CounterIdempotent<'client> {
///     fn fmt(&self, __f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
///         __f.debug_tuple("CounterIdempotent").field(&self.0).finish()
///     }
/// }
///
/// ::peeper::__private::inventory::submit! {
///     ::peeper::ServerKind::__new(
///         "Counter",
///         ::core::module_path!(),
///         ::core::any::type_name::<Counter>,
///         ::core::any::TypeId::of::<Counter>,
///         ::peeper::__private::branch_named::<Counter>,
///     )
/// }
/// #
/// # fn main() {}
/// ```
///
/// </details>
pub use peeper_macros::server;

/// Declares what a server's state keeps across a crash, on the state struct itself: implements
/// [`keep::Project`] for `#[peeper::server(keep = projection)]`.
///
/// Every field is kept (cloned after each handler that changed the state) unless marked
/// `#[keep(skip)]`: a skipped field is not kept, and after a crash it is rebuilt with
/// `Default::default()`, or by calling the function given with
/// `#[keep(skip, with = path::to_fn)]`, before `#[init]` runs. Use it for what is large and
/// derivable (a cache, an index) or cannot be cloned (a connection). For a durable server, what
/// is stored is decided by serde, not by `#[keep]`: mark the field `#[serde(skip)]` too to leave
/// it out of the store (a revived state then has its `Default`, and `#[init]` can rebuild it).
///
/// ```
/// fn reconnect() -> String {
///     "connected again".to_owned()
/// }
///
/// #[derive(Debug, Default, peeper::State)]
/// pub struct Session {
///     user: String,
///     cart: Vec<String>,
///     #[keep(skip)] // ephemeral: not kept, rebuilt with `Default` before `#[init]` runs
///     views: u64,
///     #[keep(skip, with = reconnect)]
///     connection: String,
/// }
///
/// #[peeper::server(keep = projection)]
/// impl Session {
///     #[cast]
///     fn add(&mut self, item: String) {
///         self.cart.push(item);
///     }
///
///     #[call]
///     fn view(&mut self) -> (Vec<String>, u64, String) {
///         self.views += 1;
///         (self.cart.clone(), self.views, self.connection.clone())
///     }
///
///     #[call]
///     fn crash(&mut self) {
///         panic!("lost the connection");
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let session = Session::start(Session { user: "ada".into(), ..Session::default() }).await?;
/// session.add("book".into())?;
/// assert_eq!(session.view().await?, (vec!["book".to_owned()], 1, String::new()));
/// assert!(session.crash().await.is_err());
/// // The cart was kept; the skipped fields were rebuilt.
/// assert_eq!(session.view().await?, (vec!["book".to_owned()], 1, "connected again".to_owned()));
/// # Ok(()) }
/// ```
///
/// The kept fields are held in a generated `SessionKept` struct (hidden) with the same generics;
/// each type parameter of the state must be `Clone + Send + Sync + 'static`. On the struct,
/// `#[keep(crate = path)]` names the runtime crate when it is not `::peeper`.
///
/// A tuple struct, an enum or a union, an unknown option in `#[keep(..)]`, and `with` on a field
/// that is not skipped are compile errors.
pub use peeper_macros::State;

/// What generated code needs, re-exported so that users never depend on it themselves.
/// Not part of the public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use futures;
    pub use inventory;
    pub use tokio;

    pub use crate::kinds::{CastOutput, InitErrorOutput, InitOutput, branch_named};

    /// What tells two messages apart under one idempotency key (see `Client::idempotent`).
    pub fn digest(method: &str, args: &impl serde::Serialize) -> u64 {
        crate::retained::digest(method, args)
    }

    /// A keyed call's reply, recorded.
    ///
    /// # Errors
    /// The codec's, as text.
    pub fn encode_reply<T: serde::Serialize>(reply: &T) -> Result<Vec<u8>, String> {
        crate::retained::encode_reply(reply)
    }

    /// A recorded reply, read back.
    ///
    /// # Errors
    /// The codec's, as text.
    pub fn decode_reply<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        crate::retained::decode_reply(bytes)
    }
}
