//! The replicator conformance suite
//! (`keel_master::replication::conformance`) against both replicators: the
//! single master's local log on a temp dir, and Raft clusters of one and
//! three masters with real gRPC on loopback (`raft_support`).

mod raft_support;

use std::sync::Arc;
use std::time::Duration;

use keel_master::replication::Replicator;
use keel_master::replication::conformance::{self, Harness};
use keel_master::replication::local::LocalLog;
use keel_master::replication::raft::{RaftOptions, RaftReplicator};
use raft_support::Cluster;
use tempfile::TempDir;

const SETTLE: Duration = Duration::from_secs(10);
const ADDR: &str = "127.0.0.1:5050";

/// One master on `registry.log` in a temp dir; a restart reopens it.
struct Local {
    dir: TempDir,
}

impl Local {
    fn open(&self) -> Arc<dyn Replicator> {
        let log = LocalLog::open(&self.dir.path().join("registry.log"), ADDR.into())
            .expect("open the local log");
        Arc::new(log)
    }
}

impl Harness for Local {
    async fn start(&mut self) -> Arc<dyn Replicator> {
        self.open()
    }

    async fn restart(&mut self) -> Arc<dyn Replicator> {
        // The suite drops its replicator first: the file is closed.
        self.open()
    }

    fn followers(&self) -> Vec<Arc<dyn Replicator>> {
        Vec::new()
    }
}

/// `n` masters; a restart kills every one (as `kill -9`) and starts them
/// again on their stores.
struct Raft {
    n: usize,
    cluster: Option<Cluster>,
    leader: usize,
}

impl Raft {
    fn new(n: usize) -> Raft {
        Raft {
            n,
            cluster: None,
            leader: 0,
        }
    }

    fn replicator(&self, i: usize) -> Arc<dyn Replicator> {
        let c = self.cluster.as_ref().expect("started");
        let node = c.masters[i].node.clone().expect("running");
        Arc::new(RaftReplicator::new(node))
    }

    async fn settle(&mut self) -> Arc<dyn Replicator> {
        let c = self.cluster.as_ref().expect("started");
        self.leader = c.leader(SETTLE).await;
        self.replicator(self.leader)
    }
}

impl Harness for Raft {
    async fn start(&mut self) -> Arc<dyn Replicator> {
        self.cluster = Some(Cluster::start(self.n, RaftOptions::default()).await);
        self.settle().await
    }

    async fn restart(&mut self) -> Arc<dyn Replicator> {
        let c = self.cluster.as_mut().expect("started");
        for i in 0..self.n {
            c.kill(i).await;
        }
        for i in 0..self.n {
            c.restart(i).await;
        }
        self.settle().await
    }

    fn followers(&self) -> Vec<Arc<dyn Replicator>> {
        (0..self.n)
            .filter(|i| *i != self.leader)
            .map(|i| self.replicator(i))
            .collect()
    }
}

#[tokio::test]
async fn the_local_log_conforms() {
    conformance::run(|| Local {
        dir: tempfile::tempdir().expect("temp dir"),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raft_master_alone_conforms() {
    conformance::run(|| Raft::new(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_raft_masters_conform() {
    conformance::run(|| Raft::new(3)).await;
}
