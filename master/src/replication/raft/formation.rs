//! Forming the cluster from `--masters`, decided over what the other masters
//! answered to `Hello`. Pure: the node's background task asks the peers and
//! acts on the [`Decision`].
//!
//! Exactly one master initializes Raft: the one with the lowest node id in
//! the list, once all listed masters (after a grace period: a majority,
//! itself included) have answered with the same list and none of them
//! already belongs to a cluster. Masters that had not answered yet join as
//! members whose store incarnation the leader learns later. Every other
//! outcome is a wait; a disagreeing list, a master answering under another
//! id, or (for the lowest master) a cluster that already exists is a
//! problem to report.

use std::collections::BTreeMap;

use keel_api::raft_pb::HelloReply;

use super::cluster::Identity;
use super::types::{MasterNode, NodeId, node_id_for};

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Initialize Raft with these members.
    Initialize(BTreeMap<NodeId, MasterNode>),
    /// Not now. `problem`: something an operator must fix.
    Wait { reason: String, problem: bool },
}

fn wait(reason: String) -> Decision {
    Decision::Wait {
        reason,
        problem: false,
    }
}

fn problem(reason: String) -> Decision {
    Decision::Wait {
        reason,
        problem: true,
    }
}

/// `masters`: the sorted `--masters` list (with this master). `answers`:
/// each other master's address and its `Hello` reply, if it answered.
/// `need_all`: wait for every listed master, not just a majority (during a
/// grace period after start, so that a disagreeing list is seen before the
/// cluster forms without it).
pub fn decide(
    me: &Identity,
    masters: &[String],
    answers: &[(String, Option<HelloReply>)],
    need_all: bool,
) -> Decision {
    let replies = || {
        answers
            .iter()
            .filter_map(|(a, r)| r.as_ref().map(|r| (a, r)))
    };
    for (addr, reply) in replies() {
        if reply.node_id != node_id_for(addr) {
            return problem(format!(
                "{addr} answers as node {} (address {}), expected node {}",
                reply.node_id,
                reply.addr,
                node_id_for(addr)
            ));
        }
    }
    let lowest = masters.iter().map(|a| node_id_for(a)).min();
    // A formed cluster's membership counts, not the lists: a master that is
    // not in it (a new one, or one that lost its store) waits to be added.
    let formed = replies()
        .find(|(_, r)| !r.cluster_id.is_empty() && Some(&r.cluster_id) != me.cluster_id.as_ref());
    if let Some((addr, reply)) = formed {
        let reason = format!(
            "{addr} belongs to cluster {} and this master's Raft store is empty",
            reply.cluster_id
        );
        if lowest == Some(me.node_id) {
            // Without a cluster, this master would form one: say why not.
            return problem(format!(
                "{reason}: this master joins it (again, if its data was lost) only when an \
                 operator adds it (keelctl masters add {})",
                me.addr
            ));
        }
        return wait(format!("{reason}; waiting for its leader"));
    }
    for (addr, reply) in replies() {
        if reply.masters != masters {
            return problem(format!(
                "--masters disagree: this master ({}) has [{}], {addr} has [{}]",
                me.addr,
                masters.join(","),
                reply.masters.join(",")
            ));
        }
    }
    if lowest != Some(me.node_id) {
        return wait("waiting for the master with the lowest node id to form the cluster".into());
    }
    let answered = 1 + answers.iter().filter(|(_, r)| r.is_some()).count();
    if answered <= masters.len() / 2 || (need_all && answered < masters.len()) {
        return wait(format!(
            "{answered} of {} masters reachable; forming the cluster needs {}",
            masters.len(),
            if need_all {
                "all of them for now"
            } else {
                "a majority"
            }
        ));
    }
    Decision::Initialize(members(me, masters, answers))
}

