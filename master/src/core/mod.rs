//! The master's I/O shell around the pure [`Registry`] and the pure
//! allocator: persists commands before applying them, keeps one session per
//! connected agent and one event stream per subscribed framework, tracks
//! liveness, offers and tasks (task state is not replicated: agents report
//! their tasks when they re-register, as in Mesos).
//!
//! - `mod.rs`: configuration, shared state, agents.
//! - [`frameworks`]: SUBSCRIBE, disconnection, failover, TEARDOWN.
//! - [`offers`]: allocation cycles, offers, DECLINE, rescinds.
//! - [`accept`]: ACCEPT (launch, launch group, reserve, volumes).
//! - [`tasks`]: the task table, status updates, acks, KILL, RECONCILE,
//!   agent loss.
//! - [`roles`]: weights, quota, operator reservations.

mod accept;
mod frameworks;
mod offers;
mod roles;
mod tasks;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keel_api::pb;
use tokio::sync::{Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard, Notify, mpsc};

use crate::allocator::Allocator;
use crate::registry::{AgentInfo, AgentState, Applied, Command, Registry, RegistryError};
use crate::replication::local::{LocalLog, StoreError};
use crate::replication::{self as replicate, ProposeError, Replicator};

pub use frameworks::{FrameworkView, Subscription};
pub use offers::resources_json;
pub use tasks::{TaskRecord, TaskView};

/// Runtime configuration of one master.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    pub ip: IpAddr,
    pub port: u16,
    pub hostname: String,
    pub work_dir: PathBuf,
    /// An agent that sends nothing for this long is marked unreachable.
    pub agent_timeout: Duration,
    /// How often master and agents heartbeat each other.
    pub heartbeat_interval: Duration,
    /// HEARTBEAT events to subscribed frameworks.
    pub framework_heartbeat_interval: Duration,
    /// Batch allocation interval (allocation also runs on events).
    pub allocation_interval: Duration,
    /// Offers outstanding longer than this are rescinded.
    pub offer_timeout: Option<Duration>,
    /// After becoming leader, how long agents have to re-register before
    /// they (and their tasks) are marked unreachable.
    pub agent_reregister_timeout: Duration,
    /// The allocation policy (`drf`).
    pub allocator: String,
    /// The flags the master was started with, for `GET_FLAGS` and `/master/state`.
    pub flags: Vec<(String, String)>,
}

