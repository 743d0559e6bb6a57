//! [`RaftNode`]: one master's member of the masters' Raft cluster. It opens
//! the store under `<work_dir>/raft/`, runs openraft, forms the cluster
//! from `--masters` (see [`super::formation`]) and gives the master core a
//! small API: propose a command, read the applied registry, follow what is
//! applied, ask who leads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, RaftError as OrError};
use openraft::{ConfigError, Raft, RaftMetrics, ServerState};
use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::background::{maintain, step_aside};
use super::cluster::{Cluster, Identity};
use super::connector::{Connector, TcpConnector};
use super::db::{Db, StoreError, key};
use super::log_store::LogStore;
use super::log_writer::Durability;
use super::network::Network;
use super::options::RaftOptions;
use super::proposer::{ProposeError, Proposer};
use super::service::{RaftGrpc, RaftGrpcServer};
use super::state_machine::{SmShared, StateEvent, StateMachine};
use super::types::{MasterNode, NodeId, TypeConfig, addr_of, addr_text, node_id_for};
use crate::registry::{Applied, Command, Registry, RegistryError};

#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("this master's address {me} is not in --masters [{masters}]")]
    NotInMasters { me: String, masters: String },
    #[error("this master must advertise a concrete address, not {0}")]
    UnspecifiedAddress(String),
    #[error("masters {a} and {b} hash to the same node id {id}")]
    IdClash { a: String, b: String, id: NodeId },
    #[error(
        "raft store {path} belongs to master {stored} (node {stored_id}), not to {me} \
         (node {id}); a master's address cannot change"
    )]
    WrongStore {
        path: PathBuf,
        stored: String,
        stored_id: NodeId,
        me: String,
        id: NodeId,
    },
    #[error("invalid raft configuration: {0}")]
    Config(#[from] Box<ConfigError>),
    #[error("raft did not start: {0}")]
    Start(String),
}

/// A master in the membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: NodeId,
    pub addr: String,
    /// Voters elect and commit; learners only follow.
    pub voter: bool,
    /// 0 while the leader has not learned it.
    pub incarnation: u64,
}

/// Everything an operator view shows about Raft.
#[derive(Debug, Clone, Serialize)]
pub struct RaftStatus {
    pub id: NodeId,
    pub addr: String,
    pub cluster_id: Option<String>,
    /// "leader", "follower", "candidate" or "learner".
    pub role: &'static str,
    pub term: u64,
    pub leader: Option<(NodeId, String)>,
    pub members: Vec<Member>,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    /// Something an operator must fix (a wiped store, disagreeing
    /// `--masters`, ...), if any.
    pub problem: Option<String>,
}

/// The applied registry and the events after it, taken atomically: every
/// event in `events` comes after `index`.
pub struct Subscription {
    pub registry: Arc<Registry>,
    pub index: u64,
    pub events: broadcast::Receiver<StateEvent>,
}

pub struct RaftNode {
    pub(super) raft: Raft<TypeConfig>,
    pub(super) cluster: Arc<Cluster>,
    pub(super) network: Network,
    proposer: Proposer,
    sm: Arc<SmShared>,
    db: Arc<Db>,
    /// The log's writer: what it has made durable, and its trouble.
    durability: Durability,
    background: Vec<JoinHandle<()>>,
    options: RaftOptions,
}

impl RaftNode {
    /// [`RaftNode::open_with`] and the default options.
    pub async fn open(
        work_dir: &Path,
        me: SocketAddr,
        masters: &[SocketAddr],
    ) -> Result<RaftNode, RaftError> {
        Self::open_with(work_dir, me, masters, RaftOptions::default()).await
    }

