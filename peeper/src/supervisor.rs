//! A branch's task: the supervision, which runs the workers in this same task, decides what a
//! worker's end means (restart, give up, stop, hand over, hibernate), and ends the branch in order.
//!
//! On a crash it marks the cell for restore, checks the restart intensity and the crash-loop
//! policy, tells the listener (`on_restart`), and polls the next incarnation on the same cell, so
//! the next worker sees the kept state and every queued message. When the branch ends, it runs
//! `terminate` if no worker did, publishes the exit, closes and drains the mailbox (each waiting
//! caller hears why), lets the listener run `on_terminate`, frees the name and leaves its dynamic
//! supervisor, then marks the branch finished.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;

use futures::FutureExt;

use tokio::runtime::Handle;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use tokio::time::Instant;

use crate::branch::{Commands, Control};
use crate::durable::Durable;
use crate::keep::Keep;
use crate::keeper::{self, BoxedListener, Cell, Event, Kept, SharedCell};
use crate::mailbox::Envelope;
use crate::options::OnStop;
use crate::options::Options;
use crate::store::StoreError;
use crate::worker::{self, Persistence, Worker, WorkerEnd};
use crate::{
    Branch, Builder, Client, Context, CrashLoop, DynamicSupervisor, Exit, Server, StartError,
    registry,
};

/// Everything a branch is made of, apart from its tasks: what a transfer moves.
pub(crate) struct Parts<S: Server> {
    pub(crate) cell: SharedCell<S>,
    pub(crate) client: Client<S>,
    pub(crate) options: Options,
    pub(crate) listener: Option<BoxedListener<S>>,
    /// The kept copy of the starting state, for [`CrashLoop::ResetToInitial`].
    pub(crate) initial: Option<Arc<Kept<S>>>,
    /// The incarnation the next worker will be.
    pub(crate) incarnation: u64,
    /// The receiving end of the branch's control channel, once it has one. It moves with the
    /// branch so that a request sent while the branch is in transit (after the old supervisor
    /// stopped reading, before the new one starts) waits for the new supervisor instead of being
    /// dropped with the old one's receiver: a `stop()` would otherwise be lost, or be refused
    /// with `AlreadyStopped` by a branch that lives on.
    pub(crate) commands: Option<Commands>,
    /// The store of a durable server.
    pub(crate) durable: Option<Durable<S>>,
}

/// A branch between two supervisors, with its server type erased: what a transfer carries. A
/// trait object rather than `Box<dyn Any>`, so that no downcast can fail and drop a branch.
pub(crate) trait Moving: Send {
    /// Starts the branch again on `runtime`, as its next incarnation.
    fn spawn_on(self: Box<Self>, runtime: &Handle);
}

impl<S: Server> Moving for Parts<S> {
    fn spawn_on(self: Box<Self>, runtime: &Handle) {
        spawn(*self, runtime);
    }
}

