//! A branch's task: the supervision, which runs the workers in this same task, decides what a
//! worker's end means (restart, give up, stop, hand over, hibernate), and ends the branch in order.
//!
//! On a crash it marks the cell for restore, checks the restart intensity and the crash-loop
//! policy, tells the listener (`on_restart`), and polls the next incarnation on the same cell, so
//! the next worker sees the kept state and every queued message. When the branch ends, it runs
//! `terminate` if no worker did, publishes the exit, closes and drains the mailbox (each waiting
//! caller hears why), lets the listener run `on_terminate`, frees the name and leaves its dynamic
//! supervisor, then marks the branch finished.
//!
//! The task is written once for every server type ([`Supervision`], no type parameter): its loop,
//! the crash decisions, and tokio's task harness are compiled here, in peeper, and not again in
//! the user's crate for each server type. What needs the server's type (the cell, the client, the
//! listener, the store, the worker's future, and the end, hand-over and hibernation that take
//! them apart) is its typed half ([`TypedHalf`]), reached through the [`Typed`] vtable. Each
//! incarnation's worker future is boxed by the typed half; a call to it costs a dynamic call per
//! poll. (`scripts/compile-time/what-if.sh` measured what this saves a user's rebuild.)

mod durably;
mod end;
mod hibernation;
mod restarts;
mod start;
mod typed;

use restarts::{Decision, Restarts};
pub(crate) use start::start;
use start::within;
use typed::{Post, Typed, TypedHalf};

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::branch::{Commands, Control, Handoff, Moving};
use crate::durable::Durable;
use crate::erased::{BoxFuture, Guarded};
use crate::keep::Keep;
use crate::keeper::{BoxedListener, Kept, SharedCell};
use crate::options::Options;
use crate::worker::WorkerEnd;
use crate::{Branch, Client, Exit, Server, registry};

/// How a branch's typed half hands its parts over to a transfer, reached through a pointer the
/// request carries ([`Handoff::hand_over`]), so that a server never transferred does not compile
/// it.
pub(crate) struct HandOver<S: Server>(fn(TypedHalf<S>, Bits, Parted) -> BoxFuture<'static, ()>);

/// Where a transfer waits for the parts of the branch it moves.
type Parted = oneshot::Sender<Box<dyn Moving>>;

impl<S: Server> HandOver<S> {
    /// The path, in a constant so that `&HandOver::<S>::OF` is `'static`.
    pub(crate) const OF: Self =
        HandOver(|typed, bits, reply| Box::pin(typed.hand_over_parts(bits, reply)));
}

/// Everything a branch is made of, apart from its task: what a transfer moves.
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
    /// The store of a durable server (boxed: most servers are not durable).
    pub(crate) durable: Option<Box<Durable<S>>>,
}

impl<S: Server> Moving for Parts<S> {
    fn spawn_on(self: Box<Self>, runtime: &Handle) {
        spawn(*self, runtime);
    }
}

/// The supervision's own parts, without a type parameter, which its typed half takes with it
/// when it takes the branch apart (the end, a transfer, a hibernation).
pub(crate) struct Bits {
    commands: Commands,
    incarnation: u64,
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
    let first_start = parts.commands.is_none();
    // Built here, not in the task: the parts would take room in the task's future for its whole
    // life. Entered so that a listener's task is spawned on the branch's runtime.
    let supervision = {
        let _entered = runtime.enter();
        Supervision::new(parts)
    };
    launch(&branch, runtime, supervision, first_start);
}

/// Spawns the supervision's task: one task type for every server, so tokio's task harness is
/// compiled once, here.
fn launch(branch: &Branch, runtime: &Handle, supervision: Supervision, first_start: bool) {
    branch.runs_on(runtime);
    // The id is set under the lock, before the task can run (on another thread) and take the
    // lock to clear it at its end: a start that returns at once reports the id already. Nothing
    // dropped with the task (if the runtime is shutting down) takes this lock.
    let mut tasks = branch.tasks();
    // Control requests are taken from the first start on (a moved branch takes them already):
    // a request made right after `start` returns waits in the queue for the task.
    if first_start {
        tasks.control_open = true;
    }
    tasks.task = Some(runtime.spawn(supervision.run()).id());
}

/// A branch's supervision, run by its one task around the current worker; the same code for
/// every server type.
///
/// `repr(C)`, what every wake-up reads first: the control queue is looked at on each poll, so it
/// comes first, beside the pointer to the typed half (`scripts/cache-misses`).
#[repr(C)]
struct Supervision {
    commands: Commands,
    typed: Box<dyn Typed>,
    incarnation: u64,
    restarts: Restarts,
}

/// What the supervision does after a worker ended.
enum Next {
    Restart,
    End { exit: Exit, terminate: bool },
    Handoff(Handoff),
    Hibernate,
}