    /// Opens the store in `<work_dir>/raft/` (`raft.redb` and the log
    /// segments in `wal/`, refusing a damaged one) and starts
    /// Raft. `me` is this master's advertised `ip:port`; `masters` the
    /// `--masters` list (empty: a cluster of this master alone). Returns
    /// before the cluster is formed: the gRPC service must be served for
    /// the masters to find each other.
    pub async fn open_with(
        work_dir: &Path,
        me: SocketAddr,
        masters: &[SocketAddr],
        options: RaftOptions,
    ) -> Result<RaftNode, RaftError> {
        let connector = Arc::new(TcpConnector::new(options.tls.clone()));
        Self::open_with_connector(work_dir, me, masters, options, connector).await
    }

    /// [`RaftNode::open_with`], reaching the other masters through
    /// `connector` (tests pass one that can cut links).
    pub async fn open_with_connector(
        work_dir: &Path,
        me: SocketAddr,
        masters: &[SocketAddr],
        options: RaftOptions,
        connector: Arc<dyn Connector>,
    ) -> Result<RaftNode, RaftError> {
        let me_text = addr_text(&me);
        if me.ip().is_unspecified() {
            return Err(RaftError::UnspecifiedAddress(me_text));
        }
        let masters = master_list(&me_text, masters)?;
        let id = node_id_for(&me_text);
        let config = options.config()?;
        let dir = work_dir.join("raft");
        std::fs::create_dir_all(&dir).map_err(|source| RaftError::Io {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join("raft.redb");
        let opened = {
            let path = path.clone();
            let segment_size = options.segment_size;
            tokio::task::spawn_blocking(move || Db::open_with(&path, segment_size))
                .await
                .map_err(|e| RaftError::Start(e.to_string()))?
        };
        let (db, recovered) = opened?;
        let db = Arc::new(db);
        let identity = identity(&db, &path, id, &me_text)?;
        tracing::info!(
            node = id,
            addr = %me_text,
            incarnation = identity.incarnation,
            cluster = identity.cluster_id.as_deref().unwrap_or("-"),
            last_log = ?recovered.last_log.map(|l| l.index),
            snapshot = ?recovered.snapshot_last.map(|l| l.index),
            store = %path.display(),
            "opening raft"
        );
        let cluster = Arc::new(Cluster::new(identity, masters, &db));
        let log = if options.overlap_leader_fsync {
            LogStore::with_early_leader_ack(db.clone(), recovered, id)?
        } else {
            LogStore::new(db.clone(), recovered)?
        };
        let durability = log.durability();
        let (sm, shared) = StateMachine::restore(db.clone(), log.durability())?;
        let network = Network::new(cluster.clone(), connector, log.durability());
        let raft = Raft::new(id, Arc::new(config), network.clone(), log, sm)
            .await
            .map_err(|e| RaftError::Start(e.to_string()))?;
        let grace_until = tokio::time::Instant::now() + options.formation_grace;
        let maintenance = tokio::spawn(maintain(
            raft.clone(),
            cluster.clone(),
            network.clone(),
            grace_until,
        ));
        let aside = tokio::spawn(step_aside(raft.clone(), durability.clone()));
        let (proposer, proposing) = Proposer::spawn(raft.clone(), options.propose_timeout);
        Ok(RaftNode {
            raft,
            cluster,
            network,
            proposer,
            sm: shared,
            db,
            durability,
            background: vec![maintenance, aside, proposing],
            options,
        })
    }

    pub fn id(&self) -> NodeId {
        self.cluster.id
    }

    /// The gRPC service other masters call; mount it on the API port at
    /// `/keel.raft.v1.RaftService/{*method}`.
    pub fn grpc_service(&self) -> RaftGrpcServer {
        RaftGrpc::server(
            self.raft.clone(),
            self.cluster.clone(),
            self.options.tls.is_some(),
        )
    }

    /// Commits `cmd` and returns what applying it did (the registry's
    /// refusal included). Only the leader accepts proposals. On `Timeout`
    /// the command may still commit: read the registry to find out. While
    /// this master's log cannot be written (a full disk), a leader refuses
    /// new commands at once with `Store`, and takes them again once it can.
    pub async fn propose(
        &self,
        cmd: Command,
    ) -> Result<Result<Applied, RegistryError>, ProposeError> {
        if let Some(trouble) = self.store_trouble()
            && self.is_leader()
        {
            return Err(ProposeError::Store(trouble));
        }
        self.proposer
            .propose(cmd, self.options.propose_timeout)
            .await
    }

    /// Confirms with a quorum that this master still leads, and waits until
    /// everything committed before is applied here: afterwards
    /// [`RaftNode::registry`] is as fresh as a linearizable read.
    pub async fn ensure_leader(&self) -> Result<(), ProposeError> {
        let limit = self.options.propose_timeout;
        match tokio::time::timeout(limit, self.raft.ensure_linearizable()).await {
            Err(_) => Err(ProposeError::Timeout(limit)),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(OrError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                Err(self.not_leader(f.leader_id))
            }
            Ok(Err(OrError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))) => {
                Err(ProposeError::NotLeader { leader: None })
            }
            Ok(Err(OrError::Fatal(f))) => Err(ProposeError::Stopped(f.to_string())),
        }
    }

    fn not_leader(&self, leader: Option<NodeId>) -> ProposeError {
        let leader = leader.map(|id| (id, self.addr_of(id).unwrap_or_default()));
        ProposeError::NotLeader { leader }
    }

    /// The registry as applied on this master (cheap: shared, not copied).
    pub fn registry(&self) -> Arc<Registry> {
        self.sm.read(|s| s.registry.clone())
    }

    /// The applied registry plus every later [`StateEvent`].
    pub fn subscribe(&self) -> Subscription {
        self.sm.read(|s| Subscription {
            registry: s.registry.clone(),
            index: s.last_applied.map_or(0, |l| l.index),
            events: self.sm.events.subscribe(),
        })
    }

    /// The index of the last applied log entry, as it changes.
    pub fn applied_index(&self) -> watch::Receiver<u64> {
        self.sm.applied.subscribe()
    }

    /// openraft's metrics, as they change (role, term, leader, membership).
    pub fn metrics(&self) -> watch::Receiver<RaftMetrics<NodeId, MasterNode>> {
        self.raft.metrics()
    }

    /// The leader this master knows of: `(node id, "host:port")`. None
    /// once Raft stopped: what it knew then is no longer news.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let id = {
            let m = self.raft.metrics();
            let m = m.borrow();
            m.running_state.as_ref().ok()?;
            m.current_leader?
        };
        Some((id, self.addr_of(id).unwrap_or_default()))
    }

    /// Resolves once Raft has stopped on a fatal error (a store it cannot
    /// read or write any more), with that error. Raft does not restart
    /// in-process: the master exits and its supervisor starts it again
    /// from its store.
    pub fn stopped(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut metrics = self.raft.metrics();
        async move {
            loop {
                if let Err(e) = &metrics.borrow_and_update().running_state {
                    return e.to_string();
                }
                if metrics.changed().await.is_err() {
                    let m = metrics.borrow();
                    return match &m.running_state {
                        Err(e) => e.to_string(),
                        Ok(()) => "raft stopped".to_string(),
                    };
                }
            }
        }
    }

    /// Whether this master believes it leads. A leader cut off from the
    /// others keeps believing so until it hears of a newer term; its
    /// proposals time out. Use [`RaftNode::ensure_leader`] to be sure.
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id())
    }

    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    pub fn members(&self) -> Vec<Member> {
        members_of(&self.raft.metrics().borrow())
    }

    /// Something an operator must fix, if any.
    pub fn problem(&self) -> Option<String> {
        let stopped = match &self.raft.metrics().borrow().running_state {
            Err(e) => Some(format!("raft stopped: {e}")),
            Ok(()) => None,
        };
        stopped
            .or_else(|| self.store_trouble())
            .or_else(|| self.cluster.problem())
    }

    /// Why this master's log cannot be written now, while it retries (a
    /// full disk, an fsync error); `None` while it writes.
    pub fn store_trouble(&self) -> Option<String> {
        let trouble = self.durability.trouble()?;
        Some(format!(
            "the raft log cannot be written, retrying until it can: {trouble}"
        ))
    }

    pub fn status(&self) -> RaftStatus {
        let m = self.raft.metrics().borrow().clone();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Follower | ServerState::Shutdown => "follower",
        };
        let running = m.running_state.is_ok();
        let leader = m.current_leader.filter(|_| running).map(|id| {
            let addr = m
                .membership_config
                .membership()
                .get_node(&id)
                .map(|n| n.addr.clone());
            (id, addr.unwrap_or_default())
        });
        RaftStatus {
            id: self.id(),
            addr: self.cluster.addr.clone(),
            cluster_id: self.cluster.identity().cluster_id,
            role,
            term: m.current_term,
            leader,
            members: members_of(&m),
            last_log_index: m.last_log_index,
            last_applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            problem: self.problem(),
        }
    }

    /// Takes a snapshot now (and purges the log it covers), whatever the
    /// snapshot policy says.
    pub async fn snapshot(&self) -> Result<(), ProposeError> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| ProposeError::Stopped(e.to_string()))
    }

    /// Stops Raft and waits until the store is closed.
    pub async fn shutdown(self) {
        for task in &self.background {
            task.abort();
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft did not stop cleanly: {e}");
        }
        // openraft's state machine task lets go of the store shortly after.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.db) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(super) fn addr_of(&self, id: NodeId) -> Option<String> {
        addr_of(&self.raft, id)
    }
}