pub(crate) async fn start<S: Server, C>(builder: Builder<S, C>) -> Result<Client<S>, StartError> {
    let Builder {
        state,
        options,
        listener,
        supervisor,
        mut durable,
        ..
    } = builder;
    if options.crash_loop == CrashLoop::ResetToInitial && !S::Keep::COPIES {
        return Err(StartError::InvalidOptions(
            "`CrashLoop::ResetToInitial` needs a strategy that keeps a copy; `InPlace` keeps none",
        ));
    }
    if !S::Keep::COPIES && listener.as_ref().is_some_and(|l| l.wants_state_changes()) {
        return Err(StartError::InvalidOptions(
            "`InPlace` keeps no copy of the state, so the listener's `on_state_changed` could never \
             be called: keep with `Snapshot` or `Projection`, or return `false` from \
             `Listener::wants_state_changes`",
        ));
    }
    if options.idle_after.is_some() && durable.is_none() {
        return Err(StartError::InvalidOptions(
            "`idle_after` needs a store (`Builder::store`): a hibernating server keeps its state there",
        ));
    }
    // Every await from the claim to the spawn is guarded: dropped there (a start under a
    // timeout), the start gives its claim up.
    let timeout = options.start_timeout.unwrap_or_default();
    let deadline = options
        .start_timeout
        .map(|timeout| Instant::now() + timeout);
    let mut claim = None;
    let mut from_store = None;
    let state = match (&durable, &options.name) {
        (None, _) => state,
        (Some(_), None) => {
            return Err(StartError::InvalidOptions(
                "a durable server needs a name (`Builder::name`): its stored state is keyed by it",
            ));
        }
        // A stored state wins over the one given: this is how a durable server comes back.
        (Some(durable), Some(name)) => {
            // Checked before the claim too: a second start of a running name must not claim
            // (in a cluster, that would fence the running server). `register` below still
            // settles a race between two starts.
            if registry::whereis::<S>(name).is_some() {
                return Err(StartError::NameTaken {
                    name: name.clone(),
                    server: std::any::type_name::<S>(),
                });
            }
            // Claimed before it is read: in a cluster the claim fences the previous owner, so
            // what is read after it is final (see `Store::claim`).
            let key = durable.key(name);
            let guard = within(deadline, durable.claim(&key))
                .await
                .ok_or(StartError::Timeout(timeout))?
                .map_err(StartError::Store)?;
            match within(deadline, durable.load(&key)).await {
                Some(Ok(stored)) => {
                    claim = Some(guard);
                    match stored {
                        Some((stored, fingerprint)) => {
                            from_store = Some(fingerprint);
                            stored
                        }
                        None => state,
                    }
                }
                Some(Err(error)) => {
                    guard.release().await;
                    return Err(StartError::Store(error));
                }
                None => {
                    guard.release().await;
                    return Err(StartError::Timeout(timeout));
                }
            }
        }
    };
    // Every write of the branch is made under its claim.
    if let (Some(durable), Some(claim)) = (&mut durable, &claim) {
        durable.claim = Some(claim.claim());
    }
    let initial = (options.crash_loop == CrashLoop::ResetToInitial).then(|| {
        let mut initial = None;
        S::Keep::copy(&state, &mut initial);
        initial.map(Arc::new)
    });

    let branch = Branch::new(
        std::any::type_name::<S>(),
        options.name.clone(),
        options.idle_after.is_some(),
    );
    let (mailbox, inbox) = mpsc::unbounded_channel();
    let client = Client::new(mailbox, branch.clone());
    if let Some(name) = &options.name
        && let Err(taken) = registry::register(name, &client)
    {
        if let Some(claim) = claim {
            claim.release().await;
        }
        return Err(taken);
    }
    let mut cell = Cell::new(state, inbox);
    cell.from_store = from_store;
    let parts = Parts {
        cell: Arc::new(Mutex::new(cell)),
        client: client.clone(),
        options,
        listener,
        initial: initial.flatten(),
        incarnation: 0,
        commands: None,
        durable,
    };
    let runtime = match &supervisor {
        Some(supervisor) => match supervisor.adopt(&client) {
            Some(runtime) => runtime,
            None => {
                if let Some(name) = &parts.options.name {
                    registry::unregister::<S>(name, branch.id());
                }
                if let Some(claim) = claim {
                    claim.release().await;
                }
                return Err(StartError::SupervisorStopped);
            }
        },
        None => Handle::current(),
    };
    spawn(parts, &runtime);
    // Until `init` has completed, the start is still the caller's: dropped here, it takes the
    // branch down with it rather than leave a server running that nobody asked to wait for.
    let starting = Starting {
        branch: branch.clone(),
        unregister: registry::unregister::<S>,
        claim,
        armed: true,
    };
    match within(deadline, branch.ready()).await {
        Some(Ok(())) => {}
        Some(Err(Exit::Ignored)) => return Err(StartError::Ignored),
        Some(Err(exit)) => return Err(StartError::Init(exit)),
        None => {
            starting.undo().await;
            return Err(StartError::Timeout(timeout));
        }
    }
    starting.done();
    tracing::info!(server = branch.server(), name = branch.name(), id = %branch.id(), "started");
    Ok(client)
}

/// A branch spawned by a start that has not returned yet.
///
/// Dropped before [`done`](Starting::done) (the caller dropped the start future, as
/// `tokio::time::timeout` does), it undoes the start at once, so that a new start of the same
/// name goes through right away: the name is freed, the claim is given up (the branch, told so,
/// will not release it: the key may be claimed again by then), and the worker is killed, which
/// ends a branch whose first `init` has not completed.
struct Starting {
    branch: Branch,
    unregister: fn(&str, crate::BranchId),
    claim: Option<crate::durable::ClaimGuard>,
    armed: bool,
}

impl Starting {
    /// The start returned: the branch owns its claim and name from now on.
    fn done(mut self) {
        self.armed = false;
        if let Some(claim) = self.claim.take() {
            claim.hand_to_branch();
        }
    }

