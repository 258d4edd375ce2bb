//! Calls that can be retried safely: the records of calls made with an idempotency key.
//!
//! A call made with a key ([`Client::idempotent`](crate::Client::idempotent), or the typed
//! client's `idempotent(key)`) runs its handler once; the reply is recorded with the key, and a
//! later call with the same key returns that reply without running the handler again.
//!
//! ```text
//! keyed call ──► worker: expire the oldest records whose time is up (no scan: they are in order)
//!                  │
//!                  ├─ recorded, same message ──► the recorded reply (the handler does not run)
//!                  ├─ recorded, other message ──► CallError::KeyReused (nothing runs)
//!                  └─ not recorded ──► the handler runs ─┬─ completes: the state is kept, the
//!                                                        │  record joins it (same commit for a
//!                                                        │  durable server), then the reply
//!                                                        └─ crashes: nothing is recorded, a
//!                                                           retry runs the handler again
//! ```
//!
//! The records live in the branch's cell, next to the kept state, so they survive a crash of the
//! worker exactly as the state does. A durable server also writes each new record (and forgets
//! each expired one) in the same [`Write`](crate::store::Write) as its state, so in the store
//! neither exists without the other; it reads its records back at its first keyed call after it
//! started or revived. Records expire after a window (24 h unless set) and at most a bounded
//! number are kept per server, the oldest going first.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::Server;
use crate::store::{Key, StoreError};

/// How long a record is kept unless set otherwise: 24 hours, as Restate keeps idempotent results.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// How many records a server keeps at most unless set otherwise.
pub const DEFAULT_RETAINED_MAX: usize = 10_000;

/// The key a retried call carries, so that it is applied once: a request id from the caller
/// (an HTTP `Idempotency-Key` header, a message id from a queue).
///
/// Keys are scoped to one server: the same key sent to two servers is two calls.
///
/// ```
/// use peeper::IdempotencyKey;
///
/// let key = IdempotencyKey::from("order-7f3a");
/// assert_eq!(key.as_str(), "order-7f3a");
/// assert_eq!(IdempotencyKey::from(String::from("order-7f3a")), key);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(Arc<str>);

impl IdempotencyKey {
    /// The key as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for IdempotencyKey {
    fn from(key: &str) -> Self {
        IdempotencyKey(key.into())
    }
}

impl From<String> for IdempotencyKey {
    fn from(key: String) -> Self {
        IdempotencyKey(key.into())
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the reply of a call made with an idempotency key needs: it is recorded, and a durable
/// server stores it, so serde's `Serialize` and `Deserialize`. Implemented for every such type.
///
/// ```
/// fn can_be_retained<T: peeper::Retainable>() {}
/// can_be_retained::<u64>();
/// can_be_retained::<Vec<String>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "the reply `{Self}` of a call made with an idempotency key must be serde",
    label = "its reply is recorded with the key, to answer a retry",
    note = "derive `serde::Serialize` and `serde::Deserialize` for `{Self}`, or call this handler without `idempotent(..)`"
)]
pub trait Retainable: Serialize + DeserializeOwned + Send + 'static {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned + Send + 'static> Retainable for T {}

