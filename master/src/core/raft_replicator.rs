//! [`RaftNode`] as the master's [`Replicator`]: registry commands are
//! committed on a majority of masters before the master acts on them.

use std::net::SocketAddr;
use std::sync::Arc;

use super::replicate::{
    BoxFuture, ClusterView, Leadership, LogPosition, Member, ProposeError, Replicator,
};
use crate::raft::{self, RaftNode};
use crate::registry::{Applied, Command, Registry, RegistryError};

pub struct RaftReplicator {
    node: Arc<RaftNode>,
}

impl RaftReplicator {
    pub fn new(node: Arc<RaftNode>) -> Self {
        RaftReplicator { node }
    }
}

fn propose_error(e: raft::ProposeError) -> ProposeError {
    match e {
        raft::ProposeError::NotLeader { leader } => ProposeError::NotLeader {
            leader: leader.map(|(_, addr)| addr).filter(|a| !a.is_empty()),
        },
        other => ProposeError::Store(other.to_string()),
    }
}

fn membership_error(e: raft::MembershipError) -> ProposeError {
    match e {
        raft::MembershipError::NotLeader { leader } => ProposeError::NotLeader {
            leader: leader.map(|(_, addr)| addr).filter(|a| !a.is_empty()),
        },
        other => ProposeError::Unsupported(other.to_string()),
    }
}

/// (is leader, leader id, term): what a leadership change changes.
fn leadership_key(node: &RaftNode) -> (bool, Option<u64>, u64) {
    (node.is_leader(), node.leader().map(|l| l.0), node.term())
}

impl Replicator for RaftReplicator {
    fn propose(
        &self,
        cmd: Command,
    ) -> BoxFuture<'_, Result<Result<Applied, RegistryError>, ProposeError>> {
        Box::pin(async move { self.node.propose(cmd).await.map_err(propose_error) })
    }

    fn registry(&self) -> Registry {
        (*self.node.registry()).clone()
    }

    fn cluster(&self) -> ClusterView {
        let status = self.node.status();
        let leadership = if self.node.is_leader() {
            Leadership::Leader
        } else {
            Leadership::Follower {
                leader: status
                    .leader
                    .map(|(_, addr)| addr)
                    .filter(|a| !a.is_empty()),
            }
        };
        ClusterView {
            leadership,
            term: status.term,
            members: status
                .members
                .iter()
                .map(|m| Member {
                    id: m.id,
                    addr: m.addr.clone(),
                    voter: m.voter,
                })
                .collect(),
            me: status.id,
            log: Some(LogPosition {
                last: status.last_log_index,
                applied: status.last_applied_index,
                snapshot: status.snapshot_index,
            }),
            problem: status.problem,
        }
    }

    fn leadership_changed(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let before = leadership_key(&self.node);
            let mut metrics = self.node.metrics();
            while metrics.changed().await.is_ok() {
                if leadership_key(&self.node) != before {
                    return;
                }
            }
            std::future::pending::<()>().await
        })
    }

    fn add_member(&self, addr: String) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(async move {
            let addr: SocketAddr = addr
                .parse()
                .map_err(|_| ProposeError::Unsupported(format!("{addr:?} is not ip:port")))?;
            self.node
                .add_member(addr)
                .await
                .map(|_| ())
                .map_err(membership_error)
        })
    }

    fn remove_member(&self, id: u64) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(async move { self.node.remove_member(id).await.map_err(membership_error) })
    }
}