    /// The start timed out: stops the branch, waits until it has ended (its tasks are gone and
    /// its name is free), then releases the claim, so that nothing of it is left on return.
    /// The claim goes last: released while the branch still ran, it would let a new start read
    /// the key before this branch's `init` stopped writing.
    async fn undo(mut self) {
        self.armed = false;
        let branch = self.branch.clone();
        tracing::info!(
            server = branch.server(),
            name = branch.name(),
            "start timed out before init completed; stopping it"
        );
        let claim = self.claim.take();
        if claim.is_some() {
            // The branch must not release (nor write under) a claim it does not own any more.
            branch
                .inner
                .status
                .send_modify(|status| status.abandoned = true);
        }
        drop(self);
        let _ = branch.control(Control::Stop(Exit::Shutdown));
        // The kill is for an `init` that has not completed; one that completed right after the
        // deadline handles the stop instead (a kill would restart it, and run `init` again).
        if branch.inner.status.borrow().ready.is_none() {
            let _ = branch.control(Control::KillWorker);
        }
        branch.ended().await;
        if let Some(claim) = claim {
            claim.release().await;
        }
    }
}

/// `future`, or `None` if `deadline` passes first.
async fn within<F: std::future::Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        None => Some(future.await),
        Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let branch = &self.branch;
        tracing::info!(
            server = branch.server(),
            name = branch.name(),
            "start dropped before init completed; stopping it"
        );
        if self.claim.is_some() {
            branch
                .inner
                .status
                .send_modify(|status| status.abandoned = true);
        }
        // Given up (`ClaimGuard`'s drop) after the branch was told, so it cannot release it.
        drop(self.claim.take());
        if let Some(name) = branch.name() {
            (self.unregister)(name, branch.id());
        }
        // The stop is queued for the case where `init` completes before the kill lands (the
        // kill then only restarts the worker, which handles the stop); the kill is for an
        // `init` that never completes.
        let _ = branch.control(Control::Stop(Exit::Shutdown));
        let _ = branch.control(Control::KillWorker);
    }
}

/// Releases a durable server's claim on its key, after its last write.
async fn release<S>(durable: &Durable<S>, key: &crate::store::Key) {
    crate::durable::release(&durable.storage, key).await;
}

/// Spawns a branch's task on `runtime`: it supervises the branch and runs its workers.
pub(crate) fn spawn<S: Server>(parts: Parts<S>, runtime: &Handle) {
    // Control requests are taken from the first start on (a moved branch takes them already):
    // a request made right after `start` returns waits in the queue for the task.
    let branch = parts.client.branch();
    if parts.commands.is_none() {
        branch.tasks().control_open = true;
    }
    branch.runs_on(runtime);
    // Built here, not in the task: the parts would take room in the task's future for its whole
    // life. Entered so that a listener's task is spawned on the branch's runtime.
    let supervisor = {
        let _entered = runtime.enter();
        Supervisor::new(parts)
    };
    runtime.spawn(supervisor.run());
}

/// A branch's supervision, run by its one task around the current worker.
struct Supervisor<S: Server> {
    cell: SharedCell<S>,
    client: Client<S>,
    options: Options,
    initial: Option<Arc<Kept<S>>>,
    incarnation: u64,
    /// To the listener's task: restarts and the end.
    events: keeper::Events<S>,
    /// To the listener's task, given to workers: state changes, when the listener wants them.
    changes: Option<keeper::Changes<S>>,
    commands: Commands,
    /// The listener's task, which hands the listener back when it ends; only with a listener.
    keeper: Option<JoinHandle<BoxedListener<S>>>,
    /// When the recent restarts happened, oldest first, pruned to the window.
    restarts: VecDeque<Instant>,
    failed_starts: u32,
    reset_since_start: bool,
    durable: Option<Durable<S>>,
}

/// What the supervisor does after a worker ended.
enum Next {
    Restart,
    End { exit: Exit, terminate: bool },
    Handoff(oneshot::Sender<Box<dyn Moving>>),
    Hibernate,
}

