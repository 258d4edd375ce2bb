//! [`Redb`]: the embedded default backend, one ACID database file.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{BoxFuture, Key, Store, StoreError, Write};

/// (server kind, name) -> envelope bytes.
const STATES: TableDefinition<'_, (&str, &str), &[u8]> = TableDefinition::new("peeper_states");

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
#[derive(Debug, Clone)]
pub struct Redb {
    db: Arc<Database>,
}

impl Redb {
    /// Opens the database file at `path`, creating it if it does not exist.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the file cannot be opened or created (or is not a redb file, or
    /// is already open in another process).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(StoreError::backend)?;
        Ok(Redb { db: Arc::new(db) })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(StoreError::backend)?
            .map_err(StoreError::backend)
    }
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
                for (key, bytes) in &batch {
                    let key = (key.kind.as_str(), key.name.as_str());
                    match bytes {
                        Some(bytes) => drop(table.insert(key, bytes.as_slice())?),
                        None => drop(table.remove(key)?),
                    }
                }
            }
            write.commit()?;
            Ok(())
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
