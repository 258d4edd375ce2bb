//! [`Branch`]: the handle on a server's task, its status and its control requests.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::Poll;

use futures::task::AtomicWaker;
use tokio::sync::oneshot;
use tokio::task;

mod sleeping;
mod status;

pub(crate) use sleeping::Sleeper;
pub(crate) use status::StatusCell;

use crate::resources::Resources;
use crate::{Exit, SendError, StopError};

/// A branch between two supervisors, with its server type erased: what a transfer carries. A
/// trait object rather than `Box<dyn Any>`, so that no downcast can fail and drop a branch.
pub(crate) trait Moving: Send {
    /// Starts the branch again on `runtime`, as its next incarnation.
    fn spawn_on(self: Box<Self>, runtime: &tokio::runtime::Handle);
}

/// What hosts a branch (a dynamic supervisor): told when the branch ends, so that it lets go of
/// it.
pub(crate) trait Owner: Send + Sync {
    fn forget(&self, branch: BranchId);
}

/// Requests from a [`Branch`] handle to its task's supervision.
pub(crate) enum Control {
    KillWorker,
    Stop(Exit),
    /// Hand the branch's parts over, for `transfer`.
    Handoff(Handoff),
}

/// A request to hand a branch's parts over.
pub(crate) struct Handoff {
    pub(crate) reply: oneshot::Sender<Box<dyn Moving>>,
    /// How the branch's supervision hands its parts over: its `HandOver<S>`, which this module,
    /// below the supervisor's, cannot name. Set where transfers are asked for (a dynamic
    /// supervisor's children), so that a server never transferred does not compile that path.
    pub(crate) hand_over: &'static (dyn std::any::Any + Send + Sync),
}

#[derive(Default)]
pub(crate) struct Tasks {
    /// Whether control requests are taken: from the first start to the end.
    pub(crate) control_open: bool,
    /// Control requests not read yet. A queue here, not a channel: an unbounded channel allocates
    /// a block of slots up front (a kilobyte and a half per server, for requests that are rare),
    /// and a queue that belongs to the branch stays with it through transfers and hibernation.
    pub(crate) pending: VecDeque<Control>,
    /// The branch's task: its supervision and its worker, one task. `None` while it hibernates
    /// and once it has ended.
    pub(crate) task: Option<task::Id>,
    /// The dynamic supervisor hosting the branch, if any: told when the branch ends.
    pub(crate) owner: Option<Weak<dyn Owner>>,
}

/// `repr(C)`, hot fields first: a call reads the id and the flags on the client's side, and the
/// branch's task registers its waker for control requests on each wake-up. Together they fit in
/// the first cache line of the allocation, so that a call to a server whose memory is cold
/// (one among 100k) misses once here, not once per field (`scripts/cache-misses`).
#[repr(C)]
pub(crate) struct BranchInner {
    id: BranchId,
    /// Whether this branch may hibernate: only then do sends take the `sleeping` lock.
    may_sleep: bool,
    /// Whether a link drains this branch's mailbox (`cluster::grpc`): the link of a remote
    /// client, or of a server that moved to another node. Calls then carry their timeout,
    /// which travels to the server's node.
    link: AtomicBool,
    /// Whether the branch's task runs on a multi-thread runtime (set at every spawn: a transfer
    /// may move it). Calls arm their timeout differently there (see `client::Answer`).
    multi_thread: AtomicBool,
    /// Set, under the `tasks` lock, while control requests wait in `Tasks::pending`: the
    /// branch's task looks at it on every wake-up, so it must cost one atomic load, not a lock.
    control_waiting: AtomicBool,
    /// Wakes the branch's task after a control request is queued.
    control_ready: AtomicWaker,
    sleeping: Mutex<Option<Box<dyn Sleeper>>>,
    /// The [`Branch`] values of a branch that may sleep (counted only then): the one whose drop
    /// leaves just the parked parts' own (`parked`) releases them. After the fields above, which
    /// a call and a wake-up read: a clone or a drop of a handle writes it.
    handles: AtomicUsize,
    /// While the branch is parked in `sleeping`, the handles the parked parts hold themselves
    /// ([`Sleeper::holds`]), or [`NEVER_RELEASED`](sleeping::NEVER_RELEASED); 0 otherwise.
    /// Written under the `sleeping` lock.
    parked: AtomicUsize,
    server: &'static str,
    name: Option<String>,
    pub(crate) status: StatusCell,
    pub(crate) tasks: Mutex<Tasks>,
    /// The tables and kept values, for every incarnation of the worker, wherever it moves.
    /// Made on first use: most servers keep no table and no value.
    resources: OnceLock<Box<Resources>>,
}

