//! A branch's task: the supervision, which runs the workers in this same task, decides what a
//! worker's end means (restart, give up, stop, hand over, hibernate), and ends the branch in order.
//!
//! On a crash it marks the cell for restore, checks the restart intensity and the crash-loop
//! policy, tells the listener (`on_restart`), and polls the next incarnation on the same cell, so
//! the next worker sees the kept state and every queued message. When the branch ends, it runs
//! `terminate` if no worker did, publishes the exit, closes and drains the mailbox (each waiting
//! caller hears why), lets the listener run `on_terminate`, frees the name and leaves its dynamic
//! supervisor, then marks the branch finished.

mod durably;
mod end;
mod hibernation;
mod restarts;
mod start;

use durably::durable_paths;
use restarts::{Decision, Restarts};
pub(crate) use start::start;
use start::within;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::branch::{Commands, Control, Handoff, Moving};
use crate::durable::Durable;
use crate::erased::{BoxFuture, Erased, Guarded};
use crate::keep::Keep;
use crate::keeper::{self, BoxedListener, Event, Kept, SharedCell};
use crate::mailbox::Envelope;
use crate::options::Options;
use crate::worker::{Persistence, Worker, WorkerEnd};
use crate::{Branch, Client, Exit, Server, registry};

/// How a branch's supervision hands its parts over to a transfer, reached through a pointer the
/// request carries ([`Handoff::hand_over`]), so that a server never transferred does not compile
/// it.
pub(crate) struct HandOver<S: Server>(fn(Supervisor<S>, Parted) -> BoxFuture<'static, ()>);

/// Where a transfer waits for the parts of the branch it moves.
type Parted = oneshot::Sender<Box<dyn Moving>>;

impl<S: Server> HandOver<S> {
    /// The path, in a constant so that `&HandOver::<S>::OF` is `'static`.
    pub(crate) const OF: Self = HandOver(|supervisor, reply| Box::pin(supervisor.hand_over(reply)));
}

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
    /// The store of a durable server (boxed: it stays in the task's future, and most servers
    /// are not durable).
    pub(crate) durable: Option<Box<Durable<S>>>,
}

impl<S: Server> Moving for Parts<S> {
    fn spawn_on(self: Box<Self>, runtime: &Handle) {
        spawn(*self, runtime);
    }
}

/// What every end of a branch does last but one (before it says it has finished): the kept
/// tables go with the name (no lookup finds them, outside handles refuse, what they held is
/// dropped), the name is freed, and the dynamic supervisor hosting the branch lets go of it.
fn leave<S: Server>(branch: &Branch) {
    if let Some(resources) = branch.existing_resources() {
        resources.end();
    }
    if let Some(name) = branch.name() {
        registry::unregister::<S>(name, branch.id());
    }
    let owner = std::mem::take(&mut *branch.tasks()).owner;
    if let Some(owner) = owner.and_then(|owner| owner.upgrade()) {
        owner.forget(branch.id());
    }
}

/// Releases a durable server's claim on its key, after its last write.
async fn release<S: Server>(durable: &Durable<S>, key: &crate::store::Key) {
    crate::durable::release(&durable.storage, key).await;
}

/// Spawns a branch's task on `runtime`: it supervises the branch and runs its workers.
pub(crate) fn spawn<S: Server>(parts: Parts<S>, runtime: &Handle) {
    let branch = parts.client.branch().clone();
    branch.runs_on(runtime);
    let first_start = parts.commands.is_none();
    // Built here, not in the task: the parts would take room in the task's future for its whole
    // life. Entered so that a listener's task is spawned on the branch's runtime.
    let supervisor = {
        let _entered = runtime.enter();
        Supervisor::new(parts)
    };
    // The id is set under the lock, before the task can run (on another thread) and take the
    // lock to clear it at its end: a start that returns at once reports the id already. Nothing
    // dropped with the task (if the runtime is shutting down) takes this lock.
    let mut tasks = branch.tasks();
    // Control requests are taken from the first start on (a moved branch takes them already):
    // a request made right after `start` returns waits in the queue for the task.
    if first_start {
        tasks.control_open = true;
    }
    tasks.task = Some(runtime.spawn(supervisor.run()).id());
}