/// The first membership: every listed master, with the store incarnation
/// it answered with (0 for those that did not answer yet).
fn members(
    me: &Identity,
    masters: &[String],
    answers: &[(String, Option<HelloReply>)],
) -> BTreeMap<NodeId, MasterNode> {
    let mut members = BTreeMap::new();
    for addr in masters {
        let incarnation = if *addr == me.addr {
            me.incarnation
        } else {
            answers
                .iter()
                .find(|(a, _)| a == addr)
                .and_then(|(_, r)| r.as_ref())
                .map_or(0, |r| r.incarnation)
        };
        members.insert(
            node_id_for(addr),
            MasterNode {
                addr: addr.clone(),
                incarnation,
            },
        );
    }
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "10.0.0.1:5050";
    const B: &str = "10.0.0.2:5050";
    const C: &str = "10.0.0.3:5050";

    fn list() -> Vec<String> {
        let mut l = vec![A.to_string(), B.to_string(), C.to_string()];
        l.sort();
        l
    }

    /// The three masters, lowest node id first.
    fn by_id() -> Vec<&'static str> {
        let mut l = vec![A, B, C];
        l.sort_by_key(|a| node_id_for(a));
        l
    }

    fn identity(addr: &str) -> Identity {
        Identity {
            node_id: node_id_for(addr),
            addr: addr.into(),
            incarnation: 100 + node_id_for(addr) % 7,
            cluster_id: None,
        }
    }

    fn reply(addr: &str, masters: Vec<String>, cluster: &str) -> HelloReply {
        HelloReply {
            node_id: node_id_for(addr),
            incarnation: 7,
            cluster_id: cluster.into(),
            masters,
            initialized: !cluster.is_empty(),
            addr: addr.into(),
        }
    }

    fn answers(me: &str, up: &[&str], cluster: &str) -> Vec<(String, Option<HelloReply>)> {
        by_id()
            .into_iter()
            .filter(|a| *a != me)
            .map(|a| {
                let r = up.contains(&a).then(|| reply(a, list(), cluster));
                (a.to_string(), r)
            })
            .collect()
    }

    #[test]
    fn the_lowest_master_forms_the_cluster_once_all_answered() {
        let [low, mid, high] = by_id()[..] else {
            panic!()
        };
        let me = identity(low);
        match decide(&me, &list(), &answers(low, &[mid, high], ""), true) {
            Decision::Initialize(members) => {
                assert_eq!(members.len(), 3);
                assert_eq!(members[&me.node_id].incarnation, me.incarnation);
                assert_eq!(members[&node_id_for(mid)].incarnation, 7);
                assert_eq!(members[&node_id_for(high)].addr, high);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn after_the_grace_period_a_majority_suffices() {
        let [low, mid, high] = by_id()[..] else {
            panic!()
        };
        let me = identity(low);
        let d = decide(&me, &list(), &answers(low, &[mid], ""), true);
        assert!(matches!(d, Decision::Wait { problem: false, .. }), "{d:?}");
        match decide(&me, &list(), &answers(low, &[mid], ""), false) {
            // Not reachable yet: the leader learns its incarnation later.
            Decision::Initialize(members) => {
                assert_eq!(members[&node_id_for(high)].incarnation, 0);
            }
            other => panic!("{other:?}"),
        }
        let d = decide(&me, &list(), &answers(low, &[], ""), false);
        assert!(matches!(d, Decision::Wait { problem: false, .. }), "{d:?}");
    }

    #[test]
    fn other_masters_wait_for_the_lowest() {
        let [low, mid, high] = by_id()[..] else {
            panic!()
        };
        let d = decide(
            &identity(mid),
            &list(),
            &answers(mid, &[low, high], ""),
            false,
        );
        assert!(matches!(d, Decision::Wait { problem: false, .. }), "{d:?}");
    }

    #[test]
    fn a_single_master_forms_its_own_cluster() {
        let me = identity(A);
        let d = decide(&me, &[A.to_string()], &[], true);
        assert!(
            matches!(d, Decision::Initialize(m) if m.len() == 1),
            "cluster of one"
        );
    }

    #[test]
    fn disagreeing_lists_are_a_problem_and_block_formation() {
        let [low, mid, _] = by_id()[..] else { panic!() };
        let other = vec![
            low.to_string(),
            mid.to_string(),
            "10.0.0.9:5050".to_string(),
        ];
        let answers = [(mid.to_string(), Some(reply(mid, other, "")))];
        match decide(&identity(low), &list(), &answers, false) {
            Decision::Wait { reason, problem } => {
                assert!(problem);
                assert!(reason.contains("--masters disagree"), "{reason}");
                assert!(reason.contains("10.0.0.9:5050"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_master_answering_under_another_id_is_a_problem() {
        let [low, mid, _] = by_id()[..] else { panic!() };
        let mut r = reply(mid, list(), "");
        r.node_id += 1;
        let d = decide(
            &identity(low),
            &list(),
            &[(mid.to_string(), Some(r))],
            false,
        );
        assert!(matches!(d, Decision::Wait { problem: true, .. }), "{d:?}");
    }

    #[test]
    fn an_empty_lowest_master_does_not_form_a_second_cluster() {
        // The cluster exists: the lowest master lost its store (or is new).
        let [low, mid, high] = by_id()[..] else {
            panic!()
        };
        let d = decide(
            &identity(low),
            &list(),
            &answers(low, &[mid, high], "c1"),
            false,
        );
        match d {
            Decision::Wait { reason, problem } => {
                assert!(problem);
                assert!(reason.contains("keelctl masters add"), "{reason}");
                assert!(reason.contains("c1"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // For the others, an existing cluster just means: wait for its leader.
        let d = decide(
            &identity(high),
            &list(),
            &answers(high, &[low], "c1"),
            false,
        );
        assert!(matches!(d, Decision::Wait { problem: false, .. }), "{d:?}");
    }

    #[test]
    fn a_new_master_with_a_longer_list_waits_to_be_added() {
        // Started with the members plus itself; they were formed with less.
        let [low, mid, high] = by_id()[..] else {
            panic!()
        };
        let mut longer = list();
        longer.push("10.0.0.9:5050".into());
        longer.sort();
        let me = identity("10.0.0.9:5050");
        let answers: Vec<_> = [low, mid, high]
            .iter()
            .map(|a| (a.to_string(), Some(reply(a, list(), "c1"))))
            .collect();
        match decide(&me, &longer, &answers, false) {
            Decision::Wait { reason, .. } => {
                assert!(!reason.contains("disagree"), "{reason}");
                assert!(reason.contains("c1"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
