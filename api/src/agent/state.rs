//! The answers of the agent's operator API (`agent.proto`'s `Response`):
//! the agent's frameworks, executors and tasks (each `Task` as the
//! master's `GET_TASKS` has it, [`crate::operator::Task`]), its containers
//! with their `ResourceStatistics`, the agent itself; and the entries of
//! `/monitor/statistics`.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::mesos::{ContainerId, ContainerStatus, ExecutorInfo, FrameworkInfo, Id};
use crate::operator::{
    AgentInfo, GetFlags, GetHealth, GetLoggingLevel, GetMetrics, GetOperations, GetVersion,
    ListFilesAnswer, ReadFileAnswer, Task,
};

/// `get_frameworks`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GetFrameworks {
    #[serde(default)]
    pub frameworks: Vec<Framework>,
    #[serde(default)]
    pub completed_frameworks: Vec<Framework>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Framework {
    pub framework_info: FrameworkInfo,
}

/// `get_executors`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GetExecutors {
    #[serde(default)]
    pub executors: Vec<Executor>,
    #[serde(default)]
    pub completed_executors: Vec<Executor>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Executor {
    pub executor_info: ExecutorInfo,
}

/// `get_tasks`: the agent sorts its tasks by where they are.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GetTasks {
    /// Waiting for their executor to be launched.
    #[serde(default)]
    pub pending_tasks: Vec<Task>,
    /// Waiting for their executor to register.
    #[serde(default)]
    pub queued_tasks: Vec<Task>,
    #[serde(default)]
    pub launched_tasks: Vec<Task>,
    /// Terminal, their last update not yet acknowledged.
    #[serde(default)]
    pub terminated_tasks: Vec<Task>,
    #[serde(default)]
    pub completed_tasks: Vec<Task>,
}

/// `get_state`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GetState {
    #[serde(default)]
    pub get_tasks: GetTasks,
    #[serde(default)]
    pub get_executors: GetExecutors,
    #[serde(default)]
    pub get_frameworks: GetFrameworks,
}

/// `ResourceStatistics`: what a container used, at `timestamp` (seconds).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResourceStatistics {
    pub timestamp: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_user_time_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_system_time_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_limit: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_nr_periods: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_nr_throttled: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_throttled_time_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_total_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_rss_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_anon_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_file_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_cache_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_mapped_file_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_swap_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_limit_bytes: Option<u64>,
}

/// One entry of `get_containers.containers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub framework_id: Id,
    pub executor_id: Id,
    pub executor_name: String,
    pub container_id: ContainerId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_status: Option<ContainerStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_statistics: Option<ResourceStatistics>,
}

/// `get_containers`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GetContainers {
    #[serde(default)]
    pub containers: Vec<Container>,
}

/// `get_agent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetAgent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_info: Option<AgentInfo>,
}

/// `get_resource_providers` (Keel's agents have none).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GetResourceProviders {
    #[serde(default)]
    pub resource_providers: Vec<Json>,
}

/// One entry of `/monitor/statistics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorEntry {
    pub executor_id: String,
    pub executor_name: String,
    pub framework_id: String,
    pub source: String,
    pub statistics: ResourceStatistics,
}

crate::operator::envelope::envelope! {
    /// The answer to an agent call.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Response {
        ;
        GetHealth(GetHealth) = "GET_HEALTH" / "get_health",
        GetFlags(GetFlags) = "GET_FLAGS" / "get_flags",
        GetVersion(GetVersion) = "GET_VERSION" / "get_version",
        GetMetrics(GetMetrics) = "GET_METRICS" / "get_metrics",
        GetLoggingLevel(GetLoggingLevel) = "GET_LOGGING_LEVEL" / "get_logging_level",
        ListFiles(ListFilesAnswer) = "LIST_FILES" / "list_files",
        ReadFile(ReadFileAnswer) = "READ_FILE" / "read_file",
        GetState(GetState) = "GET_STATE" / "get_state",
        GetContainers(GetContainers) = "GET_CONTAINERS" / "get_containers",
        GetFrameworks(GetFrameworks) = "GET_FRAMEWORKS" / "get_frameworks",
        GetExecutors(GetExecutors) = "GET_EXECUTORS" / "get_executors",
        GetOperations(GetOperations) = "GET_OPERATIONS" / "get_operations",
        GetTasks(GetTasks) = "GET_TASKS" / "get_tasks",
        GetAgent(GetAgent) = "GET_AGENT" / "get_agent",
        GetResourceProviders(GetResourceProviders) = "GET_RESOURCE_PROVIDERS" / "get_resource_providers",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_have_the_mesos_shapes() {
        let stats = ResourceStatistics {
            timestamp: 1.5,
            cpus_user_time_secs: Some(2.0),
            mem_limit_bytes: Some(64),
            ..Default::default()
        };
        let c = Response::GetContainers(GetContainers {
            containers: vec![Container {
                framework_id: Id::new("f"),
                executor_id: Id::new("e"),
                executor_name: "Command Executor".into(),
                container_id: ContainerId::new("c"),
                container_status: None,
                resource_statistics: Some(stats),
            }],
        });
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"type": "GET_CONTAINERS", "get_containers": {"containers": [{
                "framework_id": {"value": "f"}, "executor_id": {"value": "e"},
                "executor_name": "Command Executor", "container_id": {"value": "c"},
                "resource_statistics": {"timestamp": 1.5, "cpus_user_time_secs": 2.0,
                    "mem_limit_bytes": 64}}]}})
        );
        let back: Response = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let tasks = serde_json::to_value(Response::GetTasks(GetTasks::default())).unwrap();
        assert_eq!(
            tasks["get_tasks"],
            json!({"pending_tasks": [], "queued_tasks": [], "launched_tasks": [],
                "terminated_tasks": [], "completed_tasks": []})
        );
    }
}
