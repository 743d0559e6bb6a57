//! The master's I/O shell around the pure [`Engine`]: it serializes
//! registry writes and commits them through the [`Replicator`] (the local
//! fsynced log for one master, Raft for `--masters`), feeds the engine its
//! inputs with the time, performs the effects it decides (agent sessions,
//! framework streams), follows leadership, and hands out consistent
//! snapshots for the views.
//!
//! - `mod.rs`: configuration, errors, the engine lock, commits, leadership.
//! - `links.rs`: agent sessions and framework connections, and performing
//!   effects on them.
//! - `agents.rs`: the agent-facing inputs (registration, updates, ticks).
//! - `frameworks.rs`: the scheduler API (SUBSCRIBE and every other call).
//! - `operator.rs`: operator writes and reads.
//! - `events.rs`: operator event subscribers.
//! - `local.rs`: in-process frameworks.
//! - `tokens.rs`: bearer and join tokens.

mod agents;
mod eks;
mod events;
mod frameworks;
mod links;
pub mod local;
mod maintenance;
mod operator;
mod tokens;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard, Notify};

use crate::auth::Trust;
use crate::engine::{Engine, EngineConfig, EngineError, Now};
use crate::registry::{Applied, Command, Registry, RegistryError};
use crate::replication::local::{LocalLog, StoreError};
use crate::replication::{self as replicate, ProposeError, Replicator};

pub use crate::engine::{FrameworkView, Refusal, Registration, Snapshot, TaskView};
pub use agents::AgentReport;
pub use events::{EventReceiver, EventsError, MAX_SUBSCRIBERS, SUBSCRIBER_QUEUE};
pub use frameworks::{CallError, CallReply};
pub use links::{FrameworkConnection, SendError, SessionSender};
pub use tokens::{NewToken, TokensError};

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
    /// Changes queued for one operator event subscriber before it is
    /// dropped.
    pub event_queue: usize,
    /// The flags the master was started with, for `GET_FLAGS` and `/master/state`.
    pub flags: Vec<(String, String)>,
    /// Who may use the scheduler and operator APIs, and for what.
    pub trust: Arc<Trust>,
    /// Signs sandbox grants for agents' ports (with TLS; `None` on
    /// plaintext, where agents' ports are open).
    pub grants: Option<Arc<keel_pki::GrantSigner>>,
    /// The cluster CA and this master's certificate, for agents' ports
    /// (LIST_FILES / READ_FILE; `None` on plaintext).
    pub agent_tls: Option<Arc<keel_pki::Material>>,
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
            event_queue: SUBSCRIBER_QUEUE,
            flags: Vec::new(),
            trust: Arc::new(Trust::open()),
            grants: None,
            agent_tls: None,
        }
    }

    fn engine(&self) -> EngineConfig {
        EngineConfig {
            ip: self.ip,
            port: self.port,
            hostname: self.hostname.clone(),
            agent_timeout: self.agent_timeout,
            heartbeat_interval: self.heartbeat_interval,
            framework_heartbeat_interval: self.framework_heartbeat_interval,
            offer_timeout: self.offer_timeout,
            agent_reregister_timeout: self.agent_reregister_timeout,
            allocator: self.allocator.clone(),
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
    Propose(#[from] ProposeError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<RegistryError> for MasterError {
    fn from(e: RegistryError) -> Self {
        MasterError::Engine(EngineError::Registry(e))
    }
}

impl MasterError {
    /// Whether the same request may succeed later or on another master
    /// (this one does not lead, or its store failed), rather than being
    /// wrong in itself.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            MasterError::Propose(_) | MasterError::Store(_) | MasterError::WorkDir { .. }
        )
    }

    /// The registry's refusal, when that is what this is.
    pub fn registry_error(&self) -> Option<&RegistryError> {
        match self {
            MasterError::Engine(EngineError::Registry(e)) => Some(e),
            _ => None,
        }
    }
}

/// The engine and the live links its effects go to, under one lock.
pub(crate) struct State {
    pub engine: Engine,
    pub links: links::Links,
}

