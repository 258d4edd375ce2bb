//! Hibernation: an idle durable branch ends its task and drops its state, keeping what it needs
//! to come back in its sleeping slot; the next message or request revives it in a new task.

use std::any::TypeId;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::Mutex;

use super::typed::TypedHalf;
use super::{Bits, Parts, leave, release, spawn};
use crate::branch::{Commands, Sleeper};
use crate::durable::{Durable, DurableKind};
use crate::erased;
use crate::keeper::{BoxedListener, Cell, Event, Kept};
use crate::mailbox::{Envelope, Inbox};
use crate::options::Options;
use crate::store::{Storage, StoreError};
use crate::{Branch, BranchId, Client, Exit, Server, registry};

impl<S: Server> TypedHalf<S> {
    /// Parks an idle branch: its tasks end and its state leaves memory (it is in the store); what
    /// it needs to come back waits in the branch's sleeping slot, and the next message or control
    /// request through any handle revives it (see [`Branch::send_waking`]).
    pub(super) async fn hibernate_branch(self, bits: Bits) {
        let branch = self.client.branch().clone();
        let parts = self.into_parts(bits, Event::Hibernate).await;
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
        // The ended task's waker leaves the channel: the clients keep the channel alive.
        sleeping.mailbox.unhook();
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
        // Empty, and no send can fill it while this lock is held: its buffers go, and the
        // message that revives the branch allocates them again.
        sleeping.mailbox.shrink();
        sleeping.runtime = Some(runtime);
        branch.park(&mut slot, Box::new(sleeping));
        drop(slot);
        tracing::info!(
            server = branch.server(),
            name = branch.name(),
            "hibernating"
        );
        // If nothing outside holds the branch now, the drop of this last handle of its task
        // releases it (see `Sleeper::release`).
        drop(branch);
    }
}

/// A hibernating branch: everything but its state and its tasks.
struct Sleeping<S: Server> {
    mailbox: Inbox<Envelope<S>>,
    client: Client<S>,
    options: Options,
    listener: Option<BoxedListener<S>>,
    initial: Option<Arc<Kept<S>>>,
    incarnation: u64,
    commands: Option<Commands>,
    durable: Option<Box<Durable<S>>>,
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

    /// Loads the state from the store and starts the branch again, with every message that
    /// arrived meanwhile still queued.
    fn revive(self, runtime: &Handle) {
        // Dropped before it has loaded the state (its runtime shut down, before or during the
        // load), the revival ends the branch: its callers hear why instead of waiting forever.
        let reviving = Reviving(Some(self));
        erased::spawn_on(
            runtime,
            Box::pin(async move {
                let mut reviving = reviving;
                // Always there: taken only below, once the state is loaded.
                let this = reviving.0.as_mut()?;
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
                let this = reviving.0.take()?;
                match loaded {
                    Ok(Some(state)) => {
                        let parts = this.into_parts(state);
                        branch
                            .inner
                            .status
                            .send_modify(|status| status.hibernating = false);
                        tracing::info!(server = branch.server(), name = branch.name(), "revived");
                        // In a task of its own, not this one: this one's future has room for the
                        // claim and the load, and a revived server would keep that room (the size
                        // of a store's futures) for the rest of its life.
                        spawn(parts, &Handle::current());
                    }
                    Ok(None) => this.finish_unrevived(Exit::ReviveFailed {
                        message: "the stored state is gone".to_owned(),
                    }),
                    // Another node started the server while it slept here: it lives on there.
                    Err(StoreError::OwnedElsewhere { node, .. }) => {
                        this.finish_unrevived(Exit::Fenced { owner: Some(node) });
                    }
                    Err(error) => this.finish_unrevived(Exit::ReviveFailed {
                        message: error.to_string(),
                    }),
                }
                None
            }),
        );
    }
}

/// A revival under way: its parts until it has loaded the state. Dropped with them still in it,
/// it ends the branch (see [`Sleeping::revive`]); the claim a dropped load had made is given up
/// by its own guard. From the load on, the revival does not await: what follows (the parts, the
/// spawn of the branch's task) runs at once.
struct Reviving<S: Server>(Option<Sleeping<S>>);

impl<S: Server> Drop for Reviving<S> {
    fn drop(&mut self) {
        if let Some(sleeping) = self.0.take() {
            sleeping.finish_unrevived(Exit::ReviveFailed {
                message: "the revival was dropped before it loaded the state: the runtime it runs \
                          on shut down, or the load panicked"
                    .to_owned(),
            });
        }
    }
}

