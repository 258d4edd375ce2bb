//! The worker task: restores the state if a crash left it unknown, runs `init`, then handles the
//! mailbox one message at a time.
//!
//! Every handler runs under `catch_unwind`. A panic is answered right here: the crashing caller
//! gets [`CallError::Crashed`] with the panic's message, and the worker ends with the crash for
//! its supervisor. After a handler completes, the state is kept *before* the reply is sent, so a
//! reply always stands for a kept state.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;
use tokio::sync::OwnedMutexGuard;

use crate::exit::panic_message;
use crate::keeper::{Cell, Changes};
use crate::mailbox::{Envelope, ReplyTo};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

use crate::durable::Durable;
use crate::options::WritePolicy;
use crate::store::{Key, StoreError};
use crate::{CallError, Client, Context, Exit, Server, Tracked};

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
    /// It was idle for its `idle_after` with its state stored: the branch may hibernate.
    Idle,
}

pub(crate) struct Worker<S: Server> {
    pub(crate) incarnation: u64,
    pub(crate) client: Client<S>,
    /// Where state changes go, when the listener wants them.
    pub(crate) changes: Option<Changes<S>>,
    /// The store and how to write to it, for a durable server.
    pub(crate) persistence: Option<Persistence<S>>,
    /// Hibernate after this long without a message.
    pub(crate) idle_after: Option<Duration>,
}

/// A durable worker's link to its store.
pub(crate) struct Persistence<S> {
    pub(crate) durable: Durable<S>,
    pub(crate) key: Key,
    pub(crate) policy: WritePolicy,
    /// Batched policy: when the oldest change not yet submitted was made.
    unwritten_since: Option<Instant>,
    /// Set from each write's submission until its commit succeeds: a write that failed leaves
    /// the store behind the state in memory. Hibernating drops that state, so the idle path
    /// writes it again first (see `flush`) instead of letting the branch come back older.
    /// Shared with the write's future, which outlives the `&mut self` that made it.
    behind: Arc<AtomicBool>,
}

impl<S: Server> Persistence<S> {
    pub(crate) fn new(durable: Durable<S>, key: Key, policy: WritePolicy) -> Self {
        Persistence {
            durable,
            key,
            policy,
            unwritten_since: None,
            behind: Arc::default(),
        }
    }

