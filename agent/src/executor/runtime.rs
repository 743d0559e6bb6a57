//! The task runtime: an actor owning every task the agent knows, the status
//! update manager and the link to the master. Supervisors (one per task)
//! run the processes and report [`Event`]s back; the session feeds it
//! [`ExecutorCall`]s and takes its status updates while a stream is up.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keel_api::mesos::{TaskInfo, TaskState};
use keel_api::pb;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::call::ExecutorCall;
use super::hooks::{TaskContext, TaskHook};
use super::launch::{self, ParsedTask};
use super::launcher::ProcessLauncher;
use super::supervisor::{Event, Supervisor};
use super::updates::{Output, TaskKey, UpdateManager};
use super::{command, sandbox, status};

pub struct ExecutorConfig {
    /// The agent's work dir (made absolute); sandboxes live under `slaves/`.
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
        }
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
}

/// The handle the session (and tests) use; cheap to clone.
#[derive(Clone)]
pub struct ExecutorHandle {
    tx: mpsc::UnboundedSender<Command>,
}

impl ExecutorHandle {
    /// Starts the runtime on the current tokio runtime. It stops when the
    /// last handle is dropped (running tasks are left alone).
    pub fn start<L: ProcessLauncher>(mut config: ExecutorConfig, launcher: L) -> Self {
        if let Ok(abs) = std::path::absolute(&config.work_dir) {
            config.work_dir = abs;
        }
        let (tx, commands) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let runtime = Runtime {
            hooks: config.hooks.iter().cloned().collect(),
            updates: UpdateManager::new(config.resend_base, config.resend_cap),
            config,
            launcher: Arc::new(launcher),
            agent_id: None,
            sink: None,
            tasks: BTreeMap::new(),
            groups: BTreeMap::new(),
            events: events_tx,
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

    /// Every task the agent knows (running, or not yet acknowledged as
    /// terminal), for `Register.tasks`.
    pub async fn reports(&self) -> Vec<pb::TaskReport> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Reports(tx)).is_err() {
            return Vec::new();
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
    info: Option<Box<TaskInfo>>,
    info_json: String,
    executor_id: String,
    /// The task-group executor it belongs to.
    group: Option<String>,
    killing_state: bool,
    phase: Phase,
    latest: Option<pb::TaskStatus>,
    kills: Option<mpsc::UnboundedSender<Duration>>,
    kill_requested: bool,
}

struct Runtime<L> {
    config: ExecutorConfig,
    launcher: Arc<L>,
    hooks: Arc<[Arc<dyn TaskHook>]>,
    agent_id: Option<String>,
    sink: Option<mpsc::UnboundedSender<pb::StatusUpdate>>,
    tasks: BTreeMap<TaskKey, Task>,
    /// Containers of live task groups: (framework, executor) -> container.
    groups: BTreeMap<(String, String), String>,
    updates: UpdateManager,
    events: mpsc::UnboundedSender<Event>,
}

impl<L: ProcessLauncher> Runtime<L> {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) {
        loop {
            let deadline = self.updates.next_deadline();
            let resend = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
                Some(event) = events.recv() => self.event(event),
                () = resend => {
                    let out = self.updates.tick(Instant::now());
                    self.apply(out);
                }
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Call(ExecutorCall::Launch(m)) => self.launch(&m),
            Command::Call(ExecutorCall::Kill(m)) => {
                let key = TaskKey::new(m.framework_id, m.task_id);
                self.kill(&key, m.grace_period_ms, true);
            }
            Command::Call(ExecutorCall::Acknowledge(m)) => {
                let key = TaskKey::new(m.framework_id, m.task_id);
                match self.updates.acknowledge(&key, &m.uuid, Instant::now()) {
                    Some(out) => self.apply(out),
                    None => tracing::debug!(task_id = %key.task_id, "ignoring unexpected ack"),
                }
            }
            Command::Call(ExecutorCall::ShutdownFramework(m)) => {
                let keys: Vec<TaskKey> = self
                    .tasks
                    .keys()
                    .filter(|k| k.framework_id == m.framework_id)
                    .cloned()
                    .collect();
                for key in keys {
                    self.kill(&key, None, false);
                }
            }
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
            Command::Reports(reply) => {
                let reports = self
                    .tasks
                    .iter()
                    .map(|(key, t)| pb::TaskReport {
                        framework_id: key.framework_id.clone(),
                        task_info_json: t.info_json.clone(),
                        latest: t.latest.clone(),
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
                    let delivered = self.sink.as_ref().is_some_and(|s| s.send(update).is_ok());
                    if !delivered && self.sink.take().is_some() {
                        self.updates.disconnected();
                    }
                }
                Output::Forget(key) => {
                    tracing::debug!(task_id = %key.task_id, "terminal update acknowledged");
                    self.tasks.remove(&key);
                }
            }
        }
    }

    /// Records and queues a new update for `key`.
    fn emit(
        &mut self,
        key: &TaskKey,
        state: TaskState,
        message: Option<String>,
        reason: Option<&str>,
    ) {
        let Some(task) = self.tasks.get_mut(key) else {
            return;
        };
        let st = status::update(&key.task_id, &task.executor_id, state, message, reason);
        task.latest = Some(st.clone());
        if state.is_terminal() {
            task.phase = Phase::Terminal;
            task.kills = None;
        }
        let update = pb::StatusUpdate {
            framework_id: key.framework_id.clone(),
            status: Some(st),
        };
        let out = self.updates.enqueue(update, Instant::now());
        self.apply(out);
    }

    fn launch(&mut self, msg: &pb::LaunchTasks) {
        let req = launch::parse(msg);
        let fw = req.framework_id.clone();
        let killing_state = req
            .framework
            .as_ref()
            .is_some_and(|f| f.has_capability("TASK_KILLING_STATE"));
        let group = req.executor.as_ref().map(|e| e.executor_id.value.clone());
        let container_id = group
            .as_ref()
            .and_then(|ex| self.groups.get(&(fw.clone(), ex.clone())).cloned())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        for parsed in req.tasks {
            let (info, json) = match parsed {
                ParsedTask::Valid { info, json } => (info, json),
                ParsedTask::Invalid {
                    task_id: Some(id),
                    json,
                    message,
                } => {
                    let key = TaskKey::new(&fw, &id);
                    let executor_id = group.clone().unwrap_or(id);
                    self.reject(key, None, json, executor_id, message);
                    continue;
                }
                ParsedTask::Invalid {
                    task_id: None,
                    message,
                    ..
                } => {
                    tracing::warn!(framework_id = %fw, %message, "dropping a task without an id");
                    continue;
                }
            };
            let key = TaskKey::new(&fw, &info.task_id.value);
            if self.tasks.contains_key(&key) {
                tracing::warn!(task_id = %key.task_id, "task already known, launch ignored");
                continue;
            }
            let executor_id = group.clone().unwrap_or_else(|| key.task_id.clone());
            let agent_id = self
                .agent_id
                .clone()
                .unwrap_or_else(|| info.agent_id.value.clone());
            let prepared = if let Some(e) = &req.executor_error {
                Err(e.clone())
            } else if group.is_none() && info.executor.is_some() {
                Err("custom executors are not supported by this agent".to_string())
            } else {
                self.context(
                    &key,
                    &agent_id,
                    &executor_id,
                    &container_id,
                    group.is_some(),
                )
                .map_err(|e| e.to_string())
                .and_then(|ctx| {
                    command::launch_spec(&ctx, info.command.as_ref(), &self.config.base_env)
                        .map(|spec| (ctx, spec))
                        .map_err(|e| e.to_string())
                })
            };
            let (ctx, spec) = match prepared {
                Ok(p) => p,
                Err(message) => {
                    self.reject(key, Some(info), json, executor_id, message);
                    continue;
                }
            };
            if let Some(ex) = &group {
                self.groups
                    .insert((fw.clone(), ex.clone()), container_id.clone());
            }
            let (kills, kill_rx) = mpsc::unbounded_channel();
            self.tasks.insert(
                key.clone(),
                Task {
                    info: Some(info),
                    info_json: json,
                    executor_id,
                    group: group.clone(),
                    killing_state,
                    phase: Phase::Starting,
                    latest: None,
                    kills: Some(kills),
                    kill_requested: false,
                },
            );
            tracing::info!(task_id = %key.task_id, framework_id = %fw,
                sandbox = %ctx.sandbox.display(), "launching task");
            self.emit(&key, TaskState::TASK_STARTING, None, None);
            let supervisor = Supervisor {
                launcher: self.launcher.clone(),
                hooks: self.hooks.clone(),
                key,
                ctx,
                spec,
                events: self.events.clone(),
            };
            tokio::spawn(supervisor.run(kill_rx));
        }
    }

    fn context(
        &self,
        key: &TaskKey,
        agent_id: &str,
        executor_id: &str,
        container_id: &str,
        in_group: bool,
    ) -> Result<TaskContext, sandbox::SandboxError> {
        let runs_dir = sandbox::runs_dir(
            &self.config.work_dir,
            agent_id,
            &key.framework_id,
            executor_id,
        )?;
        let run_dir = sandbox::run_dir(&runs_dir, container_id)?;
        let task_sandbox = if in_group {
            sandbox::task_dir(&run_dir, &key.task_id)?
        } else {
            run_dir.clone()
        };
        Ok(TaskContext {
            agent_id: agent_id.to_string(),
            framework_id: key.framework_id.clone(),
            executor_id: executor_id.to_string(),
            container_id: container_id.to_string(),
            task_id: key.task_id.clone(),
            runs_dir,
            run_dir,
            sandbox: task_sandbox,
        })
    }

    /// A task that cannot be started at all: TASK_FAILED, nothing spawned.
    fn reject(
        &mut self,
        key: TaskKey,
        info: Option<Box<TaskInfo>>,
        info_json: String,
        executor_id: String,
        message: String,
    ) {
        if self.tasks.contains_key(&key) {
            return;
        }
        tracing::warn!(task_id = %key.task_id, %message, "task rejected");
        let task = Task {
            info,
            info_json,
            executor_id,
            group: None,
            killing_state: false,
            phase: Phase::Starting,
            latest: None,
            kills: None,
            kill_requested: false,
        };
        self.tasks.insert(key.clone(), task);
        let reason = Some(status::REASON_TASK_INVALID);
        self.emit(&key, TaskState::TASK_FAILED, Some(message), reason);
    }

    /// Kills a live task (a no-op for unknown or finished ones). With
    /// `whole_group`, a task of a task group takes its group with it.
    fn kill(&mut self, key: &TaskKey, grace_ms: Option<u64>, whole_group: bool) {
        let Some(task) = self.tasks.get_mut(key) else {
            tracing::debug!(task_id = %key.task_id, "kill for an unknown task ignored");
            return;
        };
        if task.phase == Phase::Terminal {
            return;
        }
        let default = self.config.kill_grace_period;
        let grace = match &task.info {
            Some(info) => launch::grace_period(grace_ms, info, default),
            None => default,
        };
        if let Some(kills) = &task.kills {
            let _ = kills.send(grace);
        }
        let first = !std::mem::replace(&mut task.kill_requested, true);
        let announce = first && task.killing_state && task.phase == Phase::Running;
        let group = task.group.clone();
        if announce {
            self.emit(key, TaskState::TASK_KILLING, None, None);
        }
        if let (true, Some(group)) = (whole_group, group) {
            for sibling in self.group_members(&key.framework_id, &group, key) {
                self.kill(&sibling, grace_ms, false);
            }
        }
    }

    /// Live tasks of task group `executor`, other than `except`.
    fn group_members(&self, framework_id: &str, executor: &str, except: &TaskKey) -> Vec<TaskKey> {
        self.tasks
            .iter()
            .filter(|(k, t)| {
                k.framework_id == framework_id
                    && *k != except
                    && t.group.as_deref() == Some(executor)
                    && t.phase != Phase::Terminal
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Running { key, pid } => {
                let Some(task) = self.tasks.get_mut(&key) else {
                    return;
                };
                task.phase = Phase::Running;
                let announce_kill = task.kill_requested && task.killing_state;
                tracing::info!(task_id = %key.task_id, pid, "task running");
                self.emit(&key, TaskState::TASK_RUNNING, None, None);
                if announce_kill {
                    self.emit(&key, TaskState::TASK_KILLING, None, None);
                }
            }
            Event::Failed { key, message } => {
                let reason = Some(status::REASON_COMMAND_EXECUTOR_FAILED);
                self.finish(&key, TaskState::TASK_FAILED, reason, message);
            }
            Event::KilledBeforeStart { key } => {
                let reason = Some(status::REASON_TASK_KILLED_DURING_LAUNCH);
                let message = "Task killed before it was started".to_string();
                self.finish(&key, TaskState::TASK_KILLED, reason, message);
            }
            Event::Exited {
                key,
                status,
                killed,
            } => {
                let (state, reason, message) = match status {
                    Ok(st) => status::terminal(st, killed),
                    Err(e) if killed => (TaskState::TASK_KILLED, None, e),
                    Err(e) => (
                        TaskState::TASK_FAILED,
                        Some(status::REASON_COMMAND_EXECUTOR_FAILED),
                        format!("Failed to get exit status for Command: {e}"),
                    ),
                };
                self.finish(&key, state, reason, message);
            }
        }
    }

    /// The task's terminal update; a task group loses the rest of its
    /// tasks when one of them does not finish cleanly (as Mesos' default
    /// executor does).
    fn finish(&mut self, key: &TaskKey, state: TaskState, reason: Option<&str>, message: String) {
        tracing::info!(task_id = %key.task_id, state = state.name(), %message, "task ended");
        self.emit(key, state, Some(message), reason);
        let Some(group) = self.tasks.get(key).and_then(|t| t.group.clone()) else {
            return;
        };
        let members = self.group_members(&key.framework_id, &group, key);
        if members.is_empty() {
            self.groups.remove(&(key.framework_id.clone(), group));
        } else if state != TaskState::TASK_FINISHED {
            for sibling in members {
                self.kill(&sibling, None, false);
            }
        }
    }
}
