//! The worker, run by its branch's task: restores the state if a crash left it unknown, runs `init`, then handles the
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

use crate::context::Answer;
use crate::exit::panic_message;
use crate::handling::Handling;
use crate::keeper::{Cell, Changes};
use crate::mailbox::{Caller, Envelope};
use crate::reply::Gate;
use crate::retained::{Found, KeyedCall, Retained, Retention, Unwritten};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

use crate::durable::Durable;
use crate::options::WritePolicy;
use crate::store::{Key, StoreError};
use crate::{BranchId, CallError, Client, Context, Exit, Ignore, Server, Tracked};

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
    /// How long, and how many, replies of keyed calls are kept.
    pub(crate) retention: Retention,
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
        records: Option<&Unwritten>,
    ) -> Option<impl Future<Output = Result<(), StoreError>> + Send + 'static> {
        match self.policy {
            WritePolicy::Through => Some(self.write(state, records)),
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
        records: Option<&Unwritten>,
    ) -> Option<impl Future<Output = Result<(), StoreError>> + Send + 'static> {
        let behind = self.behind.load(Ordering::Relaxed);
        let recorded = records.is_some_and(|records| !records.is_empty());
        (self.unwritten_since.is_some() || behind || recorded).then(|| self.write(state, records))
    }

    /// Whether the store holds `state` as it is: its bytes have `fingerprint`.
    fn holds(&self, state: &S, fingerprint: u64) -> bool {
        self.durable
            .encode(&self.key, state)
            .is_ok_and(|bytes| crate::durable::fingerprint(&bytes) == fingerprint)
    }

    /// Writes the state, with the records of keyed calls not written yet (put back for the next
    /// write if this one fails: they never reach the store without their state, nor are lost).
    fn write(
        &mut self,
        state: &S,
        records: Option<&Unwritten>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        self.unwritten_since = None;
        // One worker awaits each write before it makes the next: the flag follows the last one.
        self.behind.store(true, Ordering::Relaxed);
        let behind = Arc::clone(&self.behind);
        let encoded = self.durable.encode(&self.key, state);
        let carried = records.map(|records| (records.clone(), records.take()));
        let submitted = encoded.map(|bytes| {
            let mut write = self.durable.write(self.key.clone(), Some(bytes));
            if let Some((_, changes)) = &carried {
                write.retained.clone_from(changes);
            }
            self.durable.storage.submit(write)
        });
        async move {
            let written = match submitted {
                Ok(submitted) => submitted.await,
                Err(error) => Err(error),
            };
            match written {
                Ok(()) => behind.store(false, Ordering::Relaxed),
                Err(_) => {
                    if let Some((records, changes)) = carried {
                        records.put_back(changes);
                    }
                }
            }
            written
        }
    }
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
    pub(crate) async fn run(self, mut cell: OwnedMutexGuard<Cell<S>>) -> WorkerEnd {
        let branch = self.client.branch().id();
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
        let init = Box::pin(guarded(branch, S::init(&mut cell.live, &mut ctx))).await;
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
        // GenServer's `{:stop, reason}` from `init`: the server does not start (no `terminate`).
        if let Some(exit) = ctx.take_stop() {
            return WorkerEnd::Stopped(exit);
        }
        // Boxed where it is built: a future held in a named local keeps a slot in this task's
        // state even after it moved into a box.
        let mut persistence = self.persistence.map(Box::new);
        // A state just read from the store (a revival, a start on a stored state) is there
        // already: if `init` left it as it was, there is nothing to write. Any other first
        // state, and the state of every restart (a batched change may not have reached the
        // store), is written.
        let from_store = cell.from_store.take();
        let written = persistence.as_mut().and_then(|persistence| {
            let records = unwritten(&cell.retained);
            let stored = from_store.is_some_and(|fingerprint| {
                persistence.holds(&cell.live, fingerprint)
                    && records.is_none_or(Unwritten::is_empty)
            });
            (!stored).then(|| Box::pin(persistence.write(&cell.live, records)))
        });
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
                        match Box::pin(tokio::time::timeout_at(deadline, cell.mailbox.recv())).await
                        {
                            Ok(received) => received,
                            // Cleared after the handler, as after any handler.
                            Err(_elapsed) if timeout_at.is_some_and(|at| at <= deadline) => {
                                break 'job Job::Timeout;
                            }
                            Err(_elapsed) => {
                                let Some(persistence) = &mut persistence else {
                                    // Idle without a store: nothing to hibernate into.
                                    last_message = Instant::now();
                                    continue 'messages;
                                };
                                let flush = persistence
                                    .flush(&cell.live, unwritten(&cell.retained))
                                    .map(Box::pin);
                                let flushed = match flush {
                                    Some(flush) => flush.await,
                                    None => Ok(()),
                                };
                                if let Some(exit) = fenced(&flushed) {
                                    return WorkerEnd::Stopped(exit);
                                }
                                match flushed {
                                    Ok(()) if idle_at.is_some_and(|at| at <= Instant::now()) => {
                                        return WorkerEnd::Idle;
                                    }
                                    Ok(()) => {}
                                    Err(error) => {
                                        tracing::error!(server = self.client.branch().server(), %error, "could not store the state");
                                        // Stay awake, and try again after another idle period.
                                        last_message = Instant::now();
                                    }
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
            let outcome = match job {
                Job::Message(Envelope::Call { call, reply }) => {
                    ctx.begin_call(reply);
                    let out = guarded(branch, S::handle_call(&mut cell.live, call, &mut ctx)).await;
                    let answer = ctx.end_call();
                    match settle(cell, changes, out, false) {
                        // Nothing to store (no store, or a `&self` handler): answer now.
                        Ok(value) if persistence.is_none() || !cell.live.changed() => {
                            if let Some(owed) = Owed::of(answer, value) {
                                owed.answer(Ok(()));
                            }
                            Ok(())
                        }
                        Ok(value) => {
                            // Submitted now, synchronously: from here on the change is kept and on
                            // its way to the store, so the reply is owed whatever happens to this
                            // worker (see `CommittedReply`).
                            let write = store_if_changed(
                                &mut persistence,
                                &cell.live,
                                unwritten(&cell.retained),
                            );
                            // Written: the common write below must not write it again.
                            cell.live.reset();
                            let stored = Box::pin(
                                CommittedReply::<S, _>::new(Owed::of(answer, value), write).send(),
                            )
                            .await;
                            if let Some(exit) = fenced(&stored) {
                                return WorkerEnd::Stopped(exit);
                            }
                            Ok(())
                        }
                        Err(exit) => {
                            answer.crashed(&exit);
                            Err(exit)
                        }
                    }
                }
                Job::Message(Envelope::Keyed(keyed)) => {
                    let keyed = Self::keyed(
                        &self.client,
                        self.retention,
                        cell,
                        changes,
                        &mut ctx,
                        &mut persistence,
                        *keyed,
                    );
                    match Box::pin(keyed).await {
                        Keyed::Done => Ok(()),
                        Keyed::Crashed(exit) => Err(exit),
                        Keyed::Fenced(exit) => return WorkerEnd::Stopped(exit),
                    }
                }
                Job::Message(Envelope::Cast(cast)) | Job::Continue(cast) => {
                    let out = guarded(branch, S::handle_cast(&mut cell.live, cast, &mut ctx)).await;
                    settle(cell, changes, out, false)
                }
                Job::Message(Envelope::Info(info)) => {
                    let out = guarded(branch, S::handle_info(&mut cell.live, info, &mut ctx)).await;
                    settle(cell, changes, out, false)
                }
                Job::Timeout => {
                    let out =
                        Box::pin(guarded(branch, S::handle_timeout(&mut cell.live, &mut ctx)))
                            .await;
                    settle(cell, changes, out, false)
                }
                Job::Message(Envelope::Stop(reason)) => {
                    let reason = *reason;
                    Box::pin(terminate(cell, &reason, &mut ctx)).await;
                    return WorkerEnd::Stopped(reason);
                }
                Job::Message(Envelope::Handoff) => return WorkerEnd::Handoff,
            };
            if let Err(exit) = outcome {
                return WorkerEnd::Crashed {
                    exit,
                    started: true,
                };
            }
            // Only the last handler's request counts; a clock read only when there is one.
            timeout_at = ctx.take_timeout().map(|timeout| Instant::now() + timeout);
            // Checked first: building the store's future costs a copy per message for nothing.
            if persistence.is_some() {
                let stored = Box::pin(store_if_changed(
                    &mut persistence,
                    &cell.live,
                    unwritten(&cell.retained),
                ))
                .await;
                if let Some(exit) = fenced(&stored) {
                    return WorkerEnd::Stopped(exit);
                }
                if let Err(error) = stored {
                    // A cast or info message: nobody to tell but the log.
                    tracing::error!(server = self.client.branch().server(), %error, "could not store the state");
                }
            }
            if let Some(reason) = ctx.take_stop() {
                ctx.drop_continuations();
                Box::pin(terminate(cell, &reason, &mut ctx)).await;
                return WorkerEnd::Stopped(reason);
            }
        }
    }
}

/// How a keyed call went, for the worker loop.
enum Keyed {
    Done,
    /// Its handler crashed (the caller was told).
    Crashed(Exit),
    /// A write was refused: another node owns the server.
    Fenced(Exit),
}

impl<S: Server> Worker<S> {
    /// A call made with an idempotency key (see [`retained`](crate::retained)): answered from
    /// its record if the key was used, else handled as a call whose reply is recorded with the
    /// state it leaves. Boxed by the caller: it is off the common path.
    async fn keyed(
        client: &Client<S>,
        retention: Retention,
        cell: &mut Cell<S>,
        changes: Option<&Changes<S>>,
        ctx: &mut Context<S>,
        persistence: &mut Option<Box<Persistence<S>>>,
        keyed: KeyedCall<S>,
    ) -> Keyed {
        let KeyedCall {
            call,
            reply,
            key,
            digest,
            codec,
        } = keyed;
        let refuse = |reply: Caller<S>, error: CallError| drop(reply.send(Err(Box::new(error))));
        let retained = cell
            .retained
            .get_or_insert_with(|| Box::new(Retained::new(retention, persistence.is_some())));
        // A durable server reads what its store kept at its first keyed call: a retry after a
        // restart of the process, a hibernation or a handoff finds the first call's record.
        if !retained.loaded
            && let Some(persistence) = persistence.as_deref()
        {
            let stored = persistence.durable.storage.retained(&persistence.key).await;
            if let Err(error) = stored.and_then(|stored| retained.load(&persistence.key, stored)) {
                refuse(reply, CallError::Store(error));
                return Keyed::Done;
            }
        }
        retained.expire(Instant::now());
        match retained.find(&key, digest) {
            Found::Reused => {
                refuse(
                    reply,
                    CallError::KeyReused {
                        key: key.to_string(),
                    },
                );
                Keyed::Done
            }
            Found::Reply(bytes) => {
                let answer = (codec.decode)(bytes).map_err(|reason| StoreError::Corrupt {
                    key: record_key(client.branch(), persistence.as_deref()),
                    reason: format!("the recorded reply of the keyed call `{key}`: {reason}"),
                });
                // A record not committed yet (its write failed) is written before it answers:
                // a reply always stands for a stored effect.
                let flush = persistence
                    .as_deref_mut()
                    .and_then(|persistence| {
                        persistence.flush(&cell.live, unwritten(&cell.retained))
                    })
                    .map(Box::pin);
                let stored = match flush {
                    Some(flush) => flush.await,
                    None => Ok(()),
                };
                if let Some(exit) = fenced(&stored) {
                    refuse(
                        reply,
                        CallError::Store(stored.err().unwrap_or(StoreError::Closed)),
                    );
                    return Keyed::Fenced(exit);
                }
                let answer = stored
                    .and(answer)
                    .map_err(|error| Box::new(CallError::Store(error)));
                drop(reply.send(answer));
                Keyed::Done
            }
            Found::New => {
                let branch = client.branch().id();
                ctx.begin_call(reply);
                let out = guarded(branch, S::handle_call(&mut cell.live, call, ctx)).await;
                let answer = ctx.end_call();
                let value = match settle(cell, changes, out, false) {
                    Ok(value) => value,
                    Err(exit) => {
                        // Nothing recorded: a retry runs the handler again.
                        answer.crashed(&exit);
                        return Keyed::Crashed(exit);
                    }
                };
                match (&answer, (codec.encode)(&value)) {
                    (Answer::Now(_), Ok(bytes)) => {
                        if let Some(retained) = cell.retained.as_deref_mut() {
                            retained.insert(&key, digest, bytes);
                        }
                    }
                    (Answer::Now(_), Err(error)) => tracing::error!(
                        server = client.branch().server(), %key, %error,
                        "the reply of a keyed call could not be encoded; it is not recorded"
                    ),
                    _ => tracing::warn!(
                        server = client.branch().server(), %key,
                        "a keyed call whose handler deferred its reply is not recorded"
                    ),
                }
                let Some(owed) = Owed::of(answer, value) else {
                    return Keyed::Done;
                };
                // The record goes with the state, in one write (even when the handler changed
                // nothing): the reply waits for it as a changing call's does.
                let write = persistence.as_deref_mut().and_then(|persistence| {
                    persistence.changed(&cell.live, unwritten(&cell.retained))
                });
                cell.live.reset();
                let Some(write) = write else {
                    owed.answer(Ok(()));
                    return Keyed::Done;
                };
                let stored = Box::pin(CommittedReply::<S, _>::new(Some(owed), write).send()).await;
                match fenced(&stored) {
                    Some(exit) => Keyed::Fenced(exit),
                    None => Keyed::Done,
                }
            }
        }
    }
}

/// The records of keyed calls waiting for the next write of the state, if any were made.
fn unwritten(retained: &Option<Box<Retained>>) -> Option<&Unwritten> {
    retained.as_deref().map(|retained| &retained.unwritten)
}

/// The key a damaged record is reported under: the store's, or the server's name.
fn record_key<S>(branch: &crate::Branch, persistence: Option<&Persistence<S>>) -> Key {
    match persistence {
        Some(persistence) => persistence.key.clone(),
        None => Key::new(branch.server(), branch.name().unwrap_or_default()),
    }
}

/// Runs a handler's future in place (pinned where it was built, not moved into a wrapper: a
/// handler's future can be large, and moving it cost a copy per message), marked as a handler of
/// `branch` (see [`handling`](crate::handling)), and catches its panic.
async fn guarded<F: Future>(
    branch: BranchId,
    handler: F,
) -> Result<F::Output, Box<dyn Any + Send>> {
    let handler = std::pin::pin!(handler);
    AssertUnwindSafe(Handling { branch, handler })
        .catch_unwind()
        .await
}

/// A completed call's reply, once its state is kept.
enum Owed<S: Server> {
    /// The value the handler returned, for its caller.
    Value(Caller<S>, S::Reply),
    /// The handler took the reply handle: open its gate.
    Deferred(Arc<Gate<S::Reply>>),
}

impl<S: Server> Owed<S> {
    fn of(answer: Answer<S>, value: S::Reply) -> Option<Self> {
        match answer {
            Answer::Now(caller) => Some(Owed::Value(caller, value)),
            Answer::Deferred(gate) => Some(Owed::Deferred(gate)),
            Answer::Nobody => None,
        }
    }

    /// Answers, now that the state write ended with `stored`.
    fn answer(self, stored: Result<(), StoreError>) {
        match (self, stored) {
            // The caller may have timed out; the call still counted, as in GenServer.
            (Owed::Value(caller, value), Ok(())) => drop(caller.send(Ok(value))),
            (Owed::Value(caller, _), Err(error)) => {
                drop(caller.send(Err(Box::new(CallError::Store(error)))));
            }
            (Owed::Deferred(gate), Ok(())) => gate.open(),
            (Owed::Deferred(gate), Err(error)) => gate.fail(CallError::Store(error)),
        }
    }
}

impl<S: Server> Answer<S> {
    /// The handler crashed: its caller hears how.
    fn crashed(self, exit: &Exit) {
        match self {
            Answer::Now(caller) => {
                let _ = caller.send(Err(Box::new(CallError::Crashed(exit.clone()))));
            }
            Answer::Deferred(gate) => gate.fail(CallError::Crashed(exit.clone())),
            Answer::Nobody => {}
        }
    }
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
    pending: Option<Pending<S, W>>,
}

/// The reply owed (if any) and the commit it waits for.
type Pending<S, W> = (Option<Owed<S>>, Pin<Box<W>>);

impl<S: Server, W: Future<Output = Result<(), StoreError>> + Send + 'static> CommittedReply<S, W> {
    fn new(owed: Option<Owed<S>>, write: W) -> Self {
        CommittedReply {
            pending: Some((owed, Box::pin(write))),
        }
    }

    /// Waits for the commit, then replies; returns what the commit said.
    async fn send(mut self) -> Result<(), StoreError> {
        let stored = match &mut self.pending {
            Some((_, write)) => write.as_mut().await,
            None => Ok(()),
        };
        if let Some((Some(owed), _)) = self.pending.take() {
            owed.answer(stored.clone());
        }
        stored
    }
}

