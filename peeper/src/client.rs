//! [`Client`]: the generic handle to a running server.

use std::fmt;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use crate::call::{Answer, Call, Outgoing, Replied, Replies};
use crate::erased;
use crate::mailbox::KeyedCall;
use crate::mailbox::{Caller, Envelope, Outbox, Timed};
use crate::retained::{IdempotencyKey, ReplyCodec, Retainable};
use crate::worker::KeyedHandler;
use crate::{Branch, CallError, SendError, Server, StopError};

/// How long a call waits for its reply unless told otherwise: 5 seconds, as `GenServer.call/2`.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle to a running server: send it messages, stop it, look at its branch.
///
/// Cheap to clone (two reference counts), `Send + Sync`, and valid across crashes, restarts and
/// transfers: it talks to the branch's mailbox, which outlives every worker. `#[peeper::server]`
/// wraps it in a typed client with one method per handler; hand-written servers use it directly.
///
/// Calls and casts need a tokio runtime with its timer enabled (`#[tokio::main]` enables it).
///
/// ```
/// # use peeper::{Context, Server, Tracked};
/// # #[derive(Clone, Default)] struct Counter(u64);
/// # impl Server for Counter { type Call = (); type Reply = u64; type Cast = u64; type Info = (); type Keep = peeper::keep::Snapshot;
/// #   async fn handle_call(s: &mut Tracked<Self>, _: (), _: &mut Context<Self>) -> u64 { s.0 }
/// #   async fn handle_cast(s: &mut Tracked<Self>, by: u64, _: &mut Context<Self>) { s.0 += by } }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
///
/// let counter = Counter::start(Counter::default()).await?;
/// counter.cast(2)?;                                               // never blocks
/// assert_eq!(counter.call(()).await?, 2);                        // 5 s timeout
/// assert_eq!(counter.call_timeout((), Duration::from_secs(1)).await?, 2);
/// counter.stop().await?;
/// assert!(counter.cast(1).is_err());                              // stopped: a typed error
/// # Ok(()) }
/// ```
pub struct Client<S: Server> {
    mailbox: Outbox<Envelope<S>>,
    branch: Branch,
}

impl<S: Server> Client<S> {
    pub(crate) fn new(mailbox: Outbox<Envelope<S>>, branch: Branch) -> Self {
        Client { mailbox, branch }
    }