impl Drop for RaftNode {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

fn members_of(m: &RaftMetrics<NodeId, MasterNode>) -> Vec<Member> {
    let membership = m.membership_config.membership();
    let voters: Vec<NodeId> = membership.voter_ids().collect();
    membership
        .nodes()
        .map(|(id, n)| Member {
            id: *id,
            addr: n.addr.clone(),
            voter: voters.contains(id),
            incarnation: n.incarnation,
        })
        .collect()
}

/// This master's identity from the store at `path`, created with a new
/// incarnation for a new store; a store of another master is refused.
fn identity(db: &Db, path: &Path, id: NodeId, me: &str) -> Result<Identity, RaftError> {
    match db.get::<Identity>(key::IDENTITY)? {
        Some(i) if i.node_id != id || i.addr != me => Err(RaftError::WrongStore {
            path: path.to_path_buf(),
            stored: i.addr,
            stored_id: i.node_id,
            me: me.to_string(),
            id,
        }),
        Some(i) => Ok(i),
        None => {
            let identity = Identity {
                node_id: id,
                addr: me.to_string(),
                incarnation: (uuid::Uuid::new_v4().as_u64_pair().0 >> 11) | 1,
                cluster_id: None,
            };
            db.put(key::IDENTITY, &identity)?;
            Ok(identity)
        }
    }
}

/// The `--masters` list as node ids are derived from it: sorted, this
/// master included, no two masters with the same id.
fn master_list(me: &str, masters: &[SocketAddr]) -> Result<Vec<String>, RaftError> {
    let mut list: Vec<String> = masters.iter().map(addr_text).collect();
    if list.is_empty() {
        list.push(me.to_string());
    }
    list.sort();
    list.dedup();
    if !list.iter().any(|m| m == me) {
        return Err(RaftError::NotInMasters {
            me: me.to_string(),
            masters: list.join(","),
        });
    }
    let mut seen = BTreeMap::new();
    for addr in &list {
        if let Some(other) = seen.insert(node_id_for(addr), addr) {
            return Err(RaftError::IdClash {
                a: other.clone(),
                b: addr.clone(),
                id: node_id_for(addr),
            });
        }
    }
    Ok(list)
}
