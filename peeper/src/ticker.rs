//! The ticker: one thread that wakes waiting calls once, a tick after they registered, so that
//! on a multi-thread runtime only the calls still waiting by then pay for a timer.
//!
//! A call's timeout is a tokio timer, and arming one costs a clock read, an allocation, and an
//! insertion into (and, when the reply comes first, a removal from) the runtime's timer wheel
//! under its lock. On a multi-thread runtime under load that was the largest part of a call: with
//! 8 callers on 2 workers, a call took 2.6 times the hand-written actor's median, and 1.4 times
//! with no timer at all (`cargo bench -p peeper-tests --bench scale`, `call_mt` rows). Almost
//! every reply comes long before a tick (10 ms), so a waiting call registers its waker here
//! instead (a push under a lock only its own thread takes, but for one drain per tick), and arms
//! its timer only if the tick finds it still waiting, for the rest of its timeout.
//!
//! The ticks are counted: a call notes the count it registered at ([`register`]). `n` ticks
//! later ([`since`]) at least `n - 1` whole periods have passed, so the timer armed then for the
//! timeout less those periods fires no earlier than asked for, and at most a period and a
//! scheduling delay later.
//!
//! The thread sleeps (parked) while no waker waits, and is started on first use. Wakers are kept
//! per thread (a shard each, dropped with its thread), so registering never contends with
//! another caller, only with the ticker's drain.

use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::Waker;
use std::thread::Thread;
use std::time::Duration;

/// How often the ticker wakes the calls registered with it.
pub(crate) const TICK: Duration = Duration::from_millis(10);

struct Ticker {
    /// Ticks so far: incremented before each drain.
    epoch: AtomicU64,
    /// The shard of every thread that registered a waker and is still alive.
    shards: Mutex<Vec<Arc<Shard>>>,
    /// The wakers of threads that ended before the tick that would have woken them.
    orphans: Mutex<Vec<Waker>>,
    /// The ticker found nothing to wake and parks: the next registration unparks it.
    idle: AtomicBool,
    /// Cleared if the ticker's thread ever ends: registrations are refused from then on, and
    /// calls arm their timers at once.
    alive: AtomicBool,
    thread: Thread,
}

/// The wakers one thread registered since the last tick.
#[derive(Default)]
struct Shard {
    wakers: Mutex<Vec<Waker>>,
}

/// A thread's shard, removed from the ticker when the thread ends.
struct Local {
    ticker: &'static Ticker,
    shard: Arc<Shard>,
}

impl Drop for Local {
    fn drop(&mut self) {
        let ticker = self.ticker;
        lock(&ticker.shards).retain(|shard| !Arc::ptr_eq(shard, &self.shard));
        // What still waits here is woken at the next tick all the same. Not woken here: this
        // runs in a thread-local destructor, where a waker's runtime may be half torn down.
        let wakers = mem::take(&mut *lock(&self.shard.wakers));
        if !wakers.is_empty() {
            lock(&ticker.orphans).extend(wakers);
            ticker.wake_up();
        }
    }
}

impl Ticker {
    /// Unparks the ticker if it found nothing to do last time.
    fn wake_up(&self) {
        if self.idle.load(Ordering::SeqCst) && self.idle.swap(false, Ordering::SeqCst) {
            self.thread.unpark();
        }
    }
}

/// Clears [`Ticker::alive`] when the ticker's thread ends, however it ends.
struct Alive(&'static Ticker);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::SeqCst);
    }
}

thread_local! {
    static LOCAL: Option<Local> = ticker().map(|ticker| {
        let shard = Arc::new(Shard::default());
        lock(&ticker.shards).push(Arc::clone(&shard));
        Local { ticker, shard }
    });
}

/// The ticker, started on first use; `None` if its thread could not be started (then calls
/// arm their timers at once, as they would without it).
fn ticker() -> Option<&'static Ticker> {
    static TICKER: OnceLock<Option<Ticker>> = OnceLock::new();
    TICKER
        .get_or_init(|| {
            let thread = std::thread::Builder::new()
                .name("peeper-ticker".to_owned())
                .spawn(|| {
                    // `TICKER` is set just after this thread is spawned.
                    let ticker = loop {
                        if let Some(Some(ticker)) = TICKER.get() {
                            break ticker;
                        }
                        std::thread::park_timeout(Duration::from_millis(1));
                    };
                    let _alive = Alive(ticker);
                    run(ticker);
                })
                .ok()?;
            Some(Ticker {
                epoch: AtomicU64::new(0),
                shards: Mutex::new(Vec::new()),
                orphans: Mutex::new(Vec::new()),
                idle: AtomicBool::new(false),
                alive: AtomicBool::new(true),
                thread: thread.thread().clone(),
            })
        })
        .as_ref()
}

