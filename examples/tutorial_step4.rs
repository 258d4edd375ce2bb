//! Step 4 of the book's tutorial: a listener for the operators.
//!
//! Generated from book/src/tutorial.md, block 4 (with its hidden lines shown) by
//! `python3 scripts/check-book.py --write-examples`; `scripts/book` checks that the two agree.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// What a check answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead; `remaining` more requests fit in the burst right now.
    Allowed { remaining: u32 },
    /// Too many requests: try again after `retry_after`.
    Denied { retry_after: Duration },
}

/// One client's token bucket.
#[derive(Clone, Debug)]
pub struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The whole state of the rate limiter.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    /// How many requests a client may make at once.
    burst: u32,
    /// How many tokens a bucket earns back per second.
    per_second: u32,
    /// One bucket per client key; a key without one has a full bucket.
    buckets: HashMap<String, Bucket>,
    /// Requests denied so far, for the metrics.
    denied: u64,
}

impl RateLimiter {
    pub fn new(burst: u32, per_second: u32) -> Self {
        RateLimiter {
            burst,
            per_second,
            buckets: HashMap::new(),
            denied: 0,
        }
    }

    /// The tokens `key` has at `now`, without taking any.
    fn tokens(&self, key: &str, now: Instant) -> f64 {
        match self.buckets.get(key) {
            None => f64::from(self.burst),
            Some(bucket) => {
                let elapsed = now.duration_since(bucket.updated).as_secs_f64();
                let earned = elapsed * f64::from(self.per_second);
                (bucket.tokens + earned).min(f64::from(self.burst))
            }
        }
    }

    /// Takes a token from `key`'s bucket at `now`, if it has one.
    fn take(&mut self, key: String, now: Instant) -> Decision {
        let tokens = self.tokens(&key, now);
        if tokens >= 1.0 {
            self.buckets.insert(
                key,
                Bucket {
                    tokens: tokens - 1.0,
                    updated: now,
                },
            );
            Decision::Allowed {
                remaining: (tokens - 1.0) as u32,
            }
        } else {
            self.buckets.insert(
                key,
                Bucket {
                    tokens,
                    updated: now,
                },
            );
            self.denied += 1;
            let wait = (1.0 - tokens) / f64::from(self.per_second);
            Decision::Denied {
                retry_after: Duration::from_secs_f64(wait),
            }
        }
    }
}

#[peeper::server]
impl RateLimiter {
    /// May this request go ahead? Takes a token from `key`'s bucket if it has one.
    #[call]
    fn check(&mut self, key: String) -> Decision {
        self.take(key, Instant::now())
    }

    /// Checks several keys at once, for a request made on behalf of several clients.
    #[call]
    fn check_all(&mut self, keys: Vec<String>) -> Vec<Decision> {
        let now = Instant::now();
        keys.into_iter()
            .map(|key| {
                assert!(!key.is_empty(), "a request without a client key");
                self.take(key, now)
            })
            .collect()
    }

    /// How many requests `key` may make right now. `&self`: it only reads, so the state is
    /// never copied for it.
    #[call]
    fn remaining(&self, key: String) -> u32 {
        self.tokens(&key, Instant::now()) as u32
    }

    /// Requests denied so far.
    #[call]
    fn denied(&self) -> u64 {
        self.denied
    }

    /// Lifts a client's limit (an operator's decision): its bucket is forgotten.
    #[cast]
    fn forgive(&mut self, key: String) {
        self.buckets.remove(&key);
    }
}

use std::sync::{Arc, Mutex};

use peeper::{Exit, Listener};

/// What the operators see: throttling, restarts, the end. A real one would feed metrics.
#[derive(Clone, Debug, Default)]
pub struct Audit(Arc<Mutex<Vec<String>>>);

impl Audit {
    fn log(&self, line: String) {
        self.0.lock().expect("not poisoned").push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().expect("not poisoned").clone()
    }
}

impl Listener<RateLimiter> for Audit {
    fn on_state_changed(&self, old: &RateLimiter, new: &RateLimiter) {
        if new.denied > old.denied {
            self.log(format!(
                "throttled a client ({} denials so far)",
                new.denied
            ));
        }
    }

    fn on_restart(&self, incarnation: u64, reason: &Exit) {
        self.log(format!("restarted as worker {incarnation}: {reason}"));
    }

    fn on_terminate(&self, reason: &Exit, last: &RateLimiter) {
        self.log(format!(
            "ended ({reason}) with {} buckets",
            last.buckets.len()
        ));
    }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let audit = Audit::default();
    let limiter = RateLimiter::builder(RateLimiter::new(1, 1))
        .listener(audit.clone())
        .start()
        .await?;

    limiter.check("mallory".into()).await?;
    limiter.check("mallory".into()).await?; // denied
    let restarted = limiter.branch().next_restart();
    limiter.branch().kill_worker()?;
    restarted.await?;
    limiter.stop().await?; // resolves after `on_terminate` has run

    assert_eq!(
        audit.lines(),
        [
            "throttled a client (1 denials so far)",
            "restarted as worker 1: the worker was killed",
            "ended (stopped normally) with 1 buckets",
        ]
    );
    Ok(())
}