/// A branch's supervision, run by its one task around the current worker.
///
/// `repr(C)`, what every wake-up reads first: the control queue is looked at on each poll, and
/// the task's future starts with these fields, so they share the cache line of the task's
/// header instead of sitting past the options (`scripts/cache-misses`).
#[repr(C)]
struct Supervisor<S: Server> {
    commands: Commands,
    cell: SharedCell<S>,
    client: Client<S>,
    incarnation: u64,
    /// The link to the listener's task; only with a listener (boxed: most servers have none,
    /// and this sits in the task's future).
    listening: Option<Box<Listening<S>>>,
    durable: Option<Box<Durable<S>>>,
    initial: Option<Arc<Kept<S>>>,
    restarts: Restarts,
    options: Options,
}

/// A branch's link to its listener's task.
struct Listening<S: Server> {
    /// Every event (restarts, the end) goes through here, in order.
    events: keeper::Changes<S>,
    /// Given to each worker: state changes, if the listener wants them.
    changes: Option<keeper::Changes<S>>,
    /// The listener's task, which hands the listener back when it ends (spawned through the
    /// one non-generic path, its output erased: see [`erased`](crate::erased)).
    task: JoinHandle<Erased>,
}

impl<S: Server> Listening<S> {
    /// Tells the listener `last` (the end, a hibernation, a transfer), lets its task end, and
    /// takes the listener back.
    async fn finish(self: Box<Self>, last: Event<S>) -> Option<BoxedListener<S>> {
        let Listening {
            events,
            changes,
            task,
        } = *self;
        events.send_event(last);
        drop((events, changes));
        // A listener's task that panicked outside a callback (a bug of this crate) took the
        // listener with it; the branch goes on without it.
        let listener = task.await.ok().flatten()?;
        listener
            .downcast::<BoxedListener<S>>()
            .ok()
            .map(|listener| *listener)
    }
}

/// What the supervisor does after a worker ended.
enum Next {
    Restart,
    End { exit: Exit, terminate: bool },
    Handoff(Handoff),
    Hibernate,
}