impl MasterConfig {
    /// Defaults for tests and embedding: loopback, Mesos timings.
    pub fn local(port: u16, work_dir: PathBuf) -> Self {
        MasterConfig {
            ip: IpAddr::from([127, 0, 0, 1]),
            port,
            hostname: "localhost".into(),
            work_dir,
            agent_timeout: Duration::from_secs(15),
            heartbeat_interval: Duration::from_secs(5),
            framework_heartbeat_interval: Duration::from_secs(15),
            allocation_interval: Duration::from_secs(1),
            offer_timeout: None,
            agent_reregister_timeout: Duration::from_secs(600),
            allocator: "drf".into(),
            flags: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("cannot create work dir {path}: {source}")]
    WorkDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("unknown allocator {0:?} (available: drf)")]
    UnknownAllocator(String),
    #[error(transparent)]
    Propose(#[from] ProposeError),
    #[error(transparent)]
    Allocator(#[from] crate::allocator::AllocatorError),
}

/// Outbound half of an agent session.
pub type SessionSender = mpsc::Sender<Result<pb::MasterMessage, tonic::Status>>;

struct Session {
    id: u64,
    tx: SessionSender,
}

pub(crate) struct Inner {
    /// The master's copy of the committed registry (see [`Master::commit`]).
    registry: Registry,
    sessions: HashMap<String, Session>,
    last_seen: HashMap<String, Instant>,
    next_session: u64,
    heartbeat_seq: u64,
    allocator: Box<dyn Allocator>,
    frameworks: HashMap<String, frameworks::FrameworkRuntime>,
    offers: HashMap<String, offers::OfferRecord>,
    next_offer_seq: u64,
    tasks: tasks::TaskTable,
}

pub struct Master {
    config: MasterConfig,
    start_time: f64,
    inner: Mutex<Inner>,
    replicator: Box<dyn Replicator>,
    /// Serializes registry writes so the copy applies them in log order.
    writes: AsyncMutex<()>,
    /// Set once this master leads and has rebuilt its state; only then does
    /// it serve the scheduler and operator APIs and agent sessions.
    serving: std::sync::atomic::AtomicBool,
    /// The Raft term this master took over in: if it lost and regained
    /// leadership since, others may have committed meanwhile and its copy
    /// of the registry is stale until it takes over again.
    serving_term: std::sync::atomic::AtomicU64,
    /// Wakes the allocation loop after events that free or add resources.
    allocate_soon: Notify,
}

/// The result of a successful (re-)registration.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub agent_id: String,
    pub session: u64,
    pub reregistered: bool,
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl Master {
    /// Opens the registry under the work dir (the single-master command
    /// log), bootstrapping a new master id on first start.
    pub async fn open(config: MasterConfig) -> Result<Arc<Master>, MasterError> {
        std::fs::create_dir_all(&config.work_dir).map_err(|source| MasterError::WorkDir {
            path: config.work_dir.clone(),
            source,
        })?;
        let addr = format!("{}:{}", config.ip, config.port);
        let log = LocalLog::open(&config.work_dir.join("registry.log"), addr)?;
        Self::open_with(config, Box::new(log)).await
    }

    /// Opens the master over any replicator. Agents recorded as active are
    /// marked disconnected: no session survives a restart, and they get the
    /// agent timeout to return.
    pub async fn open_with(
        config: MasterConfig,
        replicator: Box<dyn Replicator>,
    ) -> Result<Arc<Master>, MasterError> {
        let allocator = crate::allocator::create(&config.allocator)
            .ok_or_else(|| MasterError::UnknownAllocator(config.allocator.clone()))?;
        let registry = replicator.registry();
        let now = Instant::now();
        let last_seen = registry.agents().map(|a| (a.id.clone(), now)).collect();
        let master = Arc::new(Master {
            config,
            start_time: unix_now(),
            inner: Mutex::new(Inner {
                registry,
                sessions: HashMap::new(),
                last_seen,
                next_session: 1,
                heartbeat_seq: 0,
                allocator,
                frameworks: HashMap::new(),
                offers: HashMap::new(),
                next_offer_seq: 0,
                tasks: tasks::TaskTable::default(),
            }),
            replicator,
            writes: AsyncMutex::new(()),
            serving: std::sync::atomic::AtomicBool::new(false),
            serving_term: std::sync::atomic::AtomicU64::new(0),
            allocate_soon: Notify::new(),
        });
        // A single master takes over here: its local log failing is fatal.
        // A Raft master does not: its takeover needs the others, whose
        // messages arrive on the API port, which serves only once this
        // returns. Blocking here left a restarted master deaf, campaigning
        // with ever higher terms that then unseated the real leader.
        // `follow_leadership` (which the server runs) takes over once
        // serving, retrying or following whoever leads.
        let view = master.replicator.cluster();
        if view.leadership == replicate::Leadership::Leader && view.log.is_none() {
            master.become_leader().await?;
        }
        Ok(master)
    }

    /// Takes over as leader: reloads the committed registry, starts from
    /// empty runtime state (agents and frameworks must come back; agents get
    /// `agent_reregister_timeout`), bootstraps the master id on a new
    /// cluster, and starts serving.
    pub async fn become_leader(&self) -> Result<(), MasterError> {
        let w = self.write().await;
        let term = self.replicator.cluster().term;
        tracing::info!(term, "taking over as leader");
        // A new Raft leader may not have applied what earlier terms
        // committed yet (it commits them with its first entry): reading the
        // registry before that lost acknowledged writes for good, since the
        // copy is only ever advanced by this master's own commits.
        self.replicator.barrier().await?;
        {
            let mut inner = self.lock();
            reset_runtime(&mut inner, &self.config)?;
            inner.registry = self.replicator.registry();
            let grace = Instant::now()
                + self
                    .config
                    .agent_reregister_timeout
                    .saturating_sub(self.config.agent_timeout);
            inner.last_seen = inner
                .registry
                .agents()
                .map(|a| (a.id.clone(), grace))
                .collect();
        }
        if self.lock().registry.master_id().is_none() {
            let master_id = uuid::Uuid::new_v4().to_string();
            self.commit(&w, Command::Bootstrap { master_id }).await?;
        }
        let stale: Vec<String> = self
            .lock()
            .registry
            .agents()
            .filter(|a| a.state == AgentState::Active)
            .map(|a| a.id.clone())
            .collect();
        if !stale.is_empty() {
            let cmd = Command::DisconnectAgents {
                agent_ids: stale,
                at: unix_now(),
            };
            self.commit(&w, cmd).await?;
        }
        {
            let mut inner = self.lock();
            roles::load_into_allocator(&mut inner);
            frameworks::recover(&mut inner, &self.config);
            tracing::info!(
                master_id = inner.registry.master_id().unwrap_or_default(),
                agents = inner.registry.agents().count(),
                frameworks = inner.registry.frameworks().count(),
                "leading: registry recovered"
            );
        }
        self.serving_term
            .store(term, std::sync::atomic::Ordering::SeqCst);
        self.serving
            .store(true, std::sync::atomic::Ordering::SeqCst);
        drop(w);
        self.want_allocation();
        Ok(())
    }

    /// No longer leader: agents and frameworks are sent away (their streams
    /// end, and they find the new leader).
    pub async fn step_down(&self) {
        let _w = self.write().await;
        self.serving
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let mut inner = self.lock();
        if let Err(e) = reset_runtime(&mut inner, &self.config) {
            tracing::error!(error = %e, "cannot reset the allocator");
        }
        tracing::info!("no longer leading: agent sessions and framework streams closed");
    }

    /// Follows the replicator's leadership until the returned future is
    /// dropped. A master that leads again in a newer term than the one it
    /// took over in steps down and takes over again: another leader may
    /// have committed in between.
    pub async fn follow_leadership(&self) {
        loop {
            let view = self.replicator.cluster();
            let leader = view.leadership == replicate::Leadership::Leader;
            let serving = self.serving();
            if leader && serving && !self.serves_term(view.term) {
                tracing::warn!(
                    term = view.term,
                    "leading again in a newer term: taking over anew"
                );
                self.step_down().await;
                continue;
            }
            if leader && !serving {
                if let Err(e) = self.become_leader().await {
                    tracing::error!(error = %e, "cannot take over as leader");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            } else if !leader && serving {
                self.step_down().await;
            }
            self.replicator.leadership_changed(&view).await;
        }
    }

    /// Whether this master leads and has rebuilt its state.
    pub fn serving(&self) -> bool {
        self.serving.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn serves_term(&self, term: u64) -> bool {
        self.serving_term.load(std::sync::atomic::Ordering::SeqCst) == term
    }

    /// Before a read that must reflect every write acknowledged before it
    /// began (the operator API): confirms with a majority that this master
    /// still leads, in the term it took over in. A deposed leader that has
    /// not noticed yet must not answer from its copy.
    pub async fn read_barrier(&self) -> Result<(), ProposeError> {
        let stale = || ProposeError::NotLeader { leader: None };
        if !self.serving() {
            return Err(stale());
        }
        self.replicator.barrier().await?;
        let view = self.replicator.cluster();
        if view.leadership != replicate::Leadership::Leader
            || !self.serving()
            || !self.serves_term(view.term)
        {
            return Err(stale());
        }
        Ok(())
    }

    /// Who leads, the term, the members.
    pub fn cluster(&self) -> replicate::ClusterView {
        self.replicator.cluster()
    }

    pub fn is_leader(&self) -> bool {
        self.replicator.cluster().leadership == replicate::Leadership::Leader
    }

    pub async fn add_master(&self, addr: String) -> Result<(), ProposeError> {
        self.replicator.add_member(addr).await
    }

    pub async fn remove_master(&self, id: u64) -> Result<(), ProposeError> {
        self.replicator.remove_member(id).await
    }

    /// Takes the write lock: registry writes happen one at a time.
    pub(crate) async fn write(&self) -> AsyncMutexGuard<'_, ()> {
        self.writes.lock().await
    }

    /// Commits `cmd` through the replicator and applies it to the master's
    /// copy. Call with the write lock held and the state lock released.
    pub(crate) async fn commit(
        &self,
        _w: &AsyncMutexGuard<'_, ()>,
        cmd: Command,
    ) -> Result<Applied, MasterError> {
        let applied = self.replicator.propose(cmd.clone()).await??;
        let mut inner = self.lock();
        match inner.registry.apply(&cmd) {
            Ok(mine) if mine == applied => {}
            other => {
                tracing::error!(?other, ?applied, "registry copy diverged; reloading it");
                inner.registry = self.replicator.registry();
            }
        }
        Ok(applied)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied command
        // (apply validates first), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn config(&self) -> &MasterConfig {
        &self.config
    }

    pub fn start_time(&self) -> f64 {
        self.start_time
    }

    pub fn master_id(&self) -> String {
        self.lock()
            .registry
            .master_id()
            .unwrap_or_default()
            .to_string()
    }

    /// Whether the registry knows the agent (without copying the registry).
    pub fn has_agent(&self, agent_id: &str) -> bool {
        if self.serving() {
            self.lock().registry.agent(agent_id).is_some()
        } else {
            self.replicator.registry().agent(agent_id).is_some()
        }
    }

    /// A consistent copy of the registry for read-only endpoints: the
    /// master's own copy while it leads, the committed one otherwise.
    pub fn registry(&self) -> Registry {
        if self.serving() {
            self.lock().registry.clone()
        } else {
            self.replicator.registry()
        }
    }

    /// Waits until some event asked for an allocation cycle.
    pub async fn allocation_wanted(&self) {
        self.allocate_soon.notified().await
    }

    fn want_allocation(&self) {
        self.allocate_soon.notify_one();
    }

    /// Admits or readmits an agent and makes `tx` its only session. `tasks`
    /// are the tasks the agent reports (re-registration).
    pub async fn register(
        &self,
        agent_id: Option<String>,
        info: AgentInfo,
        reported: Vec<pb::TaskReport>,
        tx: SessionSender,
    ) -> Result<Registration, MasterError> {
        let w = self.write().await;
        let at = unix_now();
        let cmd = match agent_id {
            Some(agent_id) => Command::ReadmitAgent {
                agent_id,
                info: Box::new(info),
                at,
            },
            None => Command::AdmitAgent {
                info: Box::new(info),
                at,
            },
        };
        let applied = self.commit(&w, cmd).await?;
        let mut inner = self.lock();
        let (agent_id, reregistered) = match applied {
            Applied::AgentAdmitted { agent_id } => (agent_id, false),
            Applied::AgentReadmitted { agent_id, .. } => (agent_id, true),
            other => unreachable!("registration applied as {other:?}"),
        };
        let session = inner.next_session;
        inner.next_session += 1;
        // A second session for the same agent replaces the first (the agent
        // restarted before the old connection was noticed dead); dropping the
        // old sender ends that stream.
        if inner
            .sessions
            .insert(agent_id.clone(), Session { id: session, tx })
            .is_some()
        {
            tracing::info!(%agent_id, "replaced an older session of this agent");
        }
        inner.last_seen.insert(agent_id.clone(), Instant::now());
        offers::rescind_agent_offers(&mut inner, &agent_id);
        tasks::agent_reregistered(&mut inner, &agent_id, reported);
        let total = inner
            .registry
            .agent(&agent_id)
            .map(|a| a.total_resources())
            .unwrap_or_default();
        let used = tasks::used_on_agent(&inner, &agent_id);
        inner.allocator.remove_agent(&agent_id);
        inner.allocator.add_agent(&agent_id, total, &used);
        drop(inner);
        self.want_allocation();
        Ok(Registration {
            agent_id,
            session,
            reregistered,
        })
    }

    /// Records that the agent's session is alive.
    pub fn heartbeat(&self, agent_id: &str, session: u64) {
        let mut inner = self.lock();
        if inner
            .sessions
            .get(agent_id)
            .is_some_and(|s| s.id == session)
        {
            inner.last_seen.insert(agent_id.to_string(), Instant::now());
        }
    }

    /// The agent's stream ended. Only the current session counts.
    pub async fn session_closed(&self, agent_id: &str, session: u64) {
        let w = self.write().await;
        {
            let mut inner = self.lock();
            if inner.sessions.get(agent_id).is_none_or(|s| s.id != session) {
                return;
            }
            inner.sessions.remove(agent_id);
        }
        let cmd = Command::DisconnectAgent {
            agent_id: agent_id.to_string(),
            at: unix_now(),
        };
        match self.commit(&w, cmd).await {
            Ok(Applied::AgentDisconnected { .. }) => {
                tracing::info!(%agent_id, "agent disconnected");
                let mut inner = self.lock();
                inner.allocator.deactivate_agent(agent_id);
                offers::rescind_agent_offers(&mut inner, agent_id);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(%agent_id, error = %e, "cannot record disconnect"),
        }
    }

    /// One heartbeat round: pings every session and marks agents unreachable
    /// when nothing came from them within the agent timeout.
    pub async fn tick(&self) {
        if !self.serving() {
            return;
        }
        let expired: Vec<String> = {
            let mut inner = self.lock();
            inner.heartbeat_seq += 1;
            let ping = pb::MasterMessage {
                msg: Some(pb::master_message::Msg::Heartbeat(pb::Heartbeat {
                    seq: inner.heartbeat_seq,
                    sent_unix_ms: (unix_now() * 1000.0) as u64,
                })),
            };
            for session in inner.sessions.values() {
                // A full queue means the agent is not reading; the timeout
                // below deals with it.
                let _ = session.tx.try_send(Ok(ping.clone()));
            }
            let timeout = self.config.agent_timeout;
            inner
                .registry
                .agents()
                .filter(|a| a.state != AgentState::Unreachable)
                .filter(|a| {
                    inner
                        .last_seen
                        .get(&a.id)
                        .is_none_or(|seen| seen.elapsed() >= timeout)
                })
                .map(|a| a.id.clone())
                .collect()
        };
        if !expired.is_empty() {
            let w = self.write().await;
            for agent_id in expired {
                // It may have come back while we waited for the write lock.
                if self
                    .lock()
                    .last_seen
                    .get(&agent_id)
                    .is_some_and(|s| s.elapsed() < self.config.agent_timeout)
                {
                    continue;
                }
                self.lock().sessions.remove(&agent_id);
                let cmd = Command::MarkAgentUnreachable {
                    agent_id: agent_id.clone(),
                    at: unix_now(),
                };
                match self.commit(&w, cmd).await {
                    Ok(_) => {
                        tracing::warn!(%agent_id, timeout = ?self.config.agent_timeout, "agent unreachable: no heartbeat");
                        let mut inner = self.lock();
                        offers::rescind_agent_offers(&mut inner, &agent_id);
                        inner.allocator.remove_agent(&agent_id);
                        tasks::agent_lost(&mut inner, &agent_id);
                    }
                    Err(e) => {
                        tracing::error!(%agent_id, error = %e, "cannot mark agent unreachable")
                    }
                }
            }
        }
        self.expire_failovers().await;
        offers::expire_offers(&mut self.lock(), self.config.offer_timeout);
    }

    /// Ends every agent session and framework stream (on shutdown).
    pub fn close_sessions(&self) {
        let mut inner = self.lock();
        inner.sessions.clear();
        for fw in inner.frameworks.values_mut() {
            fw.stream = None;
        }
    }

    /// Sends `msg` to the agent's session, if it has one.
    pub(crate) fn send_to_agent(
        inner: &Inner,
        agent_id: &str,
        msg: pb::master_message::Msg,
    ) -> bool {
        match inner.sessions.get(agent_id) {
            Some(s) => {
                s.tx.try_send(Ok(pb::MasterMessage { msg: Some(msg) }))
                    .is_ok()
            }
            None => false,
        }
    }
}

/// Empty runtime state: no sessions, streams, offers or tasks, a fresh
/// allocator. The registry copy is kept.
fn reset_runtime(inner: &mut Inner, config: &MasterConfig) -> Result<(), MasterError> {
    inner.allocator = crate::allocator::create(&config.allocator)
        .ok_or_else(|| MasterError::UnknownAllocator(config.allocator.clone()))?;
    inner.sessions.clear();
    inner.frameworks.clear();
    inner.offers.clear();
    inner.tasks = tasks::TaskTable::default();
    Ok(())
}

#[cfg(test)]
mod tests {
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
}

#[cfg(test)]
mod takeover_tests;
