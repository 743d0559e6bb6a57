//! Where registry commands become durable before the master acts on them:
//! the [`Replicator`] trait and its two implementations.
//!
//! [`Replicator::propose`] returns once the command is committed (on disk
//! for [`local::LocalLog`], on a Raft majority for
//! [`raft::RaftReplicator`]) with what applying it did. The master
//! serializes its proposals and applies each committed command to its own
//! in-memory copy of the registry in the same order, so both stay
//! identical.
//!
//! - [`local`]: one master alone: the fsynced JSON-lines command log.
//! - [`raft`]: masters replicated with Raft (openraft 0.9).
//! - [`conformance`]: the contract both keep, as a suite any replicator
//!   can be run against.
//! - `disk`: the stores' writes that can fail, and the faults tests give
//!   them.
//!
//! This module imports none of its children; they import it.

pub mod conformance;
pub(crate) mod disk;
pub mod local;
pub mod raft;

use std::future::Future;
use std::pin::Pin;

use crate::registry::{Applied, Command, Registry, RegistryError};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ProposeError {
    /// Only the leader writes; `leader` is its `host:port` when known.
    #[error("not the leading master (leader: {leader:?})")]
    NotLeader { leader: Option<String> },
    #[error("registry store failed: {0}")]
    Store(String),
    #[error("{0}")]
    Unsupported(String),
}

pub trait Replicator: Send + Sync {
    /// Commits `cmd`; the inner result is the registry's verdict.
    fn propose(
        &self,
        cmd: Command,
    ) -> BoxFuture<'_, Result<Result<Applied, RegistryError>, ProposeError>>;
    /// Confirms that this master still leads and waits until everything
    /// committed before the call (by any earlier leader too) is applied
    /// here: a [`Replicator::registry`] read afterwards misses no
    /// acknowledged write.
    fn barrier(&self) -> BoxFuture<'_, Result<(), ProposeError>>;
    /// The applied registry (a copy). Only as fresh as the last
    /// [`Replicator::barrier`] on a replicated master.
    fn registry(&self) -> Registry;
    /// The applied registry, shared where the replicator keeps it so
    /// (no copy per read: a follower authenticating a bearer token).
    fn shared_registry(&self) -> std::sync::Arc<Registry> {
        std::sync::Arc::new(self.registry())
    }
    /// Who leads, the term, the members.
    fn cluster(&self) -> ClusterView;
    /// Resolves once this master's leadership or the term differs from
    /// `seen` (at once if it already does; for one master, whose view never
    /// changes, only then). Taking the view the caller acted on closes the
    /// window in which a change during that action would go unnoticed.
    fn leadership_changed<'a>(&'a self, seen: &'a ClusterView) -> BoxFuture<'a, ()>;
    /// Adds a master (by `host:port`) to the cluster.
    fn add_member(&self, addr: String) -> BoxFuture<'_, Result<(), ProposeError>>;
    /// Removes a master (by id) from the cluster.
    fn remove_member(&self, id: u64) -> BoxFuture<'_, Result<(), ProposeError>>;
}

/// This master's place in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    Leader,
    /// `leader` is the leading master's `host:port`, when one is known.
    Follower {
        leader: Option<String>,
    },
}

/// One master of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    /// `host:port` of its API (HTTP and gRPC).
    pub addr: String,
    pub voter: bool,
}

/// The cluster as this master sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    pub leadership: Leadership,
    pub term: u64,
    pub members: Vec<Member>,
    /// This master's id.
    pub me: u64,
    /// Where this master's copy of the replicated log stands (Raft only).
    pub log: Option<LogPosition>,
    /// Something an operator must fix (a refused store, a member list that
    /// disagrees), if any.
    pub problem: Option<String>,
}

/// Indexes of this master's replicated log: a restarted master has caught
/// up when its `applied` reaches the leader's `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPosition {
    pub last: Option<u64>,
    pub applied: Option<u64>,
    pub snapshot: Option<u64>,
}