    /// A call: the returned [`Call`] sends it when first polled, then waits up to
    /// [`DEFAULT_CALL_TIMEOUT`] for its reply.
    ///
    /// When it resolves to `Ok`, the state the handler produced is already kept (for a durable
    /// server that writes through, committed to its store): a crash right after cannot undo it.
    ///
    /// # Errors
    /// - [`CallError::Crashed`] if the handler panicked or the worker was killed
    ///   ([`Branch::kill_worker`](crate::Branch::kill_worker)) while handling it;
    /// - [`CallError::Timeout`] if no reply came in time (the call may still be handled);
    /// - [`CallError::Stopped`] if the branch has ended;
    /// - [`CallError::Store`] if the handler completed but a durable server could not store its
    ///   state;
    /// - [`CallError::CallingSelf`] if called from a handler of this very server;
    /// - [`CallError::ReplyDropped`] if the handler took the reply handle and dropped it.
    pub fn call(&self, call: S::Call) -> Call<'_, S> {
        self.call_timeout(call, DEFAULT_CALL_TIMEOUT)
    }

    /// A call that waits up to `timeout` for its reply.
    ///
    /// # Errors
    /// As [`call`](Client::call).
    pub fn call_timeout(&self, call: S::Call, timeout: Duration) -> Call<'_, S> {
        Call::new(self, Outgoing::Call(call), timeout, Some)
    }

    /// What the typed client's call methods return: the call, its reply unpacked from the
    /// server's reply type by `unpack`.
    #[doc(hidden)]
    pub fn __call<T>(
        &self,
        call: S::Call,
        timeout: Duration,
        unpack: fn(S::Reply) -> Option<T>,
    ) -> Call<'_, S, T> {
        Call::new(self, Outgoing::Call(call), timeout, unpack)
    }

    /// The calls of this client, made with an idempotency key: the first call with `key` runs
    /// its handler, and a retry with the same key (after a timeout, a crash, a restart of the
    /// process...) gets the first call's reply without running it again. See [`Idempotent`].
    ///
    /// ```
    /// # use peeper::{Context, Server, Tracked};
    /// # #[derive(Clone, Default)] struct Counter(u64);
    /// # impl Server for Counter { type Call = u64; type Reply = u64; type Cast = (); type Info = (); type Keep = peeper::keep::Snapshot;
    /// #   async fn handle_call(s: &mut Tracked<Self>, by: u64, _: &mut Context<Self>) -> u64 { s.0 += by; s.0 }
    /// #   async fn handle_cast(_: &mut Tracked<Self>, _: (), _: &mut Context<Self>) {} }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let counter = Counter::start(Counter::default()).await?;
    /// assert_eq!(counter.idempotent("payment-41").call(5).await?, 5);
    /// assert_eq!(counter.idempotent("payment-41").call(5).await?, 5); // a retry: not applied again
    /// assert_eq!(counter.call(0).await?, 5);
    /// assert_eq!(
    ///     counter.idempotent("payment-41").call(6).await,
    ///     Err(peeper::CallError::KeyReused { key: "payment-41".into() }),
    /// );
    /// # Ok(()) }
    /// ```
    pub fn idempotent(&self, key: impl Into<IdempotencyKey>) -> Idempotent<'_, S> {
        Idempotent {
            client: self,
            key: key.into(),
            timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// Sends the envelope `make` builds around the reply's sender: what waits for the reply.
    pub(crate) fn post(
        &self,
        make: impl FnOnce(Caller<S>) -> Envelope<S>,
        timeout: Duration,
    ) -> Result<Replied<S::Reply>, CallError> {
        let (reply, answer) = oneshot::channel();
        self.post_replying(make(reply), answer, timeout)
    }

    /// Sends `envelope`, which replies through `answer`'s sender: what waits for the reply.
    pub(crate) fn post_replying(
        &self,
        mut envelope: Envelope<S>,
        answer: Replies<S::Reply>,
        timeout: Duration,
    ) -> Result<Replied<S::Reply>, CallError> {
        // From its own handler, the call would wait for the handler that makes it.
        if crate::handling::is_handling(self.branch.id()) {
            return Err(CallError::CallingSelf);
        }
        if self.branch.is_link() {
            envelope = Envelope::Timed(Box::new(Timed { envelope, timeout }));
        }
        self.branch
            .send_waking(|| self.mailbox.send(envelope))
            .map_err(|_| CallError::Stopped(self.branch.exit_or_normal()))?;
        // See `Answer`: how it waits depends on the runtime the server runs on.
        Ok(Answer::new(answer, timeout, self.branch.on_multi_thread()))
    }

    /// Queues a cast. Never blocks and never awaits: the mailbox is unbounded, as a process's.
    ///
    /// # Errors
    /// [`SendError::Stopped`] if the branch has ended.
    #[inline]
    pub fn cast(&self, cast: S::Cast) -> Result<(), SendError> {
        self.enqueue(Envelope::Cast(cast))
    }

    /// Queues a raw ("info") message, the counterpart of `send/2`. Never blocks.
    ///
    /// # Errors
    /// [`SendError::Stopped`] if the branch has ended.
    #[inline]
    pub fn send(&self, info: impl Into<S::Info>) -> Result<(), SendError> {
        self.enqueue(Envelope::Info(info.into()))
    }

    /// Queues a cast after `delay`, the counterpart of `Process.send_after/3`.
    ///
    /// # Errors
    /// [`SendError::Stopped`] if the branch has already ended; a branch that ends during the
    /// delay silently drops the message.
    pub fn cast_after(&self, delay: Duration, cast: S::Cast) -> Result<Timer, SendError> {
        self.enqueue_after(delay, Envelope::Cast(cast))
    }

    /// Queues a raw message after `delay`.
    ///
    /// # Errors
    /// As [`cast_after`](Client::cast_after).
    pub fn send_after(
        &self,
        delay: Duration,
        info: impl Into<S::Info>,
    ) -> Result<Timer, SendError> {
        self.enqueue_after(delay, Envelope::Info(info.into()))
    }

    /// Stops the server normally: every message queued before the stop is handled, `terminate`
    /// runs, later messages get [`CallError::Stopped`], the name is freed. Resolves once all of
    /// that is done.
    ///
    /// # Errors
    /// - [`StopError::AlreadyStopped`] if the branch had already ended;
    /// - [`StopError::Terminate`] if it stopped but its `terminate` panicked;
    /// - [`StopError::Store`] if it stopped but a durable server's last state is not stored
    ///   yet (it keeps retrying);
    /// - [`StopError::CallingSelf`] if called from a handler of this very server (use
    ///   [`Context::stop`](crate::Context::stop) there).
    pub async fn stop(&self) -> Result<(), StopError> {
        self.branch.stop().await
    }

    /// Stops the server with a reason, GenServer's `stop(server, reason)`: as
    /// [`stop`](Client::stop), with [`Exit::Stopped`](crate::Exit::Stopped) carrying `reason` to `terminate`, the
    /// listener and [`Branch::ended`].
    ///
    /// # Errors
    /// As [`stop`](Client::stop).
    ///
    /// ```
    /// # use peeper::{Context, Exit, Server, Tracked};
    /// # #[derive(Clone, Default)] struct Job;
    /// # impl Server for Job { type Call = (); type Reply = (); type Cast = (); type Info = (); type Keep = peeper::keep::Snapshot;
    /// #   async fn handle_call(_: &mut Tracked<Self>, _: (), _: &mut Context<Self>) {}
    /// #   async fn handle_cast(_: &mut Tracked<Self>, _: (), _: &mut Context<Self>) {} }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let job = Job::start(Job).await?;
    /// let ended = job.branch().ended();
    /// job.stop_with("cancelled by the user").await?;
    /// assert_eq!(ended.await, Exit::Stopped { reason: "cancelled by the user".into() });
    /// # Ok(()) }
    /// ```
    pub async fn stop_with(&self, reason: impl Into<String>) -> Result<(), StopError> {
        self.branch.stop_with(reason).await
    }

    /// The branch behind this client: task ids, restarts, kill, and waiting for restarts.
    #[must_use]
    pub fn branch(&self) -> &Branch {
        &self.branch
    }

    #[inline]
    pub(crate) fn enqueue(&self, envelope: Envelope<S>) -> Result<(), SendError> {
        self.branch
            .send_waking(|| self.mailbox.send(envelope))
            .map_err(|_| SendError::Stopped(self.branch.exit_or_normal()))
    }

    fn enqueue_after(&self, delay: Duration, envelope: Envelope<S>) -> Result<Timer, SendError> {
        if let Some(exit) = self.branch.exit() {
            return Err(SendError::Stopped(exit));
        }
        let client = self.clone();
        // The deadline is taken now, not when the timer task first runs (a scheduler turn later).
        let deadline = tokio::time::Instant::now() + delay;
        let timer = Box::pin(async move {
            tokio::time::sleep_until(deadline).await;
            // A branch that ended meanwhile drops the message, as a dead process would.
            let _ = client.enqueue(envelope);
            None
        });
        let task = erased::spawn_on(&tokio::runtime::Handle::current(), timer);
        Ok(Timer {
            task: task.abort_handle(),
        })
    }
}

