//! Masters' Raft with real gRPC on loopback: election, replication,
//! failover, partitions, catch-up, wiped stores, membership changes and
//! bad configurations. See `raft_support` for the harness.

mod raft_support;

use std::time::{Duration, Instant};

use keel_master::registry::{Applied, Command, RegistryError};
use keel_master::replication::raft::{ProposeError, RaftNode, RaftOptions, StateEvent};
use raft_support::*;

const SETTLE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_masters_elect_a_leader_and_apply_in_order() {
    let c = Cluster::start(3, RaftOptions::default()).await;
    let l = c.leader(SETTLE).await;
    let follower = (l + 1) % 3;
    let mut sub = c.node(follower).subscribe();
    assert_eq!(c.propose(l, bootstrap()).await, Ok(Applied::Bootstrapped));
    for i in 0..20 {
        let applied = c
            .propose(l, add_framework(&format!("fw{i}")))
            .await
            .unwrap();
        assert!(
            matches!(applied, Applied::FrameworkAdded { .. }),
            "{applied:?}"
        );
    }
    let reg = c.converged(l, SETTLE).await;
    let expected: Vec<String> = (0..20).map(|i| format!("fw{i}")).collect();
    assert_eq!(framework_names(&reg), expected);
    // A follower saw every command, in log order.
    let mut seen = Vec::new();
    let mut last = sub.index;
    while seen.len() < 21 {
        match sub.events.recv().await.unwrap() {
            StateEvent::Applied(e) => {
                assert!(e.index > last, "{} after {last}", e.index);
                last = e.index;
                seen.push(e.command.clone());
            }
            StateEvent::SnapshotInstalled { .. } => panic!("no snapshot expected"),
        }
    }
    assert_eq!(seen[0], bootstrap());
    assert_eq!(seen[20], add_framework("fw19"));
    // Everyone agrees on leader, term and members.
    let term = c.node(l).term();
    for (_, n) in c.running() {
        assert_eq!(n.term(), term);
        assert_eq!(n.members().len(), 3);
        assert!(n.members().iter().all(|m| m.voter));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_name_the_leader_and_refusals_are_committed() {
    let c = Cluster::start(3, RaftOptions::default()).await;
    let l = c.leader(SETTLE).await;
    let f = (l + 1) % 3;
    let leader = Some((c.node(l).id(), c.masters[l].addr.to_string()));
    assert_eq!(c.node(f).leader(), leader);
    assert_eq!(
        c.node(f).propose(bootstrap()).await,
        Err(ProposeError::NotLeader {
            leader: leader.clone()
        })
    );
    // Commands the registry refuses are committed as refusals, alike on
    // every master.
    assert_eq!(
        c.propose(l, add_framework("early")).await,
        Err(RegistryError::NotBootstrapped)
    );
    assert_eq!(c.propose(l, bootstrap()).await, Ok(Applied::Bootstrapped));
    assert_eq!(
        c.propose(l, bootstrap()).await,
        Err(RegistryError::AlreadyBootstrapped("keel-test".into()))
    );
    let reg = c.converged(l, SETTLE).await;
    assert_eq!(reg.master_id(), Some("keel-test"));
    assert!(framework_names(&reg).is_empty());
    c.node(l).ensure_leader().await.unwrap();
    assert!(matches!(
        c.node(f).ensure_leader().await,
        Err(ProposeError::NotLeader { .. })
    ));
}

/// Proposes on whichever master leads, until one commits; returns it and
/// the time that took.
async fn serve_again(c: &Cluster, cmd: Command, within: Duration) -> (usize, Duration) {
    let start = Instant::now();
    loop {
        for (i, n) in c.running() {
            if n.is_leader() && matches!(n.propose(cmd.clone()).await, Ok(Ok(_))) {
                return (i, start.elapsed());
            }
        }
        assert!(
            start.elapsed() < within,
            "no leader serving within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_a_new_one_within_a_second() {
    let mut c = Cluster::start(3, RaftOptions::default()).await;
    let l = c.leader(SETTLE).await;
    c.propose(l, bootstrap()).await.unwrap();
    let mut expected = Vec::new();
    let mut times = Vec::new();
    for kill in 0..3 {
        let l = c.leader(SETTLE).await;
        for i in 0..5 {
            let name = format!("k{kill}-{i}");
            c.propose(l, add_framework(&name)).await.unwrap();
            expected.push(name);
        }
        let old_term = c.node(l).term();
        c.kill(l).await;
        let name = format!("after{kill}");
        let (nl, took) = serve_again(&c, add_framework(&name), SETTLE).await;
        expected.push(name);
        eprintln!("leader killed -> new leader committed a write in {took:?}");
        times.push(took);
        assert_ne!(nl, l);
        assert!(c.node(nl).term() > old_term);
        // Every acknowledged write survived.
        assert_eq!(framework_names(&*c.converged(nl, SETTLE).await), expected);
        // The old leader comes back as a follower and catches up.
        c.restart(l).await;
        assert_eq!(framework_names(&*c.converged(nl, SETTLE).await), expected);
        assert_eq!(c.leader(SETTLE).await, nl);
    }
    times.sort();
    assert!(times[1] < Duration::from_secs(1), "median {:?}", times[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_cannot_commit_and_rejoins_cleanly() {
    let options = RaftOptions {
        propose_timeout: Duration::from_millis(1500),
        ..RaftOptions::default()
    };
    let c = Cluster::start(3, options).await;
    let l = c.leader(SETTLE).await;
    c.propose(l, bootstrap()).await.unwrap();
    c.propose(l, add_framework("before")).await.unwrap();
    c.converged(l, SETTLE).await;

    c.isolate(l);
    // Cut off, the old leader commits nothing.
    let lost = c.node(l).propose(add_framework("lost")).await;
    assert!(
        matches!(
            lost,
            Err(ProposeError::Timeout(_) | ProposeError::NotLeader { .. })
        ),
        "{lost:?}"
    );
    assert!(c.node(l).ensure_leader().await.is_err());
    // The majority elects a leader of its own and goes on.
    let nl = c.leader_other_than(l, SETTLE).await;
    c.propose(nl, add_framework("during")).await.unwrap();
    assert_eq!(framework_names(&c.node(l).registry()), ["before"]);

    // Healed, the old leader follows and drops what it never committed.
    c.rejoin(l);
    let reg = c.converged(nl, SETTLE).await;
    assert_eq!(framework_names(&reg), ["before", "during"]);
    assert!(!c.node(l).is_leader());
    assert_eq!(c.leader(SETTLE).await, nl);
    c.propose(nl, add_framework("after")).await.unwrap();
    assert_eq!(
        framework_names(&*c.converged(nl, SETTLE).await),
        ["before", "during", "after"]
    );
}

/// The test network cuts one link, both ways, and leaves the others: a
/// leader that loses one of its two followers still commits with the
/// other, and the cut-off follower catches up once the link heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_leaves_the_majority_committing() {
    let c = Cluster::start(3, RaftOptions::default()).await;
    let l = c.leader(SETTLE).await;
    c.propose(l, bootstrap()).await.unwrap();
    c.converged(l, SETTLE).await;
    let f = (l + 1) % 3;
    let (a, b) = (c.masters[l].addr, c.masters[f].addr);
    c.net.cut(a, b);
    c.propose(l, add_framework("cut")).await.unwrap();
    let other = (l + 2) % 3;
    eventually(SETTLE, "the connected follower applies the write", || {
        framework_names(&c.node(other).registry()) == ["cut"]
    })
    .await;
    assert!(framework_names(&c.node(f).registry()).is_empty());

    c.net.heal(a, b);
    let (nl, _) = serve_again(&c, add_framework("healed"), SETTLE).await;
    assert_eq!(
        framework_names(&*c.converged(nl, SETTLE).await),
        ["cut", "healed"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_master_catches_up_from_snapshot_and_log() {
    let options = RaftOptions {
        snapshot_every: 10,
        logs_kept_after_snapshot: 0,
        ..RaftOptions::default()
    };
    let mut c = Cluster::start(3, options).await;
    let l = c.leader(SETTLE).await;
    c.propose(l, bootstrap()).await.unwrap();
    c.converged(l, SETTLE).await;
    let f = (l + 1) % 3;
    c.kill(f).await;
    for i in 0..45 {
        c.propose(l, add_framework(&format!("fw{i}")))
            .await
            .unwrap();
    }
    // The leader snapshotted and purged the entries the follower lacks.
    eventually(SETTLE, "leader snapshot and purge", || {
        let m = c.node(l).metrics().borrow().clone();
        m.snapshot.is_some_and(|s| s.index >= 30) && m.purged.is_some_and(|p| p.index >= 30)
    })
    .await;
    c.restart(f).await;
    let reg = c.converged(l, SETTLE).await;
    assert_eq!(framework_names(&reg).len(), 45);
    // It got there through the leader's snapshot.
    assert!(c.node(f).status().snapshot_index.is_some_and(|i| i >= 30));

    // A master restarted with a current store recovers from its own
    // snapshot plus log.
    c.propose(l, add_framework("last")).await.unwrap();
    c.converged(l, SETTLE).await;
    let f2 = (l + 2) % 3;
    c.kill(f2).await;
    c.restart(f2).await;
    assert_eq!(framework_names(&*c.converged(l, SETTLE).await).len(), 46);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_master_is_refused_until_an_operator_adds_it_again() {
    let mut c = Cluster::start(3, RaftOptions::default()).await;
    let l = c.leader(SETTLE).await;
    c.propose(l, bootstrap()).await.unwrap();
    c.propose(l, add_framework("fw0")).await.unwrap();
    c.converged(l, SETTLE).await;
    eventually(SETTLE, "every incarnation known", || {
        c.node(l).members().iter().all(|m| m.incarnation != 0)
    })
    .await;
    let f = (l + 1) % 3;
    let id = c.node(f).id();
    let old = c
        .node(l)
        .members()
        .into_iter()
        .find(|m| m.id == id)
        .unwrap();

    c.kill(f).await;
    std::fs::remove_dir_all(&c.masters[f].dir).unwrap();
    c.restart(f).await;
    c.propose(l, add_framework("fw1")).await.unwrap();
    // The wiped master stays empty, is no member in its own eyes, and says why.
    eventually(SETTLE, "the wiped master reports it", || {
        c.node(f).problem().is_some_and(|p| p.contains("wiped"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(*c.node(f).applied_index().borrow(), 0);
    assert!(c.node(f).members().is_empty());
    assert!(c.node(f).registry().master_id().is_none());
    // The cluster still lists it under its old incarnation.
    assert!(c.node(l).members().contains(&old));

    // The operator adds it again: it becomes a voter under its new
    // incarnation and catches up.
    assert_eq!(c.node(l).add_member(c.masters[f].addr).await, Ok(id));
    let reg = c.converged(l, SETTLE).await;
    assert_eq!(framework_names(&reg), ["fw0", "fw1"]);
    let now = c
        .node(l)
        .members()
        .into_iter()
        .find(|m| m.id == id)
        .unwrap();
    assert!(now.voter);
    assert_ne!(now.incarnation, old.incarnation);
    eventually(SETTLE, "the problem clears", || {
        c.node(f).problem().is_none()
    })
    .await;
    c.propose(l, add_framework("fw2")).await.unwrap();
    assert_eq!(framework_names(&*c.converged(l, SETTLE).await).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_are_added_and_removed_at_runtime() {
    let mut c = Cluster::start(3, RaftOptions::default()).await;
    let l = c.leader(SETTLE).await;
    c.propose(l, bootstrap()).await.unwrap();
    c.propose(l, add_framework("fw0")).await.unwrap();
    let new = c.start_extra().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Not a member until added.
    assert!(c.node(new).members().is_empty());
    let id = c.node(l).add_member(c.masters[new].addr).await.unwrap();
    assert_eq!(id, c.node(new).id());
    assert_eq!(framework_names(&*c.converged(l, SETTLE).await), ["fw0"]);
    assert_eq!(c.node(l).members().iter().filter(|m| m.voter).count(), 4);
    // Adding it again changes nothing.
    assert_eq!(c.node(l).add_member(c.masters[new].addr).await, Ok(id));
    // Followers cannot change the membership.
    let f = (l + 1) % 3;
    assert!(matches!(
        c.node(f).remove_member(id).await,
        Err(keel_master::replication::raft::MembershipError::NotLeader { .. })
    ));

    let gone = c.node(f).id();
    c.node(l).remove_member(gone).await.unwrap();
    eventually(SETTLE, "the removal applies everywhere", || {
        c.running()
            .filter(|(i, _)| *i != f)
            .all(|(_, n)| n.members().len() == 3 && n.members().iter().all(|m| m.id != gone))
    })
    .await;
    c.kill(f).await;
    c.propose(l, add_framework("fw1")).await.unwrap();
    assert_eq!(
        framework_names(&*c.converged(l, SETTLE).await),
        ["fw0", "fw1"]
    );
    assert!(matches!(
        c.node(l).remove_member(gone).await,
        Err(keel_master::replication::raft::MembershipError::UnknownMember(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_master_is_a_cluster_of_one() {
    // With --masters naming only itself.
    let mut c = Cluster::start(1, RaftOptions::default()).await;
    let l = c.leader(SETTLE).await;
    c.propose(l, bootstrap()).await.unwrap();
    c.propose(l, add_framework("fw0")).await.unwrap();
    c.kill(0).await;
    c.restart(0).await;
    c.leader(SETTLE).await;
    c.propose(0, add_framework("fw1")).await.unwrap();
    assert_eq!(framework_names(&c.node(0).registry()), ["fw0", "fw1"]);

    // Without --masters, and without serving the gRPC service at all.
    let dir = tempfile::tempdir().unwrap();
    let me = "127.0.0.1:1".parse().unwrap();
    let node = RaftNode::open(dir.path(), me, &[]).await.unwrap();
    eventually(SETTLE, "it leads", || node.is_leader()).await;
    assert_eq!(
        node.propose(bootstrap()).await,
        Ok(Ok(Applied::Bootstrapped))
    );
    assert_eq!(node.members().len(), 1);
    node.shutdown().await;
    let node = RaftNode::open(dir.path(), me, &[]).await.unwrap();
    eventually(SETTLE, "it leads again", || node.is_leader()).await;
    assert_eq!(node.registry().master_id(), Some("keel-test"));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_store_refuses_to_start() {
    let mut c = Cluster::start(1, RaftOptions::default()).await;
    let l = c.leader(SETTLE).await;
    c.propose(l, bootstrap()).await.unwrap();
    c.kill(0).await;
    let path = c.masters[0].dir.join("raft").join("raft.redb");
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let err = c.try_restart(0).await.unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("corrupt"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disagreeing_masters_lists_are_reported_and_form_nothing() {
    // Masters 0 and 1 list 0,1,2; master 2 lists 0,2,3.
    let c = Cluster::start_lists(
        &[vec![0, 1, 2], vec![0, 1, 2], vec![0, 2, 3]],
        RaftOptions::default(),
    )
    .await;
    eventually(SETTLE, "the disagreement is reported", || {
        c.running().any(|(_, n)| {
            n.problem()
                .is_some_and(|p| p.contains("--masters disagree"))
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        c.running()
            .all(|(_, n)| n.leader().is_none() && n.members().is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_master_lists_are_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let me = "127.0.0.1:5050".parse().unwrap();
    let others = ["127.0.0.1:5051".parse().unwrap()];
    let err = RaftNode::open(dir.path(), me, &others).await.err().unwrap();
    assert!(err.to_string().contains("not in --masters"), "{err}");
    let any = "0.0.0.0:5050".parse().unwrap();
    let err = RaftNode::open(dir.path(), any, &[]).await.err().unwrap();
    assert!(err.to_string().contains("concrete address"), "{err}");
    // A store keeps its master's address.
    RaftNode::open(dir.path(), me, &[])
        .await
        .unwrap()
        .shutdown()
        .await;
    let moved = "127.0.0.1:5052".parse().unwrap();
    let err = RaftNode::open(dir.path(), moved, &[]).await.err().unwrap();
    assert!(err.to_string().contains("cannot change"), "{err}");
}

/// Writes acknowledged by a leader that then dies are on the new leader,
/// whether the leader replicates while its own fsync runs (the default) or
/// after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_the_leader_in_both_fsync_orders() {
    for overlap in [true, false] {
        let options = RaftOptions {
            overlap_leader_fsync: overlap,
            ..RaftOptions::default()
        };
        let mut c = Cluster::start(3, options).await;
        let l = c.leader(SETTLE).await;
        c.propose(l, bootstrap()).await.unwrap();
        // Weak: the killed master's store must be let go of.
        let node = std::sync::Arc::downgrade(c.masters[l].node.as_ref().unwrap());
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let node = node.clone();
                tokio::spawn(async move {
                    let mut acked = Vec::new();
                    for i in 0.. {
                        let name = format!("w{w}-{i}");
                        let Some(n) = node.upgrade() else { break };
                        match n.propose(add_framework(&name)).await {
                            Ok(Ok(_)) => acked.push(name),
                            _ => break,
                        }
                    }
                    acked
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.kill(l).await;
        let mut acked = Vec::new();
        for w in writers {
            acked.extend(w.await.unwrap());
        }
        assert!(
            acked.len() > 8,
            "only {} writes before the kill",
            acked.len()
        );
        let l2 = c.leader(SETTLE).await;
        assert_ne!(l2, l);
        // The new leader commits a write of its own, so that everything
        // before it is applied.
        c.propose(l2, add_framework("after")).await.unwrap();
        let reg = c.converged(l2, SETTLE).await;
        let names = framework_names(&reg);
        for name in &acked {
            assert!(names.contains(name), "overlap {overlap}: {name} was lost");
        }
    }
}
