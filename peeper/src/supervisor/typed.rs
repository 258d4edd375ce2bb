//! The supervision's typed half: what needs the server's type (the cell, the client, the
//! listener, the store), behind the [`Typed`] vtable, so that the supervision itself is compiled
//! once, in peeper, rather than in the user's crate for every server type.

use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::durably::durable_paths;
use super::{Bits, HandOver, Parted, Parts};
use crate::branch::Handoff;
use crate::durable::Durable;
use crate::erased::{BoxFuture, Erased};
use crate::keeper::{self, BoxedListener, Event, Kept, SharedCell};
use crate::mailbox::Envelope;
use crate::options::Options;
use crate::worker::{Persistence, Worker, WorkerEnd};
use crate::{Client, Exit, Server};

/// What the supervision asks of its server's type. Each method is compiled once per server type;
/// the supervision that calls them, once for all.
pub(super) trait Typed: Send {
    /// The worker of `incarnation`, boxed: it locks the cell for its life and runs the handlers.
    fn worker(&mut self, incarnation: u64) -> BoxFuture<'static, WorkerEnd>;

    /// The branch's options.
    fn options(&self) -> &Options;

    /// Queues a control request in the mailbox, behind what is queued already.
    fn post(&mut self, post: Post);

    /// After a crash: marks the cell for restore, and takes the exit of a stop that was running
    /// `terminate` when the worker was killed, if there is one.
    fn crashed(&mut self) -> BoxFuture<'_, Option<Exit>>;

    /// Whether there is a kept copy of the starting state, for [`CrashLoop::ResetToInitial`].
    ///
    /// [`CrashLoop::ResetToInitial`]: crate::CrashLoop::ResetToInitial
    fn has_initial(&self) -> bool;

    /// Brings the state back to the starting one (the crash-loop policy's reset).
    fn reset(&mut self) -> BoxFuture<'_, Result<(), Exit>>;

    /// Tells the listener, if there is one, that `incarnation` starts after `reason`.
    fn tell_restart(&self, incarnation: u64, reason: Exit);

    /// Ends the branch for good (see [`TypedHalf::end_branch`]).
    fn end(self: Box<Self>, bits: Bits, exit: Exit, terminate: bool) -> BoxFuture<'static, ()>;

    /// Whether `handoff` was asked for with this server's type.
    fn hands_over(&self, handoff: &Handoff) -> bool;

    /// Hands the branch's parts to a transfer; the worker has stopped at a message boundary.
    fn hand_over(self: Box<Self>, bits: Bits, handoff: Handoff) -> BoxFuture<'static, ()>;

    /// Whether the branch can hibernate: it has a store.
    fn can_hibernate(&self) -> bool;

    /// Parks the idle branch until its next message (see [`TypedHalf::hibernate_branch`]).
    fn hibernate(self: Box<Self>, bits: Bits) -> BoxFuture<'static, ()>;
}

/// A control request that goes through the mailbox.
pub(super) enum Post {
    Stop(Exit),
    Handoff,
}

/// The typed half of a branch's supervision.
pub(super) struct TypedHalf<S: Server> {
    pub(super) cell: SharedCell<S>,
    pub(super) client: Client<S>,
    /// The link to the listener's task; only with a listener (boxed: most servers have none).
    pub(super) listening: Option<Box<Listening<S>>>,
    pub(super) durable: Option<Box<Durable<S>>>,
    pub(super) initial: Option<Arc<Kept<S>>>,
    pub(super) options: Options,
}

/// A branch's link to its listener's task.
pub(super) struct Listening<S: Server> {
    /// Every event (restarts, the end) goes through here, in order.
    events: keeper::Changes<S>,
    /// Given to each worker: state changes, if the listener wants them.
    changes: Option<keeper::Changes<S>>,
    /// The listener's task, which hands the listener back when it ends (spawned through the
    /// one non-generic path, its output erased: see [`erased`](crate::erased)).
    task: JoinHandle<Erased>,
}

impl<S: Server> Listening<S> {
    /// Starts the listener's task on the current runtime, from the kept state `previous`.
    pub(super) fn start(
        listener: BoxedListener<S>,
        cell: &SharedCell<S>,
        backlog: usize,
        previous: Option<Kept<S>>,
    ) -> Box<Self> {
        let wants_changes = listener.wants_state_changes();
        let (events, task) = listener.spawn(Arc::clone(cell), backlog, previous);
        let changes = wants_changes.then(|| events.clone());
        Box::new(Listening {
            events,
            changes,
            task,
        })
    }

