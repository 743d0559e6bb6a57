//! The agent's events to an executor, on its SUBSCRIBE stream (RecordIO
//! of JSON records, Mesos' shape: `{"type": "LAUNCH", "launch": {...}}`).

use serde_json::{Value as Json, json};

use crate::mesos::{ExecutorInfo, FrameworkInfo, KillPolicy, base64_encode};

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Subscribed {
        executor_info: Box<ExecutorInfo>,
        framework_info: Box<FrameworkInfo>,
        /// The agent's `AgentInfo` (hostname, id, port, resources, ...).
        agent_info: Json,
        container_id: String,
    },
    /// A TaskInfo, as JSON (everything the framework sent).
    Launch(Json),
    LaunchGroup(Vec<Json>),
    Kill {
        task_id: String,
        kill_policy: Option<KillPolicy>,
    },
    /// The scheduler acknowledged the update with this uuid (16 bytes).
    Acknowledged {
        task_id: String,
        uuid: Vec<u8>,
    },
    /// Data from the framework's scheduler.
    Message(Vec<u8>),
    Error(String),
    Shutdown,
    Heartbeat,
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Subscribed { .. } => "SUBSCRIBED",
            Event::Launch(_) => "LAUNCH",
            Event::LaunchGroup(_) => "LAUNCH_GROUP",
            Event::Kill { .. } => "KILL",
            Event::Acknowledged { .. } => "ACKNOWLEDGED",
            Event::Message(_) => "MESSAGE",
            Event::Error(_) => "ERROR",
            Event::Shutdown => "SHUTDOWN",
            Event::Heartbeat => "HEARTBEAT",
        }
    }

    /// The record's JSON.
    pub fn to_json(&self) -> Json {
        let kind = self.kind();
        let body = match self {
            Event::Subscribed {
                executor_info,
                framework_info,
                agent_info,
                container_id,
            } => Some(json!({
                "executor_info": executor_info,
                "framework_info": framework_info,
                "agent_info": agent_info,
                "container_id": {"value": container_id},
            })),
            Event::Launch(task) => Some(json!({ "task": task })),
            Event::LaunchGroup(tasks) => Some(json!({ "task_group": {"tasks": tasks} })),
            Event::Kill {
                task_id,
                kill_policy,
            } => {
                let mut kill = json!({ "task_id": {"value": task_id} });
                if let Some(policy) = kill_policy {
                    kill["kill_policy"] = json!(policy);
                }
                Some(kill)
            }
            Event::Acknowledged { task_id, uuid } => Some(json!({
                "task_id": {"value": task_id},
                "uuid": base64_encode(uuid),
            })),
            Event::Message(data) => Some(json!({ "data": base64_encode(data) })),
            Event::Error(message) => Some(json!({ "message": message })),
            Event::Shutdown | Event::Heartbeat => None,
        };
        let mut record = json!({ "type": kind });
        if let Some(body) = body {
            record[kind.to_ascii_lowercase()] = body;
        }
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_mesos_shape() {
        let ack = Event::Acknowledged {
            task_id: "t".into(),
            uuid: vec![0; 16],
        };
        assert_eq!(
            ack.to_json(),
            json!({"type": "ACKNOWLEDGED", "acknowledged": {"task_id": {"value": "t"},
                   "uuid": "AAAAAAAAAAAAAAAAAAAAAA=="}})
        );
        assert_eq!(Event::Shutdown.to_json(), json!({"type": "SHUTDOWN"}));
        assert_eq!(
            Event::Message(b"hi".to_vec()).to_json(),
            json!({"type": "MESSAGE", "message": {"data": "aGk="}})
        );
        let kill = Event::Kill {
            task_id: "t".into(),
            kill_policy: None,
        };
        assert_eq!(
            kill.to_json(),
            json!({"type": "KILL", "kill": {"task_id": {"value": "t"}}})
        );
    }
}
