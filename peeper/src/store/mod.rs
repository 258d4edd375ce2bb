//! Durable state: where a server's state goes so that it survives the whole process.
//!
//! A **backend** implements [`Store`]: read one key, commit a batch of writes in one durable
//! transaction, list keys. Two come with peeper: [`Memory`] (for tests) and [`Redb`] (an embedded,
//! ACID, pure-Rust database file; the default choice). A [`Storage`] wraps a backend with **one
//! writer task doing group commit**: every write submitted while a commit is in flight waits for
//! the next one, which carries the latest state of every server that changed (repeated writes of
//! one key merged) in a single transaction. Callers wait on the commit that carries their write.
//!
//! A server opts in by implementing [`Persist`] (a stable kind name, a schema version, a
//! migration) and starting with [`Builder::store`](crate::Builder::store). Stored bytes are a
//! versioned envelope: codec id, schema version, payload. Reading an older version runs
//! the server's [`Persist::migrate`]; a newer version, or bytes that do not decode, is a typed
//! [`StoreError`] and the stored bytes are left exactly as they are.
//!
//! ```
//! use peeper::store::{Memory, Storage};
//!
//! #[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
//! pub struct Score { points: u64 }
//!
//! #[peeper::server]
//! impl Score {
//!     #[call]
//!     fn points(&self) -> u64 { self.points }
//!     #[call]
//!     fn add(&mut self, by: u64) -> u64 { self.points += by; self.points }
//! }
//!
//! impl peeper::Persist for Score {
//!     const KIND: &'static str = "score";
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let storage = Storage::new(Memory::new());
//! let score = Score::builder(Score::default()).name("ada").store(storage.clone()).start().await?;
//! assert_eq!(score.add(5).await?, 5);      // replied once committed
//!
//! // What an operator sees: one key, holding a versioned envelope.
//! let keys = storage.keys(Some("score")).await?;
//! assert_eq!(keys, [peeper::store::Key::new("score", "ada")]);
//! assert!(storage.read(&keys[0]).await?.is_some_and(|bytes| bytes.starts_with(b"PEEP")));
//!
//! score.stop().await?;                     // a normal stop wipes it (see `OnStop`)
//! assert!(storage.keys(None).await?.is_empty());
//! # Ok(()) }
//! ```

mod claim;
mod codec;
mod memory;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod redb;
mod revive;
mod writer;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{RwLock, RwLockReadGuard};

pub use self::claim::{Claim, NodeId};
pub use self::codec::{Codec, Persist, Persistable, Storable, Stored, Stores};
pub(crate) use self::codec::{decode, encode};
pub use self::memory::Memory;
#[cfg(feature = "postgres-tls")]
pub use self::postgres::PostgresTls;
#[cfg(feature = "postgres")]
pub use self::postgres::{Postgres, PostgresBuilder};
pub use self::redb::Redb;
pub use self::revive::{Revivable, revive_all};
use self::writer::Writer;

/// A boxed, sendable future: what [`Store`]'s methods return, so the trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a persisted server's state lives: its server kind ([`Persist::KIND`]) and its name.
///
/// ```
/// let key = peeper::store::Key::new("player", "ada");
/// assert_eq!(key.to_string(), "player/ada");
/// ```
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Key {
    /// The server kind.
    pub kind: String,
    /// The server's name.
    pub name: String,
}