fn run(ticker: &'static Ticker) -> ! {
    loop {
        std::thread::sleep(TICK);
        ticker.epoch.fetch_add(1, Ordering::SeqCst);
        if drain(ticker) {
            continue;
        }
        // Nothing waited: park until a registration. `idle` is set before the last look, and a
        // registration pushes before it reads `idle`, so one of the two sees the other.
        ticker.idle.store(true, Ordering::SeqCst);
        if drain(ticker) {
            ticker.idle.store(false, Ordering::SeqCst);
            continue;
        }
        while ticker.idle.load(Ordering::SeqCst) {
            std::thread::park();
        }
    }
}

/// Wakes every registered waker; whether there was any.
fn drain(ticker: &Ticker) -> bool {
    let mut wakers = mem::take(&mut *lock(&ticker.orphans));
    // Registrations take only their own shard's lock, and a thread's shard is added and removed
    // under the list's lock alone: holding both here cannot deadlock. The wakes run after.
    for shard in lock(&ticker.shards).iter() {
        wakers.append(&mut lock(&shard.wakers));
    }
    let woke = !wakers.is_empty();
    for waker in wakers {
        // A waker is foreign code: one that panics must not end the ticker, which every later
        // call on a multi-thread runtime relies on.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
    }
    woke
}

/// Has `waker` woken at the next tick, and returns the epoch it registered in; `None` if there
/// is no ticker (the caller then arms its timer at once).
pub(crate) fn register(waker: &Waker) -> Option<u64> {
    LOCAL
        .try_with(|local| {
            let local = local.as_ref()?;
            if !local.ticker.alive.load(Ordering::Relaxed) {
                return None;
            }
            {
                let mut wakers = lock(&local.shard.wakers);
                // A task that calls again before the tick is registered once.
                if !wakers.last().is_some_and(|last| last.will_wake(waker)) {
                    wakers.push(waker.clone());
                }
            }
            local.ticker.wake_up();
            Some(local.ticker.epoch.load(Ordering::SeqCst))
        })
        .ok()
        .flatten()
}

/// Ticks since `epoch` (see [`register`]).
pub(crate) fn since(epoch: u64) -> u64 {
    ticker().map_or(0, |ticker| {
        ticker.epoch.load(Ordering::SeqCst).saturating_sub(epoch)
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding these locks but a waker's `clone`; what they hold stays valid.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::task::Wake;

    use super::*;

    /// A waker that reports each wake on a channel.
    struct Report(Mutex<mpsc::Sender<()>>);

    impl Wake for Report {
        fn wake(self: Arc<Self>) {
            let _ = lock(&self.0).send(());
        }
    }

    fn reporting() -> (Waker, mpsc::Receiver<()>) {
        let (sender, woken) = mpsc::channel();
        (Waker::from(Arc::new(Report(Mutex::new(sender)))), woken)
    }

    /// Long enough for any tick on a loaded machine; only a broken ticker waits this long.
    const HANG: Duration = Duration::from_secs(30);

    #[test]
    fn a_registered_waker_is_woken_by_a_later_tick() {
        let (waker, woken) = reporting();
        register(&waker).expect("the ticker runs");
        woken.recv_timeout(HANG).expect("woken by a tick");
    }

    #[test]
    fn a_waker_of_a_thread_that_ended_is_still_woken() {
        let (waker, woken) = reporting();
        std::thread::spawn(move || register(&waker).expect("the ticker runs"))
            .join()
            .expect("the thread registered");
        woken
            .recv_timeout(HANG)
            .expect("woken after its thread ended");
    }

    #[test]
    fn a_panicking_waker_does_not_stop_the_ticker() {
        struct Panics;
        impl Wake for Panics {
            fn wake(self: Arc<Self>) {
                panic!("a foreign waker panicked");
            }
        }
        register(&Waker::from(Arc::new(Panics))).expect("the ticker runs");
        let (waker, woken) = reporting();
        register(&waker).expect("the ticker runs");
        woken.recv_timeout(HANG).expect("woken by the same tick");
        // And the ticker goes on ticking.
        let (waker, woken) = reporting();
        register(&waker).expect("the ticker still runs");
        woken.recv_timeout(HANG).expect("woken by a later tick");
    }
}
