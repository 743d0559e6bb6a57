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

/// A record that is not an executor event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("executor event without 'type'")]
    NoType,
    #[error("executor event {kind} without its '{field}'")]
    Missing { kind: String, field: &'static str },
    #[error("executor event {kind}: {source}")]
    Invalid {
        kind: String,
        source: crate::mesos::MesosJsonError,
    },
    #[error("executor event of unknown type {0}")]
    Unknown(String),
}

fn typed<T: serde::de::DeserializeOwned>(kind: &str, v: Json) -> Result<T, EventError> {
    crate::mesos::parse(v).map_err(|source| EventError::Invalid {
        kind: kind.to_string(),
        source,
    })
}

impl Event {
    /// Reads one record of the stream (as an executor does).
    pub fn from_json(record: Json) -> Result<Event, EventError> {
        let kind = record
            .get("type")
            .and_then(Json::as_str)
            .ok_or(EventError::NoType)?
            .to_string();
        let body = record.get(kind.to_ascii_lowercase()).cloned();
        let field = |name: &'static str| -> Result<Json, EventError> {
            body.as_ref()
                .and_then(|b| b.get(name))
                .cloned()
                .ok_or(EventError::Missing {
                    kind: kind.clone(),
                    field: name,
                })
        };
        let id = |v: Json| {
            v.get("value")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string()
        };
        let bytes =
            |v: Json| crate::mesos::base64_decode(v.as_str().unwrap_or("")).unwrap_or_default();
        Ok(match kind.as_str() {
            "SUBSCRIBED" => Event::Subscribed {
                executor_info: Box::new(typed(&kind, field("executor_info")?)?),
                framework_info: Box::new(typed(&kind, field("framework_info")?)?),
                agent_info: field("agent_info")?,
                container_id: id(field("container_id")?),
            },
            "LAUNCH" => Event::Launch(field("task")?),
            "LAUNCH_GROUP" => {
                let group = field("task_group")?;
                let tasks = group.get("tasks").and_then(Json::as_array).cloned();
                Event::LaunchGroup(tasks.unwrap_or_default())
            }
            "KILL" => Event::Kill {
                task_id: id(field("task_id")?),
                kill_policy: body
                    .as_ref()
                    .and_then(|b| b.get("kill_policy"))
                    .cloned()
                    .map(|v| typed(&kind, v))
                    .transpose()?,
            },
            "ACKNOWLEDGED" => Event::Acknowledged {
                task_id: id(field("task_id")?),
                uuid: bytes(field("uuid")?),
            },
            "MESSAGE" => Event::Message(bytes(field("data")?)),
            "ERROR" => Event::Error(field("message")?.as_str().unwrap_or("").to_string()),
            "SHUTDOWN" => Event::Shutdown,
            "HEARTBEAT" => Event::Heartbeat,
            _ => return Err(EventError::Unknown(kind)),
        })
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

    #[test]
    fn events_read_back() {
        let events = [
            Event::Acknowledged {
                task_id: "t".into(),
                uuid: vec![3; 16],
            },
            Event::Message(b"hi".to_vec()),
            Event::Launch(json!({"task_id": {"value": "t"}})),
            Event::Shutdown,
            Event::Error("bad".into()),
        ];
        for e in events {
            assert_eq!(Event::from_json(e.to_json()).unwrap(), e);
        }
        assert!(Event::from_json(json!({"type": "LAUNCH"})).is_err());
    }
}
