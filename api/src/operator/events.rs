//! The operator event stream (`SUBSCRIBE` on `/api/v1`): RecordIO records,
//! each an [`Event`] in Mesos' envelope, `{"type": "TASK_ADDED",
//! "task_added": {...}}`. The first is `SUBSCRIBED` with the whole state.

use serde::{Deserialize, Serialize};

use super::agents::Agent;
use super::envelope;
use super::frameworks::Framework;
use super::tasks::{GetState, Task};
use crate::mesos::{FrameworkInfo, Id, TaskState, TaskStatus};

/// `subscribed`: the state at the moment of subscribing, and how often
/// HEARTBEAT follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    pub get_state: GetState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_seconds: Option<f64>,
}

/// `task_added`: a task the master now knows (launched, or reported by a
/// re-registering agent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskAdded {
    pub task: Task,
}

/// `task_updated`: a status of a task, and the task's state after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskUpdated {
    pub framework_id: Id,
    pub status: TaskStatus,
    pub state: TaskState,
}

/// `agent_added`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentAdded {
    pub agent: Agent,
}

/// `agent_removed`: unreachable, or marked gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRemoved {
    pub agent_id: Id,
}

/// `framework_added` and `framework_updated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameworkEvent {
    pub framework: Framework,
}

/// `framework_removed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameworkRemoved {
    pub framework_info: FrameworkInfo,
}

envelope::envelope! {
    /// One record of the operator event stream.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Event {
        Heartbeat = "HEARTBEAT";
        Subscribed(Subscribed) = "SUBSCRIBED" / "subscribed",
        TaskAdded(TaskAdded) = "TASK_ADDED" / "task_added",
        TaskUpdated(TaskUpdated) = "TASK_UPDATED" / "task_updated",
        AgentAdded(AgentAdded) = "AGENT_ADDED" / "agent_added",
        AgentRemoved(AgentRemoved) = "AGENT_REMOVED" / "agent_removed",
        FrameworkAdded(FrameworkEvent) = "FRAMEWORK_ADDED" / "framework_added",
        FrameworkUpdated(FrameworkEvent) = "FRAMEWORK_UPDATED" / "framework_updated",
        FrameworkRemoved(FrameworkRemoved) = "FRAMEWORK_REMOVED" / "framework_removed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_travel_in_the_mesos_envelope() {
        assert_eq!(
            serde_json::to_value(Event::Heartbeat).unwrap(),
            json!({"type": "HEARTBEAT"})
        );
        let removed = Event::AgentRemoved(AgentRemoved {
            agent_id: Id::new("m-S1"),
        });
        let j = serde_json::to_value(&removed).unwrap();
        assert_eq!(
            j,
            json!({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": "m-S1"}}})
        );
        assert_eq!(serde_json::from_value::<Event>(j).unwrap(), removed);
        let updated = json!({"type": "TASK_UPDATED", "task_updated": {
            "framework_id": {"value": "f"}, "state": "TASK_RUNNING",
            "status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING"}}});
        let Event::TaskUpdated(u) = serde_json::from_value(updated).unwrap() else {
            panic!("not TASK_UPDATED");
        };
        assert_eq!(u.state, TaskState::TASK_RUNNING);
        let subscribed = json!({"type": "SUBSCRIBED", "subscribed": {
            "get_state": {}, "heartbeat_interval_seconds": 15.0}});
        let Event::Subscribed(s) = serde_json::from_value(subscribed).unwrap() else {
            panic!("not SUBSCRIBED");
        };
        assert_eq!(s.heartbeat_interval_seconds, Some(15.0));
    }
}
