//! The worker task: restores the state if a crash left it unknown, runs `init`, then handles the
//! mailbox one message at a time.
//!
//! Every handler runs under `catch_unwind`. A panic is answered right here: the crashing caller
//! gets [`CallError::Crashed`] with the panic's message, and the worker ends with the crash for
//! its supervisor. After a handler completes, the state is kept *before* the reply is sent, so a
//! reply always stands for a kept state.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use tokio::sync::{OwnedMutexGuard, mpsc};

use crate::exit::panic_message;
use crate::keeper::{Cell, Event};
use crate::mailbox::Envelope;
use crate::{CallError, Client, Context, Exit, Server};

/// How a worker ended.
#[derive(Debug)]
pub(crate) enum WorkerEnd {
    /// A normal end (a `Stop` message or `ctx.stop()`): `terminate` has run.
    Stopped(Exit),
    /// It crashed. `started`: its `init` had completed, so the kept state can start a worker
    /// (a handler crash consumes its message and says nothing about the state's next start).
    Crashed { exit: Exit, started: bool },
    /// It stopped at a message boundary so the branch can move.
    Handoff,
}

pub(crate) struct Worker<S: Server> {
    pub(crate) incarnation: u64,
    pub(crate) client: Client<S>,
    /// Where state changes go, when the listener wants them.
    pub(crate) changes: Option<mpsc::UnboundedSender<Event<S>>>,
}

impl<S: Server> Worker<S> {
    pub(crate) async fn run(self, mut cell: OwnedMutexGuard<Cell<S>>) -> WorkerEnd {
        self.client.branch().tasks().worker = Some(tokio::task::id());
        let cell = &mut *cell;
        let changes = self.changes.as_ref();
        let mut ctx = Context::new(self.incarnation, self.client.clone());

        if let Err(exit) = cell.restore_if_needed() {
            return WorkerEnd::Crashed {
                exit,
                started: false,
            };
        }
        cell.live.reset();
        let init = AssertUnwindSafe(S::init(&mut cell.live, &mut ctx))
            .catch_unwind()
            .await;
        let init = match init {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(Exit::InitFailed {
                message: error.to_string(),
            }),
            Err(payload) => Err(Exit::InitFailed {
                message: panic_message(&*payload),
            }),
        };
        // The very first good state is kept even if `init` did not touch it.
        let unkept = cell.good.is_none();
        if let Err(exit) = init.and_then(|()| settle(cell, changes, Ok(()), unkept)) {
            return WorkerEnd::Crashed {
                exit,
                started: false,
            };
        }
        let incarnation = self.incarnation;
        self.client
            .branch()
            .inner
            .status
            .send_modify(|status| status.ready = Some(incarnation));
        tracing::debug!(
            server = self.client.branch().server(),
            incarnation,
            "worker ready"
        );

        loop {
            // The mailbox cannot close while this worker's own client holds a sender.
            let Some(envelope) = cell.mailbox.recv().await else {
                return WorkerEnd::Stopped(Exit::Normal);
            };
            cell.live.reset();
            let outcome = match envelope {
                Envelope::Call { call, reply } => {
                    let out = AssertUnwindSafe(S::handle_call(&mut cell.live, call, &mut ctx))
                        .catch_unwind()
                        .await;
                    match settle(cell, changes, out, false) {
                        Ok(value) => {
                            // The caller may have timed out; the call still counted, as in GenServer.
                            let _ = reply.send(Ok(value));
                            Ok(())
                        }
                        Err(exit) => {
                            let _ = reply.send(Err(CallError::Crashed(exit.clone())));
                            Err(exit)
                        }
                    }
                }
                Envelope::Cast(cast) => {
                    let out = AssertUnwindSafe(S::handle_cast(&mut cell.live, cast, &mut ctx))
                        .catch_unwind()
                        .await;
                    settle(cell, changes, out, false)
                }
                Envelope::Info(info) => {
                    let out = AssertUnwindSafe(S::handle_info(&mut cell.live, info, &mut ctx))
                        .catch_unwind()
                        .await;
                    settle(cell, changes, out, false)
                }
                Envelope::Stop(reason) => {
                    terminate(cell, &reason, &mut ctx).await;
                    return WorkerEnd::Stopped(reason);
                }
                Envelope::Handoff => return WorkerEnd::Handoff,
            };
            if let Err(exit) = outcome {
                return WorkerEnd::Crashed {
                    exit,
                    started: true,
                };
            }
            if ctx.stop_requested() {
                terminate(cell, &Exit::Normal, &mut ctx).await;
                return WorkerEnd::Stopped(Exit::Normal);
            }
        }
    }
}

/// Turns a handler's outcome into its value, keeping the state first if the handler changed it
/// (or if `force`).
fn settle<S: Server, T>(
    cell: &mut Cell<S>,
    changes: Option<&mpsc::UnboundedSender<Event<S>>>,
    outcome: Result<T, Box<dyn Any + Send>>,
    force: bool,
) -> Result<T, Exit> {
    let value = outcome.map_err(|payload| Exit::panicked(&*payload))?;
    if force || cell.live.changed() {
        cell.commit(changes)?;
    }
    Ok(value)
}

/// Runs the server's `terminate` on the cell's state, first restoring it if a crash left it
/// unknown. A panic in `terminate` is logged: the branch is ending either way.
pub(crate) async fn terminate<S: Server>(cell: &mut Cell<S>, reason: &Exit, ctx: &mut Context<S>) {
    // Recorded first: a kill landing at one of `terminate`'s awaits must not undo the stop.
    cell.stopping = Some(reason.clone());
    if let Err(exit) = cell.restore_if_needed() {
        tracing::error!(server = std::any::type_name::<S>(), %exit, "could not restore the state for terminate");
    }
    let state = cell.live.untracked_mut();
    if let Err(payload) = AssertUnwindSafe(state.terminate(reason, ctx))
        .catch_unwind()
        .await
    {
        tracing::error!(server = std::any::type_name::<S>(), panic = %panic_message(&*payload), "terminate panicked");
    }
}