impl<S: Server> Clone for Client<S> {
    fn clone(&self) -> Self {
        Client {
            mailbox: self.mailbox.clone(),
            branch: self.branch.clone(),
        }
    }
}

impl<S: Server> fmt::Debug for Client<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("branch", &self.branch)
            .finish()
    }
}

/// The calls of a [`Client`] made with one idempotency key, from [`Client::idempotent`].
///
/// The first call with the key, to this server, runs its handler; its reply is recorded with the
/// state the handler left (for a durable server, in the same commit), and every later call with
/// the key gets that reply without running the handler again: after a timeout, a crash of the
/// worker, a kill, a hibernation, a handoff, or (for a durable server) a restart of the process.
/// A call whose handler crashed recorded nothing: its retry runs the handler again. A key reused
/// with another message is refused ([`CallError::KeyReused`]). Records are kept for a window
/// and up to a number per server ([`Builder::retain_replies`](crate::Builder::retain_replies)).
///
/// The message must be `Serialize` (it is compared by a digest) and the reply `Serialize` and
/// `Deserialize` (it is recorded); the typed client of `#[peeper::server]` has the same methods
/// per handler (`client.idempotent(key).add(item)`).
#[must_use = "these methods send nothing until one of them is called"]
pub struct Idempotent<'client, S: Server> {
    client: &'client Client<S>,
    key: IdempotencyKey,
    timeout: Duration,
}

