//! [`DynamicSupervisor`] and [`transfer`].

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::branch::{Control, Handoff, Moving, Owner};
use crate::supervisor::HandOver;
use crate::{
    Branch, BranchId, Builder, Client, Exit, Server, StartError, StopError, TransferError, registry,
};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A branch under a dynamic supervisor, with its server type erased.
trait Hosted: Send + Sync {
    fn branch(&self) -> &Branch;
    /// Stops the branch at a message boundary and returns its parts.
    fn hand_over(&self) -> BoxFuture<Result<Box<dyn Moving>, TransferError>>;
}

struct Hosting<S: Server>(Client<S>);

impl<S: Server> Hosted for Hosting<S> {
    fn branch(&self) -> &Branch {
        self.0.branch()
    }

    fn hand_over(&self) -> BoxFuture<Result<Box<dyn Moving>, TransferError>> {
        let branch = self.0.branch().clone();
        Box::pin(async move {
            let (reply, parts) = oneshot::channel();
            let hand_over = &HandOver::<S>::OF;
            branch
                .control(Control::Handoff(Handoff { reply, hand_over }))
                .map_err(|_| TransferError::Stopped(branch.exit_or_normal()))?;
            parts
                .await
                .map_err(|_| TransferError::Stopped(branch.exit_or_normal()))
        })
    }
}

pub(crate) struct DynInner {
    runtime: Handle,
    state: Mutex<DynState>,
}

impl Owner for DynInner {
    fn forget(&self, branch: BranchId) {
        // Nothing panics while the lock is held.
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .children
            .remove(&branch);
    }
}

#[derive(Default)]
struct DynState {
    shut_down: bool,
    /// By branch id, which grows with every start: iterating is start order, and a child that
    /// ends is removed in O(log n), so stopping all of n children is not O(n²).
    children: BTreeMap<BranchId, Arc<dyn Hosted>>,
}

/// Hosts many branches, of any server types, on one tokio runtime, the counterpart of Elixir's
/// `DynamicSupervisor`.
///
/// Its children run on the runtime it was created on. [`transfer`] moves a live branch from one
/// to another (to another runtime, say), with everything it holds.
///
/// ```
/// # use peeper::{Context, Server, Tracked};
/// # #[derive(Clone, Default)] struct Counter(u64);
/// # impl Server for Counter { type Call = (); type Reply = u64; type Cast = (); type Info = (); type Keep = peeper::keep::Snapshot;
/// #   async fn handle_call(s: &mut Tracked<Self>, _: (), _: &mut Context<Self>) -> u64 { s.0 }
/// #   async fn handle_cast(s: &mut Tracked<Self>, _: (), _: &mut Context<Self>) { s.0 += 1 } }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use peeper::DynamicSupervisor;
///
/// let sup = DynamicSupervisor::new();
/// let a = sup.start_child(Counter::builder(Counter::default()).name("a")).await?;
/// let b = sup.start_child(Counter::builder(Counter::default())).await?;
/// assert_eq!(sup.which_children().len(), 2);
///
/// sup.terminate_child(b.branch()).await?;
/// assert_eq!(sup.which_children().len(), 1);
///
/// sup.shutdown().await;
/// assert_eq!(a.branch().exit(), Some(peeper::Exit::Shutdown));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DynamicSupervisor {
    inner: Arc<DynInner>,
}

impl DynamicSupervisor {
    /// A supervisor whose children run on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    #[must_use]
    pub fn new() -> Self {
        Self::on(Handle::current())
    }

    /// A supervisor whose children run on `runtime`.
    #[must_use]
    pub fn on(runtime: Handle) -> Self {
        DynamicSupervisor {
            inner: Arc::new(DynInner {
                runtime,
                state: Mutex::default(),
            }),
        }
    }

    /// The handle a hosted branch keeps on this supervisor.
    fn as_owner(&self) -> std::sync::Weak<dyn Owner> {
        let inner: Arc<dyn Owner> = Arc::clone(&self.inner) as Arc<dyn Owner>;
        Arc::downgrade(&inner)
    }

    fn state(&self) -> MutexGuard<'_, DynState> {
        // Nothing panics while the lock is held.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a server under this supervisor (the same as `builder.supervisor(&sup).start()`).
    ///
    /// # Errors
    /// As [`Builder::start`], and [`StartError::SupervisorStopped`] after [`shutdown`](Self::shutdown).
    pub async fn start_child<S: Server, C: From<Client<S>>>(
        &self,
        builder: Builder<S, C>,
    ) -> Result<C, StartError> {
        builder.supervisor(self).start().await
    }

    /// Records a branch being started as a child; the runtime to start it on, or `None` after
    /// shutdown.
    pub(crate) fn adopt<S: Server>(&self, client: &Client<S>) -> Option<Handle> {
        let mut state = self.state();
        if state.shut_down {
            return None;
        }
        client.branch().tasks().owner = Some(self.as_owner());
        state
            .children
            .insert(client.branch().id(), Arc::new(Hosting(client.clone())));
        Some(self.inner.runtime.clone())
    }

    fn find(&self, branch: BranchId) -> Option<Arc<dyn Hosted>> {
        self.state().children.get(&branch).map(Arc::clone)
    }

    /// Stops one child normally (its `terminate` runs) and waits until it has ended.
    ///
    /// # Errors
    /// [`StopError::NotAChild`] if the branch is not supervised here, [`StopError::AlreadyStopped`].
    pub async fn terminate_child(&self, branch: &Branch) -> Result<(), StopError> {
        if self.find(branch.id()).is_none() {
            return Err(StopError::NotAChild);
        }
        branch.stop().await
    }

