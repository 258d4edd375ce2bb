//! The keeper: the cell that holds the last good state and the mailbox between workers, and the
//! task that owns it and runs the listener.
//!
//! The cell sits behind an async mutex that each worker locks **once**, for its whole life. While
//! the worker runs, keeping the state is a plain write into the cell (no message, no wake-up);
//! when the worker ends, for any reason (a panic it caught, an abort by `kill_worker`), its lock
//! guard is dropped and the cell is intact for the next worker. The kept copy is written only by
//! runtime code, after a handler completed, through a scratch copy that is swapped in only once it
//! is complete: no handler bug can damage it.

use std::any::Any;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::exit::panic_message;
use crate::keep::Keep;
use crate::mailbox::Envelope;
use crate::{Exit, Listener, Server, Tracked};

/// What a strategy keeps for server `S`.
pub(crate) type Kept<S> = <<S as Server>::Keep as Keep<S>>::Kept;

pub(crate) type SharedCell<S> = Arc<Mutex<Cell<S>>>;

/// Everything of a branch that outlives its workers.
pub(crate) struct Cell<S: Server> {
    /// The live state, borrowed by the worker.
    pub(crate) live: Tracked<S>,
    /// The state after the last completed handler (`None` with `InPlace`).
    pub(crate) good: Option<Kept<S>>,
    /// Where the next copy is made before it is swapped into `good`.
    scratch: Option<Kept<S>>,
    /// Set after a crash: the next worker brings `live` back to `good` before its `init`.
    pub(crate) needs_restore: bool,
    /// Set when `terminate` starts: the branch is ending with this exit. It lives here, not in
    /// the worker, so that a worker killed while its `terminate` awaits cannot take the stop
    /// with it (its request was consumed with the `Stop` message).
    pub(crate) stopping: Option<Exit>,
    pub(crate) mailbox: mpsc::UnboundedReceiver<Envelope<S>>,
}

impl<S: Server> Cell<S> {
    /// The mailbox, out of a cell whose state is being dropped (hibernation).
    pub(crate) fn into_mailbox(self) -> mpsc::UnboundedReceiver<Envelope<S>> {
        self.mailbox
    }

    pub(crate) fn new(state: S, mailbox: mpsc::UnboundedReceiver<Envelope<S>>) -> Self {
        Cell {
            live: Tracked::new(state),
            good: None,
            scratch: None,
            needs_restore: false,
            stopping: None,
            mailbox,
        }
    }

    /// Keeps the live state as the last good one and tells the listener about it.
    ///
    /// # Errors
    /// The state's `Clone` (or `Project`) panicked: the good copy is untouched, and the caller
    /// treats the handler as crashed.
    pub(crate) fn commit(
        &mut self,
        changes: Option<&mpsc::UnboundedSender<Event<S>>>,
    ) -> Result<(), Exit> {
        if !S::Keep::COPIES {
            return Ok(());
        }
        let live = &*self.live;
        let scratch = &mut self.scratch;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| S::Keep::copy(live, scratch))) {
            self.scratch = None;
            return Err(Exit::Panicked {
                message: format!("keeping the state panicked: {}", panic_message(&*payload)),
            });
        }
        mem::swap(&mut self.good, &mut self.scratch);
        if let Some(changes) = changes
            && let Some(new) = S::Keep::share(&mut self.good)
        {
            // The keeper may have ended already (the branch is ending): nothing to tell then.
            let _ = changes.send(Event::Changed(new));
        }
        Ok(())
    }

    /// Brings the live state back to the last good one, if a crash left it unknown.
    ///
    /// # Errors
    /// The state's `Clone` (or `Project::rebuild`) panicked.
    pub(crate) fn restore_if_needed(&mut self) -> Result<(), Exit> {
        if !self.needs_restore {
            return Ok(());
        }
        if let Some(good) = &self.good {
            let live = self.live.untracked_mut();
            catch_unwind(AssertUnwindSafe(|| S::Keep::restore(good, live))).map_err(|payload| {
                Exit::InitFailed {
                    message: format!(
                        "restoring the kept state panicked: {}",
                        panic_message(&*payload)
                    ),
                }
            })?;
        }
        self.needs_restore = false;
        Ok(())
    }

    /// Replaces the last good state with `kept` and brings the live state to it (crash-loop reset).
    pub(crate) fn reset_to(&mut self, kept: &Kept<S>) -> Result<(), Exit> {
        let live = self.live.untracked_mut();
        catch_unwind(AssertUnwindSafe(|| S::Keep::restore(kept, live))).map_err(|payload| {
            Exit::InitFailed {
                message: format!("resetting the state panicked: {}", panic_message(&*payload)),
            }
        })?;
        self.needs_restore = false;
        self.commit(None)
    }
}

