//! The task runtime: an actor owning every task the agent knows, the status
//! update manager and the link to the master. Supervisors (one per task)
//! run the processes and report [`Event`]s back; the session feeds it
//! [`ExecutorCall`]s and takes its status updates while a stream is up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keel_api::mesos::TaskState;
use keel_api::pb;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::call::ExecutorCall;
use super::checkpoint::log::UpdateLog;
use super::checkpoint::{self, MetaDir};
use super::hooks::TaskHook;
use super::hooks::cgroup::ContainerLimits;
use super::launcher::ProcessLauncher;
use super::status;
use super::supervisor::Event;
use super::task::{TaskDescription, TaskSpec};
use super::updates::{Output, TaskKey, UpdateManager};
use super::volumes;
use crate::isolation::cgroups::{Cgroups, LimitOptions};
use crate::isolation::network::Network;
use crate::isolation::network::ipam::{Ipam, Subnet};
use crate::isolation::{HostSupport, Isolation};

pub mod containers;
pub mod custom;
pub mod custom_calls;
mod custom_ending;

pub use snapshot::{
    ExecutorSnapshot, FrameworkSnapshot, MAX_COMPLETED_EXECUTORS, RuntimeSnapshot, TaskSnapshot,
};

mod ending;
mod launching;
mod recovery;
mod snapshot;
#[cfg(test)]
mod tests;

pub struct ExecutorConfig {
    /// The agent's work dir (made absolute); sandboxes live under `slaves/`,
    /// checkpoints under `meta/slaves/`.
    pub work_dir: PathBuf,
    /// Kill grace period for tasks without a kill policy (Mesos: 3 s).
    pub kill_grace_period: Duration,
    /// First status update resend interval, doubled up to `resend_cap`.
    pub resend_base: Duration,
    pub resend_cap: Duration,
    /// Environment every task starts from (before `MESOS_*` and its own).
    pub base_env: Vec<(String, String)>,
    /// Lifecycle hooks, in prestart order.
    pub hooks: Vec<Arc<dyn TaskHook>>,
    /// `--isolation` (tests: none).
    pub isolation: Isolation,
    /// What this host offers (found at startup).
    pub host: HostSupport,
    pub limit_options: LimitOptions,
    /// The Keel cgroup subtree, when there is one.
    pub cgroups: Option<Arc<dyn Cgroups>>,
    /// The limits of live containers, shared with the cgroup hook.
    pub container_limits: ContainerLimits,
    /// Run tasks as their `CommandInfo.user` / framework user (Mesos'
    /// `--switch_user`); `passwd_root` holds `etc/passwd` ("/").
    pub switch_user: bool,
    pub passwd_root: PathBuf,
    /// A `keel-agent` binary for helpers (`enter` for COMMAND health checks
    /// in a task's namespaces): the agent itself.
    pub helper: PathBuf,
    /// The agent's network tasks may join (`--network-*`).
    pub network: Option<(String, Subnet)>,
    /// What the fetcher may fetch (`--fetcher-*`).
    pub fetcher: crate::fetcher::FetcherConfig,
    /// Where tasks' transitions, fetches and launch phases are counted
    /// (the agent's metrics).
    pub metrics: Arc<crate::metrics::tasks::RuntimeMetrics>,
    /// Custom executors: where they reach the agent, their timeouts.
    pub executors: custom::CustomConfig,
}

impl ExecutorConfig {
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        ExecutorConfig {
            work_dir: work_dir.into(),
            kill_grace_period: Duration::from_secs(3),
            resend_base: super::updates::RESEND_BASE,
            resend_cap: super::updates::RESEND_CAP,
            base_env: Vec::new(),
            hooks: super::hooks::default_hooks(),
            isolation: Isolation::none(),
            host: HostSupport::default(),
            limit_options: LimitOptions::default(),
            cgroups: None,
            container_limits: ContainerLimits::default(),
            network: None,
            helper: PathBuf::from("/proc/self/exe"),
            switch_user: false,
            passwd_root: PathBuf::from("/"),
            fetcher: crate::fetcher::FetcherConfig::default(),
            metrics: Arc::new(crate::metrics::tasks::RuntimeMetrics::detached()),
            executors: custom::CustomConfig::default(),
        }
    }

    /// Tasks may join network `name` (addresses from `subnet`) through `net`.
    pub fn use_network(&mut self, name: &str, subnet: Subnet, net: Arc<dyn Network>) {
        self.network = Some((name.to_string(), subnet));
        self.hooks
            .push(Arc::new(super::hooks::network::NetworkHook::new(net)));
    }

    /// Containers get cgroups in `cgroups` (with its controllers).
    pub fn use_cgroups(&mut self, cgroups: Arc<dyn Cgroups>) {
        self.host.cgroups = true;
        self.host.controllers = cgroups.controllers();
        self.hooks.push(Arc::new(super::hooks::cgroup::CgroupHook {
            cgroups: cgroups.clone(),
            limits: self.container_limits.clone(),
        }));
        self.cgroups = Some(cgroups);
    }
}

