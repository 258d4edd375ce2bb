//! Step 1 of the book's tutorial: the state, as plain Rust.
//!
//! Generated from book/src/tutorial.md, block 1 (with its hidden lines shown) by
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

fn main() {
    // A burst of 2, one token back per second.
    let mut limiter = RateLimiter::new(2, 1);
    let t0 = Instant::now();
    assert_eq!(
        limiter.take("ada".into(), t0),
        Decision::Allowed { remaining: 1 }
    );
    assert_eq!(
        limiter.take("ada".into(), t0),
        Decision::Allowed { remaining: 0 }
    );
    assert_eq!(
        limiter.take("ada".into(), t0),
        Decision::Denied {
            retry_after: Duration::from_secs(1)
        }
    );
    // A second later ada has earned a token back; grace was never limited.
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(
        limiter.take("ada".into(), t1),
        Decision::Allowed { remaining: 0 }
    );
    assert_eq!(
        limiter.take("grace".into(), t1),
        Decision::Allowed { remaining: 1 }
    );
}
