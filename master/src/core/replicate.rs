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
}

pub trait Replicator: Send + Sync {
    /// Commits `cmd`; the inner result is the registry's verdict.
    fn propose(
        &self,
        cmd: Command,
    ) -> BoxFuture<'_, Result<Result<Applied, RegistryError>, ProposeError>>;
    /// The committed registry (a copy).
    fn registry(&self) -> Registry;
}

/// A single master's registry: the fsynced JSON-lines command log.
pub struct LocalLog {
    state: Mutex<(CommandLog, Registry)>,
}

impl LocalLog {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let (log, registry) = CommandLog::open(path)?;
        Ok(LocalLog {
            state: Mutex::new((log, registry)),
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

    fn registry(&self) -> Registry {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_log_persists_before_answering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.log");
        let log = LocalLog::open(&path).unwrap();
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
        let again = LocalLog::open(&path).unwrap();
        assert_eq!(again.registry().master_id(), Some("m"));
    }
}