impl<S: Server, W: Future<Output = Result<(), StoreError>> + Send + 'static> Drop
    for CommittedReply<S, W>
{
    fn drop(&mut self) {
        let Some((Some(owed), write)) = self.pending.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let stored = write.await;
                    owed.answer(stored);
                });
            }
            // No runtime to wait on: the commit's outcome cannot be known here.
            Err(_) => owed.answer(Err(StoreError::Closed)),
        }
    }
}

/// Writes the state to the store if the handler that just ran changed it.
fn store_if_changed<S: Server>(
    persistence: &mut Option<Box<Persistence<S>>>,
    live: &Tracked<S>,
    records: Option<&Unwritten>,
) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
    let write = match persistence {
        Some(persistence) if live.changed() => persistence.changed(live, records),
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
/// unknown. A panic in `terminate` is logged and published, for `stop` to report
/// ([`StopError::Terminate`](crate::StopError::Terminate)): the branch is ending either way.
pub(crate) async fn terminate<S: Server>(cell: &mut Cell<S>, reason: &Exit, ctx: &mut Context<S>) {
    // Recorded first: a kill landing at one of `terminate`'s awaits must not undo the stop.
    cell.stopping = Some(reason.clone());
    if let Err(exit) = cell.restore_if_needed() {
        tracing::error!(server = std::any::type_name::<S>(), %exit, "could not restore the state for terminate");
    }
    let branch = ctx.client().branch().clone();
    let state = cell.live.untracked_mut();
    if let Err(payload) = guarded(branch.id(), state.terminate(reason, ctx)).await {
        let message = panic_message(&*payload);
        tracing::error!(server = std::any::type_name::<S>(), panic = %message, "terminate panicked");
        branch
            .inner
            .status
            .send_modify(|status| status.terminate_panicked = Some(message));
    }
}
