//! The worker, run by its branch's task: restores the state if a crash left it unknown, runs
//! `init`, then handles the mailbox one message at a time.
//!
//! Every handler runs under `catch_unwind`. A panic is answered right here: the crashing caller
//! gets [`CallError::Crashed`] with the panic's message, and the worker ends with the crash for
//! its supervisor. After a handler completes, the state is kept *before* the reply is sent, so a
//! reply always stands for a kept state.

mod durable;
mod keyed;
mod persistence;
mod reply;

use durable::{Durably, Idle};

pub(crate) use durable::Hooks;
pub(crate) use keyed::KeyedHandler;
use keyed::{Keyed, unwritten};
pub(crate) use persistence::Persistence;
use persistence::fenced;
use reply::{CommittedReply, Owed};

use std::future::Future;
use std::pin::{Pin, pin};
use std::time::Duration;

use tokio::time::Instant;

use crate::erased::{Guarded, Payload};
use crate::keeper::{Cell, Changes, SharedCell};
use crate::mailbox::Envelope;
use crate::panics::panic_message;
use crate::retained::Retention;
use crate::{Client, Context, Exit, Ignore, Server};

/// How a worker ended.
#[derive(Debug)]
pub(crate) enum WorkerEnd {
    /// A normal end (a `Stop` message or `ctx.stop()`): `terminate` has run (unless it is the
    /// default one, which has nothing to run).
    Stopped(Exit),
    /// It crashed. `started`: its `init` had completed, so the kept state can start a worker
    /// (a handler crash consumes its message and says nothing about the state's next start).
    Crashed { exit: Exit, started: bool },
    /// It stopped at a message boundary so the branch can move.
    Handoff,
    /// It was idle for its `idle_after` with its state stored: the branch may hibernate.
    Idle,
}

pub(crate) struct Worker<S: Server> {
    pub(crate) incarnation: u64,
    pub(crate) client: Client<S>,
    /// Where state changes go, when the listener wants them.
    pub(crate) changes: Option<Changes<S>>,
    /// The store and how to write to it, for a durable server. Boxed: the worker's future keeps
    /// a slot for it all its life, and most servers are not durable.
    pub(crate) persistence: Option<Box<Persistence<S>>>,
    /// Hibernate after this long without a message.
    pub(crate) idle_after: Option<Duration>,
    /// How long, and how many, replies of keyed calls are kept.
    pub(crate) retention: Retention,
}

/// What the worker handles next.
enum Job<S: Server> {
    /// A message from the mailbox.
    Message(Envelope<S>),
    /// A continuation a handler asked for ([`Context::continue_with`]).
    Continue(S::Cast),
    /// No message came within the time the last handler asked for ([`Context::set_timeout`]).
    Timeout,
}

