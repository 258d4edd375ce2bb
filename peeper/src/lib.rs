//! Servers whose state survives their own crashes.
//!
//! A peeper server is a **branch** of three tokio tasks: a *supervisor*, a *keeper* holding the
//! state of the last completed handler, and a *worker* running your handlers. When the worker
//! crashes (a panic, an `Err` from `init`, or a kill), the supervisor starts a new one from the
//! keeper's state, with every queued message still queued. This is Elixir's
//! [Peeper](https://hexdocs.pm/peeper) for Rust, minus the messages Peeper loses.
//!
//! ```
//! use peeper::{Context, Server, Tracked};
//!
//! #[derive(Clone, Default)]
//! struct Counter { count: u64 }
//!
//! enum Call { Get, Boom }
//!
//! impl Server for Counter {
//!     type Call = Call;
//!     type Reply = u64;
//!     type Cast = u64;
//!     type Info = ();
//!     type Keep = peeper::keep::Snapshot;
//!
//!     async fn handle_call(state: &mut Tracked<Self>, call: Call, _: &mut Context<Self>) -> u64 {
//!         match call {
//!             Call::Get => state.count,
//!             Call::Boom => { state.count = 999; panic!("boom") }  // this change is not kept
//!         }
//!     }
//!     async fn handle_cast(state: &mut Tracked<Self>, by: u64, _: &mut Context<Self>) {
//!         state.count += by;
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let counter = Counter::start(Counter::default()).await?;
//! counter.cast(41)?;
//! let crash = counter.call(Call::Boom).await;
//! assert_eq!(crash.unwrap_err().to_string(), "the worker crashed while handling this call: the worker panicked: boom");
//! counter.cast(1)?;
//! assert_eq!(counter.call(Call::Get).await?, 42);   // 41 was kept, 999 was not
//! # Ok(()) }
//! ```
//!
//! # How the data flows
//!
//! ```text
//!   Client (clone per user) ──mailbox (unbounded mpsc)──►  Cell { live, good, scratch, mailbox rx }
//!      │                                                      ▲ locked once per worker lifetime
//!      │ control (kill, stop, handoff)                        │
//!      ▼                                                      │
//!   Supervisor task ──spawns, awaits──► Worker task ──────────┘
//!      │  restarts, end                    │ state changes (only with a listener)
//!      └──────────────► events (mpsc) ◄────┘
//!                           ▼
//!                      Keeper task: owns the Cell, runs the Listener in order
//! ```
//!
//! - **The mailbox** is one unbounded channel per branch. Its receiver lives in the keeper's
//!   cell, not in a worker, so a worker's death never drops a queued message.
//! - **The cell** holds the live state, the last good copy and the mailbox receiver. A worker locks
//!   it once for its whole life, so keeping the state after a handler is a plain write, with no
//!   message and no wake-up. When the worker dies, however it dies, its lock guard drops and the
//!   cell is intact.
//! - **The worker** runs every handler under `catch_unwind`. After a handler that changed the state
//!   (it borrowed the [`Tracked`] state mutably), it keeps the state with the server's
//!   [keep strategy](keep), *then* replies. A panic is answered to the crashing caller with
//!   [`CallError::Crashed`] and the panic's message.
//! - **The supervisor** awaits the worker. On a crash it marks the cell for restore, applies the
//!   restart intensity and the [`CrashLoop`] policy, and starts the next incarnation on the same
//!   cell; the new worker brings the live state back to the last good copy and runs `init`. It also
//!   carries out kills, stops and transfers, and ends the branch in order.
//! - **The keeper** task owns the cell and runs the [`Listener`] callbacks from one event channel,
//!   in the order things happened, never on the worker's path.
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
mod context;
mod dynamic;
mod error;
mod exit;
pub mod keep;
mod keeper;
mod listener;
mod mailbox;
mod options;
mod registry;
mod server;
mod supervisor;
mod worker;

pub use branch::{Branch, BranchId, Child, Role};
pub use client::{Client, DEFAULT_CALL_TIMEOUT, Timer};
pub use context::Context;
pub use dynamic::{DynamicSupervisor, transfer};
pub use error::{CallError, SendError, StartError, StopError, TransferError};
pub use exit::Exit;
pub use listener::Listener;
pub use options::{
    Builder, CrashLoop, DEFAULT_CRASH_LOOP_AFTER, DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_WINDOW,
};
pub use registry::whereis;
pub use server::{InitError, Server, Tracked};

/// What generated code needs, re-exported so that users never depend on it themselves.
/// Not part of the public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use futures;
    pub use inventory;
    pub use tokio;
}