pub struct Master {
    config: MasterConfig,
    start_time: f64,
    state: Mutex<State>,
    replicator: Box<dyn Replicator>,
    /// Serializes registry writes so the engine's copy applies them in log
    /// order.
    writes: AsyncMutex<()>,
    /// Set once this master leads and has rebuilt its state; only then does
    /// it serve the scheduler and operator APIs and agent sessions.
    serving: AtomicBool,
    /// The Raft term this master took over in: if it lost and regained
    /// leadership since, others may have committed meanwhile and its copy
    /// of the registry is stale until it takes over again.
    serving_term: AtomicU64,
    /// Wakes the allocation loop after events that free or add resources.
    allocate_soon: Notify,
    metrics: crate::metrics::MasterMetrics,
}

pub fn unix_now() -> f64 {
    Now::read().unix
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

    /// Opens the master over any replicator.
    pub async fn open_with(
        config: MasterConfig,
        replicator: Box<dyn Replicator>,
    ) -> Result<Arc<Master>, MasterError> {
        let engine = Engine::new(config.engine(), replicator.registry())?;
        let master = Arc::new(Master {
            start_time: unix_now(),
            state: Mutex::new(State {
                engine,
                links: links::Links::default(),
            }),
            replicator,
            writes: AsyncMutex::new(()),
            serving: AtomicBool::new(false),
            serving_term: AtomicU64::new(0),
            allocate_soon: Notify::new(),
            metrics: crate::metrics::MasterMetrics::new(),
            config,
        });
        // A single master takes over here: its local log failing is fatal.
        // A Raft master does not: its takeover needs the others, whose
        // messages arrive on the API port, which serves only once this
        // returns. `follow_leadership` (which the server runs) takes over
        // once serving, retrying or following whoever leads.
        let view = master.replicator.cluster();
        if view.leadership == replicate::Leadership::Leader && view.log.is_none() {
            master.become_leader().await?;
        }
        Ok(master)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Engine calls do not panic midway by design; a poisoned lock is
        // still consistent enough to keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the engine with the time, then performs the effects it
    /// decided (and any the engine decides on hearing of failed sends).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Engine, Now) -> T) -> T {
        let now = Now::read();
        let mut state = self.lock();
        let out = f(&mut state.engine, now);
        self.perform(&mut state, now);
        out
    }

    /// Like [`Master::with`], with the links as well (to add one before
    /// the effects that use it are performed).
    pub(crate) fn with_links<T>(&self, f: impl FnOnce(&mut State, Now) -> T) -> T {
        let now = Now::read();
        let mut state = self.lock();
        let out = f(&mut state, now);
        self.perform(&mut state, now);
        out
    }

    fn perform(&self, state: &mut State, now: Now) {
        let samples = state.engine.take_samples();
        if !samples.is_empty() {
            self.metrics.observe(samples, now.instant);
        }
        loop {
            let effects = state.engine.take_effects();
            if effects.is_empty() {
                return;
            }
            for effect in effects {
                if links::perform(state, effect, now) {
                    self.allocate_soon.notify_one();
                }
            }
        }
    }

    /// Takes the write lock: registry writes happen one at a time.
    pub(crate) async fn write(&self) -> AsyncMutexGuard<'_, ()> {
        self.writes.lock().await
    }

    /// Commits `command` through the replicator and applies it to the
    /// engine's copy. Call with the write lock held.
    pub(crate) async fn commit(
        &self,
        _w: &AsyncMutexGuard<'_, ()>,
        command: Command,
    ) -> Result<Applied, MasterError> {
        let started = std::time::Instant::now();
        let applied = self.replicator.propose(command.clone()).await??;
        self.metrics
            .registry_write
            .observe(started, started.elapsed());
        let agrees = self.lock().engine.committed(&command, &applied);
        if !agrees {
            let registry = self.replicator.registry();
            self.lock().engine.replace_registry(registry);
        }
        Ok(applied)
    }

    /// Takes over as leader: passes the replicator's barrier (everything
    /// earlier terms committed is applied), reloads the committed registry,
    /// starts from empty runtime state, bootstraps a new cluster and
    /// records the agents of the old leader as disconnected.
    pub async fn become_leader(&self) -> Result<(), MasterError> {
        let w = self.write().await;
        let term = self.replicator.cluster().term;
        tracing::info!(term, "taking over as leader");
        // A new Raft leader may not have applied what earlier terms
        // committed yet (it commits them with its first entry): reading
        // the registry before that lost acknowledged writes for good.
        self.replicator.barrier().await?;
        let registry = self.replicator.registry();
        let master_id = uuid::Uuid::new_v4().to_string();
        let commands = self.with_links(|state, now| {
            state.links.clear();
            state.engine.take_over(registry, &master_id, now)
        });
        for command in commands {
            self.commit(&w, command).await?;
        }
        self.with(|e, now| e.lead(now));
        self.serving_term.store(term, Ordering::SeqCst);
        self.serving.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// No longer leader: agents and frameworks are sent away (their
    /// streams end, and they find the new leader).
    pub async fn step_down(&self) {
        let _w = self.write().await;
        self.serving.store(false, Ordering::SeqCst);
        self.with_links(|state, _| {
            state.engine.step_down();
            state.links.clear();
        });
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
        self.serving.load(Ordering::SeqCst)
    }

    fn serves_term(&self, term: u64) -> bool {
        self.serving_term.load(Ordering::SeqCst) == term
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

    pub fn config(&self) -> &MasterConfig {
        &self.config
    }

    pub fn start_time(&self) -> f64 {
        self.start_time
    }

    /// When this master took over as leader (unix seconds), while it leads.
    pub fn elected_time(&self) -> Option<f64> {
        self.lock().engine.elected_time()
    }

    pub fn master_id(&self) -> String {
        self.lock()
            .engine
            .registry()
            .master_id()
            .unwrap_or_default()
            .to_string()
    }

    /// A consistent copy of the registry for read-only endpoints: the
    /// engine's copy while leading, the committed one otherwise.
    pub fn registry(&self) -> Registry {
        if self.serving() {
            self.lock().engine.registry().clone()
        } else {
            self.replicator.registry()
        }
    }

    /// Everything the views show, at one moment (the committed registry
    /// and no runtime state on a master that does not lead).
    pub fn snapshot(&self) -> Snapshot {
        if self.serving() {
            return self.lock().engine.snapshot();
        }
        let registry = self.replicator.registry();
        // A follower knows the frameworks from the registry (none is
        // connected to it).
        let frameworks = registry
            .frameworks()
            .map(|r| FrameworkView {
                id: r.id.clone(),
                info: r.info.clone(),
                connected: false,
                registered_time: r.registered_time,
                reregistered_time: r.reregistered_time,
            })
            .collect();
        Snapshot {
            registry,
            frameworks,
            live: Vec::new(),
            completed: Vec::new(),
            offers: Vec::new(),
            inverse_offers: Vec::new(),
            roles: Vec::new(),
            elected_time: None,
        }
    }

    /// Whether the registry knows the agent.
    pub fn has_agent(&self, agent_id: &str) -> bool {
        if self.serving() {
            self.lock().engine.registry().agent(agent_id).is_some()
        } else {
            self.replicator.registry().agent(agent_id).is_some()
        }
    }

    /// Waits until some event asked for an allocation cycle.
    pub async fn allocation_wanted(&self) {
        self.allocate_soon.notified().await
    }

    /// Sends waiting reconciliation answers, each framework as many as half
    /// the room left on its stream (the other half stays for its updates
    /// and offers). Called every [`crate::server`] pacing tick.
    pub fn pace_reconciliations(&self) {
        if !self.serving() {
            return;
        }
        self.with_links(|state, now| {
            for framework_id in state.engine.reconciling() {
                let room = state
                    .engine
                    .stream_of(&framework_id)
                    .and_then(|s| state.links.stream_room(&s))
                    .unwrap_or(0);
                if room > 1 {
                    state.engine.reconcile_more(&framework_id, room / 2, now);
                }
            }
        });
    }

    /// One allocation cycle; returns how many offers went out.
    pub fn allocate(&self) -> usize {
        if !self.serving() {
            return 0;
        }
        let started = std::time::Instant::now();
        let sent = self.with(|e, now| e.allocate(now));
        self.metrics.allocation_ran(started, started.elapsed());
        sent
    }

    /// The process's metrics.
    pub fn metrics(&self) -> &crate::metrics::MasterMetrics {
        &self.metrics
    }

    /// The engine's gauges and counters now, read under the lock (no
    /// gauges on a master that does not lead).
    pub fn metrics_frame(&self) -> crate::metrics::Frame {
        let serving = self.serving();
        let state = self.lock();
        crate::metrics::Frame {
            gauges: if serving {
                state.engine.gauges()
            } else {
                Default::default()
            },
            counters: state.engine.counters().clone(),
        }
    }

    /// Ends every agent session and framework stream (on shutdown).
    pub fn close_sessions(&self) {
        self.lock().links.clear();
    }
}

#[cfg(test)]
mod takeover_tests;
#[cfg(test)]
mod tests;
