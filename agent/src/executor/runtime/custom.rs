//! Custom executors (`docs/design/0014-custom-executors.md`): a task whose
//! TaskInfo names an `executor` runs inside that executor, one process per
//! (framework, executor) in a container of its own, sized to the
//! executor's resources plus its live tasks'. The executor process is
//! supervised like a task's, under a key of its own ([`process_key`]);
//! its tasks have no process: their states come from the executor's
//! UPDATE calls ([`super::custom_calls`]).
//!
//! ```text
//!  LaunchTasks --> container + executor process --SUBSCRIBE--> Running --UPDATE/MESSAGE-->
//!     | tasks queued until SUBSCRIBED, then LAUNCH        | KILL, ACKNOWLEDGED, MESSAGE, SHUTDOWN
//!     +-- no SUBSCRIBE within the registration timeout --> killed; tasks TASK_FAILED
//!         (REASON_EXECUTOR_REGISTRATION_TIMEOUT)
//!  executor process exits --> its live tasks TASK_FAILED (REASON_EXECUTOR_TERMINATED),
//!                             TASK_KILLED when a kill was asked; ExecutorExited upstream
//! ```
//!
//! Ends, kills, SHUTDOWN and deadlines are in [`super::custom_ending`].

use std::time::Duration;

use keel_api::executor::Event;
use keel_api::mesos::{ExecutorInfo, FrameworkInfo, Id, TaskState};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Phase, Runtime, Task};
use crate::executor::checkpoint::{self, ContainerCheckpoint, CustomCheckpoint};
use crate::executor::hooks::TaskContext;
use crate::executor::launcher::{LaunchSpec, ProcessLauncher};
use crate::executor::status;
use crate::executor::supervisor::{Start, Supervisor};
use crate::executor::task::{TaskDescription, TaskSpec};
use crate::executor::updates::TaskKey;
use crate::executor::{command, users};
use crate::isolation::cgroups::io::Bandwidth;

pub const REASON_EXECUTOR_REGISTRATION_TIMEOUT: &str = "REASON_EXECUTOR_REGISTRATION_TIMEOUT";
pub const REASON_EXECUTOR_REREGISTRATION_TIMEOUT: &str = "REASON_EXECUTOR_REREGISTRATION_TIMEOUT";
pub const REASON_EXECUTOR_TERMINATED: &str = "REASON_EXECUTOR_TERMINATED";
pub const REASON_AGENT_RESTARTED: &str = "REASON_AGENT_RESTARTED";

/// Supervisor keys of executor processes: `executor/<id>` (a task id
/// never holds a `/`).
const PROCESS_KEY_PREFIX: &str = "executor/";

pub(super) fn process_key(framework_id: &str, executor_id: &str) -> TaskKey {
    TaskKey::new(framework_id, format!("{PROCESS_KEY_PREFIX}{executor_id}"))
}

/// The executor a supervisor key names, if it names one.
pub(super) fn executor_of(key: &TaskKey) -> Option<(String, String)> {
    let ex = key.task_id.strip_prefix(PROCESS_KEY_PREFIX)?;
    Some((key.framework_id.clone(), ex.to_string()))
}

/// Where custom executors reach the agent, and how long they get.
#[derive(Debug, Clone)]
pub struct CustomConfig {
    /// `MESOS_AGENT_ENDPOINT`: the agent's `host:port`.
    pub agent_endpoint: String,
    /// `AgentInfo.hostname` in SUBSCRIBED.
    pub hostname: String,
    /// `--executor-registration-timeout` (Mesos: 1 min).
    pub registration_timeout: Duration,
    /// `--executor-reregistration-timeout`: after an agent restart.
    pub reregistration_timeout: Duration,
    /// `--executor-shutdown-grace-period` (Mesos: 5 s).
    pub shutdown_grace_period: Duration,
    /// `--recovery-timeout`: how long executors wait for a restarting agent
    /// (`MESOS_RECOVERY_TIMEOUT`; Mesos: 15 min).
    pub recovery_timeout: Duration,
    /// `--authenticate-http-executors`: calls must carry the executor's token.
    pub require_token: bool,
}