impl Key {
    /// The key of server `name` of kind `kind`.
    pub fn new(kind: impl Into<String>, name: impl Into<String>) -> Self {
        Key {
            kind: kind.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// Why stored state could not be read or written.
///
/// ```
/// let err = peeper::store::StoreError::NewerVersion { key: peeper::store::Key::new("p", "a"), stored: 3, known: 2 };
/// assert_eq!(err.to_string(), "`p/a` was stored with schema version 3, newer than this build's 2; the bytes were left untouched");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed (I/O, a full disk, a read-only file, a lost connection, a damaged
    /// database file).
    #[error("the store failed: {message}")]
    Backend {
        /// The backend's error, as text.
        message: String,
    },
    /// The stored bytes are not a peeper envelope, use an unknown codec, or do not decode as the
    /// server's state. They were left untouched.
    #[error("`{key}` holds corrupt data ({reason}); the bytes were left untouched")]
    Corrupt {
        /// The key read.
        key: Key,
        /// What is wrong with the bytes.
        reason: String,
    },
    /// The state was stored by a newer build (a higher [`Persist::VERSION`]). The bytes were left
    /// untouched.
    #[error(
        "`{key}` was stored with schema version {stored}, newer than this build's {known}; the bytes were left untouched"
    )]
    NewerVersion {
        /// The key read.
        key: Key,
        /// The version in the store.
        stored: u32,
        /// This build's version.
        known: u32,
    },
    /// The state was stored with an older version and [`Persist::migrate`] could not bring it
    /// forward. The bytes were left untouched.
    #[error(
        "`{key}` could not be migrated from schema version {from}: {reason}; the bytes were left untouched"
    )]
    Migration {
        /// The key read.
        key: Key,
        /// The version in the store.
        from: u32,
        /// Why the migration failed.
        reason: String,
    },
    /// The state could not be encoded.
    #[error("the state of `{key}` could not be encoded: {reason}")]
    Encode {
        /// The key written.
        key: Key,
        /// The codec's error.
        reason: String,
    },
    /// The [`Storage`] was closed ([`Storage::close`], on it or any clone): it writes and reads
    /// nothing any more. Also the answer to a write whose writer task ended with its runtime
    /// before the write was committed.
    #[error("the storage is closed")]
    Closed,
    /// Another live node owns the server: its lease in a shared store (a
    /// `Postgres` cluster, with the `postgres` feature) is held by `node` and has not expired.
    /// Talk to the server on that node, or start it here once `node` hands it off or dies.
    #[error("`{key}` is owned by node `{node}`")]
    OwnedElsewhere {
        /// The key claimed.
        key: Key,
        /// The node that owns it.
        node: NodeId,
    },
    /// A write was refused by fencing: this node no longer owns the key (its lease expired and
    /// another node claimed it with a higher epoch, or it was released). The write changed
    /// nothing; the server on this node is stale and ends (with
    /// [`Exit::Fenced`](crate::Exit::Fenced)).
    #[error("this node no longer owns `{key}` ({}); the write changed nothing", owner_text(.owner.as_ref()))]
    Fenced {
        /// The key written.
        key: Key,
        /// The node that owns it now, if any.
        owner: Option<NodeId>,
    },
}

fn owner_text(owner: Option<&NodeId>) -> String {
    match owner {
        Some(node) => format!("node `{node}` owns it now"),
        None => "no node owns it now".to_owned(),
    }
}

impl StoreError {
    /// A [`StoreError::Backend`] from any error.
    pub fn backend(error: impl fmt::Display) -> Self {
        StoreError::Backend {
            message: error.to_string(),
        }
    }
}

/// One write of a batch: the new bytes of a key, or `None` to delete it, and the claim of the
/// server that made it.
///
/// A store that fences ([`Postgres`]) applies a write only while the claim it was made under is
/// still the one it holds: a write submitted by a server whose claim was given up (its start was
/// dropped) or taken over is refused, even when it reaches the store after a newer claim of the
/// same key. Stores that one process owns ignore the claim.
///
/// ```
/// use peeper::store::{Claim, Key, Write};
///
/// let put = Write::put(Key::new("counter", "a"), b"bytes".to_vec());
/// assert_eq!(put.bytes.as_deref(), Some(&b"bytes"[..]));
/// assert_eq!(put.claim, None); // made outside any server: the store's own lease decides
/// let delete = Write::delete(Key::new("counter", "a")).under(Claim::new(7));
/// assert_eq!((delete.bytes, delete.claim), (None, Some(Claim::new(7))));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Write {
    /// The key written.
    pub key: Key,
    /// The new bytes, or `None` to delete the key.
    pub bytes: Option<Vec<u8>>,
    /// The claim of the server that made the write ([`Store::claim`]); `None` for a write made
    /// outside any server ([`Storage::delete`]), which a fencing store checks against whatever
    /// lease it holds on the key now.
    pub claim: Option<Claim>,
    /// Records of calls made with an idempotency key, kept with the key's state: each id with its
    /// record, or `None` to forget it ([`Store::retained`]). Applied in the same transaction as
    /// the state, and only if the state write is; deleting the key forgets all of its records.
    pub retained: Vec<(String, Option<Vec<u8>>)>,
}