impl<S: Server> Supervisor<S> {
    /// The supervision of `parts`, with the listener's task started if there is a listener (on
    /// the current runtime: the branch's).
    fn new(parts: Parts<S>) -> Self {
        let Parts {
            cell,
            client,
            options,
            listener,
            initial,
            incarnation,
            commands,
            durable,
        } = parts;
        // A moved branch keeps its queue (it belongs to the branch), with whatever waits in it.
        let commands = commands.unwrap_or_else(|| Commands::new(client.branch().clone()));
        let (events, keeper, changes) = match listener {
            None => (keeper::Events::Quiet, None, None),
            Some(listener) => {
                let (events, heard) = keeper::inbox(options.listener_backlog);
                let changes = listener
                    .wants_state_changes()
                    .then(|| events.changes())
                    .flatten();
                // A branch that moved (`transfer`, or a restart after an abandoned handoff)
                // already has a kept state. The listener must start from it: with no previous
                // state it would skip the first change after the move instead of reporting it.
                // Nothing holds the cell here (the previous task has ended), so `try_lock`
                // succeeds; on a first start nothing is kept yet and this is `None`.
                let previous = cell
                    .try_lock()
                    .ok()
                    .and_then(|mut cell| S::Keep::share(&mut cell.good));
                let keeper =
                    tokio::spawn(keeper::run(Arc::clone(&cell), heard, listener, previous));
                (events, Some(keeper), changes)
            }
        };
        Supervisor {
            cell,
            client,
            options,
            initial,
            incarnation,
            events,
            changes,
            commands,
            keeper,
            restarts: VecDeque::new(),
            failed_starts: 0,
            reset_since_start: false,
            durable,
        }
    }

    /// Supervises the branch: runs workers one after the other, decides after each one's end,
    /// and ends, hibernates or hands over the branch.
    async fn run(mut self) {
        // Set by the task itself, so that it is never set after the task cleared it (ended,
        // hibernated) on another thread.
        self.client.branch().tasks().task = Some(tokio::task::id());
        let mut handoff: Option<oneshot::Sender<Box<dyn Moving>>> = None;
        loop {
            let guard = Arc::clone(&self.cell).lock_owned().await;
            let persistence =
                self.durable
                    .clone()
                    .zip(self.options.name.as_deref())
                    .map(|(durable, name)| {
                        let key = durable.key(name);
                        Persistence::new(durable, key, self.options.write)
                    });
            let worker = Worker {
                incarnation: self.incarnation,
                client: self.client.clone(),
                changes: self.changes.clone(),
                persistence,
                idle_after: self.options.idle_after,
                retention: self.options.retention,
            };
            // The worker runs in this task. Handler panics are caught inside it; this catches a
            // panic of the runtime's own code, which a task of its own would have reported to
            // its `JoinHandle`. A kill drops the worker's future at the await point it is
            // suspended at, as an abort of its task would: with it, its lock on the cell, at the
            // end of this block.
            let end = {
                let mut running =
                    std::pin::pin!(AssertUnwindSafe(worker.run(guard)).catch_unwind());
                std::future::poll_fn(|cx| {
                    loop {
                        if let Poll::Ready(ended) = running.as_mut().poll(cx) {
                            return Poll::Ready(ended.unwrap_or_else(|payload| {
                                WorkerEnd::Crashed {
                                    exit: Exit::panicked(&*payload),
                                    started: false,
                                }
                            }));
                        }
                        let Poll::Ready(command) = self.commands.poll_recv(cx) else {
                            return Poll::Pending;
                        };
                        match command {
                            Control::KillWorker => {
                                return Poll::Ready(WorkerEnd::Crashed {
                                    exit: Exit::Killed,
                                    started: false,
                                });
                            }
                            // Through the mailbox, so that what was queued before the stop is
                            // handled; the worker is polled again at once, and reaches it in this
                            // same wake-up if nothing else waits.
                            Control::Stop(reason) => {
                                let _ = self.client.enqueue(Envelope::Stop(Box::new(reason)));
                            }
                            Control::Handoff(reply) => {
                                handoff = Some(reply);
                                let _ = self.client.enqueue(Envelope::Handoff);
                            }
                        }
                    }
                })
                .await
            };
            let next = match end {
                WorkerEnd::Stopped(exit) => Next::End {
                    exit,
                    terminate: false,
                },
                WorkerEnd::Handoff => match handoff.take() {
                    Some(reply) => Next::Handoff(reply),
                    // A handoff whose requester gave up: carry on with a fresh worker.
                    None => Next::Restart,
                },
                // The rare paths are boxed: see the worker's `run` for why.
                WorkerEnd::Crashed { exit, started } => {
                    Box::pin(self.on_crash(exit, started)).await
                }
                // A handoff was asked for just as the worker went idle: its request waits in the
                // mailbox, and a fresh worker reaches it. Hibernating instead would drop the
                // requester's reply channel while the branch lives on (revived by that very
                // request), and the transfer would answer `Stopped` for a running server.
                WorkerEnd::Idle if handoff.is_some() => Next::Restart,
                WorkerEnd::Idle => Next::Hibernate,
            };
            match next {
                Next::Restart => {}
                Next::End { exit, terminate } => return Box::pin(self.end(exit, terminate)).await,
                Next::Handoff(reply) => return Box::pin(self.hand_over(reply)).await,
                // Unconstrained by tokio's budget: `unhook` must not find it spent (the awaits
                // on the way are the listener's end and the claim's release, both bounded).
                Next::Hibernate => {
                    return Box::pin(tokio::task::unconstrained(self.hibernate())).await;
                }
            }
        }
    }

