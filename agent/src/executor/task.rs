//! A task's description as the agent holds it: the TaskInfo read once, at
//! the edge (a master's `LaunchTasks` in [`super::launch`], a checkpoint in
//! [`super::checkpoint::recover`]), into a [`TaskSpec`] whose parts the
//! agent interprets are typed. Everything past the edge works on it; the
//! checkpoint and `TaskReport.task_info_json` are its serialization, which
//! is TaskInfo JSON again.
//!
//! ```text
//!  LaunchTasks.task_info_json --TaskSpec::parse--> TaskSpec --serde--> task.info (checkpoint)
//!  task.info (this version's, or an earlier agent's  --TaskDescription::read--> TaskSpec
//!             copy of the master's text: both TaskInfo JSON)
//!  TaskSpec --serde--> TaskReport.task_info_json
//! ```

use keel_api::mesos::{self, ContainerInfo, HealthCheck, Labels, MesosJsonError, TaskInfo};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

#[derive(Debug, thiserror::Error)]
pub enum TaskSpecError {
    /// Not JSON at all.
    #[error("{0}")]
    Syntax(serde_json::Error),
    /// JSON, but no TaskInfo (Mesos' wording, e.g. `Missing required
    /// fields: agent_id`); `task_id` when the text names one.
    #[error("{source}")]
    Invalid {
        task_id: Option<String>,
        source: MesosJsonError,
    },
}

impl TaskSpecError {
    /// The task id the unreadable text names, if any.
    pub fn task_id(&self) -> Option<&str> {
        match self {
            TaskSpecError::Syntax(_) => None,
            TaskSpecError::Invalid { task_id, .. } => task_id.as_deref(),
        }
    }
}

/// A Mesos v1 TaskInfo with the parts the agent interprets typed:
/// `container` (host name, networks), `health_check` and `labels`
/// (`keel.io/*` bandwidth). Its JSON form is the TaskInfo's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The rest: ids, resources, command, kill policy, executor, and what
    /// the agent only passes on (`check`, `discovery`, `data`, ...). Its own
    /// `container`, `health_check` and `labels` are always unset: the typed
    /// fields below take those keys.
    #[serde(flatten)]
    info: TaskInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    container: Option<ContainerInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    labels: Option<Labels>,
}

impl TaskSpec {
    /// Reads TaskInfo JSON text as Mesos does (nulls are unset, numbers
    /// may be strings, unknown fields are ignored).
    pub fn parse(text: &str) -> Result<TaskSpec, TaskSpecError> {
        let value: Json = serde_json::from_str(text).map_err(TaskSpecError::Syntax)?;
        let task_id = value
            .pointer("/task_id/value")
            .and_then(Json::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_string);
        mesos::parse(value).map_err(|source| TaskSpecError::Invalid { task_id, source })
    }

    /// The TaskInfo JSON (for the checkpoint and `TaskReport`).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    pub fn task_id(&self) -> &str {
        &self.info.task_id.value
    }

    /// Everything but the typed parts below (its `container`,
    /// `health_check` and `labels` are unset).
    pub fn info(&self) -> &TaskInfo {
        &self.info
    }

    pub fn container(&self) -> Option<&ContainerInfo> {
        self.container.as_ref()
    }

    pub fn health_check(&self) -> Option<&HealthCheck> {
        self.health_check.as_ref()
    }

    pub fn labels(&self) -> Option<&Labels> {
        self.labels.as_ref()
    }
}

/// What the agent keeps of a task's TaskInfo.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskDescription {
    Typed(Box<TaskSpec>),
    /// Text that is no TaskInfo (the task was refused with TASK_ERROR, or
    /// its checkpoint lost it): never interpreted, kept as it came only to
    /// be reported back.
    Unreadable(String),
}

impl TaskDescription {
    /// Reads a checkpoint's `task.info`: this version's serialized
    /// [`TaskSpec`] or the master's own text that earlier agents kept, both
    /// TaskInfo JSON.
    pub fn read(text: &str) -> TaskDescription {
        match TaskSpec::parse(text) {
            Ok(spec) => TaskDescription::Typed(Box::new(spec)),
            Err(_) => TaskDescription::Unreadable(text.to_string()),
        }
    }