impl Write {
    /// Stores `bytes` under `key`.
    #[must_use]
    pub fn put(key: Key, bytes: Vec<u8>) -> Self {
        Write {
            key,
            bytes: Some(bytes),
            claim: None,
            retained: Vec::new(),
        }
    }

    /// Deletes `key`.
    #[must_use]
    pub fn delete(key: Key) -> Self {
        Write {
            key,
            bytes: None,
            claim: None,
            retained: Vec::new(),
        }
    }

    /// The same write, made under `claim`.
    #[must_use]
    pub fn under(mut self, claim: Claim) -> Self {
        self.claim = Some(claim);
        self
    }

    /// The same write, also keeping `record` under `id` for the key (`None`: forgetting it).
    #[must_use]
    pub fn retaining(mut self, id: impl Into<String>, record: Option<Vec<u8>>) -> Self {
        self.retained.push((id.into(), record));
        self
    }
}

/// The records of calls made with an idempotency key kept for one key ([`Store::retained`]):
/// each id with its record, as written in [`Write::retained`].
pub type Records = Vec<(String, Vec<u8>)>;

/// A storage backend. Implement it to keep state somewhere else; it is object-safe, so a
/// [`Storage`] can be chosen at run time.
///
/// [`commit`](Store::commit) must be atomic and durable: when it returns `Ok`, every write of the
/// batch survives a process kill (and a power loss, as far as the backend can promise); when it
/// returns `Err`, none is applied.
///
/// ```
/// use peeper::store::{Memory, Store, Key, Write};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), peeper::store::StoreError> {
/// let memory = Memory::new();
/// memory.commit(vec![Write::put(Key::new("k", "a"), b"bytes".to_vec())]).await?;
/// assert_eq!(memory.read(&Key::new("k", "a")).await?, Some(b"bytes".to_vec()));
/// assert_eq!(memory.keys(Some("k")).await?, [Key::new("k", "a")]);
/// # Ok(()) }
/// ```
pub trait Store: Send + Sync + 'static {
    /// The bytes stored under `key`, if any.
    fn read<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>>;

    /// Applies every write of `batch` in one atomic, durable transaction.
    fn commit(&self, batch: Vec<Write>) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Every stored key, or only those of one server kind.
    fn keys<'a>(&'a self, kind: Option<&'a str>) -> BoxFuture<'a, Result<Vec<Key>, StoreError>>;

    /// The records of calls made with an idempotency key ([`Write::retained`]) kept for `key`,
    /// each with its id, in any order. A durable server reads them at its first keyed call after
    /// it started or revived.
    ///
    /// A store that keeps them applies [`Write::retained`] in the same transaction as the state
    /// and implements this. The default keeps none and says so: a keyed call to a durable server
    /// on such a store fails with [`StoreError::Backend`] rather than apply twice on a retry.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    fn retained<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<Records, StoreError>> {
        let _ = key;
        Box::pin(std::future::ready(Err(StoreError::backend(
            "this store keeps no records of keyed calls (`Store::retained` is not implemented)",
        ))))
    }

    // Ownership, for stores that several processes share. The runtime claims a durable server's
    // key before it loads its state (at start, and when it revives from hibernation) and releases
    // it after its last write (when it ends, hibernates or is handed off). A store that one
    // process owns needs none of it: the defaults grant everything.

    /// Claims `key` for this node, before a server runs on it.
    ///
    /// # Errors
    /// [`StoreError::OwnedElsewhere`] if another live node owns it; [`StoreError::Backend`].
    fn claim<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<Claim, StoreError>> {
        let _ = key;
        Box::pin(std::future::ready(Ok(Claim::LOCAL)))
    }

    /// Gives `key` up, after the last write of its server committed.
    ///
    /// # Errors
    /// [`StoreError::Backend`]; a lease that is not released expires on its own.
    fn release<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<(), StoreError>> {
        let _ = key;
        Box::pin(std::future::ready(Ok(())))
    }

    /// Gives up the claim on `key` at once, without waiting: the server it was made for never
    /// ran (its start failed, or was cancelled at an await). A new claim of `key` by this node
    /// may follow right away; a store that leases keys releases the lease in the background.
    /// The default does nothing.
    fn abandon(&self, key: &Key) {
        let _ = key;
    }

    /// Commits the writes of `batch` that this node may still make, in one atomic, durable
    /// transaction, and returns the others, each with why it was refused (typically
    /// [`StoreError::Fenced`]): what the group-commit writer calls, so that one server that lost
    /// its lease fails alone instead of failing everyone's batch. The default refuses none.
    ///
    /// # Errors
    /// [`StoreError::Backend`]: nothing was applied.
    fn commit_owned(
        &self,
        batch: Vec<Write>,
    ) -> BoxFuture<'_, Result<Vec<(Key, StoreError)>, StoreError>> {
        Box::pin(async move { self.commit(batch).await.map(|()| Vec::new()) })
    }
}