    /// Decides between a restart and the end after a crash.
    async fn on_crash(&mut self, exit: Exit, started: bool) -> Next {
        let branch = self.client.branch().clone();
        tracing::error!(server = branch.server(), name = branch.name(), incarnation = self.incarnation, %exit, "worker crashed");
        {
            let mut cell = self.cell.lock().await;
            cell.needs_restore = true;
            // Killed while running `terminate` for a stop (a panic there is caught): the stop
            // stands, or `stop()` would wait forever for a branch that restarted instead.
            // `terminate` is not run a second time.
            if let Some(exit) = cell.stopping.take() {
                return Next::End {
                    exit,
                    terminate: false,
                };
            }
        }
        if branch.inner.status.borrow().ready.is_none() {
            // The first `init` failed: a start error, not a restart.
            return Next::End {
                exit,
                terminate: false,
            };
        }

        let now = Instant::now();
        self.restarts.push_back(now);
        while self
            .restarts
            .front()
            .is_some_and(|&at| now.duration_since(at) > self.options.within)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() > self.options.max_restarts as usize {
            let exit = Exit::RestartLimit {
                max_restarts: self.options.max_restarts,
                within: self.options.within,
                last: Box::new(exit),
            };
            return Next::End {
                exit,
                terminate: true,
            };
        }

        if started {
            self.failed_starts = 0;
            self.reset_since_start = false;
        }
        // A kill says nothing about the state, so it neither counts nor clears the count.
        if exit != Exit::Killed && !started {
            self.failed_starts += 1;
            if self.failed_starts >= self.options.crash_loop_after
                && let Some(next) = self.on_crash_loop(&exit).await
            {
                return next;
            }
        }

        self.incarnation += 1;
        branch
            .inner
            .status
            .send_modify(|status| status.restarts += 1);
        tracing::warn!(
            server = branch.server(),
            name = branch.name(),
            incarnation = self.incarnation,
            "restarting worker"
        );
        self.events.send(Event::Restart {
            incarnation: self.incarnation,
            reason: exit,
        });
        Next::Restart
    }

    /// Applies the crash-loop policy; `None` to go on restarting.
    async fn on_crash_loop(&mut self, exit: &Exit) -> Option<Next> {
        let give_up = Next::End {
            exit: Exit::CrashLoop {
                crashes: self.failed_starts,
                last: Box::new(exit.clone()),
            },
            terminate: true,
        };
        match (&self.options.crash_loop, &self.initial) {
            (CrashLoop::ResetToInitial, Some(initial)) if !self.reset_since_start => {
                tracing::warn!(
                    server = self.client.branch().server(),
                    "crash loop: falling back to the initial state"
                );
                if let Err(reset) = self.cell.lock().await.reset_to(initial) {
                    tracing::error!(%reset, "could not reset to the initial state");
                    return Some(give_up);
                }
                self.reset_since_start = true;
                self.failed_starts = 0;
                None
            }
            _ => Some(give_up),
        }
    }

