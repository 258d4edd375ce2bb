//! [`Call`]: a call on its way to a server, the future its reply comes through.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Sleep;

use crate::mailbox::{Envelope, KeyedCall};
use crate::ticker;
use crate::{CallError, Client, Exit, Server};

/// A call on its way to a server: a future that resolves to its reply.
///
/// [`Client::call`] makes one, so does [`Idempotent::call`](crate::Idempotent::call), and so
/// does each `#[call]` method of a typed client, with or without an idempotency key (which
/// unpacks the reply into the handler's own type, `T`). The call is sent when the future is first
/// polled: a `Call` dropped before that sends nothing. Dropped after, the call is still handled;
/// only its reply is not waited for.
///
/// A named type rather than an `async fn`'s anonymous future, so that the typed client's methods
/// are each one line for the compiler to check (see the compile cost in the book's benchmarks).
///
/// ```
/// # use peeper::{Context, Server, Tracked};
/// # #[derive(Clone, Default)] struct Counter(u64);
/// # impl Server for Counter { type Call = u64; type Reply = u64; type Cast = (); type Info = (); type Keep = peeper::keep::Snapshot;
/// #   async fn handle_call(s: &mut Tracked<Self>, by: u64, _: &mut Context<Self>) -> u64 { s.0 += by; s.0 }
/// #   async fn handle_cast(_: &mut Tracked<Self>, _: (), _: &mut Context<Self>) {} }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let counter = Counter::start(Counter::default()).await?;
/// let call: peeper::Call<'_, Counter> = counter.call(2);  // nothing sent yet
/// assert_eq!(call.await?, 2);
/// # Ok(()) }
/// ```
#[must_use = "a call is sent when it is first polled: `.await` it"]
pub struct Call<'a, S: Server, T = <S as Server>::Reply> {
    client: &'a Client<S>,
    timeout: Duration,
    /// The message, until the first poll sends it.
    message: Option<Outgoing<S>>,
    /// Where the reply comes, once sent.
    answer: Option<Replied<S::Reply>>,
    unpack: fn(S::Reply) -> Option<T>,
}

/// What a [`Call`] sends on its first poll.
pub(crate) enum Outgoing<S: Server> {
    Call(S::Call),
    /// A call with an idempotency key, whole, and where its reply comes
    /// ([`Idempotent`](crate::Idempotent)).
    Keyed(Box<KeyedCall<S>>, Replies<S::Reply>),
}

// Nothing in a `Call` is pinned: the message is moved out to be sent, and `Answer` is `Unpin`.
impl<S: Server, T> Unpin for Call<'_, S, T> {}

impl<'a, S: Server, T> Call<'a, S, T> {
    /// A call of `message`, sent at the first poll; `unpack` takes the reply out.
    pub(crate) fn new(
        client: &'a Client<S>,
        message: Outgoing<S>,
        timeout: Duration,
        unpack: fn(S::Reply) -> Option<T>,
    ) -> Self {
        Call {
            client,
            timeout,
            message: Some(message),
            answer: None,
            unpack,
        }
    }
}

impl<S: Server, T> Future for Call<'_, S, T> {
    type Output = Result<T, CallError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(message) = this.message.take() {
            let sent = match message {
                Outgoing::Call(call) => this
                    .client
                    .post(|reply| Envelope::Call { call, reply }, this.timeout),
                Outgoing::Keyed(keyed, answer) => {
                    this.client
                        .post_replying(Envelope::Keyed(keyed), answer, this.timeout)
                }
            };
            match sent {
                Ok(answer) => this.answer = Some(answer),
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        let Some(answer) = &mut this.answer else {
            panic!("a `peeper::Call` polled after it completed");
        };
        let out = std::task::ready!(Pin::new(answer).poll(cx));
        this.answer = None;
        Poll::Ready(answered(out, this.timeout).map(|reply| {
            // The worker answers each call variant with the reply variant of the same name.
            (this.unpack)(reply).unwrap_or_else(|| {
                unreachable!(
                    "`{}` answered a call with the reply of another",
                    std::any::type_name::<S>()
                )
            })
        }))
    }
}

impl<S: Server, T> fmt::Debug for Call<'_, S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("server", &std::any::type_name::<S>())
            .field("timeout", &self.timeout)
            .field("sent", &self.message.is_none())
            .finish_non_exhaustive()
    }
}

/// Where a call's reply (or the error in its place) comes.
pub(crate) type Replied<R> = Answer<Result<R, Box<CallError>>>;

/// The receiving end of a call's reply (see [`Sender`](crate::reply::Sender)).
pub(crate) type Replies<R> = oneshot::Receiver<Result<R, Box<CallError>>>;