impl Default for CustomConfig {
    fn default() -> Self {
        CustomConfig {
            agent_endpoint: "127.0.0.1:5051".into(),
            hostname: "localhost".into(),
            registration_timeout: Duration::from_secs(60),
            reregistration_timeout: Duration::from_secs(15),
            shutdown_grace_period: Duration::from_secs(5),
            recovery_timeout: Duration::from_secs(15 * 60),
            require_token: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExecState {
    /// Started (or recovered), not subscribed yet.
    Registering,
    Running,
    /// Shut down or timed out: its process is being killed.
    Terminating,
}

/// How the tasks of an executor that is going away end.
#[derive(Debug, Clone)]
pub(super) struct Termination {
    pub state: TaskState,
    pub reason: &'static str,
    pub message: String,
}

pub struct CustomExecutor {
    pub(super) checkpoint: ContainerCheckpoint,
    pub(super) info: ExecutorInfo,
    pub(super) framework: FrameworkInfo,
    pub(super) state: ExecState,
    /// Until when it may (re-)subscribe, while registering.
    pub(super) deadline: Option<Instant>,
    /// Registering after an agent restart.
    pub(super) recovered: bool,
    pub(super) stream: Option<mpsc::UnboundedSender<Event>>,
    /// Its tasks not yet sent (LAUNCH follows SUBSCRIBED).
    pub(super) queued: Vec<TaskKey>,
    /// Kills of its process (grace periods), to its supervisor.
    pub(super) kills: mpsc::UnboundedSender<Duration>,
    pub(super) termination: Option<Termination>,
    /// When a SHUTDOWN's grace period is over.
    pub(super) shutdown_at: Option<Instant>,
}

impl CustomExecutor {
    pub(super) fn token(&self) -> &str {
        self.checkpoint
            .custom
            .as_ref()
            .map_or("", |c| c.token.as_str())
    }

    /// Sends `event` on the executor's stream; a closed stream is dropped.
    pub(super) fn send(&mut self, event: Event) -> bool {
        let sent = self.stream.as_ref().is_some_and(|s| s.send(event).is_ok());
        if !sent {
            self.stream = None;
        }
        sent
    }
}

fn set_env(env: &mut Vec<(String, String)>, key: &str, value: String) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_string(), value));
}

pub(super) fn duration_text(d: Duration) -> String {
    format!("{}secs", d.as_secs_f64())
}

impl<L: ProcessLauncher> Runtime<L> {
    /// A task for a custom executor: into the executor's container (started
    /// first when it is not running), queued until the executor subscribes.
    pub(super) fn launch_custom(
        &mut self,
        fw: &str,
        framework: Option<&FrameworkInfo>,
        killing_state: bool,
        spec: Box<TaskSpec>,
    ) {
        let Some(info) = spec.info().executor.clone() else {
            return;
        };
        let fw = fw.to_string();
        let key = TaskKey::new(&fw, spec.task_id());
        let ex = info.executor_id.value.clone();
        let volumes =
            crate::executor::volumes::parse(&self.config.work_dir, &spec.info().resources);
        if !volumes.is_ok_and(|v| v.is_empty()) {
            let message =
                "persistent volumes are not supported for tasks of custom executors".to_string();
            let why = (TaskState::TASK_ERROR, status::REASON_TASK_INVALID, message);
            self.refuse(key, TaskDescription::Typed(spec), ex, why);
            return;
        }
        let id = (fw.clone(), ex.clone());
        match self.custom.get(&id).map(|e| e.state) {
            Some(ExecState::Terminating) => {
                let message = format!("Executor '{ex}' is terminating");
                let reason = REASON_EXECUTOR_TERMINATED;
                self.reject(key, TaskDescription::Typed(spec), ex, message, reason);
                return;
            }
            Some(_) => {}
            None if info.command.is_none() => {
                let message = format!("Executor '{ex}' has no command");
                let reason = status::REASON_TASK_INVALID;
                self.reject(key, TaskDescription::Typed(spec), ex, message, reason);
                return;
            }
            None => {
                let framework = framework.cloned().unwrap_or_else(|| FrameworkInfo {
                    id: Some(Id::new(&fw)),
                    ..FrameworkInfo::new("", "")
                });
                if let Err(message) = self.start_custom(&fw, framework, info, killing_state, &spec)
                {
                    let reason = status::REASON_CONTAINER_LAUNCH_FAILED;
                    self.reject(key, TaskDescription::Typed(spec), ex, message, reason);
                    return;
                }
            }
        }
        self.add_custom_task(&id, key, spec);
    }