impl<'client, S: Server> Idempotent<'client, S> {
    /// The same calls with a timeout other than the default 5 s. A timed-out call may have been
    /// applied: retry it with the same key to find out.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The key.
    #[must_use]
    pub fn key(&self) -> &IdempotencyKey {
        &self.key
    }

    /// A call with the key: resolves to its reply, or to the reply recorded for the key. Sent
    /// when first polled, as every [`Call`].
    ///
    /// # Errors
    /// As [`Client::call`], and [`CallError::KeyReused`].
    pub fn call(&self, call: S::Call) -> Call<'client, S>
    where
        S::Call: serde::Serialize,
        S::Reply: Retainable,
    {
        let digest = crate::retained::digest("", &call);
        self.__call(
            call,
            digest,
            crate::retained::encode_reply::<S::Reply>,
            crate::retained::decode_reply::<S::Reply>,
            Some,
        )
    }

    /// What the typed client's keyed methods call: the digest of the message and how to record
    /// the reply come from the handler's own types, and `unpack` takes the handler's reply out
    /// of the server's.
    #[doc(hidden)]
    pub fn __call<T>(
        &self,
        call: S::Call,
        digest: u64,
        encode: fn(&S::Reply) -> Result<Vec<u8>, String>,
        decode: fn(&[u8]) -> Result<S::Reply, String>,
        unpack: fn(S::Reply) -> Option<T>,
    ) -> Call<'client, S, T> {
        let (reply, answer) = oneshot::channel();
        let keyed = Box::new(KeyedCall {
            call,
            reply,
            key: self.key.clone(),
            digest,
            codec: ReplyCodec { encode, decode },
            handler: &KeyedHandler::<S>::OF,
        });
        Call::new(
            self.client,
            Outgoing::Keyed(keyed, answer),
            self.timeout,
            unpack,
        )
    }
}

impl<S: Server> Clone for Idempotent<'_, S> {
    fn clone(&self) -> Self {
        Idempotent {
            client: self.client,
            key: self.key.clone(),
            timeout: self.timeout,
        }
    }
}

impl<S: Server> fmt::Debug for Idempotent<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotent")
            .field("client", self.client)
            .field("key", &self.key)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A delayed message on its way, from [`Client::cast_after`] or [`Client::send_after`].
///
/// Dropping it does not cancel the message; [`cancel`](Timer::cancel) does.
///
/// ```
/// # use peeper::{Context, Server, Tracked};
/// # #[derive(Clone, Default)] struct Counter(u64);
/// # impl Server for Counter { type Call = (); type Reply = u64; type Cast = u64; type Info = (); type Keep = peeper::keep::Snapshot;
/// #   async fn handle_call(s: &mut Tracked<Self>, _: (), _: &mut Context<Self>) -> u64 { s.0 }
/// #   async fn handle_cast(s: &mut Tracked<Self>, by: u64, _: &mut Context<Self>) { s.0 += by } }
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
///
/// let counter = Counter::start(Counter::default()).await?;
/// let timer = counter.cast_after(Duration::from_secs(60), 1)?;
/// timer.cancel();
/// counter.cast_after(Duration::from_secs(1), 2)?;
/// tokio::time::sleep(Duration::from_secs(61)).await;  // paused clock: advances instantly
/// assert_eq!(counter.call(()).await?, 2);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Timer {
    task: AbortHandle,
}

impl Timer {
    /// Cancels the message if it has not been queued yet.
    pub fn cancel(&self) {
        self.task.abort();
    }

    /// `true` once the message has been queued (or cancelled).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}
