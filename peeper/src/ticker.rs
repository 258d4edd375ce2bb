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
//! The tick counts: a call notes the [`epoch`] it registered in; `n` ticks later at least
//! `n - 1` whole periods have passed, so the timer armed then for the timeout less those periods
//! fires no earlier than asked for, and at most a period and a scheduling delay later.
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
    /// The ticker found nothing to wake and parks: the next registration unparks it.
    idle: AtomicBool,
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
        let mut shards = lock(&self.ticker.shards);
        shards.retain(|shard| !Arc::ptr_eq(shard, &self.shard));
        drop(shards);
        // Whatever still waits here is woken now rather than at a tick that no longer sees it.
        for waker in mem::take(&mut *lock(&self.shard.wakers)) {
            waker.wake();
        }
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
                    run(ticker);
                })
                .ok()?;
            Some(Ticker {
                epoch: AtomicU64::new(0),
                shards: Mutex::new(Vec::new()),
                idle: AtomicBool::new(false),
                thread: thread.thread().clone(),
            })
        })
        .as_ref()
}

fn run(ticker: &Ticker) {
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
    let shards = lock(&ticker.shards).clone();
    let mut woke = false;
    for shard in shards {
        let wakers = mem::take(&mut *lock(&shard.wakers));
        woke |= !wakers.is_empty();
        for waker in wakers {
            waker.wake();
        }
    }
    woke
}

/// Has `waker` woken at the next tick, and returns the epoch it registered in; `None` if there
/// is no ticker (the caller then arms its timer at once).
pub(crate) fn register(waker: &Waker) -> Option<u64> {
    LOCAL
        .try_with(|local| {
            let local = local.as_ref()?;
            {
                let mut wakers = lock(&local.shard.wakers);
                // A task that calls again before the tick is registered once.
                if !wakers.last().is_some_and(|last| last.will_wake(waker)) {
                    wakers.push(waker.clone());
                }
            }
            let ticker = local.ticker;
            if ticker.idle.load(Ordering::SeqCst) && ticker.idle.swap(false, Ordering::SeqCst) {
                ticker.thread.unpark();
            }
            Some(ticker.epoch.load(Ordering::SeqCst))
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
