//! The keeper: the cell that holds the last good state and the mailbox between workers, and,
//! when the server has a listener, the task that runs it.
//!
//! The cell sits behind an async mutex that each worker locks **once**, for its whole life. While
//! the worker runs, keeping the state is a plain write into the cell (no message, no wake-up);
//! when the worker ends, for any reason (a panic it caught, an abort by `kill_worker`), its lock
//! guard is dropped and the cell is intact for the next worker. The kept copy is written only by
//! runtime code, after a handler completed, through a scratch copy that is swapped in only once it
//! is complete: no handler bug can damage it.

use std::any::Any;
use std::mem;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use crate::erased::{self, BoxFuture, Erased, catch, catch_once};
use crate::keep::Keep;
use crate::mailbox::{Envelope, Inbox as Mailbox};
use crate::panics::panic_message;
use crate::retained::Retained;
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
    /// with it (its request was consumed with the `Stop` message). Not set for the default
    /// `terminate`, which has no await for a kill to land at.
    pub(crate) stopping: Option<Box<Exit>>,
    pub(crate) mailbox: Mailbox<Envelope<S>>,
    /// The fingerprint of the stored bytes the live state was just read from (a start on a
    /// stored state, a revival): the first `init` that leaves it as it was need not write it
    /// back. Taken by it.
    pub(crate) from_store: Option<u64>,
    /// The records of calls made with an idempotency key, from the first such call on: they
    /// survive a crash of the worker as the kept state does.
    pub(crate) retained: Option<Box<Retained>>,
}

impl<S: Server> Cell<S> {
    /// The mailbox, out of a cell whose state is being dropped (hibernation).
    pub(crate) fn into_mailbox(self) -> Mailbox<Envelope<S>> {
        self.mailbox
    }

    pub(crate) fn new(state: S, mailbox: Mailbox<Envelope<S>>) -> Self {
        Cell {
            live: Tracked::new(state),
            good: None,
            scratch: None,
            needs_restore: false,
            stopping: None,
            mailbox,
            from_store: None,
            retained: None,
        }
    }

    /// Keeps the live state as the last good one and tells the listener about it.
    ///
    /// # Errors
    /// The state's `Clone` (or `Project`) panicked: the good copy is untouched, and the caller
    /// treats the handler as crashed.
    #[inline]
    pub(crate) fn commit(&mut self, changes: Option<&Changes<S>>) -> Result<(), Exit> {
        if !S::Keep::COPIES {
            return Ok(());
        }
        let live = &*self.live;
        let scratch = &mut self.scratch;
        if let Err(payload) = catch(&mut || S::Keep::copy(live, scratch)) {
            self.scratch = None;
            return Err(copy_panicked(&*payload));
        }
        mem::swap(&mut self.good, &mut self.scratch);
        if let Some(changes) = changes
            && let Some(new) = S::Keep::share(&mut self.good)
        {
            changes.send(new);
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
            catch_once(|| S::Keep::restore(good, live)).map_err(|payload| Exit::InitFailed {
                message: format!(
                    "restoring the kept state panicked: {}",
                    panic_message(&*payload)
                ),
            })?;
        }
        self.needs_restore = false;
        Ok(())
    }

    /// Replaces the last good state with `kept` and brings the live state to it (crash-loop reset).
    pub(crate) fn reset_to(&mut self, kept: &Kept<S>) -> Result<(), Exit> {
        let live = self.live.untracked_mut();
        catch_once(|| S::Keep::restore(kept, live)).map_err(|payload| Exit::InitFailed {
            message: format!("resetting the state panicked: {}", panic_message(&*payload)),
        })?;
        self.needs_restore = false;
        self.commit(None)
    }
}

/// What the listener's task hears, in the order it happened.
pub(crate) enum Event<S: Server> {
    /// A handler completed and changed the state; this is the new kept state, and how many
    /// changes before it the listener will not hear of (it fell behind; see [`Backlog`]).
    Changed { new: Kept<S>, skipped: u64 },
    /// The listener fell behind: the latest change waits in the backlog's overflow slot.
    Overflowed,
    /// A worker crashed and `incarnation` replaces it.
    Restart { incarnation: u64, reason: Exit },
    /// The branch ended; the worker is gone and the cell holds the last state.
    Terminate { reason: Exit },
    /// The branch hibernates: hand the listener back without a word to it.
    Hibernate,
}