enum Command {
    Call(ExecutorCall),
    Attach {
        agent_id: String,
        sink: mpsc::UnboundedSender<pb::StatusUpdate>,
    },
    Detach,
    Reports(oneshot::Sender<Vec<pb::TaskReport>>),
    Snapshot(oneshot::Sender<RuntimeSnapshot>),
    Container(
        containers::ContainerQuery,
        oneshot::Sender<Option<containers::ContainerRef>>,
    ),
    Stop(oneshot::Sender<()>),
    /// Custom executors' calls and the messages they send upstream.
    Custom(custom_calls::CustomCommand),
}

/// The handle the session (and tests) use; cheap to clone.
#[derive(Clone)]
pub struct ExecutorHandle {
    tx: mpsc::UnboundedSender<Command>,
}

impl ExecutorHandle {
    /// Starts the runtime on the current tokio runtime. It first recovers
    /// what an earlier agent left in the work dir's checkpoints (calls made
    /// meanwhile wait). It stops when the last handle is dropped (running
    /// tasks are left alone: the next runtime adopts them).
    pub fn start<L: ProcessLauncher>(mut config: ExecutorConfig, launcher: L) -> Self {
        if let Ok(abs) = std::path::absolute(&config.work_dir) {
            config.work_dir = abs;
        }
        let (tx, commands) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let ipam = config
            .network
            .as_ref()
            .map(|(_, subnet)| Ipam::new(*subnet));
        let fetcher = crate::fetcher::Fetcher::new(
            config.work_dir.join("cache/fetcher"),
            config.fetcher.clone(),
        )
        .inspect_err(|e| tracing::error!(error = %e, "no fetcher"))
        .ok()
        .map(Arc::new);
        let runtime = Runtime {
            meta: MetaDir::new(config.work_dir.join("meta")),
            hooks: config.hooks.iter().cloned().collect(),
            updates: UpdateManager::new(config.resend_base, config.resend_cap),
            config,
            launcher: Arc::new(launcher),
            agent_id: None,
            sink: None,
            tasks: BTreeMap::new(),
            groups: BTreeMap::new(),
            group_executors: BTreeMap::new(),
            ipam,
            fetcher,
            container_ips: BTreeMap::new(),
            events: events_tx,
            custom: BTreeMap::new(),
            upstream: None,
            book: snapshot::Book::default(),
        };
        tokio::spawn(runtime.run(commands, events));
        ExecutorHandle { tx }
    }

    pub fn call(&self, call: ExecutorCall) {
        let _ = self.tx.send(Command::Call(call));
    }

    /// A stream to the master is up: updates go to `sink` from now on, and
    /// every task's outstanding update is sent again at once.
    pub fn attach(&self, agent_id: &str, sink: mpsc::UnboundedSender<pb::StatusUpdate>) {
        let agent_id = agent_id.to_string();
        let _ = self.tx.send(Command::Attach { agent_id, sink });
    }

    /// The stream is down: updates stay queued until the next `attach`.
    pub fn detach(&self) {
        let _ = self.tx.send(Command::Detach);
    }