/// A unique id for a branch, stable across restarts and transfers.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use peeper::{Context, Server, Tracked};
/// # #[derive(Clone, Default)] struct Echo;
/// # impl Server for Echo { type Call = (); type Reply = (); type Cast = (); type Info = (); type Keep = peeper::keep::Snapshot;
/// #   async fn handle_call(_: &mut Tracked<Self>, _: (), _: &mut Context<Self>) {}
/// #   async fn handle_cast(_: &mut Tracked<Self>, _: (), _: &mut Context<Self>) {} }
/// let a = Echo::start(Echo).await?;
/// let b = Echo::start(Echo).await?;
/// assert_ne!(a.branch().id(), b.branch().id());
/// assert_eq!(a.branch().id(), a.clone().branch().id());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BranchId(u64);

impl BranchId {
    pub(crate) fn next() -> BranchId {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        BranchId(NEXT_ID.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for BranchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "branch#{}", self.0)
    }
}

/// Introspection and control of a server's branch: the task that supervises and runs its
/// worker, the kept state, the mailbox.
///
/// Get it from any client with `client.branch()`. It stays valid across restarts, transfers and
/// hibernation.
///
/// ```
/// # use peeper::{Context, Server, Tracked};
/// # #[derive(Clone, Default)] struct Counter(u64);
/// # impl Server for Counter { type Call = (); type Reply = u64; type Cast = (); type Info = (); type Keep = peeper::keep::Snapshot;
/// #   async fn handle_call(s: &mut Tracked<Self>, _: (), _: &mut Context<Self>) -> u64 { s.0 }
/// #   async fn handle_cast(s: &mut Tracked<Self>, _: (), _: &mut Context<Self>) { s.0 += 1 } }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let counter = Counter::start(Counter::default()).await?;
/// counter.cast(())?;
/// let branch = counter.branch();
/// let task = branch.task_id();
///
/// let restarted = branch.next_restart();   // armed before the kill, so it cannot be missed
/// branch.kill_worker()?;
/// assert_eq!(restarted.await, Ok(1));        // incarnation 1 has run its init
///
/// assert_eq!(branch.task_id(), task);       // the next worker runs in the same task
/// assert_eq!(branch.restarts(), 1);
/// assert_eq!(counter.call(()).await?, 1);    // the state survived
/// # Ok(()) }
/// ```
pub struct Branch {
    pub(crate) inner: Arc<BranchInner>,
}

impl Branch {
    pub(crate) fn new(server: &'static str, name: Option<String>, may_sleep: bool) -> Branch {
        Branch::with_kind(BranchId::next(), server, name, may_sleep, false)
    }

    /// The branch of a remote client's link: it takes control requests at once, and its
    /// `init` (none) is done.
    #[cfg(feature = "grpc")]
    pub(crate) fn link(server: &'static str, name: String) -> Branch {
        let branch = Branch::with_kind(BranchId::next(), server, Some(name), false, true);
        branch.tasks().control_open = true;
        branch
            .inner
            .status
            .send_modify(|status| status.ready = Some(0));
        branch
    }

