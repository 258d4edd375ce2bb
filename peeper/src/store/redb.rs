//! [`Redb`]: the embedded default backend, one ACID database file.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{BoxFuture, Key, Records, Store, StoreError, Write};

/// (server kind, name) -> envelope bytes.
const STATES: TableDefinition<'_, (&str, &str), &[u8]> = TableDefinition::new("peeper_states");

/// (server kind, name, id) -> record of a keyed call ([`Store::retained`]).
const RETAINED: TableDefinition<'_, (&str, &str, &str), &[u8]> =
    TableDefinition::new("peeper_retained");

/// A backend on a [redb](https://docs.rs/redb) database file: pure Rust, ACID, crash-safe.
///
/// Every commit is durable (redb's default `Durability::Immediate`: fsynced before it returns).
/// redb also offers non-durable commits, which a process kill rolls back; peeper never uses them,
/// since a reply would then promise what a crash can take away. The group-commit writer of
/// [`Storage`](super::Storage) is what makes durable commits cheap: one fsync per round, however
/// many servers changed.
///
/// redb's calls block, so they run on tokio's blocking pool.
///
/// ```
/// use peeper::store::{Key, Redb, Storage};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("peeper-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let storage = Storage::new(Redb::open(dir.join("state.redb"))?);
/// assert_eq!(storage.read(&Key::new("player", "ada")).await?, None);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
///
/// # Damaged files
///
/// A file that is not a redb database, or that redb finds damaged as it opens it, fails
/// [`open`](Redb::open) with a [`StoreError::Backend`] and is left as it was; damage found later
/// fails the call that meets it. (A file that opens is written to, as every redb open and close
/// does: its header and allocator state.) redb's read paths do not verify page checksums and
/// can panic on a damaged page ([redb#1334](https://github.com/cberner/redb/issues/1334));
/// peeper catches such a panic, answers a [`StoreError::Backend`] that says the file is damaged,
/// and refuses every later call on this handle, so that nothing is written with the state the
/// panic left. (With `panic = "abort"` there is nothing to catch: the process aborts.)
#[derive(Debug, Clone)]
pub struct Redb {
    db: Arc<Db>,
}

/// The database, and whether a panic inside redb has made it unusable.
#[derive(Debug)]
struct Db {
    /// `None` only while it is dropped.
    database: Option<Database>,
    damaged: AtomicBool,
}

