//! One master alone: [`LocalLog`], the [`Replicator`] over [`CommandLog`]
//! (`log.rs`), the fsynced JSON-lines command log. Raft ([`super::raft`])
//! replaces it when masters are replicated; the commands stay the same.

mod log;

use std::path::Path;
use std::sync::Mutex;

pub use log::{CommandLog, StoreError};

use super::{BoxFuture, ClusterView, Leadership, Member, ProposeError, Replicator};
use crate::registry::{Applied, Command, Registry, RegistryError};

/// The one term of a single master.
const TERM: u64 = 1;
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
            term: TERM,
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

    fn leadership_changed<'a>(&'a self, seen: &'a ClusterView) -> BoxFuture<'a, ()> {
        // The view never changes: resolved only by one that already differs.
        if (&seen.leadership, seen.term) != (&Leadership::Leader, TERM) {
            return Box::pin(std::future::ready(()));
        }
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
    use super::log::tests::{boot, expected, framework, names};
    use super::*;
    use crate::replication::disk::tests::Tmpfs;

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

    #[tokio::test]
    async fn a_local_master_on_a_full_disk_answers_a_store_error_and_recovers() {
        let Some(fs) = Tmpfs::mount(1 << 20) else {
            return;
        };
        let path = fs.path().join("registry.log");
        let log = LocalLog::open(&path, "127.0.0.1:5050".into()).unwrap();
        log.propose(boot("m")).await.unwrap().unwrap();
        fs.fill();
        let mut acked = 0;
        let err = loop {
            match log.propose(framework(acked)).await {
                Ok(verdict) => {
                    verdict.unwrap();
                    acked += 1;
                }
                Err(e) => break e,
            }
            assert!(acked < 100, "the disk never filled");
        };
        let ProposeError::Store(reason) = &err else {
            panic!("{err:?}");
        };
        assert!(reason.contains("No space left on device"), "{reason}");
        // Reads go on, showing what was acknowledged and nothing else.
        assert_eq!(names(&log.registry()), expected(0..acked));
        fs.free();
        log.propose(framework(acked)).await.unwrap().unwrap();
        assert_eq!(names(&log.registry()), expected(0..acked + 1));
        drop(log);
        let again = LocalLog::open(&path, "127.0.0.1:5050".into()).unwrap();
        assert_eq!(names(&again.registry()), expected(0..acked + 1));
    }
}