    /// The state changed: write it through (the returned future waits for the commit), or note
    /// it for the next batch.
    ///
    /// The state is encoded before anything is awaited: `S` need not be `Sync`.
    fn changed(
        &mut self,
        state: &S,
    ) -> Option<impl Future<Output = Result<(), StoreError>> + Send + 'static> {
        match self.policy {
            WritePolicy::Through => Some(self.write(state)),
            WritePolicy::Batched(_) => {
                self.unwritten_since.get_or_insert_with(Instant::now);
                None
            }
        }
    }

    /// When the batch must go out, if one is waiting.
    fn flush_at(&self) -> Option<Instant> {
        match (self.policy, self.unwritten_since) {
            (WritePolicy::Batched(period), Some(since)) => Some(since + period),
            _ => None,
        }
    }

    /// Writes the state if a batched change is waiting, or if the last write failed; the future
    /// waits for the commit.
    fn flush(
        &mut self,
        state: &S,
    ) -> Option<impl Future<Output = Result<(), StoreError>> + Send + 'static> {
        let behind = self.behind.load(Ordering::Relaxed);
        (self.unwritten_since.is_some() || behind).then(|| self.write(state))
    }

    fn write(
        &mut self,
        state: &S,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        self.unwritten_since = None;
        // One worker awaits each write before it makes the next: the flag follows the last one.
        self.behind.store(true, Ordering::Relaxed);
        let behind = Arc::clone(&self.behind);
        let submitted = self
            .durable
            .encode(&self.key, state)
            .map(|bytes| self.durable.storage.submit(self.key.clone(), Some(bytes)));
        async move {
            submitted?.await?;
            behind.store(false, Ordering::Relaxed);
            Ok(())
        }
    }
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
        // Boxed, as every await off the per-message path below: a task's future is as large as
        // the largest set of locals alive across any of its awaits, and an idle server keeps that
        // allocation for its whole life. A boxed await costs an allocation when it runs.
        let init =
            Box::pin(AssertUnwindSafe(S::init(&mut cell.live, &mut ctx)).catch_unwind()).await;
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
        // Boxed where it is built: a future held in a named local keeps a slot in this task's
        // state even after it moved into a box.
        let mut persistence = self.persistence.map(Box::new);
        let written = persistence
            .as_mut()
            .map(|persistence| Box::pin(persistence.write(&cell.live)));
        if let Some(written) = written {
            let written = written.await;
            if let Some(exit) = fenced(&written) {
                return WorkerEnd::Stopped(exit);
            }
            if let Err(error) = written {
                // Not fatal: the next change writes the whole state again.
                tracing::error!(server = self.client.branch().server(), %error, "could not store the state after init");
            }
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

        let mut last_message = Instant::now();
        loop {
            let deadline = earliest(
                persistence.as_deref().and_then(Persistence::flush_at),
                self.idle_after.map(|idle| last_message + idle),
            );
            let received = match deadline {
                None => cell.mailbox.recv().await,
                Some(deadline) => {
                    match Box::pin(tokio::time::timeout_at(deadline, cell.mailbox.recv())).await {
                        Ok(received) => received,
                        Err(_elapsed) => {
                            let Some(persistence) = &mut persistence else {
                                // Idle without a store: nothing to hibernate into.
                                last_message = Instant::now();
                                continue;
                            };
                            let flush = persistence.flush(&cell.live).map(Box::pin);
                            let flushed = match flush {
                                Some(flush) => flush.await,
                                None => Ok(()),
                            };
                            if let Some(exit) = fenced(&flushed) {
                                return WorkerEnd::Stopped(exit);
                            }
                            match flushed {
                                Ok(())
                                    if self
                                        .idle_after
                                        .is_some_and(|idle| last_message.elapsed() >= idle) =>
                                {
                                    return WorkerEnd::Idle;
                                }
                                Ok(()) => {}
                                Err(error) => {
                                    tracing::error!(server = self.client.branch().server(), %error, "could not store the state");
                                    // Stay awake, and try again after another idle period.
                                    last_message = Instant::now();
                                }
                            }
                            continue;
                        }
                    }
                }
            };
            // The mailbox cannot close while this worker's own client holds a sender.
            let Some(envelope) = received else {
                return WorkerEnd::Stopped(Exit::Normal);
            };
            // A clock read costs as much as a tenth of a call: only servers that can idle pay it.
            if self.idle_after.is_some() {
                last_message = Instant::now();
            }
            cell.live.reset();
            let outcome = match envelope {
                Envelope::Call { call, reply } => {
                    let out = guarded(S::handle_call(&mut cell.live, call, &mut ctx)).await;
                    match settle(cell, changes, out, false) {
                        // Nothing to store (no store, or a `&self` handler): reply now.
                        Ok(value) if persistence.is_none() || !cell.live.changed() => {
                            // The caller may have timed out; the call still counted, as in GenServer.
                            let _ = reply.send(Ok(value));
                            Ok(())
                        }
                        Ok(value) => {
                            // Submitted now, synchronously: from here on the change is kept and on
                            // its way to the store, so the reply is owed whatever happens to this
                            // worker (see `CommittedReply`).
                            let write = store_if_changed(&mut persistence, &cell.live);
                            // Written: the common write below must not write it again.
                            cell.live.reset();
                            let stored =
                                Box::pin(CommittedReply::<S, _>::new(reply, value, write).send())
                                    .await;
                            if let Some(exit) = fenced(&stored) {
                                return WorkerEnd::Stopped(exit);
                            }
                            Ok(())
                        }
                        Err(exit) => {
                            let _ = reply.send(Err(Box::new(CallError::Crashed(exit.clone()))));
                            Err(exit)
                        }
                    }
                }
                Envelope::Cast(cast) => {
                    let out = guarded(S::handle_cast(&mut cell.live, cast, &mut ctx)).await;
                    settle(cell, changes, out, false)
                }
                Envelope::Info(info) => {
                    let out = guarded(S::handle_info(&mut cell.live, info, &mut ctx)).await;
                    settle(cell, changes, out, false)
                }
                Envelope::Stop(reason) => {
                    let reason = *reason;
                    Box::pin(terminate(cell, &reason, &mut ctx)).await;
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
            // Checked first: building the store's future costs a copy per message for nothing.
            if persistence.is_some() {
                let stored = Box::pin(store_if_changed(&mut persistence, &cell.live)).await;
                if let Some(exit) = fenced(&stored) {
                    return WorkerEnd::Stopped(exit);
                }
                if let Err(error) = stored {
                    // A cast or info message: nobody to tell but the log.
                    tracing::error!(server = self.client.branch().server(), %error, "could not store the state");
                }
            }
            if ctx.stop_requested() {
                Box::pin(terminate(cell, &Exit::Normal, &mut ctx)).await;
                return WorkerEnd::Stopped(Exit::Normal);
            }
        }
    }
}

/// Runs a handler's future in place (pinned where it was built, not moved into a wrapper: a
/// handler's future can be large, and moving it cost a copy per message) and catches its panic.
async fn guarded<F: Future>(handler: F) -> Result<F::Output, Box<dyn Any + Send>> {
    let handler = std::pin::pin!(handler);
    AssertUnwindSafe(handler).catch_unwind().await
}

/// The reply to a call whose handler completed and whose state is kept, waiting for that state's
/// commit.
///
/// A kill aborts the worker at its next await, and this wait is one. Once the state is kept, the
/// next worker starts from it, so a caller told [`CallError::Crashed`] here would retry a change
/// that was applied. Dropped before it replied (the worker was killed, or its runtime is shutting
/// down), it hands the wait and the reply to a task of their own: the caller still gets the reply
/// after the commit, or the store's error.
struct CommittedReply<S: Server, W: Future<Output = Result<(), StoreError>> + Send + 'static> {
    /// `None` once sent, or once handed to the finishing task.
    pending: Option<Owed<S, W>>,
}

