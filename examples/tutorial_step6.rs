//! Step 6 of the book's tutorial: tests.
//!
//! Generated from book/src/tutorial.md, block 6 (with its hidden lines shown) by
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

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A throttled client gets a token back after exactly one second.
async fn a_denied_client_is_let_in_after_the_retry_delay() -> TestResult {
    let limiter = RateLimiter::start(RateLimiter::new(2, 1)).await?;
    limiter.check("ada".into()).await?;
    limiter.check("ada".into()).await?;
    let Decision::Denied { retry_after } = limiter.check("ada".into()).await? else {
        panic!("the third request in a burst of two must be denied");
    };
    assert_eq!(retry_after, Duration::from_secs(1));

    // The clock is paused: `advance` moves it by exactly this much, at once.
    tokio::time::advance(retry_after).await;
    assert_eq!(
        limiter.check("ada".into()).await?,
        Decision::Allowed { remaining: 0 }
    );
    limiter.stop().await?;
    Ok(())
}

/// Neither a panic nor a kill lets a throttled client through, and queued casts survive both.
async fn the_limits_survive_crashes() -> TestResult {
    let limiter = RateLimiter::start(RateLimiter::new(1, 1)).await?;
    limiter.check("mallory".into()).await?;
    limiter.check("ada".into()).await?;

    // A panic: the crashing call says so, the next call is answered by a new worker.
    assert!(limiter.check_all(vec![String::new()]).await.is_err());
    assert_eq!(limiter.remaining("mallory".into()).await?, 0);

    // A kill while a cast is queued: wait for the restart, armed before the kill.
    limiter.forgive("ada".into())?;
    let restarted = limiter.branch().next_restart();
    limiter.branch().kill_worker()?;
    assert_eq!(restarted.await?, 2);
    assert_eq!(limiter.remaining("ada".into()).await?, 1);
    assert_eq!(limiter.remaining("mallory".into()).await?, 0);
    limiter.stop().await?;
    Ok(())
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> TestResult {
    a_denied_client_is_let_in_after_the_retry_delay().await?;
    the_limits_survive_crashes().await
}