impl<S: Server> Sleeper for Sleeping<S> {
    /// Called by whichever handle takes the sleeping slot: revives on the runtime it slept on.
    fn wake(self: Box<Self>) {
        let runtime = self.runtime.clone().unwrap_or_else(Handle::current);
        self.revive(&runtime);
    }

    fn holds(&self) -> usize {
        // Its client, its control queue, and the registry's client (a durable server has a name).
        2 + usize::from(self.commands.is_some())
    }

    fn release(
        self: Box<Self>,
        names: &mut registry::Names,
    ) -> Result<Box<dyn Send>, Box<dyn Sleeper>> {
        let mut this = self;
        let server = TypeId::of::<S>();
        let id = this.client.branch().id();
        let registered = |name: Option<&str>| name.is_some_and(|n| names.is_running(server, n, id));
        let durable = match this.durable.take() {
            // A remote server's store forwards its mailbox when it moves: it stays in place.
            Some(durable)
                if durable.forward.is_none() && registered(this.options.name.as_deref()) =>
            {
                durable
            }
            durable => {
                this.durable = durable;
                return Err(this);
            }
        };
        // The name is the registry's key; `registered` found it there.
        let name = this.options.name.take().unwrap_or_default();
        let Sleeping {
            mailbox,
            client,
            options,
            listener,
            initial,
            incarnation,
            commands,
            runtime,
            ..
        } = *this;
        let branch = client.branch();
        let (ready, restarts) = branch.inner.status.read(|s| (s.ready, s.restarts));
        let record = Released {
            id,
            ready,
            restarts,
            options: options.shared(),
            listener,
            initial,
            incarnation,
            // The claim was given up when the branch parked; the revival claims again.
            storage: durable.storage,
            of: durable.of,
            runtime,
        };
        let replaced = names.release(server, &name, Box::new(record));
        Ok(Box::new((mailbox, client, commands, replaced)))
    }
}

/// A durable server released while it hibernated: all that is left of it, in the registry under
/// its name. The first lookup by name revives it ([`registry::Revive`]).
struct Released<S: Server> {
    id: BranchId,
    ready: Option<u64>,
    restarts: u64,
    /// Without the name, which is the registry's key; shared with the released servers started
    /// alike.
    options: Arc<Options>,
    listener: Option<BoxedListener<S>>,
    initial: Option<Arc<Kept<S>>>,
    incarnation: u64,
    storage: Storage,
    of: &'static DurableKind<S>,
    runtime: Option<Handle>,
}

impl<S: Server> registry::Revive for Released<S> {
    fn branch(&self) -> BranchId {
        self.id
    }

    /// Under the registry's lock: a new branch with the same id, name and status, whose client,
    /// returned at once, queues what is sent to it; its state is loaded in a task of its own,
    /// spawned once the lock is let go.
    fn revive(self: Box<Self>, name: &str) -> registry::Revived {
        let Released {
            id,
            ready,
            restarts,
            options,
            listener,
            initial,
            incarnation,
            storage,
            of,
            runtime,
        } = *self;
        let options = Options {
            name: Some(name.to_owned()),
            ..Options::clone(&options)
        };
        let branch = Branch::revived(
            id,
            std::any::type_name::<S>(),
            name.to_owned(),
            ready,
            restarts,
        );
        let (mailbox, inbox) = crate::mailbox::channel();
        let client = Client::new(mailbox, branch.clone());
        let runtime = runtime.unwrap_or_else(Handle::current);
        // Calls queued before the task runs arm their timeout for the runtime it will run on.
        branch.runs_on(&runtime);
        let sleeping = Sleeping {
            mailbox: inbox,
            client: client.clone(),
            options,
            listener,
            initial,
            incarnation,
            commands: None,
            durable: Some(Box::new(Durable::new(storage, of))),
            runtime: None,
        };
        registry::Revived {
            client: Box::new(client),
            start: Box::new(move || sleeping.revive(&runtime)),
        }
    }
}

impl<S: Server> Sleeping<S> {
    /// Ends a branch that could not be revived: every queued caller hears why.
    fn finish_unrevived(mut self, exit: Exit) {
        let branch = self.client.branch().clone();
        tracing::error!(server = branch.server(), name = branch.name(), %exit, "stopped");
        branch
            .inner
            .status
            .send_modify(|status| status.exit = Some(exit.clone()));
        self.mailbox.close_refusing(&exit);
        leave::<S>(&branch);
        // Let go of the store before saying the branch is gone (see `end`).
        drop(self.durable.take());
        branch.inner.status.send_modify(|status| {
            status.hibernating = false;
            status.finished = true;
        });
    }
}