impl<S: Server> Worker<S> {
    // Not an `async fn`, for the reason given on `Supervision::run`: the arguments would take
    // their room twice in the task.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn run(self, cell: SharedCell<S>) -> impl Future<Output = WorkerEnd> + Send {
        async move {
            // Free when a worker starts: the supervision takes it after a crash and at the end,
            // and the listener at the end, never while a worker runs. Unconstrained by tokio's
            // budget, so that the first poll of a worker always gets past it: a spent budget
            // would otherwise let a kill in before the worker restored the state or ran `init`.
            let mut cell = tokio::task::unconstrained(cell.lock_owned()).await;
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
            // Boxed, as every await off the per-message path below: a task's future is as large as
            // the largest set of locals alive across any of its awaits, and an idle server keeps that
            // allocation for its whole life. A boxed await costs an allocation when it runs.
            // The locals of `init`'s outcome live in this block only: one alive across a later
            // await would take room in the task for its whole life.
            {
                // The default `init` changes nothing and cannot fail: not boxed and polled for
                // nothing at every start.
                let init = if S::__INIT_IS_DEFAULT {
                    Ok(Ok(()))
                } else {
                    guarded(Box::pin(S::init(&mut cell.live, &mut ctx)).as_mut()).await
                };
                let init = match init {
                    Ok(Ok(())) => Ok(()),
                    // GenServer's `:ignore`: not a crash, and nothing to restart. What `init` changed
                    // before declining is not kept: the branch ends on the kept state.
                    Ok(Err(error)) if error.is::<Ignore>() => {
                        cell.needs_restore = true;
                        if let Err(exit) = cell.restore_if_needed() {
                            return WorkerEnd::Crashed {
                                exit,
                                started: false,
                            };
                        }
                        return WorkerEnd::Stopped(Exit::Ignored);
                    }
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
            }
            // GenServer's `{:stop, reason}` from `init`: the server does not start (no `terminate`).
            if let Some(exit) = ctx.take_stop() {
                return WorkerEnd::Stopped(exit);
            }
            let mut persistence = self.persistence;
            {
                let written = persistence.as_deref_mut().and_then(|persistence| {
                    (persistence.hooks.after_init)(Durably {
                        persistence,
                        cell,
                        branch: self.client.branch(),
                    })
                });
                if let Some(written) = written
                    && let Some(exit) = written.await
                {
                    return WorkerEnd::Stopped(exit);
                }
            }
            let incarnation = self.incarnation;
            self.client
                .branch()
                .inner
                .status
                .send_modify(|status| status.ready = Some(incarnation));
            crate::log::worker_ready(self.client.branch(), incarnation);

            let mut last_message = Instant::now();
            // When `handle_timeout` is due, if the last handler asked for it.
            let mut timeout_at = ctx.take_timeout().map(|timeout| Instant::now() + timeout);
            'messages: loop {
                let job = 'job: {
                    if let Some(cast) = ctx.take_continuation() {
                        break 'job Job::Continue(cast);
                    }
                    // A pending handler timeout keeps the server awake: hibernating would drop it.
                    let idle_at = self
                        .idle_after
                        .filter(|_| timeout_at.is_none())
                        .map(|idle| last_message + idle);
                    let deadline = earliest(
                        earliest(
                            persistence.as_deref().and_then(Persistence::flush_at),
                            idle_at,
                        ),
                        timeout_at,
                    );
                    let received = match deadline {
                        None => cell.mailbox.recv().await,
                        Some(deadline) => {
                            match Box::pin(tokio::time::timeout_at(deadline, cell.mailbox.recv()))
                                .await
                            {
                                Ok(received) => received,
                                // Cleared after the handler, as after any handler.
                                Err(_elapsed) if timeout_at.is_some_and(|at| at <= deadline) => {
                                    break 'job Job::Timeout;
                                }
                                Err(_elapsed) => {
                                    let Some(persistence) = persistence.as_deref_mut() else {
                                        // Idle without a store: nothing to hibernate into.
                                        last_message = Instant::now();
                                        continue 'messages;
                                    };
                                    let idle = (persistence.hooks.idle)(Durably {
                                        persistence,
                                        cell,
                                        branch: self.client.branch(),
                                    });
                                    match idle.await {
                                        Idle::Stored
                                            if idle_at.is_some_and(|at| at <= Instant::now()) =>
                                        {
                                            return WorkerEnd::Idle;
                                        }
                                        Idle::Stored => {}
                                        // Stay awake, and try again after another idle period.
                                        Idle::Failed => last_message = Instant::now(),
                                        Idle::Fenced(exit) => return WorkerEnd::Stopped(exit),
                                    }
                                    continue 'messages;
                                }
                            }
                        }
                    };
                    // The mailbox cannot close while this worker's own client holds a sender.
                    let Some(envelope) = received else {
                        return WorkerEnd::Stopped(Exit::Normal);
                    };
                    // A clock read costs as much as a tenth of a call: only servers that can idle
                    // pay it.
                    if self.idle_after.is_some() {
                        last_message = Instant::now();
                    }
                    Job::Message(envelope)
                };
                cell.live.reset();
                // Only a link makes these; a worker handles the call inside as any other.
                let job = match job {
                    Job::Message(Envelope::Timed(timed)) => Job::Message(timed.envelope),
                    job => job,
                };
                let outcome = match job {
                    Job::Message(Envelope::Call { call, reply }) => {
                        ctx.begin_call(reply);
                        let out =
                            guarded(pin!(S::handle_call(&mut cell.live, call, &mut ctx))).await;
                        let answer = ctx.end_call();
                        match settle(cell, changes, out, false) {
                            // Nothing to store (no store, or a `&self` handler): answer now.
                            Ok(value) => match persistence.as_deref_mut() {
                                // A change of a durable server: its reply waits for the write.
                                Some(persistence) if cell.live.changed() => {
                                    let replied = (persistence.hooks.reply)(
                                        Durably {
                                            persistence,
                                            cell,
                                            branch: self.client.branch(),
                                        },
                                        Owed::of(answer, value),
                                    );
                                    if let Some(exit) = replied.await {
                                        return WorkerEnd::Stopped(exit);
                                    }
                                    Ok(())
                                }
                                // Nothing to store (no store, or a `&self` handler): answer now.
                                _ => {
                                    if let Some(owed) = Owed::of(answer, value) {
                                        owed.answer(Ok(()));
                                    }
                                    Ok(())
                                }
                            },
                            Err(exit) => {
                                answer.crashed(&exit);
                                Err(exit)
                            }
                        }
                    }
                    Job::Message(Envelope::Keyed(keyed)) => {
                        let keyed = keyed::handle(keyed::Args {
                            client: &self.client,
                            retention: self.retention,
                            cell,
                            changes,
                            ctx: &mut ctx,
                            persistence: &mut persistence,
                            keyed: *keyed,
                        });
                        match keyed.await {
                            Keyed::Done => Ok(()),
                            Keyed::Crashed(exit) => Err(exit),
                            Keyed::Fenced(exit) => return WorkerEnd::Stopped(exit),
                        }
                    }
                    Job::Message(Envelope::Cast(cast)) | Job::Continue(cast) => {
                        let out =
                            guarded(pin!(S::handle_cast(&mut cell.live, cast, &mut ctx))).await;
                        settle(cell, changes, out, false)
                    }
                    Job::Message(Envelope::Info(info)) => {
                        let out =
                            guarded(pin!(S::handle_info(&mut cell.live, info, &mut ctx))).await;
                        settle(cell, changes, out, false)
                    }
                    Job::Timeout => {
                        let out =
                            guarded(Box::pin(S::handle_timeout(&mut cell.live, &mut ctx)).as_mut())
                                .await;
                        settle(cell, changes, out, false)
                    }
                    Job::Message(Envelope::Stop(reason)) => {
                        let reason = reason.map_or(Exit::Normal, |reason| *reason);
                        if S::__TERMINATE_IS_DEFAULT {
                            // Nothing to run, and no await for a kill to land at.
                            restore_for_terminate(cell);
                        } else {
                            Box::pin(terminate(cell, &reason, &mut ctx)).await;
                        }
                        return WorkerEnd::Stopped(reason);
                    }
                    Job::Message(Envelope::Handoff) => return WorkerEnd::Handoff,
                    Job::Message(Envelope::Timed(_)) => Ok(()),
                };
                if let Err(exit) = outcome {
                    return WorkerEnd::Crashed {
                        exit,
                        started: true,
                    };
                }
                // Only the last handler's request counts; a clock read only when there is one.
                timeout_at = ctx.take_timeout().map(|timeout| Instant::now() + timeout);
                if let Some(persistence) = persistence.as_deref_mut()
                    && let Some(stored) = (persistence.hooks.after_handler)(Durably {
                        persistence,
                        cell,
                        branch: self.client.branch(),
                    })
                    && let Some(exit) = stored.await
                {
                    return WorkerEnd::Stopped(exit);
                }
                if let Some(reason) = ctx.take_stop() {
                    ctx.drop_continuations();
                    if S::__TERMINATE_IS_DEFAULT {
                        restore_for_terminate(cell);
                    } else {
                        Box::pin(terminate(cell, &reason, &mut ctx)).await;
                    }
                    return WorkerEnd::Stopped(reason);
                }
            }
        }
    }
}

