//! [`Placement`]: where a server nobody runs is started.

use std::fmt;

use crate::store::{Key, NodeId};

/// Where [`Node::get`](crate::cluster::Node::get) starts a server that no node runs.
///
/// `nodes` are the live nodes hosting the server's kind, sorted by id, never empty; `here` is the
/// node asking, which may or may not be among them. Whatever the choice, the lease makes the
/// start happen once: a node that loses the race finds the winner.
///
/// ```
/// use peeper::cluster::{NodeId, Placement};
/// use peeper::store::Key;
///
/// /// Everything on the first node, by id.
/// struct First;
///
/// impl Placement for First {
///     fn place(&self, _key: &Key, _here: &NodeId, nodes: &[NodeId]) -> NodeId {
///         nodes[0].clone()
///     }
/// }
/// let nodes = [NodeId::new("a"), NodeId::new("b")];
/// assert_eq!(First.place(&Key::new("player", "ada"), &nodes[1], &nodes), nodes[0]);
/// ```
pub trait Placement: Send + Sync + 'static {
    /// The node to start `key` on.
    fn place(&self, key: &Key, here: &NodeId, nodes: &[NodeId]) -> NodeId;
}

/// Where it was asked (the default): the node whose `get` found it running nowhere, if it hosts
/// the kind; else as [`Hashed`].
///
/// ```
/// use peeper::cluster::{Asked, NodeId, Placement};
/// use peeper::store::Key;
///
/// let nodes = [NodeId::new("a"), NodeId::new("b")];
/// assert_eq!(Asked.place(&Key::new("player", "ada"), &nodes[1], &nodes), nodes[1]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Asked;

impl Placement for Asked {
    fn place(&self, key: &Key, here: &NodeId, nodes: &[NodeId]) -> NodeId {
        if nodes.contains(here) {
            here.clone()
        } else {
            Hashed.place(key, here, nodes)
        }
    }
}

/// Spread by the server's key over the live nodes (rendezvous hashing): every node picks the
/// same one for a key, and a node joining or leaving moves only the keys it wins or held.
///
/// ```
/// use peeper::cluster::{Hashed, NodeId, Placement};
/// use peeper::store::Key;
///
/// let nodes = [NodeId::new("a"), NodeId::new("b"), NodeId::new("c")];
/// let key = Key::new("player", "ada");
/// let chosen = Hashed.place(&key, &nodes[0], &nodes);
/// assert_eq!(Hashed.place(&key, &nodes[2], &nodes), chosen); // wherever it is asked
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Hashed;

impl Placement for Hashed {
    fn place(&self, key: &Key, here: &NodeId, nodes: &[NodeId]) -> NodeId {
        nodes
            .iter()
            .max_by_key(|node| score(key, node))
            .unwrap_or(here)
            .clone()
    }
}

/// FNV-1a over the key and the node: stable across builds and processes (std's hasher is not
/// promised to be), so that nodes running different builds agree.
fn score(key: &Key, node: &NodeId) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [
        key.kind.as_bytes(),
        b"/",
        key.name.as_bytes(),
        b"@",
        node.as_str().as_bytes(),
    ] {
        for byte in part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    // FNV's low bits mix poorly for short inputs: finish with a multiply-xorshift.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

impl fmt::Debug for dyn Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Placement")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hashing_spreads_keys_over_nodes() {
        let nodes: Vec<NodeId> = ["a", "b", "c"].into_iter().map(NodeId::new).collect();
        let mut counts = [0usize; 3];
        for i in 0..3000 {
            let chosen = Hashed.place(&Key::new("player", format!("p{i}")), &nodes[0], &nodes);
            counts[nodes.iter().position(|node| *node == chosen).unwrap()] += 1;
        }
        assert!(
            counts.iter().all(|count| (800..1200).contains(count)),
            "{counts:?}"
        );
    }
}