impl Supervision {
    /// The supervision of `parts`, with the listener's task started if there is a listener (on
    /// the current runtime: the branch's).
    fn new<S: Server>(parts: Parts<S>) -> Self {
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
            // A branch that moved (`transfer`, or a restart after an abandoned handoff)
            // already has a kept state. The listener must start from it: with no previous
            // state it would skip the first change after the move instead of reporting it.
            // Nothing holds the cell here (the previous task has ended), so `try_lock`
            // succeeds; on a first start nothing is kept yet and this is `None`.
            let previous = cell
                .try_lock()
                .ok()
                .and_then(|mut cell| S::Keep::share(&mut cell.good));
            typed::Listening::start(listener, &cell, options.listener_backlog, previous)
        });
        Supervision {
            commands,
            // The options too, in the typed half's allocation rather than in the task's future:
            // the task's hot fields then share fewer cache lines with cold ones.
            typed: Box::new(TypedHalf {
                cell,
                client,
                listening,
                durable,
                initial,
                options,
            }),
            incarnation,
            restarts: Restarts::default(),
        }
    }

    /// The parts the typed half takes when it takes the branch apart.
    fn into_bits(self) -> (Box<dyn Typed>, Bits) {
        let Supervision {
            commands,
            typed,
            incarnation,
            ..
        } = self;
        let bits = Bits {
            commands,
            incarnation,
        };
        (typed, bits)
    }

    /// Supervises the branch: runs workers one after the other, decides after each one's end,
    /// and ends, hibernates or hands over the branch.
    // Not an `async fn`: an `async fn` moves its by-value arguments into locals of its future,
    // and the argument's slot stays too, so `self` would take its room twice in the task all
    // its life. The block captures it once.
    #[allow(clippy::manual_async_fn)]
    fn run(mut self) -> impl Future<Output = ()> + Send + 'static {
        async move {
            let mut handoff: Option<Handoff> = None;
            loop {
                // The worker runs in this task. Handler panics are caught inside it; this catches
                // a panic of the runtime's own code, which a task of its own would have reported
                // to its `JoinHandle`. Each poll of the worker is marked as running a handler of
                // this branch (`handling`), for the handlers it polls. A kill drops the worker's
                // future at the await point it is suspended at, as an abort of its task would:
                // with it, its lock on the cell, at the end of this block.
                let end = {
                    let mut worker = self.typed.worker(self.incarnation);
                    let mut running = Guarded {
                        branch: Some(self.commands.branch().id()),
                        // Straight into the box: no hop through the local on each poll.
                        future: worker.as_mut(),
                    };
                    poll_fn(|cx| {
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
                                // Through the mailbox, so that what was queued before the stop
                                // is handled; the worker is polled again at once, and reaches it
                                // in this same wake-up if nothing else waits.
                                Control::Stop(reason) => self.typed.post(Post::Stop(reason)),
                                Control::Handoff(reply) => {
                                    handoff = Some(reply);
                                    self.typed.post(Post::Handoff);
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
                    // A handoff was asked for just as the worker went idle: its request waits in
                    // the mailbox, and a fresh worker reaches it. Hibernating instead would drop
                    // the requester's reply channel while the branch lives on (revived by that
                    // very request), and the transfer would answer `Stopped` for a running server.
                    WorkerEnd::Idle if handoff.is_some() => Next::Restart,
                    WorkerEnd::Idle => Next::Hibernate,
                };
                match next {
                    Next::Restart => {}
                    Next::End { exit, terminate } => {
                        let (typed, bits) = self.into_bits();
                        return typed.end(bits, exit, terminate).await;
                    }
                    // A handoff is asked for with its branch's own server type. Were it not, the
                    // requester would hear `Stopped` and the branch carry on.
                    Next::Handoff(handoff) if self.typed.hands_over(&handoff) => {
                        let (typed, bits) = self.into_bits();
                        return typed.hand_over(bits, handoff).await;
                    }
                    Next::Handoff(_) => {}
                    // Unconstrained by tokio's budget: `unhook` must not find it spent (the awaits
                    // on the way are the listener's end and the claim's release, both bounded).
                    Next::Hibernate if self.typed.can_hibernate() => {
                        let (typed, bits) = self.into_bits();
                        return tokio::task::unconstrained(typed.hibernate(bits)).await;
                    }
                    // Cannot happen: only a durable worker goes idle.
                    Next::Hibernate => {}
                }
            }
        }
    }

    /// Decides between a restart and the end after a crash (see [`Restarts::decide`]).
    async fn on_crash(&mut self, exit: Exit, started: bool) -> Next {
        let branch = self.commands.branch();
        Restarts::crashed(branch, self.incarnation, &exit);
        // Killed while running `terminate` for a stop (a panic there is caught): the stop
        // stands, or `stop()` would wait forever for a branch that restarted instead.
        // `terminate` is not run a second time.
        if let Some(exit) = self.typed.crashed().await {
            return Next::End {
                exit,
                terminate: false,
            };
        }
        let decision = self.restarts.decide(
            branch,
            self.typed.options(),
            exit.clone(),
            started,
            self.typed.has_initial(),
        );
        match decision {
            Decision::Restart => {}
            Decision::End { exit, terminate } => return Next::End { exit, terminate },
            Decision::Reset { give_up } => {
                if let Err(reset) = self.typed.reset().await {
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
        Restarts::restarting(branch, self.incarnation);
        self.typed.tell_restart(self.incarnation, exit);
        Next::Restart
    }
}

#[cfg(test)]
mod tests;