    /// Ends a link's branch with `exit`: later sends are refused with it.
    #[cfg(feature = "grpc")]
    pub(crate) fn finish_link(&self, exit: Exit) {
        self.tasks().control_open = false;
        self.inner.status.send_modify(|status| {
            status.exit.get_or_insert(exit);
            status.finished = true;
        });
    }

    /// Whether a link drains this branch's mailbox.
    #[inline]
    pub(crate) fn is_link(&self) -> bool {
        self.inner.link.load(Ordering::Relaxed)
    }

    /// A link drains this branch's mailbox from now on: the server moved to another node.
    #[cfg(feature = "grpc")]
    pub(crate) fn become_link(&self) {
        self.inner.link.store(true, Ordering::Relaxed);
    }

    pub(crate) fn with_kind(
        id: BranchId,
        server: &'static str,
        name: Option<String>,
        may_sleep: bool,
        link: bool,
    ) -> Branch {
        Branch {
            inner: Arc::new(BranchInner {
                id,
                server,
                name,
                status: StatusCell::default(),
                tasks: Mutex::new(Tasks::default()),
                may_sleep,
                link: AtomicBool::new(link),
                multi_thread: AtomicBool::new(false),
                sleeping: Mutex::new(None),
                control_waiting: AtomicBool::new(false),
                handles: AtomicUsize::new(1),
                parked: AtomicUsize::new(0),
                control_ready: AtomicWaker::new(),
                resources: OnceLock::new(),
            }),
        }
    }

    pub(crate) fn resources(&self) -> &Resources {
        self.inner.resources.get_or_init(Box::default)
    }

    /// The tables and kept values, if anything ever made them.
    pub(crate) fn existing_resources(&self) -> Option<&Resources> {
        self.inner.resources.get().map(|resources| &**resources)
    }

    pub(crate) fn tasks(&self) -> MutexGuard<'_, Tasks> {
        // The lock is only held for field reads and writes that cannot panic, so a poisoned
        // lock still guards consistent data.
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the flavor of the runtime the branch's task is spawned on.
    pub(crate) fn runs_on(&self, runtime: &tokio::runtime::Handle) {
        let multi_thread = runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread;
        self.inner
            .multi_thread
            .store(multi_thread, Ordering::Relaxed);
    }

    /// Whether the branch's task runs on a multi-thread runtime.
    #[inline]
    pub(crate) fn on_multi_thread(&self) -> bool {
        self.inner.multi_thread.load(Ordering::Relaxed)
    }

    /// `true` while the branch hibernates (see
    /// [`Builder::idle_after`](crate::Builder::idle_after)): it has no tasks and its state is in
    /// its store; any message revives it.
    #[must_use]
    pub fn is_hibernating(&self) -> bool {
        self.inner.status.read(|s| s.hibernating)
    }