/// What the keeper task hears, in the order it happened.
pub(crate) enum Event<S: Server> {
    /// A handler completed and changed the state; this is the new kept state.
    Changed(Kept<S>),
    /// A worker crashed and `incarnation` replaces it.
    Restart { incarnation: u64, reason: Exit },
    /// The branch ended; the worker is gone and the cell holds the last state.
    Terminate { reason: Exit },
    /// The branch hibernates: hand the listener back without a word to it.
    Hibernate,
}

pub(crate) type BoxedListener<S> = Box<dyn Listener<S>>;

/// The sending side of the keeper's inbox.
///
/// With a listener, every event goes through an unbounded channel, in order. Without one, only
/// the end matters to the keeper, and a oneshot carries it: an unbounded channel allocates a block
/// of 32 slots up front, which was the largest single cost of an idle server.
pub(crate) enum Events<S: Server> {
    Listening(mpsc::UnboundedSender<Event<S>>),
    Quiet(Option<oneshot::Sender<Event<S>>>),
}

/// The keeper's side of its inbox.
pub(crate) enum Heard<S: Server> {
    Listening(mpsc::UnboundedReceiver<Event<S>>),
    Quiet(oneshot::Receiver<Event<S>>),
}

/// A keeper inbox: a channel of every event for a listener, a oneshot for the end otherwise.
pub(crate) fn inbox<S: Server>(listening: bool) -> (Events<S>, Heard<S>) {
    if listening {
        let (events, heard) = mpsc::unbounded_channel();
        (Events::Listening(events), Heard::Listening(heard))
    } else {
        let (events, heard) = oneshot::channel();
        (Events::Quiet(Some(events)), Heard::Quiet(heard))
    }
}

impl<S: Server> Events<S> {
    /// Tells the keeper; events nobody listens to are dropped here.
    pub(crate) fn send(&mut self, event: Event<S>) {
        match self {
            // The keeper may have ended already (the branch is ending): nothing to tell then.
            Events::Listening(events) => drop(events.send(event)),
            Events::Quiet(end) => {
                if matches!(event, Event::Terminate { .. } | Event::Hibernate)
                    && let Some(end) = end.take()
                {
                    drop(end.send(event));
                }
            }
        }
    }

    /// Where a worker sends state changes, if anybody listens to them.
    pub(crate) fn changes(&self) -> Option<mpsc::UnboundedSender<Event<S>>> {
        match self {
            Events::Listening(events) => Some(events.clone()),
            Events::Quiet(_) => None,
        }
    }
}

impl<S: Server> Heard<S> {
    async fn recv(&mut self) -> Option<Event<S>> {
        match self {
            Heard::Listening(heard) => heard.recv().await,
            // Received at most once: the keeper stops at the end it carries.
            Heard::Quiet(end) => end.await.ok(),
        }
    }
}

/// The keeper task: runs the listener in event order, then hands the listener back (a transfer
/// moves it to the next branch).
///
/// `previous` is the state already kept when the keeper starts (`None` at a first start): the old
/// side of the first `on_state_changed`.
pub(crate) async fn run<S: Server>(
    cell: SharedCell<S>,
    mut events: Heard<S>,
    listener: Option<BoxedListener<S>>,
    mut previous: Option<Kept<S>>,
) -> Option<BoxedListener<S>> {
    while let Some(event) = events.recv().await {
        match event {
            Event::Changed(new) => {
                let views = previous
                    .as_ref()
                    .and_then(S::Keep::view)
                    .zip(S::Keep::view(&new));
                if let (Some(listener), Some((old, new))) = (&listener, views) {
                    guarded("on_state_changed", || listener.on_state_changed(old, new));
                }
                previous = Some(new);
            }
            Event::Restart {
                incarnation,
                reason,
            } => {
                if let Some(listener) = &listener {
                    guarded("on_restart", || listener.on_restart(incarnation, &reason));
                }
            }
            Event::Terminate { reason } => {
                if let Some(listener) = &listener {
                    // Boxed: the lock's future would otherwise sit in every idle keeper's task.
                    let cell = Box::pin(cell.lock()).await;
                    guarded("on_terminate", || {
                        listener.on_terminate(&reason, &cell.live)
                    });
                }
                break;
            }
            Event::Hibernate => break,
        }
    }
    listener
}

/// Runs a listener callback; a panic in it is the listener's bug, logged, and never the end of
/// the keeper (which would be the end of the branch's memory).
fn guarded(callback: &'static str, call: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(call)) {
        let payload: &(dyn Any + Send) = &*payload;
        tracing::error!(callback, panic = %panic_message(payload), "listener panicked; the event is skipped");
    }
}
