//! The leader lease of the master's Raft replicator: a leader cut off from
//! the majority stops acting as leader within its lease (writes fail at
//! once, the cluster view names no leader) and follows the new leader once
//! healed. Real Raft over gRPC on loopback (see `raft_support`).

mod raft_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_master::replication::raft::RaftOptions;
use keel_master::replication::raft::RaftReplicator;
use keel_master::replication::{Leadership, ProposeError, Replicator};
use raft_support::*;

const SETTLE: Duration = Duration::from_secs(10);
const LEASE: Duration = Duration::from_millis(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_stops_leading_within_its_lease_and_follows_when_healed() {
    let c = Cluster::start(3, RaftOptions::default()).await;
    let l = c.leader(SETTLE).await;
    c.propose(l, bootstrap()).await.unwrap();
    let node = Arc::clone(c.masters[l].node.as_ref().unwrap());
    let replicator = RaftReplicator::with_lease(Arc::clone(&node), LEASE);
    assert_eq!(replicator.cluster().leadership, Leadership::Leader);
    replicator
        .propose(add_framework("before"))
        .await
        .unwrap()
        .unwrap();

    let changed = tokio::spawn(async move {
        let r = RaftReplicator::with_lease(node, LEASE);
        let seen = r.cluster();
        r.leadership_changed(&seen).await;
        r.cluster().leadership
    });
    let cut = Instant::now();
    c.isolate(l);
    // openraft alone would keep this master leading; the lease ends it.
    eventually(SETTLE, "the cut-off leader gives up leading", || {
        replicator.cluster().leadership != Leadership::Leader
    })
    .await;
    let gave_up = cut.elapsed();
    assert!(gave_up < LEASE + Duration::from_millis(900), "{gave_up:?}");
    let after_cut = tokio::time::timeout(Duration::from_secs(3), changed)
        .await
        .expect("leadership_changed resolves when the lease lapses")
        .unwrap();
    assert_ne!(after_cut, Leadership::Leader);

    // Writes fail at once rather than after the propose timeout (5 s).
    let t = Instant::now();
    let refused = replicator.propose(add_framework("lost")).await;
    assert!(
        matches!(refused, Err(ProposeError::NotLeader { .. })),
        "{refused:?}"
    );
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );

    // The majority goes on; healed, the old leader follows the new one.
    let nl = c.leader_other_than(l, SETTLE).await;
    c.propose(nl, add_framework("during")).await.unwrap();
    c.rejoin(l);
    let new_addr = c.masters[nl].addr.to_string();
    eventually(SETTLE, "the old leader names the new one", || {
        replicator.cluster().leadership
            == Leadership::Follower {
                leader: Some(new_addr.clone()),
            }
    })
    .await;
    assert_eq!(
        framework_names(&*c.converged(l, SETTLE).await),
        ["before", "during"]
    );
}