    /// Resolves once the branch hibernates (at once if it already does), or with the exit if it
    /// ends first. This is how to wait for [`idle_after`](crate::Builder::idle_after) to put a
    /// server to sleep without sleeping oneself (on a paused test clock, the idle period then
    /// passes instantly).
    pub fn hibernated(&self) -> impl Future<Output = Result<(), Exit>> + Send + 'static {
        let this = self.clone();
        async move {
            this.inner
                .status
                .wait_for(|s| match &s.exit {
                    Some(exit) => Some(Err(exit.clone())),
                    None => s.hibernating.then_some(Ok(())),
                })
                .await
        }
    }

    /// This branch's id.
    #[must_use]
    pub fn id(&self) -> BranchId {
        self.inner.id
    }

    /// The server type's name (`std::any::type_name`).
    #[must_use]
    pub fn server(&self) -> &'static str {
        self.inner.server
    }

    /// The registered name, if the server was started with one.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// The id of the tokio task that runs the branch: its supervision and its worker, in one
    /// task (a listener, when one is set, runs in a task of its own). A restart runs the next
    /// worker in the same task, so the id stays; a transfer or a revival from hibernation starts
    /// a new task. `None` while the branch hibernates and once it has ended.
    ///
    /// Handlers run in this task: `tokio::task::id()` in a handler returns this id.
    #[must_use]
    pub fn task_id(&self) -> Option<task::Id> {
        self.tasks().task
    }

    /// The incarnation of the worker that last completed its `init`: 0 for the first worker, one
    /// more after every restart and transfer.
    #[must_use]
    pub fn incarnation(&self) -> u64 {
        self.inner.status.read(|s| s.ready.unwrap_or(0))
    }

    /// How many times the worker has been restarted after a crash.
    #[must_use]
    pub fn restarts(&self) -> u64 {
        self.inner.status.read(|s| s.restarts)
    }

    /// `true` until the branch starts ending.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.inner.status.read(|s| s.exit.is_none())
    }

    /// Why the branch ended, once it has started ending.
    #[must_use]
    pub fn exit(&self) -> Option<Exit> {
        self.inner.status.read(|s| s.exit.clone())
    }

    /// The exit to report to a message refused by a closed mailbox. The supervisor publishes the
    /// exit before it closes the mailbox, so it is always there; `Normal` is never reached.
    pub(crate) fn exit_or_normal(&self) -> Exit {
        self.exit().unwrap_or(Exit::Normal)
    }

    /// Kills the worker from outside, the counterpart of `Process.exit(worker, :kill)`: a crash
    /// with [`Exit::Killed`]. The call in progress, if any, fails with
    /// [`CallError::Crashed`](crate::CallError::Crashed); every queued message is kept for the
    /// next worker. The kill lands at the handler's next `.await` (a handler that never yields
    /// cannot be interrupted, as with any tokio task).
    ///
    /// # Errors
    /// [`SendError::Stopped`] if the branch has ended.
    pub fn kill_worker(&self) -> Result<(), SendError> {
        self.control(Control::KillWorker)
    }

    /// Stops the branch normally, as [`Client::stop`](crate::Client::stop) does.
    ///
    /// # Errors
    /// As [`Client::stop`](crate::Client::stop).
    pub async fn stop(&self) -> Result<(), StopError> {
        self.stop_as(Exit::Normal).await
    }

    /// Stops the branch with a reason, as [`Client::stop_with`](crate::Client::stop_with) does.
    ///
    /// # Errors
    /// As [`Client::stop`](crate::Client::stop).
    pub async fn stop_with(&self, reason: impl Into<String>) -> Result<(), StopError> {
        self.stop_as(Exit::Stopped {
            reason: reason.into(),
        })
        .await
    }

    /// Stops the branch with `exit`, and waits until it has ended (or its last write is known to
    /// be pending).
    pub(crate) async fn stop_as(&self, exit: Exit) -> Result<(), StopError> {
        // From inside its own handler, the stop would wait for the handler that asked for it.
        if crate::handling::is_handling(self.id()) {
            return Err(StopError::CallingSelf);
        }
        self.control(Control::Stop(exit))
            .map_err(|SendError::Stopped(exit)| StopError::AlreadyStopped(exit))?;
        self.inner
            .status
            .wait_for(|s| {
                if !s.finished {
                    // Not finished: an answer already only if its last state cannot be stored.
                    let unstored = s.unstored.as_deref().cloned();
                    return unstored.map(|error| Err(StopError::Store(error)));
                }
                Some(match &s.terminate_panicked {
                    Some(message) => Err(StopError::Terminate {
                        message: message.clone(),
                    }),
                    None => Ok(()),
                })
            })
            .await
    }

    pub(crate) fn control(&self, control: Control) -> Result<(), SendError> {
        // Checked before sending: once sent, the command may end the branch at once (on another
        // thread), and that is this command's success, not a sign it came too late.
        let sent = self.is_running()
            && self.send_waking(|| {
                let mut tasks = self.tasks();
                if tasks.control_open {
                    tasks.pending.push_back(control);
                    self.inner.control_waiting.store(true, Ordering::Release);
                }
                tasks.control_open
            });
        if sent {
            self.inner.control_ready.wake();
        }
        if sent {
            Ok(())
        } else {
            Err(SendError::Stopped(self.exit_or_normal()))
        }
    }

    /// Resolves once the *next* restart (or transfer, or revival from hibernation) has completed
    /// its `init`, with the new incarnation, or with the exit if the branch ends first.
    ///
    /// The point of comparison is taken when this method is called, not when the future is first
    /// polled: call it before causing the restart, then await it. This is how tests wait for a
    /// restart without sleeping (see the example on [`Branch`]).
    pub fn next_restart(&self) -> impl Future<Output = Result<u64, Exit>> + Send + 'static {
        let this = self.clone();
        let seen = self.inner.status.read(|s| s.ready);
        async move {
            this.inner
                .status
                .wait_for(|s| match (&s.exit, s.ready) {
                    (Some(exit), _) => Some(Err(exit.clone())),
                    (None, Some(incarnation)) if s.ready > seen => Some(Ok(incarnation)),
                    (None, _) => None,
                })
                .await
        }
    }

    /// Resolves once the branch has completely ended (its `terminate` ran, its name is free, its
    /// listener heard `on_terminate`), with the exit.
    pub fn ended(&self) -> impl Future<Output = Exit> + Send + 'static {
        let this = self.clone();
        async move {
            this.finished().await;
            this.exit_or_normal()
        }
    }

    async fn finished(&self) {
        self.inner
            .status
            .wait_for(|s| s.finished.then_some(()))
            .await;
    }

    /// Resolves once incarnation 0 has completed `init`, or with the exit if the branch ended first.
    pub(crate) async fn ready(&self) -> Result<(), Exit> {
        self.inner
            .status
            .wait_for(|s| {
                if s.ready.is_some() {
                    Some(Ok(()))
                } else {
                    // Ended before its first `init` completed: the exit says why.
                    s.finished.then(|| s.exit.clone().map_or(Ok(()), Err))
                }
            })
            .await
    }
}