/// A handler's future, pinned where it was built (a handler's future can be large, and moving it
/// into a wrapper cost a copy per message), to be polled with its panic caught. Not an
/// `async fn`: that would be one more future type per handler, compiled for every server type.
///
/// Unmarked: the supervisor polls the whole worker marked as a handler of its branch (see
/// [`handling`](crate::handling)), which costs two thread-local writes per poll of the worker
/// rather than per poll of each handler. Nothing the worker runs between handlers calls or
/// stops its own branch. [`terminate`], which the supervisor runs too, marks itself.
fn guarded<F: Future>(handler: Pin<&mut F>) -> Guarded<'_, F> {
    Guarded {
        branch: None,
        future: handler,
    }
}

#[inline]
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Turns a handler's outcome into its value, keeping the state first if the handler changed it
/// (or if `force`).
#[inline]
fn settle<S: Server, T>(
    cell: &mut Cell<S>,
    changes: Option<&Changes<S>>,
    outcome: Result<T, Payload>,
    force: bool,
) -> Result<T, Exit> {
    let value = outcome.map_err(|payload| Exit::panicked(&*payload))?;
    if force || cell.live.changed() {
        cell.commit(changes)?;
    }
    Ok(value)
}

/// Brings back the kept state before `terminate` would see it (after a crash), as every end
/// does whether or not there is a `terminate` to run: what follows (the last write) stores it.
fn restore_for_terminate<S: Server>(cell: &mut Cell<S>) {
    if let Err(exit) = cell.restore_if_needed() {
        crate::log::terminate_unrestored(std::any::type_name::<S>(), &exit);
    }
}

/// Runs the server's `terminate` on the cell's state, first restoring it if a crash left it
/// unknown. A panic in `terminate` is logged and published, for `stop` to report
/// ([`StopError::Terminate`](crate::StopError::Terminate)): the branch is ending either way.
/// The default `terminate` (no `#[terminate]`) does nothing and has no await for a kill to land
/// at: only the state is restored.
pub(crate) async fn terminate<S: Server>(cell: &mut Cell<S>, reason: &Exit, ctx: &mut Context<S>) {
    if S::__TERMINATE_IS_DEFAULT {
        restore_for_terminate(cell);
        return;
    }
    // Recorded first: a kill landing at one of `terminate`'s awaits must not undo the stop.
    cell.stopping = Some(Box::new(reason.clone()));
    restore_for_terminate(cell);
    let branch = ctx.client().branch().clone();
    let state = cell.live.untracked_mut();
    // Marked itself: besides the worker (whose poll is marked already), the supervisor runs it
    // when the branch ends after a crash, and a handler there calling its own server must fail
    // at once as in any other handler.
    let terminating = Guarded {
        branch: Some(branch.id()),
        future: pin!(state.terminate(reason, ctx)),
    };
    if let Err(payload) = terminating.await {
        let message = panic_message(&*payload);
        crate::log::terminate_panicked(std::any::type_name::<S>(), &message);
        branch
            .inner
            .status
            .send_modify(|status| status.terminate_panicked = Some(message));
    }
}
