//! Reviving what a process has stored: durable server kinds registered with
//! [`revivable!`](crate::revivable), and [`revive_all`].

use std::fmt;

use super::{BoxFuture, Key, Storage};
use crate::{Branch, StartError};

/// A durable server kind that [`revive_all`] can start by name. Made by
/// [`revivable!`](crate::revivable), collected with `inventory` at link time.
pub struct Revivable {
    /// [`Persist::KIND`](super::Persist::KIND) of the server.
    pub kind: &'static str,
    /// Starts the server named `name` on `storage` (its stored state wins over the builder's).
    #[doc(hidden)]
    pub revive: fn(Storage, String) -> BoxFuture<'static, Result<Branch, StartError>>,
}

inventory::collect!(Revivable);

impl fmt::Debug for Revivable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revivable")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Registers a durable server kind for [`revive_all`]: the server type, and how to make its
/// [`Builder`](crate::Builder) for a name, with the options it runs with ([`revive_all`] adds the
/// store): a function `fn(&str) -> Builder<..>`, or a closure that captures nothing, written in
/// place (`|name| Player::builder(Player::default()).name(name).idle_after(..)`).
///
/// ```
/// # use peeper::store::{Memory, Storage};
/// #[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
/// pub struct Player { score: u64 }
///
/// #[peeper::server]
/// impl Player {
///     #[call]
///     fn won(&mut self, points: u64) -> u64 { self.score += points; self.score }
/// }
///
/// impl peeper::Persist for Player { const KIND: &'static str = "doc-player"; }
///
/// fn player(name: &str) -> peeper::Builder<Player, PlayerClient> {
///     Player::builder(Player::default()).name(name).on_stop(peeper::OnStop::Keep)
/// }
///
/// peeper::revivable!(Player, player);
///
/// // Or with the settings in place, as a closure:
/// #[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
/// pub struct Room { topic: String }
///
/// #[peeper::server]
/// impl Room {
///     #[call]
///     fn topic(&self) -> String { self.topic.clone() }
/// }
///
/// impl peeper::Persist for Room { const KIND: &'static str = "doc-room"; }
///
/// peeper::revivable!(Room, |name| {
///     Room::builder(Room::default())
///         .name(name)
///         .idle_after(std::time::Duration::from_secs(600))
/// });
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let storage = Storage::new(Memory::new());
/// let ada = player("ada").store(storage.clone()).start().await?;
/// ada.won(3).await?;
/// ada.stop().await?;                       // kept in the store (`OnStop::Keep`)
///
/// // A new process would do this at start: every stored server of every registered kind.
/// let revived = peeper::store::revive_all(&storage).await;
/// assert_eq!(revived.len(), 1);
/// assert!(revived[0].1.is_ok());
/// assert_eq!(Player::whereis("ada").unwrap().won(1).await?, 4);
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! revivable {
    ($server:ty, $builder:expr) => {
        $crate::__private::inventory::submit! {
            $crate::store::Revivable {
                kind: <$server as $crate::Persist>::KIND,
                revive: {
                    fn revive(
                        storage: $crate::store::Storage,
                        name: ::std::string::String,
                    ) -> $crate::store::BoxFuture<
                        'static,
                        ::core::result::Result<$crate::Branch, $crate::StartError>,
                    > {
                        ::std::boxed::Box::pin(async move {
                            // Evaluated here, in a function: a closure that captured anything
                            // could not be registered in a `static` anyway.
                            let builder = $builder;
                            let client = builder(name.as_str()).store(storage).start().await?;
                            ::core::result::Result::Ok(client.branch().clone())
                        })
                    }
                    revive
                },
            }
        }
    };
}

/// Starts every server stored in `storage` whose kind is registered with
/// [`revivable!`](crate::revivable), and says for each key how it went. Keys of kinds this
/// process does not know are left alone (and not listed).
///
/// See [`revivable!`](crate::revivable) for an example.
pub async fn revive_all(storage: &Storage) -> Vec<(Key, Result<Branch, StartError>)> {
    let mut revived = Vec::new();
    for kind in inventory::iter::<Revivable> {
        let keys = match storage.keys(Some(kind.kind)).await {
            Ok(keys) => keys,
            Err(error) => {
                tracing::error!(kind = kind.kind, %error, "could not list the stored servers");
                continue;
            }
        };
        for key in keys {
            let started = (kind.revive)(storage.clone(), key.name.clone()).await;
            revived.push((key, started));
        }
    }
    revived
}