/// A call's outcome, from what its [`Answer`] came to.
pub(crate) fn answered<R>(
    out: Option<Result<Result<R, Box<CallError>>, oneshot::error::RecvError>>,
    timeout: Duration,
) -> Result<R, CallError> {
    match out {
        Some(Ok(answer)) => answer.map_err(|error| *error),
        // Every path that drops a call unanswered answers it first, except a worker aborted
        // mid-handler by `kill_worker`: that is the only way to get here.
        Some(Err(_dropped)) => Err(CallError::Crashed(Exit::Killed)),
        None => Err(CallError::Timeout(timeout)),
    }
}

/// A call's reply, or `None` once the timeout has passed.
///
/// `tokio::time::timeout` would register a timer for every call, and that registration (a clock
/// read, an allocation, an insertion into the timer wheel under the driver's lock, and a removal
/// when the reply comes first) costs about a third of a call's round trip on a current-thread
/// runtime, and more than half of it on a busy multi-thread one. So the timer is armed only for a
/// reply that is late:
///
/// - On a current-thread runtime most replies arrive within one turn of the scheduler: the first
///   pending poll wakes itself instead, which puts the caller behind the worker (woken by the
///   send) in the one run queue, and the timer is armed at the second poll if the reply is not
///   there then. The timeout counts from that poll, a scheduler turn after the send.
/// - On a multi-thread runtime that trick backfires: a task that wakes itself is sent to the back
///   of its worker thread's run queue, and the reply's wake-up, which would have put the caller in
///   the thread's next-task (LIFO) slot, finds it queued already, behind every other task there.
///   There the first pending poll registers with the [ticker](crate::ticker) instead, which wakes
///   it a tick (10 ms) later; a call still waiting then arms its timer for the rest of its timeout.
///   A timeout shorter than two ticks arms its timer at the first poll.
///
/// Either way the timeout is never shorter than asked for. Which runtime it is, is taken from the
/// server's (`Branch::on_multi_thread`): a caller almost always shares it.
pub(crate) struct Answer<T> {
    answer: oneshot::Receiver<T>,
    timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    late: Late,
}

/// How an [`Answer`] puts off arming its timer.
#[derive(Clone, Copy)]
enum Late {
    /// Current-thread: wake itself once first.
    Yield,
    /// Multi-thread: have the ticker wake it, and arm the timer then (registered in this epoch).
    Tick(Option<u64>),
    /// Arm the timer at the next pending poll.
    Now,
}

impl<T> Answer<T> {
    pub(crate) fn new(answer: oneshot::Receiver<T>, timeout: Duration, multi_thread: bool) -> Self {
        let late = match multi_thread {
            false => Late::Yield,
            true if timeout >= 2 * ticker::TICK => Late::Tick(None),
            true => Late::Now,
        };
        Answer {
            answer,
            timeout,
            timer: None,
            late,
        }
    }
}

impl<T> Future for Answer<T> {
    type Output = Option<Result<T, oneshot::error::RecvError>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Poll::Ready(answer) = Pin::new(&mut this.answer).poll(cx) {
            return Poll::Ready(Some(answer));
        }
        let timer = match &mut this.timer {
            Some(timer) => timer,
            None => {
                let Some(timeout) = this.late.due(this.timeout, cx) else {
                    return Poll::Pending;
                };
                this.timer.insert(Box::pin(tokio::time::sleep(timeout)))
            }
        };
        timer.as_mut().poll(cx).map(|()| None)
    }
}

impl Late {
    /// The timer to arm now, for a reply not there yet: what is left of `timeout`; or `None`,
    /// having arranged to be polled again before arming it.
    #[inline]
    fn due(&mut self, timeout: Duration, cx: &TaskContext<'_>) -> Option<Duration> {
        match *self {
            Late::Yield => {
                *self = Late::Now;
                cx.waker().wake_by_ref();
                None
            }
            Late::Tick(registered) => match registered.map_or(0, ticker::since) {
                // Not yet a tick since the send (or woken by something else first).
                0 => match ticker::register(cx.waker()) {
                    Some(epoch) => {
                        *self = Late::Tick(Some(registered.unwrap_or(epoch)));
                        None
                    }
                    // No ticker to wake it: the timer now, for the whole timeout.
                    None => Some(timeout),
                },
                // At least `ticks - 1` whole ticks have passed since the send.
                ticks => {
                    let ticks = u32::try_from(ticks - 1).unwrap_or(u32::MAX);
                    Some(timeout.saturating_sub(ticker::TICK.saturating_mul(ticks)))
                }
            },
            Late::Now => Some(timeout),
        }
    }
}