/// What the arguments of a call made with an idempotency key need: the message is recorded as a
/// digest of its serialized form, so that a key reused with another message is refused.
/// Implemented for every `Serialize` type.
///
/// ```
/// fn can_be_compared<T: peeper::Comparable>() {}
/// can_be_compared::<(u64, String)>();
/// ```
#[diagnostic::on_unimplemented(
    message = "the argument `{Self}` of a call made with an idempotency key must be `serde::Serialize`",
    label = "a retry is checked to carry the same message as the first call",
    note = "derive `serde::Serialize` for `{Self}`, or call this handler without `idempotent(..)`"
)]
pub trait Comparable: Serialize {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + ?Sized> Comparable for T {}

/// How a keyed call's reply is recorded and read back: what the typed client knows of its reply
/// type, for a worker that only knows the server's reply enum.
pub(crate) struct ReplyCodec<S: Server> {
    pub(crate) encode: fn(&S::Reply) -> Result<Vec<u8>, String>,
    pub(crate) decode: fn(&[u8]) -> Result<S::Reply, String>,
}

impl<S: Server> Clone for ReplyCodec<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S: Server> Copy for ReplyCodec<S> {}

/// The digest that tells two messages apart: FNV-1a over the handler's name and its arguments
/// in MessagePack. Stable across processes and builds (it is stored), unlike `std`'s hasher.
pub(crate) fn digest(method: &str, args: &impl Serialize) -> u64 {
    // Arguments that cannot be serialized (a map with non-string keys in some codecs) leave the
    // handler's name alone to tell messages apart.
    let args = rmp_serde::to_vec_named(args).unwrap_or_default();
    let mut message = Vec::with_capacity(method.len() + 1 + args.len());
    message.extend_from_slice(method.as_bytes());
    message.push(0xff);
    message.extend_from_slice(&args);
    crate::fingerprint::fingerprint(&message)
}

pub(crate) fn encode_reply<T: Serialize>(reply: &T) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(reply).map_err(|error| error.to_string())
}

pub(crate) fn decode_reply<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    rmp_serde::from_slice(bytes).map_err(|error| error.to_string())
}

/// How long records are kept and how many, per server ([`Builder::retain`](crate::Builder)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Retention {
    pub(crate) window: Duration,
    pub(crate) max: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            window: DEFAULT_RETENTION,
            max: DEFAULT_RETAINED_MAX,
        }
    }
}

/// A record's changes on their way to the store: each id with its encoded record, or `None` to
/// forget it.
pub(crate) type Changes = Vec<(String, Option<Vec<u8>>)>;

/// Records not written to the store yet. Shared with the write that carries them, which puts
/// them back if it fails: they go with the next write of the state.
#[derive(Clone, Default)]
pub(crate) struct Unwritten(Arc<Mutex<Changes>>);

