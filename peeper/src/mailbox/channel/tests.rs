use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use super::{Inbox, channel};

/// A waker that counts its wakes.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting() -> (Arc<Counting>, Waker) {
    let counter = Arc::new(Counting::default());
    (Arc::clone(&counter), Waker::from(Arc::clone(&counter)))
}

fn wakes(counter: &Counting) -> usize {
    counter.0.load(Ordering::SeqCst)
}

/// One poll outside any runtime (no budget to spend).
fn poll<T>(inbox: &mut Inbox<T>, waker: &Waker) -> Poll<Option<T>> {
    inbox.poll_recv(&mut Context::from_waker(waker))
}

#[test]
fn items_come_out_in_the_order_they_went_in_across_refills() {
    let (outbox, mut inbox) = channel();
    for item in 0..3 {
        outbox.send(item).unwrap();
    }
    assert_eq!(inbox.try_recv(), Some(0));
    // Sent while 1 and 2 wait in the receiver's own queue: they must come after them.
    outbox.send(3).unwrap();
    outbox.send(4).unwrap();
    let received: Vec<_> = std::iter::from_fn(|| inbox.try_recv()).collect();
    assert_eq!(received, [1, 2, 3, 4]);
    assert!(inbox.is_empty());
}

#[test]
fn a_send_wakes_a_waiting_receiver_once() {
    let (outbox, mut inbox) = channel();
    let (counter, waker) = counting();
    assert_eq!(poll(&mut inbox, &waker), Poll::Pending);
    // Polled again with the same waker: still one registration, one wake.
    assert_eq!(poll(&mut inbox, &waker), Poll::Pending);
    outbox.send(7).unwrap();
    outbox.send(8).unwrap();
    assert_eq!(wakes(&counter), 1);
    assert_eq!(poll(&mut inbox, &waker), Poll::Ready(Some(7)));
    assert_eq!(poll(&mut inbox, &waker), Poll::Ready(Some(8)));
}

#[test]
fn the_receiver_hears_the_end_when_the_last_sender_goes() {
    let (outbox, mut inbox) = channel::<u8>();
    let other = outbox.clone();
    let (counter, waker) = counting();
    assert_eq!(poll(&mut inbox, &waker), Poll::Pending);
    drop(outbox);
    assert_eq!(wakes(&counter), 0, "one sender is left");
    assert_eq!(poll(&mut inbox, &waker), Poll::Pending);
    drop(other);
    assert_eq!(wakes(&counter), 1);
    assert_eq!(poll(&mut inbox, &waker), Poll::Ready(None));
}

#[test]
fn what_was_queued_before_the_last_sender_went_is_still_received() {
    let (outbox, mut inbox) = channel();
    outbox.send(1).unwrap();
    drop(outbox);
    assert_eq!(inbox.try_recv(), Some(1));
    assert_eq!(inbox.try_recv(), None);
}

#[test]
fn a_closed_channel_refuses_sends_and_keeps_what_was_queued() {
    let (outbox, mut inbox) = channel();
    outbox.send(1).unwrap();
    inbox.close();
    assert_eq!(outbox.send(2), Err(2));
    assert_eq!(inbox.try_recv(), Some(1));
    let (_, waker) = counting();
    assert_eq!(poll(&mut inbox, &waker), Poll::Ready(None));
}

#[test]
fn a_dropped_receiver_drops_what_was_queued_and_refuses_sends() {
    let item = Arc::new(());
    let (outbox, mut inbox) = channel();
    outbox.send(Arc::clone(&item)).unwrap();
    outbox.send(Arc::clone(&item)).unwrap();
    // One in the receiver's own queue, one in the shared one.
    let first = inbox.try_recv();
    outbox.send(Arc::clone(&item)).unwrap();
    drop(first);
    drop(inbox);
    assert_eq!(Arc::strong_count(&item), 1);
    assert!(outbox.send(Arc::clone(&item)).is_err());
}

#[test]
fn unhook_lets_go_of_the_waiting_task() {
    let (outbox, mut inbox) = channel::<u8>();
    let (counter, waker) = counting();
    assert_eq!(poll(&mut inbox, &waker), Poll::Pending);
    drop(waker);
    assert_eq!(
        Arc::strong_count(&counter),
        2,
        "the channel keeps the waker"
    );
    inbox.unhook();
    assert_eq!(Arc::strong_count(&counter), 1);
    outbox.send(1).unwrap();
    assert_eq!(wakes(&counter), 0);
}

#[test]
fn shrink_gives_the_buffers_of_an_empty_queue_back() {
    let (outbox, mut inbox) = channel();
    for round in 0..2 {
        for item in 0..100 {
            outbox.send(item + round).unwrap();
        }
        while inbox.try_recv().is_some() {}
    }
    assert!(inbox.taken.capacity() + inbox.shared.queue().items.capacity() >= 100);
    inbox.shrink();
    assert_eq!(inbox.taken.capacity(), 0);
    assert_eq!(inbox.shared.queue().items.capacity(), 0);
    outbox.send(1).unwrap();
    assert_eq!(inbox.try_recv(), Some(1));
}

#[tokio::test(flavor = "current_thread")]
async fn a_receiver_whose_mailbox_never_empties_still_yields() {
    let (outbox, mut inbox) = channel();
    for item in 0..1_000 {
        outbox.send(item).unwrap();
    }
    let other_ran = Arc::new(AtomicBool::new(false));
    // Spawned first, so it runs first on this one thread: only a yield lets the other run.
    let receiver = tokio::spawn({
        let other_ran = Arc::clone(&other_ran);
        async move {
            for _ in 0..1_000 {
                inbox.recv().await;
            }
            other_ran.load(Ordering::SeqCst)
        }
    });
    let other = tokio::spawn({
        let other_ran = Arc::clone(&other_ran);
        async move { other_ran.store(true, Ordering::SeqCst) }
    });
    assert!(receiver.await.unwrap(), "the receiver never yielded");
    other.await.unwrap();
}
