//! The legacy (v0-era) JSON endpoints: `/master/state`, `/master/slaves`,
//! `/master/frameworks`, `/master/tasks`, `/master/flags` (`/version` is
//! [`crate::operator::VersionInfo`]).
//!
//! Mesos' legacy formatting: ids are plain strings, resources and attributes
//! are objects keyed by name ([`LegacyMap`]), times are seconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::keel::Cluster;
pub use crate::keyed::{LegacyMap, LegacyValue};
use crate::mesos::{Capability, TaskState};
use crate::operator::{Address, MasterInfo};
use crate::resources::v1::AllocationInfo;

/// `leader_info`: the leader's full `MasterInfo` on the leader; on a
/// follower only what it knows (`hostname`, `port`), or nothing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LeaderInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<Capability>>,
}

impl From<MasterInfo> for LeaderInfo {
    fn from(m: MasterInfo) -> Self {
        LeaderInfo {
            id: Some(m.id),
            ip: Some(m.ip),
            port: Some(m.port),
            pid: m.pid,
            hostname: m.hostname,
            version: m.version,
            address: m.address,
            capabilities: Some(m.capabilities),
        }
    }
}

/// `/master/state` (`/state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keel_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_time: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_user: Option<String>,
    pub start_time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elected_time: Option<f64>,
    pub id: String,
    pub pid: String,
    pub hostname: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    pub activated_slaves: u64,
    pub deactivated_slaves: u64,
    pub unreachable_slaves: u64,
    /// `master@host:port` of the leader; `null` while none is known.
    #[serde(default)]
    pub leader: Option<String>,
    #[serde(default)]
    pub leader_info: LeaderInfo,
    /// Keel's view of the replicated masters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keel_cluster: Option<Cluster>,
    #[serde(default)]
    pub flags: BTreeMap<String, String>,
    #[serde(default)]
    pub slaves: Vec<Slave>,
    #[serde(default)]
    pub recovered_slaves: Vec<Slave>,
    #[serde(default)]
    pub frameworks: Vec<Framework>,
    #[serde(default)]
    pub completed_frameworks: Vec<Framework>,
    #[serde(default)]
    pub orphan_tasks: Vec<Task>,
    #[serde(default)]
    pub unregistered_frameworks: Vec<String>,
}

/// An agent in `slaves[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slave {
    pub id: String,
    pub hostname: String,
    pub port: u16,
    #[serde(default)]
    pub attributes: LegacyMap,
    /// `slave(1)@ip:port`.
    pub pid: String,
    pub registered_time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reregistered_time: Option<f64>,
    pub resources: LegacyMap,
    pub used_resources: LegacyMap,
    pub offered_resources: LegacyMap,
    /// Reserved resources by role.
    #[serde(default)]
    pub reserved_resources: BTreeMap<String, LegacyMap>,
    /// Reserved resources by role as v1 `Resource`s, persistent volumes
    /// (with their `disk.persistence`) included; left out when nothing is
    /// reserved, as in the captured Mesos state.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reserved_resources_full: BTreeMap<String, Vec<crate::resources::v1::Resource>>,
    pub unreserved_resources: LegacyMap,
    pub active: bool,
    pub deactivated: bool,
    pub version: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// The agent's drain, while it drains or is drained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_info: Option<crate::operator::DrainInfo>,
}

/// A framework in `frameworks[]` / `completed_frameworks[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Framework {
    pub id: String,
    pub name: String,
    pub user: String,
    pub hostname: String,
    pub webui_url: String,
    pub failover_timeout: f64,
    pub checkpoint: bool,
    /// Capability type names.
    #[serde(default)]
    pub capabilities: Vec<String>,
    pub active: bool,
    pub connected: bool,
    pub recovered: bool,
    pub registered_time: f64,
    pub unregistered_time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reregistered_time: Option<f64>,
    pub used_resources: LegacyMap,
    pub offered_resources: LegacyMap,
    /// Used and offered.
    pub resources: LegacyMap,
    #[serde(default)]
    pub tasks: Vec<Task>,
    #[serde(default)]
    pub unreachable_tasks: Vec<Task>,
    #[serde(default)]
    pub completed_tasks: Vec<Task>,
    #[serde(default)]
    pub offers: Vec<Offer>,
    /// Custom executors' objects (Keel runs command and default executors
    /// only, so this stays empty).
    #[serde(default)]
    pub executors: Vec<Json>,
    /// A MULTI_ROLE framework's roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Any other framework's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

/// An outstanding offer of a legacy framework.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub id: String,
    pub framework_id: String,
    pub slave_id: String,
    pub allocation_info: AllocationInfo,
    pub resources: LegacyMap,
}

/// A legacy task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub name: String,
    pub framework_id: String,
    /// Empty when the task has no executor id.
    pub executor_id: String,
    pub slave_id: String,
    pub state: TaskState,
    pub resources: LegacyMap,
    pub role: String,
    #[serde(default)]
    pub statuses: Vec<TaskStatus>,
}

/// A legacy task's status: state, time (seconds), health, container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub state: TaskState,
    pub timestamp: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_status: Option<crate::mesos::ContainerStatus>,
}

/// `/master/slaves`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Slaves {
    pub slaves: Vec<Slave>,
    #[serde(default)]
    pub recovered_slaves: Vec<Slave>,
}

/// `/master/frameworks`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Frameworks {
    pub frameworks: Vec<Framework>,
    #[serde(default)]
    pub completed_frameworks: Vec<Framework>,
    #[serde(default)]
    pub unregistered_frameworks: Vec<String>,
}

/// `/master/tasks`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Tasks {
    pub tasks: Vec<Task>,
}

/// `/master/flags` (`/flags`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Flags {
    pub flags: BTreeMap<String, String>,
}
