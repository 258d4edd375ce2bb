//! Names: one registry per process, names unique per server type.
//!
//! A name leads to its server's client, or, for a durable server that hibernated while nobody
//! held a handle on it, to the record it was released into (see `supervisor::hibernation`): the
//! first lookup revives it from that record, under the registry's lock, so that two lookups
//! cannot revive it twice.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use crate::{BranchId, Client, Server, StartError};

struct Entry {
    branch: BranchId,
    held: Held,
}

enum Held {
    /// A `Client<S>` for the `S` of the key's type id: the server runs or hibernates in place.
    Running(Box<dyn Any + Send + Sync>),
    /// The server was released while it hibernated: nothing of it is left but this record.
    Released(Box<dyn Revive>),
}

/// What a released server leaves in the registry: a record of it, which revives it.
pub(crate) trait Revive: Send {
    /// Revives the server registered as `name`: a new branch with the id it had, its state
    /// loaded from the store in a task of its own. Returns the new branch's `Client<S>`, boxed.
    fn revive(self: Box<Self>, name: &str) -> Box<dyn Any + Send + Sync>;
}

type Key = (TypeId, Box<str>);

static NAMES: LazyLock<Mutex<HashMap<Key, Entry>>> = LazyLock::new(Mutex::default);

/// The registry, locked.
pub(crate) struct Names(MutexGuard<'static, HashMap<Key, Entry>>);

pub(crate) fn lock() -> Names {
    // Nothing panics while the lock is held, so a poisoned map is still consistent.
    Names(NAMES.lock().unwrap_or_else(PoisonError::into_inner))
}

fn key(server: TypeId, name: &str) -> Key {
    (server, name.into())
}

impl Names {
    /// Whether `name` is registered for `server` as `branch`, running (not released).
    pub(crate) fn is_running(&self, server: TypeId, name: &str, branch: BranchId) -> bool {
        self.0
            .get(&key(server, name))
            .is_some_and(|entry| entry.branch == branch && matches!(entry.held, Held::Running(_)))
    }

    /// Puts `released` in place of the client of `branch`, registered as `name` for `server`
    /// (see [`is_running`](Names::is_running)). Returns the client it replaced, to be dropped
    /// once the lock is let go (dropping a handle may take the lock; see `Branch`'s drop).
    pub(crate) fn release(
        &mut self,
        server: TypeId,
        name: &str,
        released: Box<dyn Revive>,
    ) -> Option<Box<dyn Any + Send + Sync>> {
        let entry = self.0.get_mut(&key(server, name))?;
        match std::mem::replace(&mut entry.held, Held::Released(released)) {
            Held::Running(client) => Some(client),
            Held::Released(_) => None,
        }
    }
}

pub(crate) fn register<S: Server>(name: &str, client: &Client<S>) -> Result<(), StartError> {
    let entry = Entry {
        branch: client.branch().id(),
        held: Held::Running(Box::new(client.clone())),
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
    let Names(mut names) = lock();
    let key = key(server, name);
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
    let Names(mut names) = lock();
    let key = key(server, name);
    let removed = names
        .get(&key)
        .is_some_and(|entry| entry.branch == branch)
        .then(|| names.remove(&key));
    drop(names);
    // Dropped once the lock is let go: dropping a handle may take the lock (see `Branch`'s drop).
    drop(removed);
}

/// Whether any server type has `name`, released ones included.
pub(crate) fn is_registered(name: &str) -> bool {
    lock().0.keys().any(|(_, registered)| &**registered == name)
}

/// Whether an `S` has `name`, released or not: unlike [`whereis`], this revives nothing.
pub(crate) fn is_registered_as<S: Server>(name: &str) -> bool {
    lock().0.contains_key(&key(TypeId::of::<S>(), name))
}

/// The client of the running `S` registered as `name`, the counterpart of `GenServer.whereis/1`.
///
/// Names are unique per server type and freed when a branch ends (after its `terminate`).
///
/// A durable server that hibernated while nothing held a handle on it (a client, its
/// [`Branch`](crate::Branch)) is kept as a record only (see [`Builder::idle_after`](crate::Builder::idle_after)):
/// `whereis` revives it, and the client it returns queues messages until the server runs.
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

/// Runs `found` on the client registered under `name`, under the registry's lock, reviving a
/// released server first.
fn look_up(server: TypeId, name: &str, found: &mut dyn FnMut(&(dyn Any + Send + Sync))) {
    let Names(mut names) = lock();
    let Some(entry) = names.get_mut(&key(server, name)) else {
        return;
    };
    if matches!(entry.held, Held::Released(_)) {
        // `()` takes no allocation; the entry is overwritten at once.
        let held = std::mem::replace(&mut entry.held, Held::Running(Box::new(())));
        entry.held = match held {
            Held::Released(record) => Held::Running(record.revive(name)),
            running => running,
        };
    }
    if let Held::Running(client) = &entry.held {
        found(&**client);
    }
}