impl fmt::Debug for Branch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (incarnation, restarts, exit) = self
            .inner
            .status
            .read(|s| (s.ready, s.restarts, s.exit.clone()));
        f.debug_struct("Branch")
            .field("id", &self.inner.id)
            .field("server", &self.inner.server)
            .field("name", &self.inner.name)
            .field("incarnation", &incarnation)
            .field("restarts", &restarts)
            .field("exit", &exit)
            .finish()
    }
}

/// The supervisor's side of the control queue.
pub(crate) struct Commands {
    branch: Branch,
}

impl Commands {
    pub(crate) fn new(branch: Branch) -> Self {
        Commands { branch }
    }

    /// The branch whose requests these are.
    pub(crate) fn branch(&self) -> &Branch {
        &self.branch
    }

    /// The next control request, or `Pending` with the task's waker registered for one.
    ///
    /// Polled on every wake-up of the branch's task (beside its worker), so the common case,
    /// nothing waiting, is an atomic load after the registration, without the lock.
    pub(crate) fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Control> {
        let inner = &self.branch.inner;
        // Registered before the look: a request queued after it wakes the task again.
        inner.control_ready.register(cx.waker());
        if !inner.control_waiting.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        let mut tasks = self.branch.tasks();
        let control = tasks.pending.pop_front();
        inner
            .control_waiting
            .store(!tasks.pending.is_empty(), Ordering::Release);
        control.map_or(Poll::Pending, Poll::Ready)
    }

    /// Drops the waker of the task that last waited for a request: it would keep that task's
    /// allocation alive after the task ended or hibernated (the branch outlives its tasks).
    pub(crate) fn unhook(&self) {
        drop(self.branch.inner.control_ready.take());
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.branch.tasks().pending.is_empty()
    }
}
