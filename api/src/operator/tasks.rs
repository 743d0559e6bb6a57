//! `GET_TASKS` and `GET_STATE`.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::agents::GetAgents;
use super::frameworks::GetFrameworks;
use crate::mesos::{ExecutorInfo, Id, KillPolicy, TaskState, TaskStatus};
use crate::resources::v1::Resource;

/// The `Task` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub name: String,
    pub task_id: Id,
    pub framework_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<Id>,
    pub agent_id: Id,
    pub state: TaskState,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(default)]
    pub statuses: Vec<TaskStatus>,
    /// The state of the last status update sent to the framework.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_update_state: Option<TaskState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_update_uuid: Option<String>,
    /// Pass-through `Labels`, `DiscoveryInfo`, `ContainerInfo` and
    /// `HealthCheck` of the TaskInfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
}

impl Task {
    /// The executor the task runs under: its `executor_id`, or for a
    /// command task the task id.
    pub fn executor(&self) -> &str {
        self.executor_id
            .as_ref()
            .map_or(self.task_id.value.as_str(), |e| e.value.as_str())
    }
}

/// `get_tasks`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GetTasks {
    #[serde(default)]
    pub tasks: Vec<Task>,
    #[serde(default)]
    pub unreachable_tasks: Vec<Task>,
    #[serde(default)]
    pub completed_tasks: Vec<Task>,
}

impl GetTasks {
    /// Live, unreachable and completed tasks, in that order.
    pub fn all(&self) -> impl Iterator<Item = &Task> {
        self.tasks
            .iter()
            .chain(&self.unreachable_tasks)
            .chain(&self.completed_tasks)
    }
}

/// An executor and the agent it runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutorEntry {
    pub executor_info: ExecutorInfo,
    pub agent_id: Id,
}

/// `get_executors` (custom executors; Keel runs none, so this stays `{}`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GetExecutors {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub executors: Vec<ExecutorEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completed_executors: Vec<ExecutorEntry>,
}

/// `get_state`: tasks, executors, frameworks and agents at once.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GetState {
    #[serde(default)]
    pub get_tasks: GetTasks,
    #[serde(default)]
    pub get_executors: GetExecutors,
    #[serde(default)]
    pub get_frameworks: GetFrameworks,
    #[serde(default)]
    pub get_agents: GetAgents,
}

/// One entry of `get_operations`: an offer operation the master knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
    /// The `Offer.Operation`.
    pub info: Json,
    pub latest_status: crate::scheduler::OperationStatus,
    #[serde(default)]
    pub statuses: Vec<crate::scheduler::OperationStatus>,
    pub uuid: crate::scheduler::Uuid,
}

/// `get_operations`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GetOperations {
    #[serde(default)]
    pub operations: Vec<OperationEntry>,
}
