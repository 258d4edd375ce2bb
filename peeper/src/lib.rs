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
//!   Client (clone per user) ──mailbox (unbounded queue)─►  Cell { live, good, scratch, mailbox rx }
//!      │                                                      ▲ locked once per worker lifetime
//!      │ control (kill, stop, handoff)                        │
//!      ▼                                                      │
//!   ┌─ the branch's task ───────────────────────────────────────────┐
//!   │ Supervision ──polls, under catch_unwind──► Worker future ──────┘
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
//! - **Hibernation** parks what the branch needs to come back (its client, its options, its
//!   store) in the branch's sleeping slot; a send takes it out, under the slot's lock, and
//!   revives the branch. When the last handle outside (a client, a [`Branch`], a status waiter)
//!   goes, the parked parts are *released*: the registry keeps a record of about a hundred bytes
//!   under the server's name, the branch and its mailbox are freed, and a lookup by name revives
//!   the server from the record, in a new branch with the same id.
//! - **The mailbox** is one unbounded channel per branch. Its receiver lives in the cell, not in
//!   a worker, so a worker's death never drops a queued message. It is a queue under a lock, not
//!   tokio's channel: an empty one holds no buffer, so a hibernating server gives its mailbox's
//!   memory back, and the receiver takes a whole burst in one lock.
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
//! - **A call's timeout** is armed only for a reply that is late. On a current-thread runtime the
//!   call yields once first; on a multi-thread runtime it registers with the *ticker*, the one
//!   thread peeper starts of its own (on first use, parked while no call waits), which wakes it a
//!   tick (10 ms) later to arm its timer if the reply has not come. A reply that comes first costs
//!   no timer at all.
//! - **Kept resources** ([tables](Context::table) and [kept values](Context::keep)) hang off the
//!   branch, next to the cell: every incarnation gets the same ones back (no copy), a transfer
//!   moves them, and the end of the branch drops them. Writes to them are not rolled back.
//!
//! # What your crate compiles
//!
//! The runtime is generic over the server type, and a generic function is compiled again in your
//! crate for each server type. So the runtime keeps per-type code to what needs the type (the
//! worker's loop, the start, the end, and the few steps of the supervision that touch the state).
//! The rest is written once:
//! - the branch's task: the supervision's loop, which polls the worker (boxed, through a vtable)
//!   and the control queue, and tokio's task harness around it;
//! - the checks of a start and the wait for its `init`;
//! - the restart decisions;
//! - the name registry;
//! - catching panics and spawning side tasks (one non-generic path, `erased`);
//! - the log events.
//!
//! What only some servers use is reached through pointers set where you opt in, so a server that
//! does not use it does not compile it:
//! - the store's paths (claim, load, writes, the last write, hibernation, revival) are set by
//!   [`Builder::store`];
//! - a listener's task and inbox are set by [`Builder::listener`];
//! - the keyed-call path is set by the first keyed call in your code.
//!
//! `scripts/compile-time/measure.sh` measures what a 50-handler server costs to rebuild.
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
mod call;
mod client;
#[cfg(feature = "postgres")]
pub mod cluster;
mod context;
mod durable;
mod dynamic;
mod entities;
mod erased;
mod error;
mod exit;
mod fingerprint;
mod handling;
pub mod keep;
mod keeper;
mod kinds;
mod listener;
mod log;
mod mailbox;
mod options;
mod panics;
mod registry;
pub mod remote;
mod reply;
mod resources;
mod retained;
mod server;
pub mod store;
mod supervisor;
mod table;
mod ticker;
mod worker;

pub use branch::{Branch, BranchId};
pub use call::Call;
pub use client::Idempotent;
pub use client::{Client, DEFAULT_CALL_TIMEOUT, Timer};
pub use context::Context;
pub use dynamic::{DynamicSupervisor, transfer};
pub use entities::Entities;
pub use error::{CallError, SendError, StartError, StopError, TransferError, Undelivered};
pub use exit::Exit;
pub use listener::Listener;
pub use options::{
    Builder, CrashLoop, DEFAULT_CRASH_LOOP_AFTER, DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_WINDOW,
    OnStop, WritePolicy,
};
pub use panics::quiet_caught_panics;
pub use registry::whereis;
pub use remote::Remote;
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

#[doc = include_str!("docs/server-attribute.md")]
pub use peeper_macros::server;

#[doc = include_str!("docs/state-derive.md")]
pub use peeper_macros::State;

/// What generated code needs, re-exported so that users never depend on it themselves.
/// Not part of the public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use futures;
    pub use inventory;
    pub use serde;
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