/// Where the reply goes, the reply, and the commit it waits for.
type Owed<S, W> = (ReplyTo<S>, <S as Server>::Reply, Pin<Box<W>>);

impl<S: Server, W: Future<Output = Result<(), StoreError>> + Send + 'static> CommittedReply<S, W> {
    fn new(reply: ReplyTo<S>, value: S::Reply, write: W) -> Self {
        CommittedReply {
            pending: Some((reply, value, Box::pin(write))),
        }
    }

    /// Waits for the commit, then replies; returns what the commit said.
    async fn send(mut self) -> Result<(), StoreError> {
        let stored = match &mut self.pending {
            Some((_, _, write)) => write.as_mut().await,
            None => Ok(()),
        };
        if let Some((reply, value, _)) = self.pending.take() {
            answer::<S>(reply, value, stored.clone());
        }
        stored
    }
}

impl<S: Server, W: Future<Output = Result<(), StoreError>> + Send + 'static> Drop
    for CommittedReply<S, W>
{
    fn drop(&mut self) {
        let Some((reply, value, write)) = self.pending.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let stored = write.await;
                    answer::<S>(reply, value, stored);
                });
            }
            // No runtime to wait on: the commit's outcome cannot be known here.
            Err(_) => {
                let _ = reply.send(Err(Box::new(CallError::Store(StoreError::Closed))));
            }
        }
    }
}

/// Answers a completed call whose state write ended with `stored`.
fn answer<S: Server>(reply: ReplyTo<S>, value: S::Reply, stored: Result<(), StoreError>) {
    // The caller may have timed out; the call still counted, as in GenServer.
    let _ = reply.send(
        stored
            .map(|()| value)
            .map_err(|error| Box::new(CallError::Store(error))),
    );
}

/// Writes the state to the store if the handler that just ran changed it.
fn store_if_changed<S: Server>(
    persistence: &mut Option<Box<Persistence<S>>>,
    live: &Tracked<S>,
) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
    let write = match persistence {
        Some(persistence) if live.changed() => persistence.changed(live),
        _ => None,
    };
    async move {
        match write {
            Some(write) => write.await,
            None => Ok(()),
        }
    }
}

/// A write refused by fencing ends the worker (and its branch, without writing or releasing):
/// another node owns the server now, and this copy of its state is stale.
fn fenced(written: &Result<(), StoreError>) -> Option<Exit> {
    match written {
        Err(StoreError::Fenced { owner, .. }) => Some(Exit::Fenced {
            owner: owner.clone(),
        }),
        _ => None,
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Turns a handler's outcome into its value, keeping the state first if the handler changed it
/// (or if `force`).
fn settle<S: Server, T>(
    cell: &mut Cell<S>,
    changes: Option<&Changes<S>>,
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