impl Unwritten {
    fn lock(&self) -> MutexGuard<'_, Changes> {
        // Only vector operations run under the lock.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, id: &str, record: Option<Vec<u8>>) {
        self.lock().push((id.to_owned(), record));
    }

    /// Everything waiting, for a write to carry.
    pub(crate) fn take(&self) -> Changes {
        std::mem::take(&mut *self.lock())
    }

    /// Puts back what a failed write carried, unless a later change of the same id came since.
    pub(crate) fn put_back(&self, failed: Changes) {
        let mut waiting = self.lock();
        let later: Changes = std::mem::take(&mut *waiting);
        for (id, record) in failed {
            if !later.iter().any(|(later_id, _)| *later_id == id) {
                waiting.push((id, record));
            }
        }
        waiting.extend(later);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// One recorded call. (When it expires is kept in `Retained::order`; the store's copy has it on
/// the wall clock, milliseconds since the Unix epoch, from which a process that reads the record
/// back measures what is left of its window.)
struct Record {
    digest: u64,
    reply: Box<[u8]>,
}

/// What a keyed call finds.
pub(crate) enum Found<'a> {
    /// The key was used for this very message: its reply.
    Reply(&'a [u8]),
    /// The key was used for another message.
    Reused,
    /// The key is new (or its record expired).
    New,
}

/// The records of one server, in its cell.
pub(crate) struct Retained {
    retention: Retention,
    /// Whether the store's records were read (always, for a server without a store).
    pub(crate) loaded: bool,
    durable: bool,
    records: HashMap<Arc<str>, Record>,
    /// Ids by expiry, oldest first: every record has the same window, so the order of insertion
    /// is the order of expiry; records read back from a store are sorted once.
    order: VecDeque<(Instant, Arc<str>)>,
    pub(crate) unwritten: Unwritten,
}

const RECORD_VERSION: u8 = 1;
const RECORD_HEADER: usize = 1 + 8 + 8;

impl Retained {
    pub(crate) fn new(retention: Retention, durable: bool) -> Self {
        Retained {
            retention,
            loaded: !durable,
            durable,
            records: HashMap::new(),
            order: VecDeque::new(),
            unwritten: Unwritten::default(),
        }
    }

    /// How many records are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.records.len()
    }

    /// Takes in the records a store kept for `key`, forgetting the expired ones (in the store
    /// too, with the next write).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a record that is not one: nothing is taken in, and the bytes
    /// are left untouched.
    pub(crate) fn load(
        &mut self,
        key: &Key,
        stored: Vec<(String, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let wall = unix_millis(SystemTime::now());
        let mut read = Vec::with_capacity(stored.len());
        for (id, bytes) in stored {
            let (digest, expires_at, reply) = parse(&bytes).ok_or_else(|| StoreError::Corrupt {
                key: key.clone(),
                reason: format!("the record of the keyed call `{id}` is damaged"),
            })?;
            read.push((id, (digest, expires_at, reply.to_vec())));
        }
        read.sort_by_key(|(_, (_, expires_at, _))| *expires_at);
        for (id, (digest, expires_at, reply)) in read {
            if expires_at <= wall {
                self.unwritten.push(&id, None);
                continue;
            }
            let expires = now + Duration::from_millis(expires_at - wall);
            let id: Arc<str> = id.into();
            self.order.push_back((expires, Arc::clone(&id)));
            let record = Record {
                digest,
                reply: reply.into(),
            };
            self.records.insert(id, record);
        }
        self.loaded = true;
        self.evict_over_max();
        Ok(())
    }

    /// Forgets every record whose window has passed: only the oldest are looked at.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some((expires, _)) = self.order.front()
            && *expires <= now
        {
            if let Some((_, id)) = self.order.pop_front() {
                self.forget(&id);
            }
        }
    }

    /// What a call with `key` and `digest` finds.
    pub(crate) fn find(&self, key: &IdempotencyKey, digest: u64) -> Found<'_> {
        match self.records.get(key.as_str()) {
            Some(record) if record.digest == digest => Found::Reply(&record.reply),
            Some(_) => Found::Reused,
            None => Found::New,
        }
    }

    /// Records the reply of the call made with `key`, forgetting the oldest record if the server
    /// keeps too many.
    pub(crate) fn insert(&mut self, key: &IdempotencyKey, digest: u64, reply: Vec<u8>) {
        let expires = Instant::now() + self.retention.window;
        let window = u64::try_from(self.retention.window.as_millis()).unwrap_or(u64::MAX);
        let expires_at = unix_millis(SystemTime::now()).saturating_add(window);
        let id: Arc<str> = Arc::clone(&key.0);
        if self.durable {
            let mut bytes = Vec::with_capacity(RECORD_HEADER + reply.len());
            bytes.push(RECORD_VERSION);
            bytes.extend_from_slice(&digest.to_le_bytes());
            bytes.extend_from_slice(&expires_at.to_le_bytes());
            bytes.extend_from_slice(&reply);
            self.unwritten.push(&id, Some(bytes));
        }
        self.order.push_back((expires, Arc::clone(&id)));
        let record = Record {
            digest,
            reply: reply.into(),
        };
        self.records.insert(id, record);
        self.evict_over_max();
    }

    fn evict_over_max(&mut self) {
        while self.records.len() > self.retention.max {
            let Some((_, id)) = self.order.pop_front() else {
                break;
            };
            self.forget(&id);
        }
    }

    fn forget(&mut self, id: &Arc<str>) {
        if self.records.remove(id).is_some() && self.durable {
            self.unwritten.push(id, None);
        }
    }
}

/// `(digest, expires_at, reply)` out of a stored record.
fn parse(bytes: &[u8]) -> Option<(u64, u64, &[u8])> {
    let (&version, rest) = bytes.split_first()?;
    if version != RECORD_VERSION || rest.len() < RECORD_HEADER - 1 {
        return None;
    }
    let (digest, rest) = rest.split_at(8);
    let (expires_at, reply) = rest.split_at(8);
    Some((
        u64::from_le_bytes(digest.try_into().ok()?),
        u64::from_le_bytes(expires_at.try_into().ok()?),
        reply,
    ))
}

fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> IdempotencyKey {
        IdempotencyKey::from(id)
    }

    #[tokio::test(start_paused = true)]
    async fn records_expire_oldest_first_and_the_max_evicts_the_oldest() {
        let retention = Retention {
            window: Duration::from_secs(60),
            max: 2,
        };
        let mut retained = Retained::new(retention, true);
        retained.insert(&key("a"), 1, vec![1]);
        tokio::time::advance(Duration::from_secs(30)).await;
        retained.insert(&key("b"), 2, vec![2]);
        assert!(matches!(retained.find(&key("a"), 1), Found::Reply([1])));
        assert!(matches!(retained.find(&key("a"), 9), Found::Reused));
        tokio::time::advance(Duration::from_secs(30)).await;
        retained.expire(Instant::now());
        assert!(
            matches!(retained.find(&key("a"), 1), Found::New),
            "a's window passed"
        );
        assert!(matches!(retained.find(&key("b"), 2), Found::Reply([2])));
        retained.insert(&key("c"), 3, vec![3]);
        retained.insert(&key("d"), 4, vec![4]);
        assert_eq!(retained.len(), 2);
        assert!(
            matches!(retained.find(&key("b"), 2), Found::New),
            "evicted: the oldest"
        );
        let changes = retained.unwritten.take();
        let forgotten: Vec<&str> = changes
            .iter()
            .filter(|(_, record)| record.is_none())
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(forgotten, ["a", "b"], "the store forgets them too");
    }

    #[tokio::test(start_paused = true)]
    async fn stored_records_come_back_with_what_is_left_of_their_window() {
        let mut first = Retained::new(Retention::default(), true);
        first.insert(&key("a"), 7, b"reply".to_vec());
        let stored: Changes = first.unwritten.take();
        let (_, expires_at, _) = parse(stored[0].1.as_deref().expect("a record")).expect("parses");
        let left = Duration::from_millis(expires_at - unix_millis(SystemTime::now()));
        assert!(left <= DEFAULT_RETENTION && left > DEFAULT_RETENTION - Duration::from_secs(60));
        let stored: Vec<(String, Vec<u8>)> = stored
            .into_iter()
            .filter_map(|(id, record)| Some((id, record?)))
            .chain([("old".to_owned(), {
                let mut old = vec![RECORD_VERSION];
                old.extend_from_slice(&1_u64.to_le_bytes());
                old.extend_from_slice(&1_u64.to_le_bytes()); // expired in 1970
                old
            })])
            .collect();
        let mut second = Retained::new(Retention::default(), true);
        second
            .load(&Key::new("k", "n"), stored)
            .expect("well-formed");
        assert!(matches!(second.find(&key("a"), 7), Found::Reply(b"reply")));
        // What is left of its window, from the wall clock: gone once that has passed.
        tokio::time::advance(left - Duration::from_secs(1)).await;
        second.expire(Instant::now());
        assert!(matches!(second.find(&key("a"), 7), Found::Reply(_)));
        tokio::time::advance(Duration::from_secs(1)).await;
        second.expire(Instant::now());
        assert!(matches!(second.find(&key("a"), 7), Found::New));
        assert!(matches!(second.find(&key("old"), 1), Found::New));
        assert_eq!(
            second.unwritten.take(),
            [("old".to_owned(), None), ("a".to_owned(), None)]
        );

        let damaged = vec![("x".to_owned(), vec![RECORD_VERSION, 1, 2])];
        let mut third = Retained::new(Retention::default(), true);
        let error = third.load(&Key::new("k", "n"), damaged).err();
        assert!(
            matches!(error, Some(StoreError::Corrupt { .. })),
            "{error:?}"
        );
        assert!(!third.loaded);
    }

    #[test]
    fn digests_tell_messages_apart_and_are_stable() {
        assert_eq!(digest("add", &(1_u64,)), digest("add", &(1_u64,)));
        assert_ne!(digest("add", &(1_u64,)), digest("add", &(2_u64,)));
        assert_ne!(digest("add", &(1_u64,)), digest("sub", &(1_u64,)));
        // Stored with the record: a change here breaks every record kept by an older build.
        assert_eq!(digest("add", &(1_u64,)), 0x8be0_fb97_cb32_15b3);
    }
}