    /// Ends the branch for good; see the module docs for the order.
    async fn end(mut self, exit: Exit, run_terminate: bool) {
        self.commands.unhook();
        let branch = self.client.branch().clone();
        let mut ctx = Context::new(self.incarnation, self.client.clone());
        {
            let mut cell = self.cell.lock().await;
            if run_terminate {
                worker::terminate(&mut cell, &exit, &mut ctx).await;
            }
            branch
                .inner
                .status
                .send_modify(|status| status.exit = Some(exit.clone()));
            // Whatever is queued now is refused (the exit is published: later sends fail), and
            // the task's waker leaves the channel, which clients keep alive after the end.
            let refused = std::future::poll_fn(|_| {
                while let Some(envelope) = receive_unhooked(&mut cell.mailbox) {
                    envelope.refuse(&exit);
                }
                Poll::Ready(())
            });
            tokio::task::unconstrained(refused).await;
            cell.mailbox.close();
            while let Ok(envelope) = cell.mailbox.try_recv() {
                envelope.refuse(&exit);
            }
            // Fenced: another node owns the server now; this node must not write nor release.
            // Abandoned: the start that made the claim was dropped and gave it up itself; the
            // key may be claimed again here already, and a release would free that claim.
            let status = branch.inner.status.borrow();
            let keeps_claim = !matches!(exit, Exit::Fenced { .. }) && !status.abandoned;
            if let (Some(durable), Some(name), true) = (&self.durable, branch.name(), keeps_claim) {
                let key = durable.key(name);
                let stored = if status.ready.is_none() {
                    // `init` never completed: nothing of this branch's is worth storing.
                    Ok(())
                } else if matches!(exit, Exit::Normal | Exit::Stopped { .. })
                    && self.options.on_stop == OnStop::Wipe
                {
                    // A wipe that fails leaves an older state stored, which the next start reads:
                    // nothing acknowledged is lost by it, so it is not retried, and the stop
                    // completes (logged).
                    let wipe = durable.write(key.clone(), None);
                    if let Err(error) = durable.storage.submit(wipe).await {
                        tracing::error!(server = branch.server(), name, %error, "could not wipe the stored state");
                    }
                    Ok(())
                } else {
                    // Every other end keeps the state for the next start: make sure the last one
                    // is there (a batched write may be pending).
                    // With the records of keyed calls not written yet.
                    let records = cell
                        .retained
                        .as_deref()
                        .map(|retained| retained.unwritten.take())
                        .unwrap_or_default();
                    match durable.encode(&key, &cell.live) {
                        Ok(bytes) => {
                            Box::pin(durable.store_last(&branch, &key, bytes, records)).await
                        }
                        Err(error) => Err(error),
                    }
                };
                match stored {
                    // The claim made at start (or revival) ends with the branch, after its last
                    // write, and only then: released after a failed write, it would let another
                    // node revive an older state.
                    Ok(()) => release(durable, &key).await,
                    Err(error) => {
                        tracing::error!(server = branch.server(), name, %error, "could not store the last state; the claim is kept");
                    }
                }
            }
        }
        drop(ctx);
        self.events.send(Event::Terminate {
            reason: exit.clone(),
        });
        drop(self.events);
        drop(self.changes);
        // A keeper that panicked outside a listener callback would be a bug in this crate; the
        // branch still ends in order.
        if let Some(keeper) = self.keeper {
            let _ = keeper.await;
        }
        // The tables go with the name: no lookup finds them, outside handles refuse, and what
        // they held is dropped.
        branch.resources().end();
        if let Some(name) = branch.name() {
            registry::unregister::<S>(name, branch.id());
        }
        let owner = std::mem::take(&mut *branch.tasks()).owner;
        if let Some(owner) = owner.and_then(|owner| owner.upgrade()) {
            DynamicSupervisor::from_inner(owner).forget(branch.id());
        }
        match &exit {
            Exit::Normal
            | Exit::Stopped { .. }
            | Exit::Ignored
            | Exit::Transferred
            | Exit::Shutdown
            | Exit::HandedOff { .. } => {
                tracing::info!(server = branch.server(), name = branch.name(), %exit, "stopped");
            }
            _ => tracing::error!(server = branch.server(), name = branch.name(), %exit, "stopped"),
        }
        // Let go of the store before saying the branch is gone: whoever waited for the end may
        // close the storage, or open its file again, next.
        drop(self.durable.take());
        branch
            .inner
            .status
            .send_modify(|status| status.finished = true);
    }