    /// Starts executor `info`'s container and process; `Err`: why not.
    fn start_custom(
        &mut self,
        fw: &str,
        mut framework: FrameworkInfo,
        info: ExecutorInfo,
        killing_state: bool,
        first: &TaskSpec,
    ) -> Result<(), String> {
        let ex = info.executor_id.value.clone();
        framework.id.get_or_insert_with(|| Id::new(fw));
        let command_info = info
            .command
            .clone()
            .ok_or_else(|| format!("Executor '{ex}' has no command"))?;
        let container_id = uuid::Uuid::new_v4().to_string();
        let mut total = super::launching::resources_of(&info.resources);
        total.add(&super::launching::resources_of(&first.info().resources));
        let (plan, cgroup) = self.plan(&total, &Bandwidth::default(), &container_id, &ex)?;
        let user = if self.config.switch_user {
            let name = command_info
                .user
                .clone()
                .unwrap_or_else(|| framework.user.clone());
            let agent_uid = rustix::process::geteuid().as_raw();
            users::account(&self.config.passwd_root, &name, agent_uid).map_err(|e| e.to_string())?
        } else {
            None
        };
        let token = uuid::Uuid::new_v4().simple().to_string();
        let checkpoint = ContainerCheckpoint {
            agent_id: self
                .agent_id
                .clone()
                .unwrap_or_else(|| first.info().agent_id.value.clone()),
            framework_id: fw.to_string(),
            executor_id: ex.clone(),
            container_id: container_id.clone(),
            group: None,
            killing_state,
            cgroup: cgroup.clone(),
            network: None,
            executor_resources: info.resources.clone(),
            custom: Some(CustomCheckpoint {
                executor_info: info.clone(),
                framework_info: framework.clone(),
                token,
            }),
        };
        let ctx = self
            .context(&checkpoint, &ex, Some(&plan))
            .map(|ctx| TaskContext { user, ..ctx })
            .map_err(|e| e.to_string())?;
        let mut launch = command::launch_spec(&ctx, Some(&command_info), &self.config.base_env)
            .map_err(|e| e.to_string())?;
        self.executor_env(&mut launch, &checkpoint, &framework, &info);
        command::contain(&mut launch, &ctx, None, &self.config.work_dir);
        let dir = self
            .meta
            .container_dir(&checkpoint)
            .map_err(|e| e.to_string())?;
        let process_dir = dir
            .join(checkpoint::EXECUTOR_DIR)
            .join(checkpoint::PROCESS_DIR);
        let mut batch = checkpoint::Durable::default();
        checkpoint
            .write_into(&dir, &mut batch)
            .and_then(|()| batch.create_dir(&process_dir))
            .and_then(|()| batch.sync())
            .map_err(|e| format!("the agent cannot checkpoint the executor: {e}"))?;
        launch.state_dir = process_dir;
        if let (Some(limits), Some(dir)) = (&plan.limits, &cgroup) {
            self.set_limits(dir, limits);
        }
        self.group_executors.insert(
            container_id.clone(),
            super::launching::resources_of(&info.resources),
        );
        self.book.launch(fw, Some(&framework), Some(&info));
        tracing::info!(framework_id = %fw, executor_id = %ex, %container_id,
            sandbox = %ctx.sandbox.display(), "launching custom executor");
        let (kills, kill_rx) = mpsc::unbounded_channel();
        let supervisor = Supervisor {
            launcher: self.launcher.clone(),
            fetcher: self.fetcher.clone(),
            health: None,
            hooks: self.hooks.clone(),
            metrics: self.config.metrics.clone(),
            key: process_key(fw, &ex),
            ctx,
            start: Start::Launch(Box::new(launch), command_info.uris.clone()),
            killed: false,
            events: self.events.clone(),
        };
        tokio::spawn(supervisor.run(kill_rx));
        let deadline = Instant::now() + self.config.executors.registration_timeout;
        self.custom.insert(
            (fw.to_string(), ex),
            CustomExecutor {
                checkpoint,
                info,
                framework,
                state: ExecState::Registering,
                deadline: Some(deadline),
                recovered: false,
                stream: None,
                queued: Vec::new(),
                kills,
                termination: None,
                shutdown_at: None,
            },
        );
        Ok(())
    }

