//! The mailbox's channel: unbounded, many senders, one receiver, first in first out.
//!
//! A queue under a lock, with the receiver's waker beside it. The receiver takes everything
//! queued in one go (it swaps the shared queue with its own, emptied one), so a burst of messages
//! costs it one lock, and each message one push under the lock on the sending side.
//!
//! Why not tokio's unbounded channel: it allocates a block of 32 slots when it is made and keeps
//! at least one for its whole life, and pads its sending and receiving halves to cache lines.
//! That is more than a kilobyte per server, whether it ever gets a message or not, and it stays
//! while the server hibernates, because its clients hold the channel. Here an empty queue holds
//! no buffer once [`Inbox::shrink`] has run, and a queue that has been used keeps only the
//! capacity its largest burst needed.
//!
//! The receiver counts against tokio's cooperative budget as tokio's own channels do, so a
//! worker whose mailbox never empties still yields to the other tasks of its thread.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};

/// A new channel: the sending end (cloned into every client) and the receiving end.
pub(crate) fn channel<T>() -> (Outbox<T>, Inbox<T>) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            items: VecDeque::new(),
            receiver: None,
            closed: false,
        }),
        senders: AtomicUsize::new(1),
    });
    let outbox = Outbox {
        shared: Arc::clone(&shared),
    };
    let inbox = Inbox {
        shared,
        taken: VecDeque::new(),
    };
    (outbox, inbox)
}

struct Shared<T> {
    queue: Mutex<Queue<T>>,
    /// The live [`Outbox`]es: when the last one goes, the receiver hears the end.
    senders: AtomicUsize,
}

struct Queue<T> {
    items: VecDeque<T>,
    /// The receiver's waker while it waits for an item; taken by the send that wakes it.
    receiver: Option<Waker>,
    /// Set by [`Inbox::close`] or the receiver's drop: sends fail from then on.
    closed: bool,
}

impl<T> Shared<T> {
    fn queue(&self) -> MutexGuard<'_, Queue<T>> {
        // Nothing that can panic runs under the lock but a push's allocation, which aborts: a
        // poisoned lock still guards a consistent queue.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sending end of a mailbox.
pub(crate) struct Outbox<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Outbox<T> {
    /// Queues `item`, waking the receiver if it waits.
    ///
    /// # Errors
    /// The item back, if the receiver has closed the channel or is gone.
    #[inline]
    pub(crate) fn send(&self, item: T) -> Result<(), T> {
        let waiting = {
            let mut queue = self.shared.queue();
            if queue.closed {
                return Err(item);
            }
            queue.items.push_back(item);
            queue.receiver.take()
        };
        // Woken outside the lock: the receiver, on another thread, may run at once and take it.
        if let Some(receiver) = waiting {
            receiver.wake();
        }
        Ok(())
    }
}

impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        // Relaxed, as `Arc`'s own count: a new sender is made from a live one.
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Outbox {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Drop for Outbox<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last sender: a receiver waiting for an item would wait forever.
            let waiting = self.shared.queue().receiver.take();
            if let Some(receiver) = waiting {
                receiver.wake();
            }
        }
    }
}

/// The receiving end of a mailbox. Dropped, it closes the channel and drops what was queued.
pub(crate) struct Inbox<T> {
    shared: Arc<Shared<T>>,
    /// Items taken from the shared queue in one go, not handed out yet: the front of the mailbox.
    taken: VecDeque<T>,
}

impl<T> Inbox<T> {
    /// The next item, or `None` once the channel is closed and empty or every sender is gone;
    /// `Pending` with the task's waker kept for the next send (or the task's budget spent).
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let budget = ready!(tokio::task::coop::poll_proceed(cx));
        let received = self.receive(Some(cx.waker()));
        if matches!(received, Poll::Ready(Some(_))) {
            budget.made_progress();
        }
        received
    }

    /// [`poll_recv`](Inbox::poll_recv) as a future.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next item if one is queued: neither waits, nor keeps a waker, nor counts against the
    /// task's budget.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        match self.receive(None) {
            Poll::Ready(received) => received,
            Poll::Pending => None,
        }
    }

    /// The front item, refilling `taken` from the shared queue when it is empty; with `waker`,
    /// kept there for the next send if nothing is queued.
    #[inline]
    fn receive(&mut self, waker: Option<&Waker>) -> Poll<Option<T>> {
        if let Some(item) = self.taken.pop_front() {
            return Poll::Ready(Some(item));
        }
        let mut queue = self.shared.queue();
        match queue.items.len() {
            0 => {}
            // One at a time (a call's round trip), the queue's one buffer is all the mailbox
            // touches: swapping would alternate two, and a cold one costs more than the lock.
            1 => return Poll::Ready(queue.items.pop_front()),
            _ => {
                std::mem::swap(&mut queue.items, &mut self.taken);
                drop(queue);
                return Poll::Ready(self.taken.pop_front());
            }
        }
        if queue.closed || self.shared.senders.load(Ordering::Acquire) == 0 {
            return Poll::Ready(None);
        }
        if let Some(waker) = waker {
            match &mut queue.receiver {
                Some(kept) if kept.will_wake(waker) => {}
                kept => *kept = Some(waker.clone()),
            }
        }
        Poll::Pending
    }

    /// Refuses every later send, and lets go of the waiting task's waker (see
    /// [`unhook`](Inbox::unhook)). What is queued stays, for [`try_recv`](Inbox::try_recv).
    pub(crate) fn close(&mut self) {
        let waiting = {
            let mut queue = self.shared.queue();
            queue.closed = true;
            queue.receiver.take()
        };
        drop(waiting);
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.taken.is_empty() && self.shared.queue().items.is_empty()
    }

    /// Drops the waker of the task that last waited: it keeps that task's allocation alive, and
    /// the senders outlive the task that ended or hibernated.
    pub(crate) fn unhook(&mut self) {
        let waiting = self.shared.queue().receiver.take();
        drop(waiting);
    }

    /// Gives the memory of an empty queue back (a hibernating server's): its next message
    /// allocates it again.
    pub(crate) fn shrink(&mut self) {
        self.taken.shrink_to_fit();
        self.shared.queue().items.shrink_to_fit();
    }
}

impl<T> Drop for Inbox<T> {
    fn drop(&mut self) {
        // Both dropped outside the lock, as `close` and `unhook` do: dropping a call's reply
        // sender wakes its caller, and dropping a waker may free its task.
        let (waiting, queued) = {
            let mut queue = self.shared.queue();
            queue.closed = true;
            (queue.receiver.take(), std::mem::take(&mut queue.items))
        };
        drop(waiting);
        drop(queued);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
