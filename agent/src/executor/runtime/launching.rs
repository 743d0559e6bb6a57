//! Starting tasks: from `LaunchTasks` to a supervisor per task, or a
//! TASK_FAILED for what cannot be started.

use keel_api::mesos::{TaskInfo, TaskState};
use keel_api::pb;
use tokio::sync::mpsc;

use super::{Phase, Runtime, Task};
use crate::executor::hooks::TaskContext;
use crate::executor::launch::{self, ParsedTask};
use crate::executor::launcher::ProcessLauncher;
use crate::executor::supervisor::Supervisor;
use crate::executor::updates::TaskKey;
use crate::executor::{command, sandbox, status};

impl<L: ProcessLauncher> Runtime<L> {
    pub(super) fn launch(&mut self, msg: &pb::LaunchTasks) {
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
}
