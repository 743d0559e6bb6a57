//! The Raft type configuration and the small types around it: node ids
//! derived from addresses (and addresses looked up by id), the membership's
//! node record, log entries, and the response a log entry produces when
//! applied.

use std::net::SocketAddr;

use openraft::{Entry, Raft};
use serde::{Deserialize, Serialize};

use crate::registry::{Applied, Command, RegistryError};

/// A master's Raft node id: [`node_id_for`] of its `host:port`.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Keel's Raft: batches of registry [`Command`]s in, [`ApplyResponse`]s
    /// out.
    pub TypeConfig:
        D = Batch,
        R = ApplyResponse,
        NodeId = NodeId,
        Node = MasterNode,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

/// One entry of the Raft log.
pub type LogEntry = Entry<TypeConfig>;

/// How the membership records a master.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterNode {
    /// The master's API and gRPC address, `host:port`.
    pub addr: String,
    /// The incarnation of the master's Raft store, a random number drawn
    /// when the store is created. 0 until the leader has learned it. A
    /// master that answers with another incarnation lost its store and is
    /// refused until it is added again.
    pub incarnation: u64,
}

/// The application data of one log entry: registry commands proposed
/// together (see [`super::proposer`]), applied in order. Stored and sent as
/// a JSON array of commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch(pub Vec<Command>);

/// What applying one log entry produced: one result per command. Registry
/// commands that do not validate are still committed (every master refuses
/// them the same way); their refusal is the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ApplyResponse {
    Commands(Vec<Result<Applied, RegistryError>>),
    /// Blank and membership entries, which Raft itself writes.
    Internal,
}

/// Node ids are a hash of the address, so that every master derives the
/// same id for the same `host:port` whatever list it was given, and masters
/// added later need no coordination. 53 bits: they stay exact in JSON.
pub fn node_id_for(addr: &str) -> NodeId {
    // FNV-1a, 64 bit: stable across platforms and releases.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in addr.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash & ((1 << 53) - 1)).max(1)
}

/// The canonical text of a master address, as node ids are derived from it.
pub fn addr_text(addr: &SocketAddr) -> String {
    addr.to_string()
}

/// The address of member `id`, as `raft`'s membership records it.
pub(crate) fn addr_of(raft: &Raft<TypeConfig>, id: NodeId) -> Option<String> {
    raft.metrics()
        .borrow()
        .membership_config
        .membership()
        .get_node(&id)
        .map(|n| n.addr.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable_and_distinct() {
        // Pinned: changing the derivation would rename every existing node.
        assert_eq!(node_id_for("127.0.0.1:5050"), 6905860757809172);
        let ids: std::collections::BTreeSet<_> = (5050..5150)
            .map(|p| node_id_for(&format!("10.0.0.1:{p}")))
            .collect();
        assert_eq!(ids.len(), 100);
        assert!(ids.iter().all(|id| *id > 0 && *id < (1 << 53)));
    }

    #[test]
    fn responses_round_trip_through_json() {
        let r = ApplyResponse::Commands(vec![
            Ok(Applied::Bootstrapped),
            Err(RegistryError::UnknownAgent("a".into())),
        ]);
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<ApplyResponse>(&text).unwrap(), r);
    }
}