    /// The branches supervised here, in the order they were started (a branch transferred here
    /// takes the place its first start gave it).
    #[must_use]
    pub fn which_children(&self) -> Vec<Branch> {
        self.state()
            .children
            .values()
            .map(|hosted| hosted.branch().clone())
            .collect()
    }

    /// Stops every child with [`Exit::Shutdown`] and refuses new ones; resolves once all have ended.
    /// Called from a child's own handler, it cannot wait for that child: the child is stopped
    /// once its handler returns, and this resolves when the others have ended.
    pub async fn shutdown(&self) {
        let children: Vec<_> = {
            let mut state = self.state();
            state.shut_down = true;
            state
                .children
                .values()
                .map(|hosted| hosted.branch().clone())
                .collect()
        };
        for child in &children {
            // A child that ended meanwhile is fine: it is ended either way.
            if let Err(StopError::CallingSelf) = child.stop_as(Exit::Shutdown).await {
                // Queued, not awaited: it runs once the calling handler has returned.
                let _ = child.control(Control::Stop(Exit::Shutdown));
            }
        }
    }

    /// `true` after [`shutdown`](Self::shutdown).
    #[must_use]
    pub fn is_shut_down(&self) -> bool {
        self.state().shut_down
    }

    fn same(&self, other: &DynamicSupervisor) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Default for DynamicSupervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for DynamicSupervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("DynamicSupervisor")
            .field("children", &state.children.len())
            .field("shut_down", &state.shut_down)
            .finish()
    }
}

/// Moves the live branch named `name` from `from` to `to`, the counterpart of `Peeper.transfer/3`.
///
/// The worker finishes the messages queued before the request, then the branch moves with its
/// state, its options, its listener (which hears `on_terminate` with [`Exit::Transferred`] first)
/// and every message queued after; a new worker starts on `to`'s runtime and runs `init`
/// (the incarnation goes up by one). Every client and the registered name keep working
/// throughout; messages sent meanwhile wait in the mailbox.
///
/// # Errors
/// [`TransferError::NotFound`], [`WrongSource`](TransferError::WrongSource),
/// [`Ambiguous`](TransferError::Ambiguous), [`TargetStopped`](TransferError::TargetStopped),
/// [`SameSupervisor`](TransferError::SameSupervisor): the branch stays where it was.
/// [`Stopped`](TransferError::Stopped): the branch ended before it could move.
///
/// ```
/// # use peeper::{Context, Server, Tracked};
/// # #[derive(Clone, Default)] struct Counter(u64);
/// # impl Server for Counter { type Call = (); type Reply = u64; type Cast = (); type Info = (); type Keep = peeper::keep::Snapshot;
/// #   async fn handle_call(s: &mut Tracked<Self>, _: (), _: &mut Context<Self>) -> u64 { s.0 }
/// #   async fn handle_cast(s: &mut Tracked<Self>, _: (), _: &mut Context<Self>) { s.0 += 1 } }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use peeper::DynamicSupervisor;
///
/// let (from, to) = (DynamicSupervisor::new(), DynamicSupervisor::new());
/// let counter = from.start_child(Counter::builder(Counter::default()).name("moving")).await?;
/// counter.cast(())?;
///
/// peeper::transfer("moving", &from, &to).await?;
/// assert!(from.which_children().is_empty());
/// assert_eq!(to.which_children().len(), 1);
/// assert_eq!(counter.call(()).await?, 1);   // same client, same state
/// # Ok(()) }
/// ```
pub async fn transfer(
    name: &str,
    from: &DynamicSupervisor,
    to: &DynamicSupervisor,
) -> Result<(), TransferError> {
    if from.same(to) {
        return Err(TransferError::SameSupervisor);
    }
    if to.is_shut_down() {
        return Err(TransferError::TargetStopped);
    }
    let hosted = {
        let state = from.state();
        let mut named = state
            .children
            .values()
            .filter(|hosted| hosted.branch().name() == Some(name));
        match (named.next(), named.next()) {
            (Some(hosted), None) => Arc::clone(hosted),
            (Some(_), Some(_)) => {
                return Err(TransferError::Ambiguous {
                    name: name.to_owned(),
                });
            }
            (None, _) if registry::is_registered(name) => {
                return Err(TransferError::WrongSource {
                    name: name.to_owned(),
                });
            }
            (None, _) => {
                return Err(TransferError::NotFound {
                    name: name.to_owned(),
                });
            }
        }
    };
    // From its own handler, the handoff would wait for the handler that asked for it.
    if crate::handling::is_handling(hosted.branch().id()) {
        return Err(TransferError::CallingSelf);
    }
    let parts = hosted.hand_over().await?;
    let branch = hosted.branch().clone();
    from.inner.forget(branch.id());
    let moved = {
        let mut state = to.state();
        if !state.shut_down {
            state.children.insert(branch.id(), Arc::clone(&hosted));
            branch.tasks().owner = Some(to.as_owner());
        }
        !state.shut_down
    };
    if !moved {
        // The target shut down while the branch was being handed over: it goes back home.
        from.state()
            .children
            .insert(branch.id(), Arc::clone(&hosted));
        parts.spawn_on(&from.inner.runtime);
        return Err(TransferError::TargetStopped);
    }
    parts.spawn_on(&to.inner.runtime);
    tracing::info!(server = branch.server(), name, id = %branch.id(), "transferred");
    Ok(())
}

impl fmt::Debug for DynInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynInner").finish_non_exhaustive()
    }
}