/// A server's listener, with the loop of the task that runs it.
///
/// The loop is a pointer set where a listener is given ([`Builder::listener`](crate::Builder::listener)):
/// a server without a listener never runs it, and through the pointer its crate does not
/// compile it either.
pub(crate) struct BoxedListener<S: Server> {
    listener: Box<dyn Listener<S>>,
    run: fn(Running<S>) -> Listening<S>,
}

/// Where the branch sends the listener's events, and the listener task's future.
type Listening<S> = (Changes<S>, BoxFuture<'static, Erased>);

/// What the listener's task starts from: the cell, the bound on waiting changes, the listener
/// and the state already kept.
type Running<S> = (SharedCell<S>, usize, BoxedListener<S>, Option<Kept<S>>);

impl<S: Server> BoxedListener<S> {
    pub(crate) fn new(listener: impl Listener<S>) -> Self {
        BoxedListener {
            listener: Box::new(listener),
            run: |(cell, backlog, listener, previous)| {
                let (changes, heard) = inbox(backlog);
                let task = Box::pin(async move {
                    let listener = run(cell, heard, listener, previous).await;
                    Some(Box::new(listener) as Box<dyn Any + Send>)
                });
                (changes, task)
            },
        }
    }

    /// Spawns the listener's task on the current runtime, with at most `backlog` state changes
    /// waiting for it: where to send its events, and the task, which hands the listener back
    /// when it ends, as its (erased) output.
    ///
    /// `previous` is the state already kept (`None` at a first start): the old side of the
    /// first `on_state_changed`.
    pub(crate) fn spawn(
        self,
        cell: SharedCell<S>,
        backlog: usize,
        previous: Option<Kept<S>>,
    ) -> (Changes<S>, JoinHandle<Erased>) {
        let run = self.run;
        let (changes, task) = run((cell, backlog, self, previous));
        (changes, erased::spawn_on(&Handle::current(), task))
    }
}

impl<S: Server> std::ops::Deref for BoxedListener<S> {
    type Target = dyn Listener<S>;

    fn deref(&self) -> &Self::Target {
        &*self.listener
    }
}

/// How many state changes may wait for a slow listener before they are coalesced (see
/// [`Builder::listener_backlog`](crate::Builder::listener_backlog)).
pub(crate) const DEFAULT_LISTENER_BACKLOG: usize = 1_024;

/// The bound on the state changes waiting for the listener.
///
/// Each waiting change pins a copy of the state, so a listener slower than the handlers grew
/// memory without bound. Up to `limit` changes wait in the channel, each heard in order; past
/// that, the newest change replaces the one in the overflow slot (counting the ones it replaced)
/// and one [`Event::Overflowed`] tells the keeper to take it. Until the keeper has taken it,
/// every change goes to the slot, and any other event flushes the slot into the channel first:
/// so the listener hears changes, restarts and the end in the order they happened, with at most
/// `limit + 1` copies waiting, and a count of what it missed.
pub(crate) struct Backlog<S: Server> {
    limit: usize,
    /// Changes in the channel, not yet heard.
    waiting: std::sync::atomic::AtomicUsize,
    overflow: std::sync::Mutex<Option<(Kept<S>, u64)>>,
}

impl<S: Server> Backlog<S> {
    fn overflow(&self) -> std::sync::MutexGuard<'_, Option<(Kept<S>, u64)>> {
        // Only an `Option` is replaced under this lock.
        self.overflow
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Where a worker sends state changes for the listener, and the branch its other events.
///
/// A trait object: the channel behind it is made only where a listener is given (see
/// [`BoxedListener`]), so a server without a listener does not compile it.
pub(crate) struct Changes<S: Server>(Arc<dyn Sink<S>>);

/// The sending side of a listener's inbox.
trait Sink<S: Server>: Send + Sync {
    fn changed(&self, new: Kept<S>);
    fn event(&self, event: Event<S>);
}

impl<S: Server> Clone for Changes<S> {
    fn clone(&self) -> Self {
        Changes(Arc::clone(&self.0))
    }
}

impl<S: Server> Changes<S> {
    fn send(&self, new: Kept<S>) {
        self.0.changed(new);
    }

    /// Sends `event` (a restart, the end) after whatever waits in the overflow slot. The
    /// listener's task may have ended already (the branch is ending): nothing to tell then.
    pub(crate) fn send_event(&self, event: Event<S>) {
        self.0.event(event);
    }
}

/// A listener's inbox, seen from the branch.
struct Inbox<S: Server> {
    events: mpsc::UnboundedSender<Event<S>>,
    backlog: Arc<Backlog<S>>,
}

impl<S: Server> Sink<S> for Inbox<S> {
    fn changed(&self, new: Kept<S>) {
        use std::sync::atomic::Ordering;
        let mut overflow = self.backlog.overflow();
        if let Some((waiting, skipped)) = &mut *overflow {
            *waiting = new;
            *skipped += 1;
            return;
        }
        // The keeper may have ended already (the branch is ending): nothing to tell then.
        if self.backlog.waiting.load(Ordering::Acquire) >= self.backlog.limit {
            *overflow = Some((new, 0));
            let _ = self.events.send(Event::Overflowed);
        } else {
            self.backlog.waiting.fetch_add(1, Ordering::AcqRel);
            let _ = self.events.send(Event::Changed { new, skipped: 0 });
        }
    }

    fn event(&self, event: Event<S>) {
        let mut overflow = self.backlog.overflow();
        if let Some((new, skipped)) = overflow.take() {
            let _ = self.events.send(Event::Changed { new, skipped });
        }
        let _ = self.events.send(event);
    }
}

/// The listener task's side of its inbox.
struct Heard<S: Server> {
    events: mpsc::UnboundedReceiver<Event<S>>,
    backlog: Arc<Backlog<S>>,
}

/// A listener's inbox: a channel of every event, in order, with at most `backlog` state changes
/// waiting in it. The sending side is the [`Changes`] handle, for the branch's task (every event)
/// and for its workers (state changes).
fn inbox<S: Server>(backlog: usize) -> (Changes<S>, Heard<S>) {
    let (events, heard) = mpsc::unbounded_channel();
    let backlog = Arc::new(Backlog {
        limit: backlog.max(1),
        waiting: std::sync::atomic::AtomicUsize::new(0),
        overflow: std::sync::Mutex::new(None),
    });
    let changes = Changes(Arc::new(Inbox {
        events,
        backlog: Arc::clone(&backlog),
    }));
    (
        changes,
        Heard {
            events: heard,
            backlog,
        },
    )
}

impl<S: Server> Heard<S> {
    async fn recv(&mut self) -> Option<Event<S>> {
        let event = self.events.recv().await?;
        Some(match event {
            Event::Changed { .. } => {
                self.backlog
                    .waiting
                    .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                event
            }
            // Taken already if another event flushed it: nothing to hear then.
            Event::Overflowed => match self.backlog.overflow().take() {
                Some((new, skipped)) => Event::Changed { new, skipped },
                None => Event::Overflowed,
            },
            event => event,
        })
    }
}

/// The listener's task: runs the listener in event order, then hands it back (a transfer moves
/// it to the next branch).
async fn run<S: Server>(
    cell: SharedCell<S>,
    mut events: Heard<S>,
    listener: BoxedListener<S>,
    mut previous: Option<Kept<S>>,
) -> BoxedListener<S> {
    while let Some(event) = events.recv().await {
        match event {
            Event::Changed { new, skipped } => {
                if skipped > 0 {
                    guarded("on_state_changes_skipped", || {
                        listener.on_state_changes_skipped(skipped);
                    });
                }
                let views = previous
                    .as_ref()
                    .and_then(S::Keep::show)
                    .zip(S::Keep::show(&new));
                if let Some((old, new)) = views {
                    guarded("on_state_changed", || listener.on_state_changed(&old, &new));
                }
                previous = Some(new);
            }
            Event::Overflowed => {}
            Event::Restart {
                incarnation,
                reason,
            } => guarded("on_restart", || listener.on_restart(incarnation, &reason)),
            Event::Terminate { reason } => {
                // Boxed: the lock's future would otherwise sit in the task all its life.
                let cell = Box::pin(cell.lock()).await;
                guarded("on_terminate", || {
                    listener.on_terminate(&reason, &cell.live);
                });
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
    if let Err(payload) = catch_once(call) {
        let payload: &(dyn Any + Send) = &*payload;
        tracing::error!(callback, panic = %panic_message(payload), "listener panicked; the event is skipped");
    }
}

/// The crash of a state whose copy panicked. Out of line: it is never taken in practice, and
/// formatting inline would make every commit set up a larger stack frame.
#[cold]
#[inline(never)]
fn copy_panicked(payload: &(dyn Any + Send)) -> Exit {
    Exit::Panicked {
        message: format!("keeping the state panicked: {}", panic_message(payload)),
    }
}
