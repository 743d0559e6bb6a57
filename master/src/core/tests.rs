//! Opening a master over replicators that cannot commit.
use super::replicate::{
    BoxFuture, ClusterView, Leadership, LogPosition, Member, ProposeError, Replicator,
};
use super::*;

/// A replicated master that believes it leads (its own vote, right
/// after a restart) but whose proposals are refused: the newer leader
/// has already taken over.
struct StaleLeader {
    replicated: bool,
    proposals: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Replicator for StaleLeader {
    fn propose(
        &self,
        _cmd: Command,
    ) -> BoxFuture<'_, Result<Result<Applied, RegistryError>, ProposeError>> {
        self.proposals
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(std::future::ready(Err(ProposeError::NotLeader {
            leader: Some("127.0.0.1:2".into()),
        })))
    }
    fn barrier(&self) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(std::future::ready(Ok(())))
    }
    fn registry(&self) -> Registry {
        Registry::default()
    }
    fn cluster(&self) -> ClusterView {
        ClusterView {
            leadership: Leadership::Leader,
            term: 5,
            members: vec![Member {
                id: 1,
                addr: "127.0.0.1:1".into(),
                voter: true,
            }],
            me: 1,
            log: self.replicated.then_some(LogPosition {
                last: Some(3),
                applied: Some(3),
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
async fn a_replicated_master_opens_without_waiting_for_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let config = MasterConfig::local(1, dir.path().to_path_buf());
    let proposals = std::sync::Arc::default();
    let replicator = StaleLeader {
        replicated: true,
        proposals: std::sync::Arc::clone(&proposals),
    };
    let master = Master::open_with(config, Box::new(replicator))
        .await
        .expect("a replicated master must start and follow the cluster");
    assert!(!master.serving());
    // Its takeover is left to follow_leadership, once the API port (which
    // carries the other masters' Raft messages) serves.
    assert_eq!(proposals.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_single_master_that_cannot_commit_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = MasterConfig::local(1, dir.path().to_path_buf());
    let replicator = StaleLeader {
        replicated: false,
        proposals: std::sync::Arc::default(),
    };
    assert!(
        Master::open_with(config, Box::new(replicator))
            .await
            .is_err()
    );
}