impl<S: Server> Supervisor<S> {
    /// Tells the listener, if there is one.
    fn tell(&self, event: Event<S>) {
        if let Some(listening) = &self.listening {
            listening.events.send_event(event);
        }
    }

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
        let listening = listener.map(|listener| {
            let wants_changes = listener.wants_state_changes();
            // A branch that moved (`transfer`, or a restart after an abandoned handoff)
            // already has a kept state. The listener must start from it: with no previous
            // state it would skip the first change after the move instead of reporting it.
            // Nothing holds the cell here (the previous task has ended), so `try_lock`
            // succeeds; on a first start nothing is kept yet and this is `None`.
            let previous = cell
                .try_lock()
                .ok()
                .and_then(|mut cell| S::Keep::share(&mut cell.good));
            let (events, task) =
                listener.spawn(Arc::clone(&cell), options.listener_backlog, previous);
            let changes = wants_changes.then(|| events.clone());
            Box::new(Listening {
                events,
                changes,
                task,
            })
        });
        Supervisor {
            cell,
            client,
            options,
            initial,
            incarnation,
            commands,
            listening,
            restarts: Restarts::default(),
            durable,
        }
    }

    /// Supervises the branch: runs workers one after the other, decides after each one's end,
    /// and ends, hibernates or hands over the branch.
    // Not an `async fn`: an `async fn` moves its by-value arguments into locals of its future,
    // and the argument's slot stays too, so `self` would take its room twice in the task all
    // its life. The block captures it once.
    #[allow(clippy::manual_async_fn)]
    fn run(mut self) -> impl Future<Output = ()> {
        async move {
            let mut handoff: Option<Handoff> = None;
            loop {
                let guard = Arc::clone(&self.cell).lock_owned().await;
                let persistence = self
                    .durable
                    .as_deref()
                    .zip(self.options.name.as_deref())
                    .map(|(durable, name)| {
                        let key = durable.key(name);
                        let hooks = durable_paths(durable).worker;
                        Box::new(Persistence::new(durable, key, self.options.write, hooks))
                    });
                let worker = Worker {
                    incarnation: self.incarnation,
                    client: self.client.clone(),
                    changes: self
                        .listening
                        .as_ref()
                        .and_then(|listening| listening.changes.clone()),
                    persistence,
                    idle_after: self.options.idle_after,
                    retention: self.options.retention,
                };
                // The worker runs in this task. Handler panics are caught inside it; this catches a
                // panic of the runtime's own code, which a task of its own would have reported to
                // its `JoinHandle`. Each poll of the worker is marked as running a handler of this
                // branch (`handling`), for the handlers it polls. A kill drops the worker's future
                // at the await point it is suspended at, as an abort of its task would: with it,
                // its lock on the cell, at the end of this block.
                let end = {
                    let worker = std::pin::pin!(worker.run(guard));
                    let mut running = Guarded {
                        branch: Some(self.client.branch().id()),
                        future: worker,
                    };
                    std::future::poll_fn(|cx| {
                        loop {
                            if let Poll::Ready(ended) = Pin::new(&mut running).poll(cx) {
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
                    Next::End { exit, terminate } => {
                        return Box::pin(self.end(exit, terminate)).await;
                    }
                    Next::Handoff(handoff) => {
                        // A handoff is asked for with its branch's own server type. Were it not,
                        // the requester would hear `Stopped` and the branch carry on.
                        if let Some(hand_over) = handoff.hand_over.downcast_ref::<HandOver<S>>() {
                            return (hand_over.0)(self, handoff.reply).await;
                        }
                    }
                    // Unconstrained by tokio's budget: `unhook` must not find it spent (the awaits
                    // on the way are the listener's end and the claim's release, both bounded).
                    Next::Hibernate => {
                        let Some(hibernate) = self
                            .durable
                            .as_deref()
                            .map(|durable| durable_paths(durable).hibernate)
                        else {
                            // Cannot happen: only a durable worker goes idle.
                            continue;
                        };
                        return tokio::task::unconstrained(hibernate(self)).await;
                    }
                }
            }
        }
    }

    /// Decides between a restart and the end after a crash (see [`Restarts::decide`]).
    async fn on_crash(&mut self, exit: Exit, started: bool) -> Next {
        Restarts::crashed(self.client.branch(), self.incarnation, &exit);
        let stopping = {
            let mut cell = self.cell.lock().await;
            cell.needs_restore = true;
            cell.stopping.take()
        };
        // Killed while running `terminate` for a stop (a panic there is caught): the stop
        // stands, or `stop()` would wait forever for a branch that restarted instead.
        // `terminate` is not run a second time.
        if let Some(exit) = stopping {
            return Next::End {
                exit: *exit,
                terminate: false,
            };
        }
        let branch = self.client.branch();
        let decision = self.restarts.decide(
            branch,
            &self.options,
            exit.clone(),
            started,
            self.initial.is_some(),
        );
        match decision {
            Decision::Restart => {}
            Decision::End { exit, terminate } => return Next::End { exit, terminate },
            Decision::Reset { give_up } => {
                let initial = self.initial.as_ref().map(Arc::clone);
                let reset = match initial {
                    Some(initial) => self.cell.lock().await.reset_to(&initial),
                    None => Ok(()),
                };
                if let Err(reset) = reset {
                    crate::log::reset_failed(&reset);
                    return Next::End {
                        exit: give_up,
                        terminate: true,
                    };
                }
                self.restarts.reset();
            }
        }
        self.incarnation += 1;
        Restarts::restarting(self.client.branch(), self.incarnation);
        self.tell(Event::Restart {
            incarnation: self.incarnation,
            reason: exit,
        });
        Next::Restart
    }

    /// Ends this supervisor's keeper with `last` (which says why: hibernation or transfer) and
    /// returns everything the branch needs to start again, as its next incarnation.
    async fn into_parts(mut self, last: Event<S>) -> Parts<S> {
        self.commands.unhook();
        let listener = match self.listening.take() {
            Some(listening) => listening.finish(last).await,
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

#[cfg(test)]
mod tests;
