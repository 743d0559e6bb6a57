//! The one query the agent's container API asks the task runtime: which
//! running task container a container id (or a task) names, and where its
//! launcher keeps its files (`process/launch.json` says how the task was
//! started: namespaces, cgroup, sandbox, user, environment; `pid.json`
//! its container init). The answer is a copy: the runtime stays the only
//! owner of its tasks.

use std::path::PathBuf;

use super::{Phase, Runtime};
use crate::executor::checkpoint;
use crate::executor::launcher::ProcessLauncher;

/// What names a task container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerQuery {
    /// The container id the agent gave the task's container.
    Id(String),
    /// The container of this task of this framework.
    Task {
        framework_id: String,
        task_id: String,
    },
}

/// A running task container, as the container API needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    pub container_id: String,
    pub framework_id: String,
    pub executor_id: String,
    /// The task whose process is the container's (the first live one of
    /// a task group).
    pub task_id: String,
    /// The launcher's directory of that task (`launch.json`, `pid.json`).
    pub process_dir: PathBuf,
}

impl<L: ProcessLauncher> Runtime<L> {
    /// The running container `query` names (none for a task that is not
    /// running, or that would not survive a restart: no checkpoint).
    pub(super) fn container(&self, query: &ContainerQuery) -> Option<ContainerRef> {
        self.tasks
            .iter()
            .filter(|(_, t)| t.phase == Phase::Running)
            .find(|(key, t)| match query {
                ContainerQuery::Id(id) => &t.container_id == id,
                ContainerQuery::Task {
                    framework_id,
                    task_id,
                } => &key.framework_id == framework_id && &key.task_id == task_id,
            })
            .and_then(|(key, t)| {
                Some(ContainerRef {
                    container_id: t.container_id.clone(),
                    framework_id: key.framework_id.clone(),
                    executor_id: t.executor_id.clone(),
                    task_id: key.task_id.clone(),
                    process_dir: t.dir.as_ref()?.join(checkpoint::PROCESS_DIR),
                })
            })
    }
}
