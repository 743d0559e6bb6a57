//! What custom executors ask of the runtime (SUBSCRIBE, UPDATE, MESSAGE
//! from `POST /api/v1/executor`, [`crate::executor::http`]), what goes to
//! them (ACKNOWLEDGED, the scheduler's MESSAGE), and their recovery after
//! an agent restart.

use keel_api::executor::Event;
use keel_api::mesos::{self, TaskInfo, TaskState};
use keel_api::pb;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::custom::{self, CustomExecutor, ExecState};
use super::{Command, ExecutorHandle, Phase, Runtime};
use crate::executor::checkpoint::recover::RecoveredContainer;
use crate::executor::checkpoint::{self};
use crate::executor::launcher::{Adopted, ProcessLauncher};
use crate::executor::status;
use crate::executor::supervisor::{Start, Supervisor};
use crate::executor::updates::TaskKey;

/// Why an executor's call is refused (the texts are Mesos' where it has
/// one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecutorApiError {
    #[error("Framework cannot be found")]
    UnknownFramework,
    #[error("Executor cannot be found")]
    UnknownExecutor,
    #[error("Executor is not subscribed")]
    NotSubscribed,
    #[error("the call's token is not this executor's")]
    WrongToken,
    #[error(
        "executor calls must carry the executor's token (MESOS_EXECUTOR_AUTHENTICATION_TOKEN) as a bearer token"
    )]
    NoToken,
    #[error("the agent is stopping")]
    Stopping,
}

/// The caller of an executor call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub framework_id: String,
    pub executor_id: String,
    /// `Authorization: Bearer <token>`, when sent.
    pub token: Option<String>,
}

type Reply<T> = oneshot::Sender<Result<T, ExecutorApiError>>;

pub enum CustomCommand {
    Subscribe {
        caller: Caller,
        unacknowledged_tasks: Vec<TaskInfo>,
        unacknowledged_updates: Vec<mesos::TaskStatus>,
        reply: Reply<mpsc::UnboundedReceiver<Event>>,
    },
    Update {
        caller: Caller,
        status: Box<mesos::TaskStatus>,
        uuid: Vec<u8>,
        reply: Reply<()>,
    },
    Message {
        caller: Caller,
        data: Vec<u8>,
        reply: Reply<()>,
    },
    AttachUpstream(mpsc::UnboundedSender<pb::agent_message::Msg>),
    Executors(oneshot::Sender<Vec<pb::ExecutorReport>>),
}