    /// Stops the runtime and waits until it has: supervisors let go of
    /// their processes, which keep running (as when the agent is killed).
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The running task container `query` names
    /// ([`containers::ContainerRef`]), for the agent's container API.
    pub async fn container(
        &self,
        query: containers::ContainerQuery,
    ) -> Option<containers::ContainerRef> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Command::Container(query, tx)).ok()?;
        rx.await.ok().flatten()
    }

    /// Every task the agent knows (running, or not yet acknowledged as
    /// terminal), for `Register.tasks`.
    pub async fn reports(&self) -> Vec<pb::TaskReport> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Reports(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Frameworks, executors and tasks, live and recently completed (for
    /// the agent's state and operator API).
    pub async fn snapshot(&self) -> RuntimeSnapshot {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Snapshot(tx)).is_err() {
            return RuntimeSnapshot::default();
        }
        rx.await.unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Running,
    Terminal,
}

struct Task {
    /// Its TaskInfo, typed (unless it was unreadable).
    description: TaskDescription,
    executor_id: String,
    container_id: String,
    /// The task-group executor it belongs to.
    group: Option<String>,
    killing_state: bool,
    phase: Phase,
    latest: Option<pb::TaskStatus>,
    kills: Option<mpsc::UnboundedSender<Duration>>,
    kill_requested: bool,
    /// Killed for failing its health checks.
    unhealthy: bool,
    /// Run by a custom executor: no process of its own, its states come
    /// from the executor.
    custom: bool,
    /// The task's checkpoint directory and update log (`None` when they
    /// could not be written: the task runs, but would not survive a restart).
    dir: Option<PathBuf>,
    log: Option<UpdateLog>,
}

impl Task {
    fn spec(&self) -> Option<&TaskSpec> {
        self.description.spec()
    }
}

struct Runtime<L> {
    config: ExecutorConfig,
    meta: MetaDir,
    launcher: Arc<L>,
    hooks: Arc<[Arc<dyn TaskHook>]>,
    agent_id: Option<String>,
    sink: Option<mpsc::UnboundedSender<pb::StatusUpdate>>,
    tasks: BTreeMap<TaskKey, Task>,
    /// Containers of live task groups: (framework, executor) -> container.
    groups: BTreeMap<(String, String), String>,
    /// The executor resources of each live task group's container.
    group_executors: BTreeMap<String, keel_api::resources::Resources>,
    fetcher: Option<Arc<crate::fetcher::Fetcher>>,
    /// Addresses on the agent's network, and who has them.
    ipam: Option<Ipam>,
    container_ips: BTreeMap<String, std::net::Ipv4Addr>,
    updates: UpdateManager,
    events: mpsc::UnboundedSender<Event>,
    /// Live custom executors by (framework, executor).
    custom: BTreeMap<(String, String), custom::CustomExecutor>,
    /// Where executor messages and exits go while a stream is up.
    upstream: Option<mpsc::UnboundedSender<pb::agent_message::Msg>>,
    /// Frameworks' infos, statuses, pids and what completed.
    book: snapshot::Book,
}

impl<L: ProcessLauncher> Runtime<L> {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) {
        self.recover().await;
        loop {
            let deadline = [self.updates.next_deadline(), self.custom_deadline()]
                .into_iter()
                .flatten()
                .min();
            let resend = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Stop(done)) => {
                        drop(events);
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
                Some(event) = events.recv() => self.event(event),
                () = resend => {
                    let now = Instant::now();
                    let out = self.updates.tick(now);
                    self.apply(out);
                    self.custom_tick(now);
                }
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Call(ExecutorCall::Launch(req)) => self.launch(*req),
            Command::Call(ExecutorCall::Kill(m)) => {
                let key = TaskKey::new(m.framework_id, m.task_id);
                self.kill(&key, m.grace_period_ms, true);
            }
            Command::Call(ExecutorCall::Acknowledge(m)) => {
                let key = TaskKey::new(m.framework_id, m.task_id);
                let from_executor = self.executor_sent(&key, &m.uuid);
                match self.updates.acknowledge(&key, &m.uuid, Instant::now()) {
                    Some(out) => {
                        if let Some(log) = self.tasks.get_mut(&key).and_then(|t| t.log.as_mut())
                            && let Err(e) = log.append_ack(&m.uuid)
                        {
                            tracing::error!(task_id = %key.task_id, error = %e,
                                "cannot checkpoint an acknowledgement");
                        }
                        if from_executor {
                            self.acknowledged(&key, m.uuid);
                        }
                        self.apply(out)
                    }
                    None => tracing::debug!(task_id = %key.task_id, "ignoring unexpected ack"),
                }
            }
            Command::Call(ExecutorCall::DestroyVolumes(m)) => self.destroy_volumes(&m),
            Command::Call(ExecutorCall::ShutdownFramework(m)) => {
                // Custom executors' tasks end with their executor.
                let keys: Vec<TaskKey> = self
                    .tasks
                    .iter()
                    .filter(|(k, t)| k.framework_id == m.framework_id && !t.custom)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in keys {
                    self.kill(&key, None, false);
                }
                self.shutdown_framework_executors(&m.framework_id);
            }
            Command::Call(ExecutorCall::FrameworkMessage(m)) => self.framework_message(m),
            Command::Call(ExecutorCall::ShutdownExecutor(m)) => {
                self.shutdown_executor(&m.framework_id, &m.executor_id);
            }
            Command::Custom(c) => self.custom_command(c),
            Command::Attach { agent_id, sink } => {
                self.agent_id = Some(agent_id);
                self.sink = Some(sink);
                let out = self.updates.connected(Instant::now());
                self.apply(out);
            }
            Command::Detach => {
                self.sink = None;
                self.updates.disconnected();
            }
            Command::Stop(_) => {}
            Command::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
            }
            Command::Container(query, reply) => {
                let _ = reply.send(self.container(&query));
            }
            Command::Reports(reply) => {
                let reports = self
                    .tasks
                    .iter()
                    .filter_map(|(key, t)| match t.description.to_json() {
                        Ok(task_info_json) => Some(pb::TaskReport {
                            framework_id: key.framework_id.clone(),
                            task_info_json,
                            latest: t.latest.clone(),
                        }),
                        Err(e) => {
                            tracing::error!(task_id = %key.task_id, error = %e,
                                "cannot write a task's info for its report");
                            None
                        }
                    })
                    .collect();
                let _ = reply.send(reports);
            }
        }
    }

    fn apply(&mut self, outputs: Vec<Output>) {
        for out in outputs {
            match out {
                Output::Send(update) => {
                    let delivered = self.sink.as_ref().is_some_and(|s| s.send(*update).is_ok());
                    if !delivered && self.sink.take().is_some() {
                        self.updates.disconnected();
                    }
                }
                Output::Forget(key) => {
                    tracing::debug!(task_id = %key.task_id, "terminal update acknowledged");
                    self.retire(&key);
                    let dir = self.tasks.remove(&key).and_then(|t| t.dir);
                    if let Some(dir) = dir {
                        remove_checkpoint(&dir);
                    }
                }
            }
        }
    }

    /// Records and queues a new update for `key`.
    /// DESTROY committed on the master: deletes each volume's data, unless
    /// a live task here still uses it (the master destroys only offered,
    /// so unused, volumes; a task here means the two views differ, and data
    /// is never deleted on a doubt).
    fn destroy_volumes(&self, m: &pb::DestroyVolumes) {
        let work = &self.config.work_dir;
        let in_use: Vec<PathBuf> = self
            .tasks
            .values()
            .filter(|t| t.phase != Phase::Terminal)
            .filter_map(Task::spec)
            .flat_map(|spec| volumes::parse(work, &spec.info().resources).unwrap_or_default())
            .map(|v| v.host)
            .collect();
        for v in &m.volumes {
            let (role, id) = (v.role.clone(), v.id.clone());
            let Some(dir) = volumes::host_dir(work, &role, &id) else {
                tracing::warn!(%role, volume = %id, "DESTROY of an invalid volume id ignored");
                continue;
            };
            if in_use.contains(&dir) {
                tracing::warn!(%role, volume = %id, "destroyed volume still used by a task here: data kept");
                continue;
            }
            tokio::task::spawn_blocking(move || match volumes::destroy(&dir) {
                Ok(()) => tracing::info!(%role, volume = %id, "persistent volume destroyed"),
                Err(e) => tracing::error!(%role, volume = %id, error = %e,
                    "cannot delete a destroyed volume's data"),
            });
        }
    }

    fn emit(
        &mut self,
        key: &TaskKey,
        state: TaskState,
        message: Option<String>,
        reason: Option<&str>,
    ) {
        self.emit_health(key, state, message, reason, None);
    }

    /// [`Self::emit`] with `healthy` set (a terminal update of a task killed
    /// for its health checks says `healthy: false` anyway).
    fn emit_health(
        &mut self,
        key: &TaskKey,
        state: TaskState,
        message: Option<String>,
        reason: Option<&str>,
        healthy: Option<bool>,
    ) {
        let Some(task) = self.tasks.get(key) else {
            return;
        };
        let mut st = status::update(&key.task_id, &task.executor_id, state, message, reason);
        st.healthy = healthy.or((state.is_terminal() && task.unhealthy).then_some(false));
        self.emit_status(key, st);
    }

    /// Records `st` as the task's latest status and queues it for the
    /// master (checkpointed first).
    fn emit_status(&mut self, key: &TaskKey, mut st: pb::TaskStatus) {
        let Some(state) = TaskState::from_name(&st.state) else {
            return;
        };
        if st.container_status.is_none() {
            st.container_status = self.container_status(key);
        }
        self.book.status(key, &st);
        let Some(task) = self.tasks.get_mut(key) else {
            return;
        };
        let prev = task
            .latest
            .as_ref()
            .and_then(|s| TaskState::from_name(&s.state));
        self.config
            .metrics
            .tally(|t| t.changed(&key.framework_id, &task.executor_id, prev, state));
        task.latest = Some(st.clone());
        if state.is_terminal() {
            task.phase = Phase::Terminal;
            task.kills = None;
        }
        let update = pb::StatusUpdate {
            framework_id: key.framework_id.clone(),
            status: Some(st),
        };
        // On disk before it can be sent.
        if let Some(log) = task.log.as_mut()
            && let Err(e) = log.append_update(&update)
        {
            tracing::error!(task_id = %key.task_id, error = %e, "cannot checkpoint a status update");
        }
        let out = self.updates.enqueue(update, Instant::now());
        self.apply(out);
    }
}

fn remove_checkpoint(dir: &Path) {
    if let Err(e) = checkpoint::remove_task(dir) {
        tracing::warn!(error = %e, "cannot remove a finished task's checkpoint");
    }
}
