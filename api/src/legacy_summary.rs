//! More legacy endpoints: `/master/state-summary` and `/master/roles`
//! (`/master/quota` and `/master/weights` answer with the v1 shapes, as
//! Mesos does).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::legacy::{LegacyMap, Slave};

/// Task counts by state name (`TASK_RUNNING: 2`), flattened into the
/// object that carries them.
pub type TaskCounts = BTreeMap<String, u64>;

/// The states `/master/state-summary` counts, always present.
pub const COUNTED_STATES: &[&str] = &[
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_FINISHED",
    "TASK_KILLED",
    "TASK_FAILED",
    "TASK_LOST",
    "TASK_ERROR",
    "TASK_UNREACHABLE",
];

/// An agent in `/master/state-summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummarySlave {
    #[serde(flatten)]
    pub slave: Slave,
    #[serde(flatten)]
    pub tasks: TaskCounts,
    #[serde(default)]
    pub framework_ids: Vec<String>,
}

/// A framework in `/master/state-summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryFramework {
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub webui_url: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    pub active: bool,
    pub connected: bool,
    pub recovered: bool,
    pub used_resources: LegacyMap,
    pub offered_resources: LegacyMap,
    #[serde(flatten)]
    pub tasks: TaskCounts,
    #[serde(default)]
    pub slave_ids: Vec<String>,
}

/// `/master/state-summary`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StateSummary {
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub slaves: Vec<SummarySlave>,
    pub frameworks: Vec<SummaryFramework>,
}

/// A role's quota in `/master/roles`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleQuota {
    pub role: String,
    pub guarantee: LegacyMap,
    pub limit: LegacyMap,
    pub consumed: LegacyMap,
}

/// A role in `/master/roles`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub weight: f64,
    #[serde(default)]
    pub frameworks: Vec<String>,
    pub resources: LegacyMap,
    pub allocated: LegacyMap,
    pub reserved: LegacyMap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<RoleQuota>,
}

/// `/master/roles`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Roles {
    pub roles: Vec<Role>,
}
