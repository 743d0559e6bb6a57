//! The agent's Mesos-shaped `/state` (`/slave(1)/state`): the agent, its
//! frameworks, each with its executors (sandbox `directory`, container,
//! resources) and their tasks, live and completed, as Mesos' agent writes
//! it (`src/slave/http.cpp`). Resources are legacy maps; tasks are the
//! master's legacy [`crate::legacy::Task`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::keyed::LegacyMap;
use crate::legacy::Task;

/// `/state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_user: Option<String>,
    /// Seconds since the epoch when the agent started.
    pub start_time: f64,
    /// Empty until the agent registered.
    pub id: String,
    /// `slave(1)@ip:port`.
    pub pid: String,
    pub hostname: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    pub resources: LegacyMap,
    #[serde(default)]
    pub attributes: Json,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_hostname: Option<String>,
    #[serde(default)]
    pub flags: BTreeMap<String, String>,
    #[serde(default)]
    pub frameworks: Vec<Framework>,
    #[serde(default)]
    pub completed_frameworks: Vec<Framework>,
    /// Keel: whether the agent is registered with a master.
    #[serde(default)]
    pub registered: bool,
}

/// A framework as the agent shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Framework {
    pub id: String,
    pub name: String,
    pub user: String,
    #[serde(default)]
    pub failover_timeout: f64,
    #[serde(default)]
    pub checkpoint: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub executors: Vec<Executor>,
    #[serde(default)]
    pub completed_executors: Vec<Executor>,
}

/// An executor with its sandbox and tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Executor {
    pub id: String,
    pub name: String,
    pub source: String,
    pub framework_id: String,
    /// The container id.
    pub container: String,
    /// The sandbox: the executor's run directory on the agent.
    pub directory: String,
    pub resources: LegacyMap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `DEFAULT` for a task group's executor.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub tasks: Vec<Task>,
    #[serde(default)]
    pub queued_tasks: Vec<Task>,
    #[serde(default)]
    pub completed_tasks: Vec<Task>,
}
