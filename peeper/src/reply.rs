//! [`ReplyTo`]: the reply of a call, taken by a handler that answers later (GenServer's
//! `{:noreply, state}` and `GenServer.reply/2`).
//!
//! The handle goes through a [`Gate`] that the worker holds closed until the handler that took it
//! has completed and its state is kept (and, for a durable server that writes through,
//! committed). A reply sent before that, from the handler itself or from a task it spawned, waits
//! in the gate, so it stands for a kept state as a returned reply does; one sent after goes
//! straight to the caller. (A reply sent from a *later* handler of the server is sent when it is
//! sent, before that later handler's own changes are kept: send it after what it confirms, or
//! from a task once a call has confirmed it.) If the handler crashes, the worker fails the gate with the crash: the caller hears
//! [`CallError::Crashed`] at once and a reply sent later is dropped. Once the gate is open the
//! handle belongs to whoever holds it: a later crash, restart, stop or transfer of the server
//! does not touch it.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::CallError;

/// Where a call's reply goes, as the mailbox carries it. Dropped without a reply only when the
/// worker is killed mid-call, which the client reports as [`CallError::Crashed`] with
/// [`Exit::Killed`](crate::Exit::Killed).
///
/// The error is boxed on its way: a `CallError` can be large (it may carry a store error), errors
/// are rare, and an unboxed one would make every reply that size.
pub(crate) type Sender<R> = oneshot::Sender<Result<R, Box<CallError>>>;

/// The reply handle of a call whose handler answers later: send it from a task, from a later
/// handler, or from the handler itself. Taken with [`Context::defer_reply`](crate::Context::defer_reply),
/// or in a `#[call]` handler by taking an argument of type `ReplyTo<T>` (the handler then returns
/// `()`, and the client method returns `T`).
///
/// - The caller waits as for any call: until the reply, or its timeout.
/// - Dropped without a reply, the caller gets [`CallError::ReplyDropped`].
/// - If the handler that took it crashes, the caller gets [`CallError::Crashed`] at once and
///   the handle is dead: what it sends later is dropped.
/// - A reply is never seen before the state of the handler that took the handle is kept: sent
///   earlier, it waits for that. (Sent from a later handler, it goes out at once, before that
///   handler's own changes are kept.)
/// - Once that handler has completed, the handle outlives the worker: a crash, a restart, a stop
///   or a transfer of the server afterwards does not affect it.
///
/// ```
/// use peeper::ReplyTo;
///
/// #[derive(Clone, Default)]
/// pub struct Slow { started: u64 }
///
/// #[peeper::server]
/// impl Slow {
///     /// Answers after some work in a task of its own, while the server goes on serving.
///     #[call]
///     fn square(&mut self, n: u64, reply: ReplyTo<u64>) {
///         self.started += 1;
///         tokio::spawn(async move { reply.send(n * n) });
///     }
///
///     #[call]
///     fn started(&self) -> u64 { self.started }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let slow = Slow::start(Slow::default()).await?;
/// assert_eq!(slow.square(12).await?, 144);
/// assert_eq!(slow.started().await?, 1);
/// # Ok(()) }
/// ```
#[must_use = "a reply handle dropped unsent answers the caller with `CallError::ReplyDropped`"]
pub struct ReplyTo<T> {
    /// `None` once sent (or for a handle with nobody behind it).
    send: Option<Deliver<T>>,
}

/// Wraps a reply into the server's reply type and hands it to its gate.
type Deliver<T> = Box<dyn FnOnce(Result<T, Box<CallError>>) + Send>;

impl<T> ReplyTo<T> {
    pub(crate) fn new<R: Send + 'static>(
        gate: Arc<Gate<R>>,
        wrap: impl FnOnce(T) -> R + Send + 'static,
    ) -> Self {
        ReplyTo {
            send: Some(Box::new(move |reply: Result<T, Box<CallError>>| {
                gate.deliver(reply.map(wrap));
            })),
        }
    }

    /// A handle that reaches nobody: what a handler gets outside a call.
    pub(crate) fn detached() -> Self {
        ReplyTo { send: None }
    }

    /// Sends the reply. A caller that gave up (its timeout passed) never sees it, as with
    /// `GenServer.reply/2`.
    pub fn send(mut self, reply: T) {
        if let Some(send) = self.send.take() {
            send(Ok(reply));
        }
    }
}

impl<T> Drop for ReplyTo<T> {
    fn drop(&mut self) {
        if let Some(send) = self.send.take() {
            send(Err(Box::new(CallError::ReplyDropped)));
        }
    }
}

impl<T> fmt::Debug for ReplyTo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyTo")
            .field("sent", &self.send.is_none())
            .finish()
    }
}

/// Holds a deferred reply back until the handler that deferred it is kept (see the module docs).
pub(crate) struct Gate<R> {
    state: Mutex<GateState<R>>,
}

enum GateState<R> {
    /// The deferring handler has not completed, or its state is not kept yet.
    Closed {
        caller: Sender<R>,
        held: Option<Result<R, Box<CallError>>>,
    },
    /// Replies go straight to the caller.
    Open(Sender<R>),
    /// Answered (or failed): nothing more goes through.
    Done,
}

impl<R> Gate<R> {
    pub(crate) fn new(caller: Sender<R>) -> Arc<Self> {
        Arc::new(Gate {
            state: Mutex::new(GateState::Closed { caller, held: None }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState<R>> {
        // Only moves of plain values happen under the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A reply from the handle: held while closed, sent once open, dropped once done.
    fn deliver(&self, reply: Result<R, Box<CallError>>) {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, GateState::Done) {
            GateState::Closed { caller, .. } => {
                *state = GateState::Closed {
                    caller,
                    held: Some(reply),
                };
            }
            // The caller may have timed out; the reply is dropped then, as with `GenServer.reply/2`.
            GateState::Open(caller) => drop(caller.send(reply)),
            GateState::Done => {}
        }
    }

    /// The deferring handler is kept: a held reply goes now, a later one goes straight.
    pub(crate) fn open(&self) {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, GateState::Done) {
            GateState::Closed {
                caller,
                held: Some(reply),
            } => drop(caller.send(reply)),
            GateState::Closed { caller, held: None } => *state = GateState::Open(caller),
            other => *state = other,
        }
    }

    /// The deferring handler crashed, or its state could not be stored: the caller hears
    /// `error`, and the handle is dead.
    pub(crate) fn fail(&self, error: CallError) {
        let mut state = self.lock();
        if let GateState::Closed { caller, .. } = std::mem::replace(&mut *state, GateState::Done) {
            let _ = caller.send(Err(Box::new(error)));
        }
    }
}
