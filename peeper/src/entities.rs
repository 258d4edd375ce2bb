//! [`Entities`]: servers of one kind by name, started on demand (one process).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::store::{Persist, Storage};
use crate::{Builder, Client, StartError};

/// The servers of one durable kind, by name, started on demand: the "get by id" of virtual
/// actors (Orleans grains, Durable Objects) in one process.
///
/// [`get`](Entities::get) returns the typed client of the server named `name`: the running one
/// (hibernating included, which the first message revives), else the one stored under that name
/// (revived from its last committed state), else a new one from the factory's initial state.
/// Concurrent `get`s of one name start it once; the others get the same server.
///
/// The factory gives the builder for a name (the state to use when nothing is stored, and the
/// options: hibernation, restart intensity, ...); `Entities` sets the name, the store, and
/// [`OnStop::Keep`](crate::OnStop::Keep): an entity that stops keeps its state for the next
/// `get` (delete it with [`Storage::delete`](crate::store::Storage::delete)).
/// Names are per server type in the process (as [`whereis`](crate::whereis)'s), so keep one
/// `Entities` per kind.
///
/// ```
/// use peeper::Entities;
/// use peeper::store::{Memory, Storage};
///
/// #[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
/// pub struct Player { score: u64 }
///
/// #[peeper::server]
/// impl Player {
///     #[call]
///     fn won(&mut self, points: u64) -> u64 { self.score += points; self.score }
/// }
///
/// impl peeper::Persist for Player { const KIND: &'static str = "player"; }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let storage = Storage::new(Memory::new()); // or `Redb::open(path)?`, or PostgreSQL
/// let players = Entities::new(storage, |_name: &str| Player::builder(Player::default()));
///
/// let ada: PlayerClient = players.get("ada").await?;   // nothing stored: a new one
/// assert_eq!(ada.won(10).await?, 10);
/// assert_eq!(players.get("ada").await?.won(5).await?, 15); // the same server
///
/// ada.stop().await?;                                      // its state stays stored
/// assert_eq!(players.get("ada").await?.won(1).await?, 16); // revived from the store
/// # Ok(()) }
/// ```
pub struct Entities<S: Persist, C = Client<S>> {
    inner: Arc<Inner<S, C>>,
}

/// How an entity is started, by name.
type Factory<S, C> = Box<dyn Fn(&str) -> Builder<S, C> + Send + Sync>;

struct Inner<S: Persist, C> {
    storage: Storage,
    factory: Factory<S, C>,
    client: PhantomData<fn() -> C>,
}

impl<S: Persist, C: From<Client<S>>> Entities<S, C> {
    /// The servers of kind `S` stored in `storage`, started with the builders of `factory`.
    pub fn new<F>(storage: impl Into<Storage>, factory: F) -> Self
    where
        F: Fn(&str) -> Builder<S, C> + Send + Sync + 'static,
    {
        Entities {
            inner: Arc::new(Inner {
                storage: storage.into(),
                factory: Box::new(factory),
                client: PhantomData,
            }),
        }
    }

    /// The client of the server named `name`: running, else revived from the store, else
    /// started from the factory's state.
    ///
    /// # Errors
    /// The [`StartError`] of a start that failed (its `init`, its store).
    pub async fn get(&self, name: &str) -> Result<C, StartError> {
        // A start that loses the name to a concurrent one finds the winner next time round;
        // a winner that ended again at once (it was stopped) is started again, a few times.
        let mut attempts = 0;
        loop {
            if let Some(client) = crate::whereis::<S>(name) {
                return Ok(C::from(client));
            }
            let builder = (self.inner.factory)(name)
                .name(name)
                .store(self.inner.storage.clone())
                .on_stop(crate::OnStop::Keep);
            match crate::supervisor::start(builder).await {
                Ok(client) => return Ok(C::from(client)),
                Err(StartError::NameTaken { .. }) if attempts < 8 => attempts += 1,
                Err(error) => return Err(error),
            }
        }
    }

    /// The store the servers live in.
    #[must_use]
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }
}

impl<S: Persist, C> Clone for Entities<S, C> {
    fn clone(&self) -> Self {
        Entities {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: Persist, C> fmt::Debug for Entities<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entities")
            .field("kind", &S::KIND)
            .finish_non_exhaustive()
    }
}