    /// Tells the listener `last` (the end, a hibernation, a transfer), lets its task end, and
    /// takes the listener back.
    pub(super) async fn finish(self: Box<Self>, last: Event<S>) -> Option<BoxedListener<S>> {
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

impl<S: Server> Typed for TypedHalf<S> {
    fn worker(&mut self, incarnation: u64) -> BoxFuture<'static, WorkerEnd> {
        let options = &self.options;
        let persistence =
            self.durable
                .as_deref()
                .zip(options.name.as_deref())
                .map(|(durable, name)| {
                    let key = durable.key(name);
                    let hooks = durable_paths(durable).worker;
                    Box::new(Persistence::new(durable, key, options.write, hooks))
                });
        let worker = Worker {
            incarnation,
            client: self.client.clone(),
            changes: self
                .listening
                .as_ref()
                .and_then(|listening| listening.changes.clone()),
            persistence,
            idle_after: options.idle_after,
            retention: options.retention,
        };
        Box::pin(worker.run(Arc::clone(&self.cell)))
    }

    fn options(&self) -> &Options {
        &self.options
    }

    fn post(&mut self, post: Post) {
        let envelope = match post {
            Post::Stop(Exit::Normal) => Envelope::Stop(None),
            Post::Stop(reason) => Envelope::Stop(Some(Box::new(reason))),
            Post::Handoff => Envelope::Handoff,
        };
        let _ = self.client.enqueue(envelope);
    }

    fn crashed(&mut self) -> BoxFuture<'_, Option<Exit>> {
        Box::pin(async move {
            let mut cell = self.cell.lock().await;
            cell.needs_restore = true;
            cell.stopping.take().map(|exit| *exit)
        })
    }

    fn has_initial(&self) -> bool {
        self.initial.is_some()
    }

    fn reset(&mut self) -> BoxFuture<'_, Result<(), Exit>> {
        Box::pin(async move {
            match self.initial.as_ref().map(Arc::clone) {
                Some(initial) => self.cell.lock().await.reset_to(&initial),
                None => Ok(()),
            }
        })
    }

    fn tell_restart(&self, incarnation: u64, reason: Exit) {
        if let Some(listening) = &self.listening {
            listening.events.send_event(Event::Restart {
                incarnation,
                reason,
            });
        }
    }

    fn end(self: Box<Self>, bits: Bits, exit: Exit, terminate: bool) -> BoxFuture<'static, ()> {
        Box::pin(self.end_branch(bits, exit, terminate))
    }

    fn hands_over(&self, handoff: &Handoff) -> bool {
        handoff.hand_over.is::<HandOver<S>>()
    }

    fn hand_over(self: Box<Self>, bits: Bits, handoff: Handoff) -> BoxFuture<'static, ()> {
        let Some(hand_over) = handoff.hand_over.downcast_ref::<HandOver<S>>() else {
            unreachable!("the supervision asks `hands_over` first");
        };
        (hand_over.0)(*self, bits, handoff.reply)
    }

    fn can_hibernate(&self) -> bool {
        self.durable.is_some()
    }

    fn hibernate(self: Box<Self>, bits: Bits) -> BoxFuture<'static, ()> {
        let Some(durable) = self.durable.as_deref() else {
            unreachable!("the supervision asks `can_hibernate` first");
        };
        let hibernate = durable_paths(durable).hibernate;
        hibernate(*self, bits)
    }
}

impl<S: Server> TypedHalf<S> {
    /// Ends this branch's listener with `last` (which says why: hibernation or transfer) and
    /// returns everything the branch needs to start again, as its next incarnation.
    pub(super) async fn into_parts(mut self, bits: Bits, last: Event<S>) -> Parts<S> {
        bits.commands.unhook();
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
            incarnation: bits.incarnation + 1,
            commands: Some(bits.commands),
            durable: self.durable,
        }
    }

    /// Hands the branch's parts to a transfer (see [`HandOver`]).
    pub(super) async fn hand_over_parts(self, bits: Bits, reply: Parted) {
        let parts = self
            .into_parts(
                bits,
                Event::Terminate {
                    reason: Exit::Transferred,
                },
            )
            .await;
        if let Err(parts) = reply.send(Box::new(parts)) {
            // The transfer gave up waiting: the branch must not vanish, so it restarts here.
            parts.spawn_on(&Handle::current());
        }
    }
}