/// A backend with its group-commit writer: what servers are started with
/// ([`Builder::store`](crate::Builder::store)). Cheap to clone; clones share the writer and the
/// backend, so start every server of a process with clones of one `Storage` for the best
/// batching.
///
/// It also gives operators and tests a way to look at what is stored: [`keys`](Storage::keys),
/// [`read`](Storage::read) and [`delete`](Storage::delete).
///
/// ```
/// use peeper::store::{Key, Memory, Storage};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), peeper::store::StoreError> {
/// let storage = Storage::new(Memory::new());
/// assert!(storage.keys(None).await?.is_empty());
/// assert_eq!(storage.read(&Key::new("player", "ada")).await?, None);
/// # Ok(()) }
/// ```
///
/// # Closing
///
/// [`close`](Storage::close) commits every write submitted so far, ends the writer task and
/// releases the backend (a [`Redb`] file can be opened again as soon as it returns). Dropping the
/// last clone (every server started on it included) does the same without waiting: the backend
/// is released at once, unless a commit is in flight or writes are pending; the writer task
/// then commits them and releases it after the last one (a commit on a blocking thread cannot
/// be interrupted). Await `close` when the moment matters.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    // Declared first, so dropped first: its `Drop` may keep the backend for a last commit of
    // pending writes, which it can only do while `backend` still holds it.
    writer: Writer,
    /// `None` once closed. A read lock is held by every call that uses the backend, so that
    /// `close` waits for them before it lets the backend go.
    backend: RwLock<Option<Arc<dyn Store>>>,
}

impl Storage {
    /// Wraps a backend. The writer task starts on the current tokio runtime at the first write.
    pub fn new(backend: impl Store) -> Self {
        Self::with_max_batch(backend, usize::MAX)
    }

    /// Wraps a backend with a bound on how many keys one transaction carries (at least 1).
    /// Writes beyond the bound wait for the next round. `1` commits every write on its own: the
    /// baseline group commit is measured against (`cargo bench -p peeper-tests --bench durable`).
    ///
    /// ```
    /// use peeper::store::{Memory, Storage};
    /// let one_by_one = Storage::with_max_batch(Memory::new(), 1);
    /// # drop(one_by_one);
    /// ```
    pub fn with_max_batch(backend: impl Store, max_batch: usize) -> Self {
        let backend: Arc<dyn Store> = Arc::new(backend);
        Storage {
            inner: Arc::new(Inner {
                writer: Writer::new(&backend, max_batch),
                backend: RwLock::new(Some(backend)),
            }),
        }
    }

