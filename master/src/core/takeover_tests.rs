//! A new leader's view of the registry (finding 0 of the hardening issue:
//! an acknowledged write vanished across a leader kill).

use std::sync::Mutex;

use super::replicate::{BoxFuture, ClusterView, Leadership, LogPosition, Member, ProposeError};
use super::*;

/// A Raft replicator as a freshly elected leader sees it: the previous
/// term committed more than this master has applied so far; only a
/// barrier (which commits the new term's first entry) applies the rest.
struct Lagging {
    applied: Mutex<Registry>,
    committed: Mutex<Registry>,
}

impl Lagging {
    fn new(applied: &[Command], committed_later: &[Command]) -> Lagging {
        let mut registry = Registry::default();
        for cmd in applied {
            registry.apply(cmd).unwrap();
        }
        let mut all = registry.clone();
        for cmd in committed_later {
            all.apply(cmd).unwrap();
        }
        Lagging {
            applied: Mutex::new(registry),
            committed: Mutex::new(all),
        }
    }
}

impl Replicator for Lagging {
    fn propose(
        &self,
        cmd: Command,
    ) -> BoxFuture<'_, Result<Result<Applied, RegistryError>, ProposeError>> {
        let mut committed = self.committed.lock().unwrap();
        let result = committed.apply(&cmd);
        *self.applied.lock().unwrap() = committed.clone();
        Box::pin(std::future::ready(Ok(result)))
    }
    fn barrier(&self) -> BoxFuture<'_, Result<(), ProposeError>> {
        *self.applied.lock().unwrap() = self.committed.lock().unwrap().clone();
        Box::pin(std::future::ready(Ok(())))
    }
    fn registry(&self) -> Registry {
        self.applied.lock().unwrap().clone()
    }
    fn cluster(&self) -> ClusterView {
        ClusterView {
            leadership: Leadership::Leader,
            term: 2,
            members: vec![Member {
                id: 1,
                addr: "127.0.0.1:1".into(),
                voter: true,
            }],
            me: 1,
            log: Some(LogPosition {
                last: Some(3),
                applied: Some(2),
                snapshot: None,
            }),
            problem: None,
        }
    }
    fn leadership_changed<'a>(&'a self, _seen: &'a ClusterView) -> BoxFuture<'a, ()> {
        Box::pin(std::future::pending())
    }
    fn add_member(&self, _addr: String) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(std::future::ready(Ok(())))
    }
    fn remove_member(&self, _id: u64) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

#[tokio::test]
async fn a_new_leader_sees_what_the_previous_term_committed() {
    let dir = tempfile::tempdir().unwrap();
    let config = MasterConfig::local(1, dir.path().to_path_buf());
    let bootstrap = Command::Bootstrap {
        master_id: "m".into(),
    };
    let acknowledged = Command::UpdateWeights {
        weights: vec![("bars".into(), 7.0)],
    };
    let replicator = Lagging::new(&[bootstrap], &[acknowledged]);
    let master = Master::open_with(config, Box::new(replicator))
        .await
        .unwrap();
    master.become_leader().await.unwrap();
    assert_eq!(master.weights(), vec![("bars".to_string(), 7.0)]);
    // And it stays there through the new leader's own writes.
    master
        .update_weights(vec![("foos".into(), 2.0)])
        .await
        .unwrap();
    assert_eq!(master.weights().len(), 2);
}