    /// Parks an idle branch: its tasks end and its state leaves memory (it is in the store); what
    /// it needs to come back waits in the branch's sleeping slot, and the next message or control
    /// request through any handle revives it (see [`Branch::send_waking`]).
    async fn hibernate(self) {
        let branch = self.client.branch().clone();
        let parts = self.into_parts(Event::Hibernate).await;
        // Nothing else holds the cell now: the worker and the keeper have ended.
        let Some(mut sleeping) = Sleeping::from_parts(parts) else {
            return;
        };
        // The worker stored the state before going idle: the claim can go. A revival claims
        // again (so in a cluster, another node may start the server meanwhile).
        if let (Some(durable), Some(name)) = (&sleeping.durable, sleeping.options.name.as_deref()) {
            release(durable, &durable.key(name)).await;
        }
        let runtime = Handle::current();
        let mut slot = branch.sleeping();
        // A control request (stop, kill, handoff) is sent under this same lock too
        // (`Branch::control` goes through `send_waking`), and nothing reads the control channel
        // while the branch sleeps: one that came in since the worker went idle must wake it as a
        // message does, or it would wait unread (a `stop()` forever) until the next message.
        let pending_control = sleeping
            .commands
            .as_ref()
            .is_some_and(|commands| !commands.is_empty());
        let stray = (sleeping.mailbox.is_empty() && !pending_control)
            .then(|| receive_unhooked(&mut sleeping.mailbox))
            .flatten();
        if let Some(envelope) = stray {
            // Cannot happen: every send takes the lock held here, and the mailbox was empty. Were
            // it to, the message goes back, alone in the mailbox, so its order stands.
            tracing::error!(
                server = branch.server(),
                name = branch.name(),
                "a message reached the mailbox of a branch going to sleep; staying awake"
            );
            sleeping.client.requeue(envelope);
        }
        if !sleeping.mailbox.is_empty() || pending_control {
            // A message or request came in while the branch was getting ready to sleep: stay
            // awake. (Any later one finds the slot filled, under this same lock, and wakes it.)
            drop(slot);
            return sleeping.revive(&runtime);
        }
        // Published before the slot is filled (under its lock): once it is filled, any sender
        // may revive the branch on another thread at once, and these writes, made after, would
        // clear the revived branch's task ids and mark it hibernating while it runs.
        {
            let mut tasks = branch.tasks();
            tasks.task = None;
        }
        branch
            .inner
            .status
            .send_modify(|status| status.hibernating = true);
        sleeping.runtime = Some(runtime);
        *slot = Some(Box::new(move || sleeping.wake()));
        drop(slot);
        tracing::info!(
            server = branch.server(),
            name = branch.name(),
            "hibernating"
        );
    }

    /// Ends this supervisor's keeper with `last` (which says why: hibernation or transfer) and
    /// returns everything the branch needs to start again, as its next incarnation.
    async fn into_parts(mut self, last: Event<S>) -> Parts<S> {
        self.commands.unhook();
        self.events.send(last);
        drop(self.events);
        drop(self.changes);
        let listener = match self.keeper {
            // A listener's task that panicked outside a callback (a bug of this crate) took the
            // listener with it.
            Some(keeper) => keeper.await.ok(),
            None => None,
        };
        Parts {
            cell: self.cell,
            client: self.client,
            options: self.options,
            listener,
            initial: self.initial,
            incarnation: self.incarnation + 1,
            commands: Some(self.commands),
            durable: self.durable,
        }
    }

    /// Hands the branch's parts to a transfer; the worker has stopped at a message boundary.
    async fn hand_over(self, reply: oneshot::Sender<Box<dyn Moving>>) {
        let parts = self
            .into_parts(Event::Terminate {
                reason: Exit::Transferred,
            })
            .await;
        if let Err(parts) = reply.send(Box::new(parts)) {
            // The transfer gave up waiting: the branch must not vanish, so it restarts here.
            parts.spawn_on(&Handle::current());
        }
    }
}

/// Receives from `mailbox` with a no-op waker: the next message, or `None` with the waker of the
/// calling task replaced in the channel by one that does nothing.
///
/// A tokio channel keeps the waker of the last task that waited on it, and a waker keeps its
/// task's allocation (the whole future's size) alive. Clients keep the channel alive after the
/// branch's task has ended or hibernated; without this, each of them would keep the dead task's
/// two kilobytes too. Called under `unconstrained`: with the task's budget spent, the receive
/// would return `Pending` without touching the waker.
fn receive_unhooked<T>(mailbox: &mut mpsc::UnboundedReceiver<T>) -> Option<T> {
    let mut noop = std::task::Context::from_waker(std::task::Waker::noop());
    match mailbox.poll_recv(&mut noop) {
        Poll::Ready(received) => received,
        Poll::Pending => None,
    }
}

/// A hibernating branch: everything but its state and its tasks.
struct Sleeping<S: Server> {
    mailbox: mpsc::UnboundedReceiver<Envelope<S>>,
    client: Client<S>,
    options: Options,
    listener: Option<BoxedListener<S>>,
    initial: Option<Arc<Kept<S>>>,
    incarnation: u64,
    commands: Option<Commands>,
    durable: Option<Durable<S>>,
    runtime: Option<Handle>,
}