    pub fn spec(&self) -> Option<&TaskSpec> {
        match self {
            TaskDescription::Typed(spec) => Some(spec),
            TaskDescription::Unreadable(_) => None,
        }
    }

    /// TaskInfo JSON: the typed task serialized, or the unreadable text.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        match self {
            TaskDescription::Typed(spec) => spec.to_json(),
            TaskDescription::Unreadable(text) => Ok(text.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full() -> Json {
        json!({"name": "web", "task_id": {"value": "t1"}, "agent_id": {"value": "a-S0"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}],
            "command": {"value": "serve", "environment": {"variables": [{"name": "A", "value": "1"}]}},
            "container": {"type": "MESOS", "hostname": "web",
                "network_infos": [{"name": "keel", "port_mappings": [{"host_port": 31001, "container_port": 80}]}],
                "volumes": [{"container_path": "/x", "mode": "RO", "host_path": "/y"}]},
            "health_check": {"type": "TCP", "tcp": {"port": 80}, "delay_seconds": 0.5},
            "labels": {"labels": [{"key": "keel.io/read-bps", "value": "100"}]},
            "kill_policy": {"grace_period": {"nanoseconds": 1500000000}},
            "check": {"type": "COMMAND", "command": {"command": {"value": "true"}}},
            "discovery": {"visibility": "FRAMEWORK", "name": "web"},
            "data": "aGk="})
    }

    #[test]
    fn the_typed_parts_are_read_and_written_back_as_a_task_info() {
        let spec = TaskSpec::parse(&full().to_string()).unwrap();
        assert_eq!(spec.task_id(), "t1");
        assert_eq!(spec.container().unwrap().hostname.as_deref(), Some("web"));
        assert_eq!(spec.health_check().unwrap().tcp.as_ref().unwrap().port, 80);
        assert_eq!(spec.labels().unwrap().labels.len(), 1);
        let info = spec.info();
        assert!(info.container.is_none() && info.health_check.is_none() && info.labels.is_none());
        assert_eq!(
            info.command.as_ref().unwrap().value.as_deref(),
            Some("serve")
        );
        // The same JSON comes out, and reads back to the same value.
        let text = spec.to_json().unwrap();
        let back: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(back, full());
        assert_eq!(TaskSpec::parse(&text).unwrap(), spec);
        // What the master reads from a TaskReport.
        let as_master: TaskInfo = mesos::parse_str(&text).unwrap();
        assert_eq!(as_master.health_check, Some(full()["health_check"].clone()));
    }

    #[test]
    fn read_as_mesos_reads_it() {
        let text = r#"{"name": "x", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
            "labels": null, "unknown": 1, "health_check": {"type": "TCP",
            "tcp": {"port": "8080"}, "interval_seconds": "2"},
            "kill_policy": {"grace_period": {"nanoseconds": "2000000000"}}}"#;
        let spec = TaskSpec::parse(text).unwrap();
        assert_eq!(spec.labels(), None);
        let hc = spec.health_check().unwrap();
        assert_eq!(
            (hc.tcp.as_ref().unwrap().port, hc.interval_seconds),
            (8080, Some(2.0))
        );
        let grace = spec
            .info()
            .kill_policy
            .as_ref()
            .unwrap()
            .grace_period
            .unwrap();
        assert_eq!(grace.nanoseconds, 2_000_000_000);
    }

    #[test]
    fn unreadable_text_says_why_and_names_its_task() {
        let e = TaskSpec::parse(r#"{"task_id": {"value": "t2"}}"#).unwrap_err();
        assert_eq!(e.task_id(), Some("t2"));
        assert!(e.to_string().contains("Missing required fields"), "{e}");
        let e = TaskSpec::parse("{").unwrap_err();
        assert!(matches!(e, TaskSpecError::Syntax(_)) && e.task_id().is_none());
        let bad_port = json!({"name": "x", "task_id": {"value": "t3"}, "agent_id": {"value": "a"},
            "health_check": {"type": "TCP", "tcp": {"port": "eighty"}}});
        let e = TaskSpec::parse(&bad_port.to_string()).unwrap_err();
        assert_eq!(e.task_id(), Some("t3"));
        assert_eq!(
            TaskDescription::read("not json"),
            TaskDescription::Unreadable("not json".into())
        );
        assert_eq!(
            TaskDescription::Unreadable("{".into()).to_json().unwrap(),
            "{"
        );
    }
}
