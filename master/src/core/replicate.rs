//! Where registry commands become durable before the master acts on them.
//!
//! [`Replicator::propose`] returns once the command is committed (on disk
//! for [`LocalLog`], on a Raft majority for the Raft node) with what
//! applying it did. The master serializes its proposals and applies each
//! committed command to its own in-memory copy of the registry in the same
//! order, so both stay identical.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Mutex;

use crate::registry::{Applied, Command, Registry, RegistryError};
use crate::store::{CommandLog, StoreError};

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
    /// Who leads, the term, the members.
    fn cluster(&self) -> ClusterView;
    /// Resolves once this master's leadership or the term differs from
    /// `seen` (at once if it already does; never, for one master). Taking
    /// the view the caller acted on closes the window in which a change
    /// during that action would go unnoticed.
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

const SINGLE: &str =
    "this master runs alone on a local command log; start masters with --masters to replicate";

/// A single master's registry: the fsynced JSON-lines command log.
pub struct LocalLog {
    state: Mutex<(CommandLog, Registry)>,
    addr: String,
}

impl LocalLog {
    /// `addr` is this master's `host:port`, reported as the only member.
    pub fn open(path: &Path, addr: String) -> Result<Self, StoreError> {
        let (log, registry) = CommandLog::open(path)?;
        Ok(LocalLog {
            state: Mutex::new((log, registry)),
            addr,
        })
    }
}

impl Replicator for LocalLog {
    fn propose(
        &self,
        cmd: Command,
    ) -> BoxFuture<'_, Result<Result<Applied, RegistryError>, ProposeError>> {
        let result = (|| {
            let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let (log, registry) = &mut *guard;
            if let Err(e) = registry.validate(&cmd) {
                return Ok(Err(e));
            }
            log.append(&cmd)
                .map_err(|e| ProposeError::Store(e.to_string()))?;
            Ok(registry.apply(&cmd))
        })();
        Box::pin(std::future::ready(result))
    }

    fn barrier(&self) -> BoxFuture<'_, Result<(), ProposeError>> {
        // Appends are applied before `propose` returns.
        Box::pin(std::future::ready(Ok(())))
    }

    fn registry(&self) -> Registry {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    fn cluster(&self) -> ClusterView {
        ClusterView {
            leadership: Leadership::Leader,
            term: 1,
            members: vec![Member {
                id: 1,
                addr: self.addr.clone(),
                voter: true,
            }],
            me: 1,
            log: None,
            problem: None,
        }
    }

    fn leadership_changed<'a>(&'a self, _seen: &'a ClusterView) -> BoxFuture<'a, ()> {
        Box::pin(std::future::pending())
    }

    fn add_member(&self, _addr: String) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(std::future::ready(Err(ProposeError::Unsupported(
            SINGLE.into(),
        ))))
    }

    fn remove_member(&self, _id: u64) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(std::future::ready(Err(ProposeError::Unsupported(
            SINGLE.into(),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_log_persists_before_answering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.log");
        let log = LocalLog::open(&path, "127.0.0.1:5050".into()).unwrap();
        let applied = log
            .propose(Command::Bootstrap {
                master_id: "m".into(),
            })
            .await
            .unwrap();
        assert_eq!(applied, Ok(Applied::Bootstrapped));
        // A refused command is the registry's verdict, not a store failure,
        // and is not written.
        let refused = log
            .propose(Command::Bootstrap {
                master_id: "n".into(),
            })
            .await
            .unwrap();
        assert!(refused.is_err());
        let again = LocalLog::open(&path, "127.0.0.1:5050".into()).unwrap();
        assert_eq!(again.cluster().leadership, Leadership::Leader);
        assert_eq!(again.registry().master_id(), Some("m"));
    }
}
