//! Ownership: which node may run a server and write its state ([`NodeId`], [`Claim`]).
//!
//! A store that one process owns ([`Memory`](super::Memory), [`Redb`](super::Redb)) grants every
//! claim. A store that several processes share grants each key to one node at a time, with a
//! fencing epoch ([`Postgres`](super::Postgres), with the `postgres` feature).

use std::fmt;
use std::sync::Arc;

/// The identity of a node: the process (or group of processes sharing one
/// `Postgres` store handle) that owns servers' leases in a cluster.
///
/// Give each node a stable id (a host name, a pod name): a node restarted under the same id takes
/// back the leases its previous incarnation left behind without waiting for them to expire.
///
/// ```
/// use peeper::store::NodeId;
///
/// let node = NodeId::new("eu-1");
/// assert_eq!(node.as_str(), "eu-1");
/// assert_eq!(node.to_string(), "eu-1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// A node id. Any text does; keep it short (it is stored in every lease row).
    pub fn new(id: impl Into<String>) -> Self {
        NodeId(Arc::from(id.into()))
    }

    /// A fresh id for this process, `<host>-<pid>-<random>`: unique, but not stable across
    /// restarts (a restarted process cannot take back its leases before they expire).
    ///
    /// ```
    /// let a = peeper::store::NodeId::generate();
    /// let b = peeper::store::NodeId::generate();
    /// assert_ne!(a, b);
    /// ```
    #[must_use]
    pub fn generate() -> Self {
        use std::collections::hash_map::RandomState;
        use std::hash::BuildHasher;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "node".to_owned());
        // `RandomState` is seeded randomly per instance: enough to tell processes apart.
        let random = RandomState::new().hash_one(std::time::SystemTime::now());
        NodeId::new(format!(
            "{host}-{}-{:08x}",
            std::process::id(),
            random & 0xffff_ffff
        ))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NodeId {
    fn from(id: &str) -> Self {
        NodeId::new(id)
    }
}

impl From<String> for NodeId {
    fn from(id: String) -> Self {
        NodeId::new(id)
    }
}

// As its text: errors naming a node travel between nodes.
impl serde::Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(NodeId::from)
    }
}

/// What a successful [`Store::claim`](super::Store::claim) granted.
///
/// ```
/// assert_eq!(peeper::store::Claim::LOCAL.epoch, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claim {
    /// The fencing epoch the claim holds: every later claim of the key, by any node, gets a
    /// higher one, and a write made under a lower one changes nothing. `0` for stores that one
    /// process owns, which need no fencing.
    pub epoch: u64,
}

impl Claim {
    /// The claim of a store that one process owns: always granted, nothing to fence.
    pub const LOCAL: Claim = Claim { epoch: 0 };

    /// A claim holding `epoch`.
    #[must_use]
    pub fn new(epoch: u64) -> Self {
        Claim { epoch }
    }
}
