//! Adding and removing masters at runtime (the operator's
//! `keelctl masters add|remove`), on the leader.
//!
//! A master is added as a learner, which catches up from the log or a
//! snapshot, and then promoted to voter. A master whose store was wiped is
//! still a voter under its old incarnation and is refused by the others;
//! adding it again removes the old voter first, so that a node with an
//! empty log never counts towards a quorum.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use openraft::ChangeMembers;
use openraft::error::{ClientWriteError, RaftError as OrError};

use super::network::NetworkError;
use super::node::RaftNode;
use super::types::{MasterNode, NodeId, addr_text, node_id_for};

const HELLO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a new master may take to catch up before it becomes a voter.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("this master is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<(NodeId, String)> },
    #[error("cannot reach the master to add: {0}")]
    Unreachable(#[source] NetworkError),
    #[error("{addr} answers as node {answered}, expected node {expected}")]
    WrongNode {
        addr: String,
        answered: NodeId,
        expected: NodeId,
    },
    #[error("{addr} belongs to cluster {theirs}, not to this cluster {ours}")]
    OtherCluster {
        addr: String,
        theirs: String,
        ours: String,
    },
    #[error("node id {id} of {addr} is already taken by {other}")]
    IdClash {
        addr: String,
        id: NodeId,
        other: String,
    },
    #[error("{addr} did not catch up within {waited:?}; it stays a learner")]
    CatchUpTimeout { addr: String, waited: Duration },
    #[error("node {0} is not a member")]
    UnknownMember(NodeId),
    #[error("membership change failed: {0}")]
    Raft(String),
}

impl RaftNode {
    /// Adds the master at `addr` (already running, with an empty or
    /// matching store) as a voter; returns its node id. Adding a current
    /// member again is a no-op, unless its store was wiped: then it is
    /// replaced by the new incarnation.
    pub async fn add_member(&self, addr: SocketAddr) -> Result<NodeId, MembershipError> {
        let addr = addr_text(&addr);
        let id = node_id_for(&addr);
        self.require_leader()?;
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let existing = membership.membership().get_node(&id).cloned();
        let is_voter = membership.membership().voter_ids().any(|v| v == id);
        if let Some(other) = existing.as_ref().filter(|n| n.addr != addr) {
            return Err(MembershipError::IdClash {
                addr,
                id,
                other: other.addr.clone(),
            });
        }
        let reply = self
            .network
            .hello(&addr, HELLO_TIMEOUT)
            .await
            .map_err(MembershipError::Unreachable)?;
        if reply.node_id != id {
            return Err(MembershipError::WrongNode {
                addr,
                answered: reply.node_id,
                expected: id,
            });
        }
        let ours = self.cluster.identity().cluster_id.unwrap_or_default();
        if !reply.cluster_id.is_empty() && reply.cluster_id != ours {
            return Err(MembershipError::OtherCluster {
                addr,
                theirs: reply.cluster_id,
                ours,
            });
        }
        let node = MasterNode {
            addr: addr.clone(),
            incarnation: reply.incarnation,
        };
        match existing {
            Some(n) if n.incarnation == node.incarnation && is_voter => return Ok(id),
            Some(n) if n.incarnation == 0 || n.incarnation == node.incarnation => {
                // Same store: record its incarnation (and promote a learner).
                self.change(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])))
                    .await?;
                if !is_voter {
                    self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
                        .await?;
                }
                return Ok(id);
            }
            Some(_) if is_voter => {
                tracing::warn!(node = id, %addr, "replacing a master whose store was wiped");
                self.change(ChangeMembers::RemoveVoters(BTreeSet::from([id])))
                    .await?;
            }
            Some(_) => {
                self.change(ChangeMembers::RemoveNodes(BTreeSet::from([id])))
                    .await?;
            }
            None => {}
        }
        // Returns once the learner has caught up.
        tokio::time::timeout(CATCH_UP_TIMEOUT, self.raft.add_learner(id, node, true))
            .await
            .map_err(|_| MembershipError::CatchUpTimeout {
                addr: addr.clone(),
                waited: CATCH_UP_TIMEOUT,
            })?
            .map_err(|e| self.membership_error(e))?;
        self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
            .await?;
        tracing::info!(node = id, %addr, "added a master");
        Ok(id)
    }

    /// Removes master `id` from the cluster (voter or learner).
    pub async fn remove_member(&self, id: NodeId) -> Result<(), MembershipError> {
        self.require_leader()?;
        let membership = self.raft.metrics().borrow().membership_config.clone();
        if membership.membership().get_node(&id).is_none() {
            return Err(MembershipError::UnknownMember(id));
        }
        let ids = BTreeSet::from([id]);
        if membership.membership().voter_ids().any(|v| v == id) {
            self.change(ChangeMembers::RemoveVoters(ids)).await
        } else {
            self.change(ChangeMembers::RemoveNodes(ids)).await
        }
    }

    fn require_leader(&self) -> Result<(), MembershipError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(MembershipError::NotLeader {
                leader: self.leader(),
            })
        }
    }

    async fn change(
        &self,
        change: ChangeMembers<NodeId, MasterNode>,
    ) -> Result<(), MembershipError> {
        self.raft
            .change_membership(change, false)
            .await
            .map(|_| ())
            .map_err(|e| self.membership_error(e))
    }

    fn membership_error(
        &self,
        e: OrError<NodeId, ClientWriteError<NodeId, MasterNode>>,
    ) -> MembershipError {
        match e {
            OrError::APIError(ClientWriteError::ForwardToLeader(f)) => MembershipError::NotLeader {
                leader: f
                    .leader_id
                    .map(|id| (id, self.addr_of(id).unwrap_or_default())),
            },
            other => MembershipError::Raft(other.to_string()),
        }
    }
}
