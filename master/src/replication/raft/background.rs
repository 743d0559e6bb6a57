//! A [`super::RaftNode`]'s background tasks: one passes membership changes
//! on to the network (which needs each peer's incarnation), forms the
//! cluster while there is none (see [`super::formation`]), and on the
//! leader learns the store incarnations of members that had not answered
//! at formation; the other steps aside while the master's log cannot be
//! written ([`step_aside`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InitializeError, RaftError as OrError};
use openraft::{ChangeMembers, Raft, ServerState};

use super::cluster::{Cluster, Identity};
use super::formation::{self, Decision};
use super::log_writer::Durability;
use super::network::Network;
use super::types::{MasterNode, NodeId, TypeConfig};

/// How often an unformed master asks its peers, and the leader looks for
/// members whose incarnation it has not learned yet.
const MAINTENANCE_INTERVAL: Duration = Duration::from_millis(300);
const HELLO_TIMEOUT: Duration = Duration::from_millis(500);

/// The node's background work: keeps the membership view the network
/// needs, forms the cluster while it has none, and (on the leader) learns
/// the incarnations of members that had not answered at formation.
pub(super) async fn maintain(
    raft: Raft<TypeConfig>,
    cluster: Arc<Cluster>,
    network: Network,
    grace_until: tokio::time::Instant,
) {
    let mut metrics = raft.metrics();
    let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned_list = false;
    let mut was_member = false;
    loop {
        // Membership changes are passed on at once; the rest runs on ticks.
        let ticked = tokio::select! {
            changed = metrics.changed() => {
                if changed.is_err() {
                    return;
                }
                false
            }
            _ = tick.tick() => true,
        };
        let m = metrics.borrow_and_update().clone();
        let nodes: BTreeMap<NodeId, MasterNode> = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.clone()))
            .collect();
        cluster.set_members(nodes.clone());
        if !ticked {
            continue;
        }
        if nodes.is_empty() {
            let need_all = tokio::time::Instant::now() < grace_until;
            form(&raft, &cluster, &network, need_all).await;
            continue;
        }
        let me = cluster.identity();
        let member = nodes.get(&me.node_id).map(|n| n.incarnation) == Some(me.incarnation);
        if member && !was_member {
            // Formed, or added back after a wipe: earlier problems are over.
            cluster.clear_problem();
        }
        was_member = member;
        if !warned_list {
            warned_list = true;
            let mut addrs: Vec<&str> = nodes.values().map(|n| n.addr.as_str()).collect();
            addrs.sort();
            if addrs != cluster.masters {
                tracing::warn!(
                    masters = %cluster.masters.join(","),
                    members = %addrs.join(","),
                    "--masters differs from the cluster's membership, which is what counts"
                );
            }
        }
        if m.state == ServerState::Leader && m.current_leader == Some(me.node_id) {
            bind_incarnations(&raft, &network, &me, &nodes).await;
        }
    }
}

/// How often [`step_aside`] looks at the log's trouble.
const TROUBLE_INTERVAL: Duration = Duration::from_millis(200);

/// While this master's log cannot be written (a full disk), it sends no
/// heartbeats and does not campaign, as long as the cluster has other
/// voters: a leader then loses the lead to one that can write (its
/// proposals would only fail), and a follower does not try to take it.
/// Both resume once the log writes again.
pub(super) async fn step_aside(raft: Raft<TypeConfig>, durability: Durability) {
    let mut tick = tokio::time::interval(TROUBLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut aside = false;
    while !durability.closed() {
        tick.tick().await;
        let others = {
            let m = raft.metrics();
            let m = m.borrow();
            let me = m.id;
            m.membership_config
                .membership()
                .voter_ids()
                .any(|id| id != me)
        };
        let troubled = durability.trouble().is_some();
        if (troubled && others) == aside {
            continue;
        }
        aside = !aside;
        if aside {
            tracing::warn!(
                "the raft log cannot be written: stepping aside (no heartbeats, no elections)"
            );
        } else {
            tracing::info!("the raft log writes again: heartbeats and elections resume");
        }
        raft.runtime_config().heartbeat(!aside);
        raft.runtime_config().elect(!aside);
    }
}

/// One round of forming the cluster (see [`formation::decide`]).
async fn form(raft: &Raft<TypeConfig>, cluster: &Arc<Cluster>, network: &Network, need_all: bool) {
    let me = cluster.identity();
    let peers: Vec<String> = cluster
        .masters
        .iter()
        .filter(|a| **a != me.addr)
        .cloned()
        .collect();
    let replies = futures::future::join_all(
        peers
            .iter()
            .map(|addr| async { network.hello(addr, HELLO_TIMEOUT).await.ok() }),
    )
    .await;
    let answers: Vec<(String, _)> = peers.into_iter().zip(replies).collect();
    match formation::decide(&me, &cluster.masters, &answers, need_all) {
        Decision::Wait { reason, problem } => {
            if problem {
                cluster.report(reason);
            } else {
                tracing::debug!("{reason}");
            }
        }
        Decision::Initialize(members) => {
            if me.cluster_id.is_none() {
                let id = uuid::Uuid::new_v4().to_string();
                if let Err(e) = cluster.set_cluster_id(id).await {
                    tracing::error!("cannot record the new cluster id: {e}");
                    return;
                }
            }
            tracing::info!(members = ?members, "forming the masters' cluster");
            match raft.initialize(members).await {
                Ok(()) | Err(OrError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => tracing::error!("cannot form the cluster: {e}"),
            }
        }
    }
}

/// Records, for members the membership knows no incarnation of, the one
/// they answer with.
async fn bind_incarnations(
    raft: &Raft<TypeConfig>,
    network: &Network,
    me: &Identity,
    nodes: &BTreeMap<NodeId, MasterNode>,
) {
    for (id, node) in nodes.iter().filter(|(_, n)| n.incarnation == 0) {
        let incarnation = if *id == me.node_id {
            me.incarnation
        } else {
            match network.hello(&node.addr, HELLO_TIMEOUT).await {
                Ok(r) if r.node_id == *id => r.incarnation,
                _ => continue,
            }
        };
        let bound = MasterNode {
            addr: node.addr.clone(),
            incarnation,
        };
        let change = ChangeMembers::SetNodes(BTreeMap::from([(*id, bound)]));
        match raft.change_membership(change, true).await {
            Ok(_) => tracing::info!(
                node = id,
                incarnation,
                "learned a master's store incarnation"
            ),
            Err(e) => tracing::debug!(node = id, "cannot record the incarnation yet: {e}"),
        }
    }
}