impl Redb {
    /// Opens the database file at `path`, creating it if it does not exist (or is empty).
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the file cannot be opened or created, is not a redb file or is
    /// damaged (the file is then left as it was), or is already open (in this process, through a
    /// handle not yet dropped or a [`Storage`](super::Storage) not yet
    /// [closed](super::Storage::close), or in another process).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let database = catch_unwind(AssertUnwindSafe(|| Database::create(path)))
            .map_err(|panic| damaged(&*panic))?
            .map_err(StoreError::backend)?;
        Ok(Redb {
            db: Arc::new(Db {
                database: Some(database),
                damaged: AtomicBool::new(false),
            }),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        // `db` is dropped when the closure returns, before the task's result is sent: once this
        // future is ready, the blocking call no longer holds the database.
        tokio::task::spawn_blocking(move || db.run(work))
            .await
            .map_err(StoreError::backend)?
    }
}

impl Db {
    /// Runs `work` on the database, turning a panic inside redb into an error.
    fn run<T>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        if self.damaged.load(Ordering::Acquire) {
            return Err(StoreError::backend(
                "the database file is damaged (redb panicked on an earlier call); reopen it once \
                 it is repaired or restored",
            ));
        }
        let Some(database) = &self.database else {
            unreachable!("the database is only taken by `Drop`, which no call outlives");
        };
        match catch_unwind(AssertUnwindSafe(|| work(database))) {
            Ok(outcome) => outcome.map_err(StoreError::backend),
            Err(panic) => {
                // After a caught panic redb's in-memory state is not to be trusted for writes
                // (redb#1333): no further call reaches it.
                self.damaged.store(true, Ordering::Release);
                Err(damaged(&*panic))
            }
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // Closing writes the allocator state, which panics on some damaged files
        // (redb#1303, https://github.com/cberner/redb/issues/1303): not a reason to take down the
        // thread that dropped the last handle.
        let database = self.database.take();
        if catch_unwind(AssertUnwindSafe(move || drop(database))).is_err() {
            tracing::error!("redb panicked while closing a damaged database file");
        }
    }
}

/// The error for a panic inside redb, which only a damaged file is known to cause.
fn damaged(panic: &(dyn Any + Send)) -> StoreError {
    StoreError::backend(format!(
        "the database file is damaged (redb panicked: {})",
        crate::panics::panic_message(panic)
    ))
}

impl Store for Redb {
    fn read<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        let (kind, name) = (key.kind.clone(), key.name.clone());
        Box::pin(self.blocking(move |db| {
            let read = db.begin_read()?;
            let table = match read.open_table(STATES) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(error) => return Err(error.into()),
            };
            Ok(table
                .get((kind.as_str(), name.as_str()))?
                .map(|bytes| bytes.value().to_vec()))
        }))
    }

    fn commit(&self, batch: Vec<Write>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.blocking(move |db| {
            let write = db.begin_write()?;
            {
                let mut table = write.open_table(STATES)?;
                let mut records = None;
                for Write {
                    key,
                    bytes,
                    retained,
                    ..
                } in &batch
                {
                    let (kind, name) = (key.kind.as_str(), key.name.as_str());
                    match bytes {
                        Some(bytes) => drop(table.insert((kind, name), bytes.as_slice())?),
                        None => drop(table.remove((kind, name))?),
                    }
                    // Opened only by a batch that touches records: a file without keyed calls
                    // never gets the table.
                    if retained.is_empty() && bytes.is_some() {
                        continue;
                    }
                    if records.is_none() {
                        records = Some(write.open_table(RETAINED)?);
                    }
                    let Some(records) = records.as_mut() else {
                        continue;
                    };
                    for (id, record) in retained {
                        match record {
                            Some(record) => {
                                drop(records.insert((kind, name, id.as_str()), record.as_slice())?);
                            }
                            None => drop(records.remove((kind, name, id.as_str()))?),
                        }
                    }
                    if bytes.is_none() {
                        for id in retained_ids(records, kind, name)? {
                            records.remove((kind, name, id.as_str()))?;
                        }
                    }
                }
            }
            write.commit()?;
            Ok(())
        }))
    }

    fn retained<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<Records, StoreError>> {
        let (kind, name) = (key.kind.clone(), key.name.clone());
        Box::pin(self.blocking(move |db| {
            let read = db.begin_read()?;
            let table = match read.open_table(RETAINED) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(error) => return Err(error.into()),
            };
            let mut records = Vec::new();
            for entry in table.range((kind.as_str(), name.as_str(), "")..)? {
                let (stored, record) = entry?;
                let (stored_kind, stored_name, id) = stored.value();
                if stored_kind != kind || stored_name != name {
                    break;
                }
                records.push((id.to_owned(), record.value().to_vec()));
            }
            Ok(records)
        }))
    }

    fn keys<'a>(&'a self, kind: Option<&'a str>) -> BoxFuture<'a, Result<Vec<Key>, StoreError>> {
        let kind = kind.map(str::to_owned);
        Box::pin(self.blocking(move |db| {
            let read = db.begin_read()?;
            let table = match read.open_table(STATES) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(error) => return Err(error.into()),
            };
            let mut keys = Vec::new();
            for entry in table.iter()? {
                let (key, _) = entry?;
                let (stored_kind, name) = key.value();
                if kind.as_deref().is_none_or(|kind| kind == stored_kind) {
                    keys.push(Key::new(stored_kind, name));
                }
            }
            Ok(keys)
        }))
    }
}

/// The ids of every record kept for (`kind`, `name`).
fn retained_ids(
    records: &impl ReadableTable<(&'static str, &'static str, &'static str), &'static [u8]>,
    kind: &str,
    name: &str,
) -> Result<Vec<String>, redb::StorageError> {
    let mut ids = Vec::new();
    for entry in records.range((kind, name, "")..)? {
        let (stored, _) = entry?;
        let (stored_kind, stored_name, id) = stored.value();
        if stored_kind != kind || stored_name != name {
            break;
        }
        ids.push(id.to_owned());
    }
    Ok(ids)
}
