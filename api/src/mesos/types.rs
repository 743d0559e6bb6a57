//! Mesos v1 message types (the subset Keel reads and writes), field names as
//! in `include/mesos/v1/mesos.proto`. Resources stay raw JSON here and are
//! interpreted by [`crate::resources::Resources::from_v1_json`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::lenient;
use crate::resources::v1::Resource;

pub use crate::id::Id;

/// `DurationInfo` / `TimeInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Nanos {
    #[serde(deserialize_with = "lenient::i64")]
    pub nanoseconds: i64,
}

impl Nanos {
    /// The duration (negative: zero).
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_nanos(u64::try_from(self.nanoseconds).unwrap_or(0))
    }

    pub fn from_duration(d: std::time::Duration) -> Self {
        Nanos {
            nanoseconds: i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[allow(non_camel_case_types)]
pub enum TaskState {
    TASK_STAGING,
    TASK_STARTING,
    TASK_RUNNING,
    TASK_KILLING,
    TASK_FINISHED,
    TASK_FAILED,
    TASK_KILLED,
    TASK_ERROR,
    TASK_LOST,
    TASK_DROPPED,
    TASK_UNREACHABLE,
    TASK_GONE,
    TASK_GONE_BY_OPERATOR,
    TASK_UNKNOWN,
}

impl TaskState {
    pub const ALL: [TaskState; 14] = [
        TaskState::TASK_STAGING,
        TaskState::TASK_STARTING,
        TaskState::TASK_RUNNING,
        TaskState::TASK_KILLING,
        TaskState::TASK_FINISHED,
        TaskState::TASK_FAILED,
        TaskState::TASK_KILLED,
        TaskState::TASK_ERROR,
        TaskState::TASK_LOST,
        TaskState::TASK_DROPPED,
        TaskState::TASK_UNREACHABLE,
        TaskState::TASK_GONE,
        TaskState::TASK_GONE_BY_OPERATOR,
        TaskState::TASK_UNKNOWN,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TaskState::TASK_STAGING => "TASK_STAGING",
            TaskState::TASK_STARTING => "TASK_STARTING",
            TaskState::TASK_RUNNING => "TASK_RUNNING",
            TaskState::TASK_KILLING => "TASK_KILLING",
            TaskState::TASK_FINISHED => "TASK_FINISHED",
            TaskState::TASK_FAILED => "TASK_FAILED",
            TaskState::TASK_KILLED => "TASK_KILLED",
            TaskState::TASK_ERROR => "TASK_ERROR",
            TaskState::TASK_LOST => "TASK_LOST",
            TaskState::TASK_DROPPED => "TASK_DROPPED",
            TaskState::TASK_UNREACHABLE => "TASK_UNREACHABLE",
            TaskState::TASK_GONE => "TASK_GONE",
            TaskState::TASK_GONE_BY_OPERATOR => "TASK_GONE_BY_OPERATOR",
            TaskState::TASK_UNKNOWN => "TASK_UNKNOWN",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Terminal states: the task will never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::TASK_FINISHED
                | TaskState::TASK_FAILED
                | TaskState::TASK_KILLED
                | TaskState::TASK_ERROR
                | TaskState::TASK_LOST
                | TaskState::TASK_DROPPED
                | TaskState::TASK_GONE
                | TaskState::TASK_GONE_BY_OPERATOR
        )
    }

    /// States only `PARTITION_AWARE` frameworks see; the others get `TASK_LOST`.
    pub fn needs_partition_awareness(self) -> bool {
        matches!(
            self,
            TaskState::TASK_DROPPED
                | TaskState::TASK_UNREACHABLE
                | TaskState::TASK_GONE
                | TaskState::TASK_GONE_BY_OPERATOR
                | TaskState::TASK_UNKNOWN
        )
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Environment {
    #[serde(default)]
    pub variables: Vec<EnvVar>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CommandUri {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CommandInfo {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<CommandUri>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// Default true: run `value` through `/bin/sh -c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl CommandInfo {
    pub fn shell(&self) -> bool {
        self.shell.unwrap_or(true)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct KillPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<Nanos>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub executor_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_period: Option<Nanos>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub name: String,
    pub task_id: Id,
    pub agent_id: Id,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_time: Option<Nanos>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, Json>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub task_id: Id,
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<Id>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_f64"
    )]
    pub timestamp: Option<f64>,
    /// base64 of 16 raw bytes; present means the update must be acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable_time: Option<Nanos>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_status: Option<Box<super::ContainerStatus>>,
}

impl TaskStatus {
    /// A status with only its task and state set.
    pub fn new(task_id: impl Into<String>, state: TaskState) -> Self {
        TaskStatus {
            task_id: Id::new(task_id),
            state,
            message: None,
            source: None,
            reason: None,
            data: None,
            agent_id: None,
            executor_id: None,
            timestamp: None,
            uuid: None,
            healthy: None,
            unreachable_time: None,
            container_status: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capability {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameworkInfo {
    pub user: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_f64"
    )]
    pub failover_timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webui_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<Capability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_filters: Option<Json>,
}

impl FrameworkInfo {
    /// A FrameworkInfo with only its user and name set.
    pub fn new(user: impl Into<String>, name: impl Into<String>) -> Self {
        FrameworkInfo {
            user: user.into(),
            name: name.into(),
            id: None,
            failover_timeout: None,
            checkpoint: None,
            role: None,
            roles: Vec::new(),
            hostname: None,
            principal: None,
            webui_url: None,
            capabilities: Vec::new(),
            labels: None,
            offer_filters: None,
        }
    }

    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| c.kind == name)
    }

    /// The roles the framework subscribes to: `roles` for MULTI_ROLE
    /// frameworks, otherwise `role` (default `*`).
    pub fn effective_roles(&self) -> Vec<String> {
        if self.has_capability("MULTI_ROLE") {
            self.roles.clone()
        } else {
            vec![self.role.clone().unwrap_or_else(|| "*".to_string())]
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Filters {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_f64"
    )]
    pub refuse_seconds: Option<f64>,
}

impl Filters {
    /// Mesos' default of 5 s, capped at 365 days; invalid values fall back
    /// to the default.
    pub fn refuse_seconds(&self) -> f64 {
        const MAX: f64 = 365.0 * 24.0 * 3600.0;
        match self.refuse_seconds {
            Some(s) if s.is_finite() && s >= 0.0 => s.min(MAX),
            Some(s) if s == f64::INFINITY => MAX,
            _ => 5.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesos::parse;
    use serde_json::json;

    #[test]
    fn task_info_from_a_typical_framework() {
        let t: TaskInfo = parse(json!({
            "name": "echo", "task_id": {"value": "t1"}, "agent_id": {"value": "a-S0"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
            "command": {"value": "echo hello", "shell": null, "uris": null},
            "kill_policy": {"grace_period": {"nanoseconds": "2000000000"}},
            "unknown": 1, "executor": null
        }))
        .unwrap();
        assert_eq!(t.task_id.value, "t1");
        let cmd = t.command.unwrap();
        assert!(cmd.shell());
        assert_eq!(cmd.value.as_deref(), Some("echo hello"));
        assert_eq!(
            t.kill_policy.unwrap().grace_period.unwrap().nanoseconds,
            2_000_000_000
        );
    }

    #[test]
    fn task_info_requires_its_fields() {
        let r: Result<TaskInfo, _> = parse(json!({"name": "x", "task_id": {"value": "t"}}));
        assert_eq!(
            r.unwrap_err().to_string(),
            "Missing required fields: agent_id"
        );
    }

    #[test]
    fn task_states_by_name() {
        for s in TaskState::ALL {
            assert_eq!(TaskState::from_name(s.name()), Some(s));
            let json = serde_json::to_value(s).unwrap();
            assert_eq!(json, json!(s.name()));
        }
        assert!(TaskState::TASK_FINISHED.is_terminal());
        assert!(!TaskState::TASK_UNREACHABLE.is_terminal());
        assert!(TaskState::TASK_UNREACHABLE.needs_partition_awareness());
    }

    #[test]
    fn framework_roles() {
        let f: FrameworkInfo = parse(json!({"user": "u", "name": "n", "role": "eng"})).unwrap();
        assert_eq!(f.effective_roles(), vec!["eng"]);
        let f: FrameworkInfo = parse(json!({"user": "u", "name": "n"})).unwrap();
        assert_eq!(f.effective_roles(), vec!["*"]);
        let f: FrameworkInfo = parse(json!({"user": "u", "name": "n", "roles": ["a", "b"],
            "capabilities": [{"type": "MULTI_ROLE"}], "failover_timeout": "60"}))
        .unwrap();
        assert_eq!(f.effective_roles(), vec!["a", "b"]);
        assert_eq!(f.failover_timeout, Some(60.0));
    }

    #[test]
    fn refuse_seconds_defaults_and_caps() {
        assert_eq!(Filters::default().refuse_seconds(), 5.0);
        let f = |s: f64| Filters {
            refuse_seconds: Some(s),
        };
        assert_eq!(f(1.5).refuse_seconds(), 1.5);
        assert_eq!(f(-1.0).refuse_seconds(), 5.0);
        assert_eq!(f(f64::INFINITY).refuse_seconds(), 365.0 * 24.0 * 3600.0);
    }
}
