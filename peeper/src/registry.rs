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

/// What a name leads to. One enum, the branch's id inside the running variant: 24 bytes, so that
/// a name's slot in the map is 56 (see the test below), which a released server keeps besides
/// its record.
enum Entry {
    /// A `Client<S>` for the `S` of the key's type id: the server runs or hibernates in place.
    Running {
        branch: BranchId,
        client: Box<dyn Any + Send + Sync>,
    },
    /// The server was released while it hibernated: nothing of it is left but this record.
    Released(Box<dyn Revive>),
}

impl Entry {
    fn branch(&self) -> BranchId {
        match self {
            Entry::Running { branch, .. } => *branch,
            Entry::Released(record) => record.branch(),
        }
    }
}

/// What a released server leaves in the registry: a record of it, which revives it.
pub(crate) trait Revive: Send {
    /// The id of the branch it was, and will be again.
    fn branch(&self) -> BranchId;

    /// Revives the server registered as `name`, under the registry's lock: a new branch with the
    /// id it had, and what starts it.
    fn revive(self: Box<Self>, name: &str) -> Revived;
}

/// A released server revived: the new branch's `Client<S>` (boxed), for the registry, and what
/// loads its state and starts its task, run once the registry's lock is let go (a revival that
/// cannot start ends the branch, which takes the lock).
pub(crate) struct Revived {
    pub(crate) client: Box<dyn Any + Send + Sync>,
    pub(crate) start: Box<dyn FnOnce() + Send>,
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
        self.0.get(&key(server, name)).is_some_and(
            |entry| matches!(entry, Entry::Running { branch: running, .. } if *running == branch),
        )
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
        match std::mem::replace(entry, Entry::Released(released)) {
            Entry::Running { client, .. } => Some(client),
            Entry::Released(_) => None,
        }
    }
}

pub(crate) fn register<S: Server>(name: &str, client: &Client<S>) -> Result<(), StartError> {
    let entry = Entry::Running {
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
        .is_some_and(|entry| entry.branch() == branch)
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
    let key = key(server, name);
    let mut start = None;
    match names.get(&key) {
        Some(Entry::Running { client, .. }) => found(&**client),
        Some(Entry::Released(_)) => {
            // Out of the map while it revives: should the revival unwind, the name is free (the
            // state is in the store) rather than stuck on an entry that is neither.
            if let Some((key, Entry::Released(record))) = names.remove_entry(&key) {
                let branch = record.branch();
                let revived = record.revive(name);
                found(&*revived.client);
                start = Some(revived.start);
                let client = revived.client;
                names.insert(key, Entry::Running { branch, client });
            }
        }
        None => {}
    }
    drop(names);
    if let Some(start) = start {
        start();
    }
}

#[cfg(test)]
mod tests {
    /// A name's slot in the map: its key and its entry. Every released server keeps one; the
    /// book's benchmarks chapter counts it.
    #[test]
    fn a_names_slot_is_56_bytes() {
        assert_eq!(size_of::<(super::Key, super::Entry)>(), 56);
    }
}