    /// The backend, held open (for [`close`](Storage::close) to wait on) while the guard lives.
    async fn backend(&self) -> Result<RwLockReadGuard<'_, dyn Store>, StoreError> {
        RwLockReadGuard::try_map(self.inner.backend.read().await, |backend| {
            backend.as_deref()
        })
        .map_err(|_closed| StoreError::Closed)
    }

    /// The raw bytes stored under `key` (a versioned envelope), if any.
    ///
    /// # Errors
    /// [`StoreError::Backend`]; [`StoreError::Closed`] after [`close`](Storage::close).
    pub async fn read(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend().await?.read(key).await
    }

    /// Every stored key, or only those of one server kind ([`Persist::KIND`]).
    ///
    /// # Errors
    /// [`StoreError::Backend`]; [`StoreError::Closed`] after [`close`](Storage::close).
    pub async fn keys(&self, kind: Option<&str>) -> Result<Vec<Key>, StoreError> {
        self.backend().await?.keys(kind).await
    }

    /// Deletes what is stored under `key`, through the writer (so after any write already
    /// submitted for it). Deleting the state of a running server does not stop it: its next
    /// change writes it again.
    ///
    /// # Errors
    /// [`StoreError::Backend`]; [`StoreError::Closed`] after [`close`](Storage::close).
    pub async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.submit(Write::delete(key.clone())).await
    }

    /// Closes the storage, and with it every clone: commits every write submitted before the
    /// call (waiting for those commits), ends the writer task and releases the backend. When it
    /// returns, nothing in peeper holds the backend any more: a [`Redb`] file can be opened
    /// again at once (unless you kept a clone of the `Redb` yourself).
    ///
    /// Afterwards every write (a durable server's, a [`delete`](Storage::delete)) and every
    /// [`read`](Storage::read) or [`keys`](Storage::keys) answers [`StoreError::Closed`]; a
    /// durable server still running on it can no longer keep its state, so stop your servers
    /// first. Calling `close` again (or on another clone) is harmless: it returns once the first
    /// close is complete.
    ///
    /// # Errors
    /// The [`StoreError`] of a commit that failed while the pending writes were flushed (their
    /// servers were told too). The storage is closed all the same.
    ///
    /// ```
    /// use peeper::store::{Key, Redb, Storage, StoreError};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("peeper-close-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("state.redb");
    ///
    /// let storage = Storage::new(Redb::open(&path)?);
    /// let clone = storage.clone();
    /// storage.delete(&Key::new("player", "ada")).await?;
    /// storage.close().await?;
    /// assert_eq!(clone.keys(None).await, Err(StoreError::Closed));   // clones are closed too
    ///
    /// let again = Storage::new(Redb::open(&path)?);                   // the file is free
    /// assert!(again.keys(None).await?.is_empty());
    /// again.close().await?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) -> Result<(), StoreError> {
        let flushed = self.inner.writer.close().await;
        // Waits for every read in progress; the backend is dropped here, unless a cancelled
        // read left a blocking call running (it holds the backend until it ends).
        drop(self.inner.backend.write().await.take());
        flushed
    }

    /// The records of keyed calls kept for `key` ([`Store::retained`]).
    pub(crate) async fn retained(&self, key: &Key) -> Result<Records, StoreError> {
        self.backend().await?.retained(key).await
    }

    /// Claims `key` for this node ([`Store::claim`]).
    pub(crate) async fn claim(&self, key: &Key) -> Result<Claim, StoreError> {
        self.backend().await?.claim(key).await
    }

    /// Releases `key` ([`Store::release`]). Called once the key's last write has committed.
    pub(crate) async fn release(&self, key: &Key) -> Result<(), StoreError> {
        self.backend().await?.release(key).await
    }

    /// Gives up a claim whose server never ran ([`Store::abandon`]).
    /// (Not awaited, so it cannot wait for a [`close`](Storage::close) in progress either: a claim
    /// given up while the storage closes is left to the backend's own end.)
    pub(crate) fn abandon(&self, key: &Key) {
        if let Ok(backend) = self.inner.backend.try_read()
            && let Some(backend) = backend.as_deref()
        {
            backend.abandon(key);
        }
    }

    /// Submits a write to the group-commit writer and waits for the commit that carries it.
    pub(crate) fn submit(
        &self,
        write: Write,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        self.inner.writer.submit(write)
    }

    /// How many commits the writer has made: a measure of batching (writes / commits).
    #[must_use]
    pub fn commits(&self) -> u64 {
        self.inner.writer.commits()
    }
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("commits", &self.commits())
            .finish_non_exhaustive()
    }
}

impl<B: Store> From<B> for Storage {
    fn from(backend: B) -> Self {
        Storage::new(backend)
    }
}