impl<S: Server> Sleeping<S> {
    /// Takes the cell apart, keeping its mailbox. `None` if something still holds the cell (a
    /// bug: it is logged and the branch carries on awake).
    fn from_parts(mut parts: Parts<S>) -> Option<Self> {
        match Arc::try_unwrap(parts.cell) {
            Ok(cell) => {
                let Parts {
                    client,
                    options,
                    listener,
                    initial,
                    incarnation,
                    commands,
                    durable,
                    ..
                } = parts;
                Some(Sleeping {
                    mailbox: cell.into_inner().into_mailbox(),
                    client,
                    options,
                    listener,
                    initial,
                    incarnation,
                    commands,
                    durable,
                    runtime: None,
                })
            }
            Err(cell) => {
                tracing::error!("cannot hibernate: the cell is still shared; staying awake");
                parts.cell = cell;
                spawn(parts, &Handle::current());
                None
            }
        }
    }

    /// The branch again, around `state` loaded from the store, with the mailbox as it was left.
    fn into_parts(self, (state, fingerprint): (S, u64)) -> Parts<S> {
        let mut cell = Cell::new(state, self.mailbox);
        cell.from_store = Some(fingerprint);
        Parts {
            cell: Arc::new(Mutex::new(cell)),
            client: self.client,
            options: self.options,
            listener: self.listener,
            initial: self.initial,
            incarnation: self.incarnation,
            commands: self.commands,
            durable: self.durable,
        }
    }

    /// Called by whichever handle takes the sleeping slot: revives on the runtime it slept on.
    fn wake(self) {
        let runtime = self.runtime.clone().unwrap_or_else(Handle::current);
        self.revive(&runtime);
    }

    /// Loads the state from the store and starts the branch again, with every message that
    /// arrived meanwhile still queued.
    fn revive(self, runtime: &Handle) {
        runtime.spawn(async move {
            let mut this = self;
            let branch = this.client.branch().clone();
            branch.tasks().task = Some(tokio::task::id());
            let loaded = match (&mut this.durable, this.options.name.as_deref()) {
                // Claimed again first, as at start: hibernating released it.
                (Some(durable), Some(name)) => {
                    let key = durable.key(name);
                    match durable.claim(&key).await {
                        Ok(claim) => {
                            let loaded = durable.load(&key).await;
                            if matches!(loaded, Ok(Some(_))) {
                                durable.claim = Some(claim.claim());
                                claim.hand_to_branch();
                            } else {
                                claim.release().await;
                            }
                            loaded
                        }
                        Err(error) => Err(error),
                    }
                }
                _ => Ok(None),
            };
            if !matches!(loaded, Ok(Some(_))) {
                // Let go of the store before the end is published (see `end`).
                drop(this.durable.take());
            }
            match loaded {
                Ok(Some(state)) => {
                    let parts = this.into_parts(state);
                    branch
                        .inner
                        .status
                        .send_modify(|status| status.hibernating = false);
                    tracing::info!(server = branch.server(), name = branch.name(), "revived");
                    // This task is the branch's task from here on.
                    Supervisor::new(parts).run().await;
                }
                Ok(None) => finish_unrevived::<S>(
                    &branch,
                    this.mailbox,
                    Exit::ReviveFailed {
                        message: "the stored state is gone".to_owned(),
                    },
                ),
                // Another node started the server while it slept here: it lives on there.
                Err(StoreError::OwnedElsewhere { node, .. }) => {
                    finish_unrevived::<S>(
                        &branch,
                        this.mailbox,
                        Exit::Fenced { owner: Some(node) },
                    );
                }
                Err(error) => finish_unrevived::<S>(
                    &branch,
                    this.mailbox,
                    Exit::ReviveFailed {
                        message: error.to_string(),
                    },
                ),
            }
        });
    }
}

/// Ends a branch that could not be revived: every queued caller hears why.
fn finish_unrevived<S: Server>(
    branch: &Branch,
    mut mailbox: mpsc::UnboundedReceiver<Envelope<S>>,
    exit: Exit,
) {
    tracing::error!(server = branch.server(), name = branch.name(), %exit, "stopped");
    branch
        .inner
        .status
        .send_modify(|status| status.exit = Some(exit.clone()));
    mailbox.close();
    while let Ok(envelope) = mailbox.try_recv() {
        envelope.refuse(&exit);
    }
    branch.resources().end();
    if let Some(name) = branch.name() {
        registry::unregister::<S>(name, branch.id());
    }
    let owner = std::mem::take(&mut *branch.tasks()).owner;
    if let Some(owner) = owner.and_then(|owner| owner.upgrade()) {
        DynamicSupervisor::from_inner(owner).forget(branch.id());
    }
    branch.inner.status.send_modify(|status| {
        status.hibernating = false;
        status.finished = true;
    });
}