    /// The environment Mesos gives an executor (`MESOS_AGENT_ENDPOINT`, ...).
    fn executor_env(
        &self,
        launch: &mut LaunchSpec,
        c: &ContainerCheckpoint,
        framework: &FrameworkInfo,
        info: &ExecutorInfo,
    ) {
        let cfg = &self.config.executors;
        let grace = info
            .shutdown_grace_period
            .map_or(cfg.shutdown_grace_period, |n| n.duration());
        launch.env.retain(|(k, _)| k != "MESOS_TASK_ID");
        let checkpoint = framework.checkpoint.unwrap_or(false);
        for (k, v) in [
            ("MESOS_AGENT_ENDPOINT", cfg.agent_endpoint.clone()),
            (
                "MESOS_SLAVE_PID",
                format!("slave(1)@{}", cfg.agent_endpoint),
            ),
            (
                "MESOS_CHECKPOINT",
                if checkpoint { "1" } else { "0" }.to_string(),
            ),
            (
                "MESOS_RECOVERY_TIMEOUT",
                duration_text(cfg.recovery_timeout),
            ),
            ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "2secs".to_string()),
            ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", duration_text(grace)),
            ("MESOS_HTTP_COMMAND_EXECUTOR", "0".to_string()),
            (
                "MESOS_EXECUTOR_AUTHENTICATION_TOKEN",
                c.custom
                    .as_ref()
                    .map(|x| x.token.clone())
                    .unwrap_or_default(),
            ),
        ] {
            set_env(&mut launch.env, k, v);
        }
    }

    /// Adds task `key` to the executor's container and sends or queues it.
    fn add_custom_task(&mut self, id: &(String, String), key: TaskKey, spec: Box<TaskSpec>) {
        let Some(e) = self.custom.get(id) else {
            return;
        };
        let checkpoint = e.checkpoint.clone();
        let description = TaskDescription::Typed(spec);
        let (dir, log) = match self
            .checkpoint_task(&checkpoint, &key, &description)
            .and_then(|(dir, log, durable)| durable.sync().map(|()| (dir, log)))
        {
            Ok(c) => c,
            Err(e) => {
                let message = format!("the agent cannot checkpoint the task: {e}");
                let reason = status::REASON_CONTAINER_LAUNCH_FAILED;
                self.reject(key, description, id.1.clone(), message, reason);
                return;
            }
        };
        self.config
            .metrics
            .tally(|t| t.launched(&key.framework_id, &id.1));
        self.tasks.insert(
            key.clone(),
            Task {
                description,
                executor_id: id.1.clone(),
                container_id: checkpoint.container_id.clone(),
                group: None,
                killing_state: checkpoint.killing_state,
                phase: Phase::Starting,
                latest: None,
                kills: None,
                kill_requested: false,
                unhealthy: false,
                custom: true,
                dir: Some(dir),
                log: Some(log),
            },
        );
        self.resize_container(&checkpoint.container_id);
        let running = self.custom.get(id).map(|e| e.state) == Some(ExecState::Running);
        if (!running || !self.send_launch(id, &key))
            && let Some(e) = self.custom.get_mut(id)
        {
            e.queued.push(key);
        }
    }

    /// LAUNCH of `key` to its executor; false when it could not be sent.
    pub(super) fn send_launch(&mut self, id: &(String, String), key: &TaskKey) -> bool {
        let Some(json) = self
            .tasks
            .get(key)
            .and_then(|t| t.description.to_json().ok())
            .and_then(|text| serde_json::from_str(&text).ok())
        else {
            return false;
        };
        self.custom
            .get_mut(id)
            .is_some_and(|e| e.send(Event::Launch(json)))
    }
}