impl ExecutorHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> CustomCommand,
    ) -> Result<T, ExecutorApiError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Custom(make(tx)))
            .map_err(|_| ExecutorApiError::Stopping)?;
        rx.await.map_err(|_| ExecutorApiError::Stopping)?
    }

    /// SUBSCRIBE: the executor's event stream.
    pub async fn executor_subscribe(
        &self,
        caller: Caller,
        unacknowledged_tasks: Vec<TaskInfo>,
        unacknowledged_updates: Vec<mesos::TaskStatus>,
    ) -> Result<mpsc::UnboundedReceiver<Event>, ExecutorApiError> {
        self.ask(|reply| CustomCommand::Subscribe {
            caller,
            unacknowledged_tasks,
            unacknowledged_updates,
            reply,
        })
        .await
    }

    /// UPDATE: a task's status, from its executor.
    pub async fn executor_update(
        &self,
        caller: Caller,
        status: mesos::TaskStatus,
        uuid: Vec<u8>,
    ) -> Result<(), ExecutorApiError> {
        self.ask(|reply| CustomCommand::Update {
            caller,
            status: Box::new(status),
            uuid,
            reply,
        })
        .await
    }

    /// MESSAGE: data for the scheduler.
    pub async fn executor_message(
        &self,
        caller: Caller,
        data: Vec<u8>,
    ) -> Result<(), ExecutorApiError> {
        self.ask(|reply| CustomCommand::Message {
            caller,
            data,
            reply,
        })
        .await
    }

    /// Executor messages and exits go to `sink` while a master stream is up.
    pub fn attach_upstream(&self, sink: mpsc::UnboundedSender<pb::agent_message::Msg>) {
        let _ = self
            .tx
            .send(Command::Custom(CustomCommand::AttachUpstream(sink)));
    }

    /// The live custom executors, for `Register.executors`.
    pub async fn executor_reports(&self) -> Vec<pb::ExecutorReport> {
        let (tx, rx) = oneshot::channel();
        if self
            .tx
            .send(Command::Custom(CustomCommand::Executors(tx)))
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

impl<L: ProcessLauncher> Runtime<L> {
    pub(super) fn custom_command(&mut self, c: CustomCommand) {
        match c {
            CustomCommand::Subscribe {
                caller,
                unacknowledged_tasks,
                unacknowledged_updates,
                reply,
            } => {
                let r = self.subscribe(&caller, &unacknowledged_tasks, unacknowledged_updates);
                let _ = reply.send(r);
            }
            CustomCommand::Update {
                caller,
                status,
                uuid,
                reply,
            } => {
                let r = self
                    .caller_executor(&caller, true)
                    .map(|id| self.executor_status(&id, *status, uuid));
                let _ = reply.send(r);
            }
            CustomCommand::Message {
                caller,
                data,
                reply,
            } => {
                let r = self.caller_executor(&caller, true).map(|id| {
                    self.send_upstream(pb::agent_message::Msg::ExecutorMessage(
                        pb::ExecutorMessage {
                            framework_id: id.0,
                            executor_id: id.1,
                            data,
                        },
                    ));
                });
                let _ = reply.send(r);
            }
            CustomCommand::AttachUpstream(sink) => self.upstream = Some(sink),
            CustomCommand::Executors(reply) => {
                let reports = self
                    .custom
                    .iter()
                    .filter_map(|((fw, _), e)| {
                        let json = serde_json::to_string(&e.info).ok()?;
                        Some(pb::ExecutorReport {
                            framework_id: fw.clone(),
                            executor_info_json: json,
                        })
                    })
                    .collect();
                let _ = reply.send(reports);
            }
        }
    }

    /// The executor a call names, checked: it exists, the token matches,
    /// and (for all but SUBSCRIBE) it has subscribed.
    fn caller_executor(
        &self,
        caller: &Caller,
        subscribed: bool,
    ) -> Result<(String, String), ExecutorApiError> {
        let id = (caller.framework_id.clone(), caller.executor_id.clone());
        let Some(e) = self.custom.get(&id) else {
            let known = self.custom.keys().any(|(f, _)| *f == id.0)
                || self.tasks.keys().any(|k| k.framework_id == id.0);
            return Err(if known {
                ExecutorApiError::UnknownExecutor
            } else {
                ExecutorApiError::UnknownFramework
            });
        };
        match &caller.token {
            Some(t) if t != e.token() => return Err(ExecutorApiError::WrongToken),
            None if self.config.executors.require_token => return Err(ExecutorApiError::NoToken),
            _ => {}
        }
        if subscribed && e.state == ExecState::Registering {
            return Err(ExecutorApiError::NotSubscribed);
        }
        Ok(id)
    }

    fn subscribe(
        &mut self,
        caller: &Caller,
        unacknowledged_tasks: &[TaskInfo],
        unacknowledged_updates: Vec<mesos::TaskStatus>,
    ) -> Result<mpsc::UnboundedReceiver<Event>, ExecutorApiError> {
        let id = self.caller_executor(caller, false)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let agent_info = serde_json::json!({
            "id": {"value": self.agent_id.clone().unwrap_or_default()},
            "hostname": self.config.executors.hostname,
            "port": self.config.executors.agent_endpoint
                .rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).unwrap_or(5051),
        });
        let Some(e) = self.custom.get_mut(&id) else {
            return Err(ExecutorApiError::UnknownExecutor);
        };
        if e.state == ExecState::Terminating {
            let _ = tx.send(Event::Shutdown);
            return Ok(rx);
        }
        tracing::info!(framework_id = %id.0, executor_id = %id.1, "executor subscribed");
        e.state = ExecState::Running;
        e.deadline = None;
        let recovered = std::mem::take(&mut e.recovered);
        e.stream = Some(tx);
        e.send(Event::Subscribed {
            executor_info: Box::new(e.info.clone()),
            framework_info: Box::new(e.framework.clone()),
            agent_info,
            container_id: e.checkpoint.container_id.clone(),
        });
        let queued = std::mem::take(&mut e.queued);
        for status in unacknowledged_updates {
            let uuid = status
                .uuid
                .as_deref()
                .and_then(mesos::base64_decode)
                .unwrap_or_default();
            self.executor_status(&id, status, uuid);
        }
        let tasks = self.executor_tasks(&id);
        if recovered {
            let known = |k: &TaskKey| {
                unacknowledged_tasks
                    .iter()
                    .any(|t| t.task_id.value == k.task_id)
            };
            for key in tasks.iter().filter(|k| !known(k)) {
                self.dropped_in_restart(&id, key);
            }
        }
        for key in queued {
            if !self.send_launch(&id, &key)
                && let Some(e) = self.custom.get_mut(&id)
            {
                e.queued.push(key);
            }
        }
        let kills: Vec<TaskKey> = self
            .executor_tasks(&id)
            .into_iter()
            .filter(|k| self.tasks.get(k).is_some_and(|t| t.kill_requested))
            .collect();
        for key in kills {
            let grace = self.config.kill_grace_period;
            self.kill_custom(&key, grace);
        }
        Ok(rx)
    }

    /// The live tasks of executor `id`.
    fn executor_tasks(&self, id: &(String, String)) -> Vec<TaskKey> {
        self.tasks
            .iter()
            .filter(|(k, t)| {
                k.framework_id == id.0
                    && t.custom
                    && t.executor_id == id.1
                    && t.phase != Phase::Terminal
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// A task that never got a status and that its executor does not
    /// know after an agent restart: it was never delivered (Mesos: lost,
    /// or dropped for a partition-aware framework).
    fn dropped_in_restart(&mut self, id: &(String, String), key: &TaskKey) {
        let Some(task) = self.tasks.get(key) else {
            return;
        };
        if task.latest.is_some() {
            return;
        }
        let aware = self
            .custom
            .get(id)
            .is_some_and(|e| e.framework.has_capability("PARTITION_AWARE"));
        let state = if aware {
            TaskState::TASK_DROPPED
        } else {
            TaskState::TASK_LOST
        };
        let message = Some("Task launched during agent restart".to_string());
        let mut st = status::update(
            &key.task_id,
            &id.1,
            state,
            message,
            Some(custom::REASON_AGENT_RESTARTED),
        );
        st.source = status::SOURCE_AGENT.to_string();
        self.emit_status(key, st);
    }

    /// An executor's UPDATE (or one it lists when subscribing again):
    /// checkpointed and forwarded as any update, its uuid kept so that the
    /// scheduler's acknowledgement goes back to the executor.
    fn executor_status(&mut self, id: &(String, String), status: mesos::TaskStatus, uuid: Vec<u8>) {
        let key = TaskKey::new(&id.0, &status.task_id.value);
        let Some(task) = self.tasks.get_mut(&key) else {
            tracing::warn!(task_id = %key.task_id, executor_id = %id.1, "update for a task the agent does not know: dropped");
            return;
        };
        if !task.custom || task.executor_id != id.1 {
            tracing::warn!(task_id = %key.task_id, executor_id = %id.1, "update for a task of another executor: dropped");
            return;
        }
        let seen = task.latest.as_ref().is_some_and(|l| l.uuid == uuid)
            || self
                .updates
                .outstanding(&key)
                .is_some_and(|u| u.status.as_ref().is_some_and(|s| s.uuid == uuid));
        if task.phase == Phase::Terminal || seen {
            tracing::debug!(task_id = %key.task_id, "executor update ignored (task ended or update seen)");
            return;
        }
        if !status.state.is_terminal() && status.state != TaskState::TASK_STARTING {
            task.phase = Phase::Running;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let st = pb::TaskStatus {
            task_id: key.task_id.clone(),
            state: status.state.name().to_string(),
            message: status.message.unwrap_or_default(),
            source: status::SOURCE_EXECUTOR.to_string(),
            reason: status.reason.unwrap_or_default(),
            executor_id: id.1.clone(),
            timestamp: status.timestamp.unwrap_or(now),
            uuid,
            healthy: status.healthy,
            data: status
                .data
                .as_deref()
                .and_then(mesos::base64_decode)
                .unwrap_or_default(),
            container_status: None,
        };
        let terminal = status.state.is_terminal();
        let container = task.container_id.clone();
        self.emit_status(&key, st);
        if terminal {
            self.resize_container(&container);
        }
    }

    /// Whether the outstanding update of `key` with `uuid` came from its
    /// executor (its acknowledgement then goes back to it).
    pub(super) fn executor_sent(&self, key: &TaskKey, uuid: &[u8]) -> bool {
        self.tasks.get(key).is_some_and(|t| t.custom)
            && self.updates.outstanding(key).is_some_and(|u| {
                u.status
                    .as_ref()
                    .is_some_and(|s| s.uuid == uuid && s.source == status::SOURCE_EXECUTOR)
            })
    }

    /// ACKNOWLEDGED to the executor of `key`.
    pub(super) fn acknowledged(&mut self, key: &TaskKey, uuid: Vec<u8>) {
        let Some(ex) = self.tasks.get(key).map(|t| t.executor_id.clone()) else {
            return;
        };
        if let Some(e) = self.custom.get_mut(&(key.framework_id.clone(), ex)) {
            e.send(Event::Acknowledged {
                task_id: key.task_id.clone(),
                uuid,
            });
        }
    }

    /// A scheduler's MESSAGE: to the executor when it is subscribed, else
    /// dropped (framework messages are unreliable in Mesos too).
    pub(super) fn framework_message(&mut self, m: pb::FrameworkMessage) {
        let id = (m.framework_id, m.executor_id);
        let delivered = self
            .custom
            .get_mut(&id)
            .filter(|e| e.state == ExecState::Running)
            .is_some_and(|e| e.send(Event::Message(m.data)));
        if !delivered {
            tracing::info!(framework_id = %id.0, executor_id = %id.1,
                "framework message dropped: the executor is not subscribed");
        }
    }

    /// After an agent restart: the executor's process is found again (or
    /// found ended) and it gets the re-registration timeout to subscribe.
    pub(super) async fn recover_custom(&mut self, c: &RecoveredContainer) {
        let cp = &c.checkpoint;
        let Some(custom_cp) = &cp.custom else {
            return;
        };
        let id = (cp.framework_id.clone(), cp.executor_id.clone());
        let process_dir = c
            .dir
            .join(checkpoint::EXECUTOR_DIR)
            .join(checkpoint::PROCESS_DIR);
        let start = match self.launcher.adopt(&process_dir).await {
            Adopted::Running(p) => {
                tracing::info!(framework_id = %id.0, executor_id = %id.1, "re-attaching to a running executor");
                Start::Adopt(p)
            }
            Adopted::Exited(st) => Start::Ended(Ok(st)),
            Adopted::Gone(reason) => Start::Ended(Err(reason)),
            Adopted::NotStarted => Start::Ended(Err(
                "the agent restarted before the executor was started".into(),
            )),
            Adopted::LaunchFailed(m) => {
                Start::Ended(Err(format!("Failed to launch executor: {m}")))
            }
        };
        let ctx = match self.context(cp, &cp.executor_id, None) {
            Ok(ctx) => ctx,
            Err(e) => {
                tracing::error!(executor_id = %id.1, error = %e, "cannot recover an executor");
                return;
            }
        };
        self.group_executors.insert(
            cp.container_id.clone(),
            super::launching::resources_of(&cp.executor_resources),
        );
        self.book.launch(
            &id.0,
            Some(&custom_cp.framework_info),
            Some(&custom_cp.executor_info),
        );
        let (kills, kill_rx) = mpsc::unbounded_channel();
        let deadline = Instant::now() + self.config.executors.reregistration_timeout;
        self.custom.insert(
            id.clone(),
            CustomExecutor {
                checkpoint: cp.clone(),
                info: custom_cp.executor_info.clone(),
                framework: custom_cp.framework_info.clone(),
                state: ExecState::Registering,
                deadline: Some(deadline),
                recovered: true,
                stream: None,
                queued: Vec::new(),
                kills,
                termination: None,
                shutdown_at: None,
            },
        );
        let supervisor = Supervisor {
            launcher: self.launcher.clone(),
            fetcher: self.fetcher.clone(),
            health: None,
            hooks: self.hooks.clone(),
            metrics: self.config.metrics.clone(),
            key: custom::process_key(&id.0, &id.1),
            ctx,
            start,
            killed: false,
            events: self.events.clone(),
        };
        tokio::spawn(supervisor.run(kill_rx));
    }
}
