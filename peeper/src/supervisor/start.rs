//! Starting a branch: the checks of its options, the claim and the load of a durable server's
//! stored state (every await guarded: a start dropped there gives its claim up), the name, the
//! spawn, and the wait for the first `init`.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::durably::{ClaimAndLoad, durable_paths};
use super::{Parts, spawn};
use crate::branch::Control;
use crate::erased::BoxFuture;
use crate::keep::Keep;
use crate::keeper::Cell;
use crate::options::Options;
use crate::{Branch, Builder, Client, CrashLoop, Exit, Server, StartError, registry};

impl<S: Server, C: From<Client<S>>> Builder<S, C> {
    /// Starts the branch and returns once the first `init` has completed.
    ///
    /// A server without `#[init]`, with no store and no listener, has nothing to wait for (its
    /// first `init` changes nothing and cannot fail): its start returns as soon as its task is
    /// spawned, and messages sent from then on are queued for it as usual.
    ///
    /// Dropped before it returns (by a `select!` or a timeout of the caller's), the start is
    /// undone: the name is freed, a claim is given up, and the worker is killed at its next
    /// await.
    ///
    /// # Errors
    /// [`StartError::NameTaken`]; [`StartError::Init`] if the first `init` failed, panicked,
    /// asked to stop, or its worker was killed; [`StartError::Ignored`] if it returned
    /// [`Ignore`](crate::Ignore); [`StartError::Timeout`] after
    /// [`start_timeout`](Builder::start_timeout); [`StartError::Store`] if a durable server's
    /// stored state could not be claimed or read; [`StartError::SupervisorStopped`]; or
    /// [`StartError::InvalidOptions`].
    pub async fn start(self) -> Result<C, StartError> {
        start(self).await.map(C::from)
    }
}

/// Starts a branch from `builder`; the client once the first `init` has completed.
///
/// Only what needs the server's type is here, with two awaits: the durable server's claim and
/// load, and the end of the start. The checks, the refusals and the wait for `init` are written
/// once for every server type ([`check`], [`Starting`]).
pub(crate) async fn start<S: Server, C>(builder: Builder<S, C>) -> Result<Client<S>, StartError> {
    let Builder {
        state,
        options,
        listener,
        supervisor,
        mut durable,
        ..
    } = builder;
    check(
        &options,
        S::Keep::COPIES,
        listener.as_ref().is_some_and(|l| l.wants_state_changes()),
        durable.is_some(),
    )?;
    // Every await from the claim to the spawn is guarded: dropped there (a start under a
    // timeout), the start gives its claim up.
    let timeout = options.start_timeout.unwrap_or_default();
    let deadline = options
        .start_timeout
        .map(|timeout| Instant::now() + timeout);
    // A stored state wins over the one given: this is how a durable server comes back.
    let loaded = match (&mut durable, &options.name) {
        (Some(durable), Some(name)) => {
            let claim_and_load = durable_paths(durable).claim_and_load;
            Some(
                claim_and_load(ClaimAndLoad {
                    durable,
                    name,
                    deadline,
                    timeout,
                })
                .await?,
            )
        }
        // Without a store; `check` refused a store without a name.
        _ => None,
    };
    let (state, claim, from_store) = match loaded {
        Some((claim, Some((stored, fingerprint)))) => (stored, Some(claim), Some(fingerprint)),
        Some((claim, None)) => (state, Some(claim), None),
        None => (state, None, None),
    };
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
    let (mailbox, inbox) = crate::mailbox::channel();
    let client = Client::new(mailbox, branch.clone());
    let starting = Starting {
        branch: branch.clone(),
        unregister: registry::unregister::<S>,
        claim,
        armed: true,
    };
    // A server whose `init` is the default one, with no store and no listener, has nothing to
    // wait for: its first `init` changes nothing and cannot fail (nor can a write or a listener
    // refuse it). Its state is kept here, as that `init` would keep it, and the start returns
    // once the task is spawned, as a plain actor's does.
    let immediate = S::__INIT_IS_DEFAULT && durable.is_none() && listener.is_none();
    let launched = (|| {
        if let Some(name) = &options.name {
            registry::register(name, &client).map_err(|taken| (taken, false))?;
        }
        let mut cell = Cell::new(state, inbox);
        cell.from_store = from_store;
        if immediate {
            cell.commit(None)
                .map_err(|exit| (StartError::Init(exit), true))?;
            branch
                .inner
                .status
                .send_modify(|status| status.ready = Some(0));
        }
        let runtime = match &supervisor {
            Some((supervisor, adopt)) => {
                adopt(supervisor, &client).ok_or((StartError::SupervisorStopped, true))?
            }
            None => Handle::current(),
        };
        let parts = Parts {
            cell: Arc::new(Mutex::new(cell)),
            client: client.clone(),
            options,
            listener,
            initial: initial.flatten(),
            incarnation: 0,
            commands: None,
            durable: durable.map(Box::new),
        };
        spawn(parts, &runtime);
        Ok(())
    })();
    match launched {
        // Done at once, without an allocation: most servers start this way.
        Ok(()) if immediate => starting.done(),
        launched => starting.finish(launched, deadline, timeout).await?,
    }
    Ok(client)
}

