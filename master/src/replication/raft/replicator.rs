//! [`RaftNode`] as the master's [`Replicator`]: registry commands are
//! committed on a majority of masters before the master acts on them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::membership::MembershipError;
use super::node::RaftNode;
use super::proposer;
use crate::registry::{Applied, Command, Registry, RegistryError};
use crate::replication::{
    BoxFuture, ClusterView, Leadership, LogPosition, Member, ProposeError, Replicator,
};

/// How long a leader may go without a majority acknowledging it before it
/// stops acting as leader: by then the others have elected a new one
/// (they campaign 450-600 ms after the last heartbeat they heard).
pub const LEADER_LEASE: Duration = Duration::from_millis(1000);

pub struct RaftReplicator {
    node: Arc<RaftNode>,
    lease: Duration,
}

impl RaftReplicator {
    pub fn new(node: Arc<RaftNode>) -> Self {
        Self::with_lease(node, LEADER_LEASE)
    }

    /// A leader cut off from the majority for longer than `lease` answers as
    /// a master that knows no leader: writes fail at once (`NotLeader`, so
    /// HTTP 503) instead of waiting for a commit that cannot come, and the
    /// master steps down (agents and frameworks go and find the new
    /// leader). openraft 0.9 itself keeps such a leader leading until it
    /// hears a newer term.
    pub fn with_lease(node: Arc<RaftNode>, lease: Duration) -> Self {
        RaftReplicator { node, lease }
    }

    /// Whether this master leads and a majority acknowledged it within the
    /// lease.
    fn leads(&self) -> bool {
        self.node.is_leader() && !self.lease_lapsed()
    }

    fn lease_lapsed(&self) -> bool {
        let since = self.node.metrics().borrow().millis_since_quorum_ack;
        since.is_some_and(|ms| Duration::from_millis(ms) > self.lease)
    }
}

fn propose_error(e: proposer::ProposeError) -> ProposeError {
    match e {
        proposer::ProposeError::NotLeader { leader } => ProposeError::NotLeader {
            leader: leader.map(|(_, addr)| addr).filter(|a| !a.is_empty()),
        },
        other => ProposeError::Store(other.to_string()),
    }
}

fn membership_error(e: MembershipError) -> ProposeError {
    match e {
        MembershipError::NotLeader { leader } => ProposeError::NotLeader {
            leader: leader.map(|(_, addr)| addr).filter(|a| !a.is_empty()),
        },
        other => ProposeError::Unsupported(other.to_string()),
    }
}

impl Replicator for RaftReplicator {
    fn propose(
        &self,
        cmd: Command,
    ) -> BoxFuture<'_, Result<Result<Applied, RegistryError>, ProposeError>> {
        Box::pin(async move {
            if self.node.is_leader() && self.lease_lapsed() {
                return Err(ProposeError::NotLeader { leader: None });
            }
            self.node.propose(cmd).await.map_err(propose_error)
        })
    }

    fn barrier(&self) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(async move {
            if self.node.is_leader() && self.lease_lapsed() {
                return Err(ProposeError::NotLeader { leader: None });
            }
            self.node.ensure_leader().await.map_err(propose_error)
        })
    }

    fn registry(&self) -> Registry {
        (*self.node.registry()).clone()
    }

    fn shared_registry(&self) -> std::sync::Arc<Registry> {
        self.node.registry()
    }

    fn cluster(&self) -> ClusterView {
        let status = self.node.status();
        let leadership = if self.leads() {
            Leadership::Leader
        } else if self.node.is_leader() {
            // Its lease lapsed: who leads is not known from here.
            Leadership::Follower { leader: None }
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

    fn leadership_changed<'a>(&'a self, seen: &'a ClusterView) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // A lapsing lease changes no metric openraft must report, hence
            // the ticks as well.
            let key = |v: &ClusterView| (v.leadership.clone(), v.term);
            let before = key(seen);
            let mut metrics = self.node.metrics();
            let mut tick = tokio::time::interval(self.lease / 4);
            loop {
                if key(&self.cluster()) != before {
                    return;
                }
                tokio::select! {
                    changed = metrics.changed() => {
                        if changed.is_err() {
                            return std::future::pending::<()>().await;
                        }
                    }
                    _ = tick.tick() => {}
                }
            }
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
