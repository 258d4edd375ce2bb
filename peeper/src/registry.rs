//! Names: one registry per process, names unique per server type.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use crate::{BranchId, Client, Server, StartError};

struct Entry {
    branch: BranchId,
    /// A `Client<S>` for the `S` of the key's type id.
    client: Box<dyn Any + Send + Sync>,
}

static NAMES: LazyLock<Mutex<HashMap<(TypeId, String), Entry>>> = LazyLock::new(Mutex::default);

fn names() -> MutexGuard<'static, HashMap<(TypeId, String), Entry>> {
    // Nothing panics while the lock is held, so a poisoned map is still consistent.
    NAMES.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn register<S: Server>(name: &str, client: &Client<S>) -> Result<(), StartError> {
    let entry = Entry {
        branch: client.branch().id(),
        client: Box::new(client.clone()),
    };
    insert(TypeId::of::<S>(), std::any::type_name::<S>(), name, entry)
}

// The map's work is done in functions without type parameters, compiled once here rather than
// in every crate for every server type (see `erased`).
fn insert(
    server: TypeId,
    server_name: &'static str,
    name: &str,
    entry: Entry,
) -> Result<(), StartError> {
    let mut names = names();
    let key = (server, name.to_owned());
    if names.contains_key(&key) {
        return Err(StartError::NameTaken {
            name: name.to_owned(),
            server: server_name,
        });
    }
    names.insert(key, entry);
    Ok(())
}

pub(crate) fn unregister<S: Server>(name: &str, branch: BranchId) {
    remove(TypeId::of::<S>(), name, branch);
}

fn remove(server: TypeId, name: &str, branch: BranchId) {
    let mut names = names();
    let key = (server, name.to_owned());
    if names.get(&key).is_some_and(|entry| entry.branch == branch) {
        names.remove(&key);
    }
}

pub(crate) fn is_registered(name: &str) -> bool {
    names().keys().any(|(_, registered)| registered == name)
}

/// The client of the running `S` registered as `name`, the counterpart of `GenServer.whereis/1`.
///
/// Names are unique per server type and freed when a branch ends (after its `terminate`).
///
/// ```
/// # use peeper::{Context, Server, Tracked};
/// # #[derive(Clone, Default)] struct Counter(u64);
/// # impl Server for Counter { type Call = (); type Reply = u64; type Cast = (); type Info = (); type Keep = peeper::keep::Snapshot;
/// #   async fn handle_call(s: &mut Tracked<Self>, _: (), _: &mut Context<Self>) -> u64 { s.0 }
/// #   async fn handle_cast(s: &mut Tracked<Self>, _: (), _: &mut Context<Self>) { s.0 += 1 } }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let counter = Counter::builder(Counter::default()).name("hits").start().await?;
/// let found = peeper::whereis::<Counter>("hits").expect("registered");
/// assert_eq!(found.branch().id(), counter.branch().id());
///
/// let taken = Counter::builder(Counter::default()).name("hits").start().await;
/// assert!(matches!(taken, Err(peeper::StartError::NameTaken { .. })));
///
/// counter.stop().await?;
/// assert!(peeper::whereis::<Counter>("hits").is_none());   // freed
/// # Ok(()) }
/// ```
#[must_use]
pub fn whereis<S: Server>(name: &str) -> Option<Client<S>> {
    let mut found = None;
    look_up(TypeId::of::<S>(), name, &mut |client| {
        found = client.downcast_ref::<Client<S>>().cloned();
    });
    found
}

/// Runs `found` on the client registered under `name`, under the registry's lock.
fn look_up(server: TypeId, name: &str, found: &mut dyn FnMut(&(dyn Any + Send + Sync))) {
    let names = names();
    if let Some(entry) = names.get(&(server, name.to_owned())) {
        found(&*entry.client);
    }
}