/// The options of a start that cannot work together, refused before anything is made.
fn check(
    options: &Options,
    copies: bool,
    wants_state_changes: bool,
    durable: bool,
) -> Result<(), StartError> {
    let refuse = |why| Err(StartError::InvalidOptions(why));
    if options.crash_loop == CrashLoop::ResetToInitial && !copies {
        return refuse(
            "`CrashLoop::ResetToInitial` needs a strategy that keeps a copy; `InPlace` keeps none",
        );
    }
    if !copies && wants_state_changes {
        return refuse(
            "`InPlace` keeps no copy of the state, so the listener's `on_state_changed` could never \
             be called: keep with `Snapshot` or `Projection`, or return `false` from \
             `Listener::wants_state_changes`",
        );
    }
    if options.idle_after.is_some() && !durable {
        return refuse(
            "`idle_after` needs a store (`Builder::store`): a hibernating server keeps its state there",
        );
    }
    if durable && options.name.is_none() {
        return refuse(
            "a durable server needs a name (`Builder::name`): its stored state is keyed by it",
        );
    }
    Ok(())
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
        let branch = &self.branch;
        tracing::info!(server = branch.server(), name = branch.name(), id = %branch.id(), "started");
    }

    /// Ends a start that was not done at once: `launched` is whether the branch was spawned
    /// (then it waits for the first `init`), else why not, and whether its name was registered.
    /// Not generic: see [`erased`](crate::erased).
    fn finish(
        self,
        launched: Result<(), (StartError, bool)>,
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), StartError>> {
        match launched {
            Ok(()) => self.wait(deadline, timeout),
            Err((error, registered)) => {
                let refused = self.refused(error, registered);
                Box::pin(async move { Err(refused.await) })
            }
        }
    }

    /// The start failed before the branch was spawned: frees the name if `registered`, and
    /// gives the claim up, waiting for the release.
    fn refused(mut self, error: StartError, registered: bool) -> BoxFuture<'static, StartError> {
        self.armed = false;
        if registered && let Some(name) = self.branch.name() {
            (self.unregister)(name, self.branch.id());
        }
        let claim = self.claim.take();
        Box::pin(async move {
            if let Some(claim) = claim {
                claim.release().await;
            }
            error
        })
    }

    /// Waits for the first `init` of the spawned branch, within `deadline`. Until it has
    /// completed, the start is still the caller's: dropped here, it takes the branch down with
    /// it rather than leave a server running that nobody asked to wait for.
    fn wait(
        self,
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), StartError>> {
        Box::pin(async move {
            match within(deadline, self.branch.ready()).await {
                Some(Ok(())) => {}
                Some(Err(Exit::Ignored)) => return Err(StartError::Ignored),
                Some(Err(exit)) => return Err(StartError::Init(exit)),
                None => {
                    self.undo().await;
                    return Err(StartError::Timeout(timeout));
                }
            }
            self.done();
            Ok(())
        })
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
        if branch.inner.status.read(|s| s.ready.is_none()) {
            let _ = branch.control(Control::KillWorker);
        }
        branch.ended().await;
        if let Some(claim) = claim {
            claim.release().await;
        }
    }
}

/// `future`, or `None` if `deadline` passes first.
pub(super) async fn within<F: std::future::Future>(
    deadline: Option<Instant>,
    future: F,
) -> Option<F::Output> {
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
