//! The executor's calls to its agent (`POST /api/v1/executor`), parsed
//! once with Mesos' validation and its messages (`Failed to validate
//! Executor::Call: ...`).

use serde::Deserialize;
use serde_json::Value as Json;

use crate::mesos::{self, Id, TaskInfo, TaskState, TaskStatus};

/// What is wrong with a call; the text is the 400 body Mesos' agent sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("Failed to parse body into JSON: {0}")]
    Json(String),
    #[error("Failed to convert JSON into Call protobuf: {0}")]
    Shape(String),
    #[error("Failed to validate Executor::Call: {0}")]
    Invalid(String),
}

/// A parsed call: whose it is and what it asks.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub framework_id: String,
    pub executor_id: String,
    pub kind: CallKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CallKind {
    /// Opens the event stream; after an agent restart the executor lists
    /// what it has not seen acknowledged.
    Subscribe {
        unacknowledged_tasks: Vec<TaskInfo>,
        unacknowledged_updates: Vec<TaskStatus>,
    },
    /// A task's new status; `uuid` is its 16 raw bytes.
    Update {
        status: Box<TaskStatus>,
        uuid: Vec<u8>,
    },
    /// Data for the framework's scheduler (unreliable).
    Message {
        data: Vec<u8>,
    },
    Heartbeat,
}

impl CallKind {
    pub fn name(&self) -> &'static str {
        match self {
            CallKind::Subscribe { .. } => "SUBSCRIBE",
            CallKind::Update { .. } => "UPDATE",
            CallKind::Message { .. } => "MESSAGE",
            CallKind::Heartbeat => "HEARTBEAT",
        }
    }
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    kind: Option<String>,
    framework_id: Option<Id>,
    executor_id: Option<Id>,
    subscribe: Option<RawSubscribe>,
    update: Option<RawUpdate>,
    message: Option<RawMessage>,
}

#[derive(Deserialize)]
struct RawSubscribe {
    #[serde(default)]
    unacknowledged_tasks: Vec<TaskInfo>,
    #[serde(default)]
    unacknowledged_updates: Vec<RawUpdate>,
}

#[derive(Deserialize)]
struct RawUpdate {
    status: TaskStatus,
}

#[derive(Deserialize)]
struct RawMessage {
    data: String,
}

fn invalid(text: impl Into<String>) -> CallError {
    CallError::Invalid(text.into())
}

/// Parses and validates a JSON call body.
pub fn parse(body: &[u8]) -> Result<Call, CallError> {
    let json: Json = serde_json::from_slice(body).map_err(|e| CallError::Json(e.to_string()))?;
    let raw: Raw = mesos::parse(json).map_err(|e| CallError::Shape(e.to_string()))?;
    let kind = raw
        .kind
        .ok_or_else(|| invalid("Expecting 'type' to be present"))?;
    let executor_id = raw
        .executor_id
        .ok_or_else(|| invalid("Expecting 'executor_id' to be present"))?
        .value;
    let framework_id = raw
        .framework_id
        .ok_or_else(|| invalid("Expecting 'framework_id' to be present"))?
        .value;
    let kind = match kind.as_str() {
        "SUBSCRIBE" => {
            let s = raw
                .subscribe
                .ok_or_else(|| invalid("Expecting 'subscribe' to be present"))?;
            CallKind::Subscribe {
                unacknowledged_tasks: s.unacknowledged_tasks,
                unacknowledged_updates: s
                    .unacknowledged_updates
                    .into_iter()
                    .map(|u| u.status)
                    .collect(),
            }
        }
        "UPDATE" => {
            let status = raw
                .update
                .ok_or_else(|| invalid("Expecting 'update' to be present"))?
                .status;
            let uuid = validate_update(&framework_id, &executor_id, &status)?;
            CallKind::Update {
                status: Box::new(status),
                uuid,
            }
        }
        "MESSAGE" => {
            let m = raw
                .message
                .ok_or_else(|| invalid("Expecting 'message' to be present"))?;
            let data = mesos::base64_decode(&m.data)
                .ok_or_else(|| CallError::Shape("Failed to base64-decode 'data'".into()))?;
            CallKind::Message { data }
        }
        "HEARTBEAT" => CallKind::Heartbeat,
        other => {
            return Err(CallError::Shape(format!(
                "Failed to find enum for '{other}'"
            )));
        }
    };
    Ok(Call {
        framework_id,
        executor_id,
        kind,
    })
}

/// Mesos' checks of an executor's update; the uuid's bytes when it passes.
fn validate_update(
    framework_id: &str,
    executor_id: &str,
    status: &TaskStatus,
) -> Result<Vec<u8>, CallError> {
    let uuid = status
        .uuid
        .as_deref()
        .ok_or_else(|| invalid("Expecting 'uuid' to be present"))?;
    let bytes = mesos::base64_decode(uuid)
        .filter(|b| b.len() == 16)
        .ok_or_else(|| invalid(format!("Invalid UUID: {uuid}")))?;
    if let Some(id) = &status.executor_id
        && id.value != executor_id
    {
        return Err(invalid(format!(
            "ExecutorID in Call: {executor_id} does not match ExecutorID in TaskStatus: {}",
            id.value
        )));
    }
    if status.source.as_deref() != Some("SOURCE_EXECUTOR") {
        return Err(invalid(format!(
            "Received Call from executor {executor_id} of framework {framework_id} \
             with invalid source, expecting 'SOURCE_EXECUTOR'"
        )));
    }
    if status.state == TaskState::TASK_STAGING {
        return Err(invalid(format!(
            "Received TASK_STAGING from executor {executor_id} of framework \
             {framework_id} which is not allowed"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(v: Json) -> Result<Call, CallError> {
        parse(v.to_string().as_bytes())
    }

    const UUID: &str = "AAECAwQFBgcICQoLDA0ODw==";

    fn update(status: Json) -> Json {
        json!({"type": "UPDATE", "framework_id": {"value": "f"},
               "executor_id": {"value": "e"}, "update": {"status": status}})
    }

    #[test]
    fn a_subscribe_after_a_restart_lists_what_was_not_acknowledged() {
        let c = call(json!({
            "type": "SUBSCRIBE", "framework_id": {"value": "f"}, "executor_id": {"value": "e"},
            "subscribe": {
                "unacknowledged_tasks": [{"name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": "a"}}],
                "unacknowledged_updates": [{"status": {"task_id": {"value": "t1"}, "state": "TASK_RUNNING",
                    "source": "SOURCE_EXECUTOR", "uuid": UUID}}]}
        }))
        .unwrap();
        assert_eq!(
            (c.framework_id.as_str(), c.executor_id.as_str()),
            ("f", "e")
        );
        let CallKind::Subscribe {
            unacknowledged_tasks,
            unacknowledged_updates,
        } = c.kind
        else {
            panic!("{c:?}");
        };
        assert_eq!(unacknowledged_tasks[0].task_id.value, "t1");
        assert_eq!(unacknowledged_updates[0].state, TaskState::TASK_RUNNING);
    }

    #[test]
    fn an_update_carries_its_uuid_bytes() {
        let c = call(update(
            json!({"task_id": {"value": "t"}, "state": "TASK_RUNNING",
            "source": "SOURCE_EXECUTOR", "uuid": UUID}),
        ))
        .unwrap();
        let CallKind::Update { uuid, status } = c.kind else {
            panic!()
        };
        assert_eq!(uuid, (0u8..16).collect::<Vec<_>>());
        assert_eq!(status.task_id.value, "t");
    }

    #[test]
    fn invalid_calls_get_mesos_messages() {
        let cases = [
            (
                json!({"framework_id": {"value": "f"}, "executor_id": {"value": "e"}}),
                "Failed to validate Executor::Call: Expecting 'type' to be present",
            ),
            (
                json!({"type": "SUBSCRIBE", "framework_id": {"value": "f"}}),
                "Failed to validate Executor::Call: Expecting 'executor_id' to be present",
            ),
            (
                json!({"type": "SUBSCRIBE", "executor_id": {"value": "e"}}),
                "Failed to validate Executor::Call: Expecting 'framework_id' to be present",
            ),
            (
                json!({"type": "SUBSCRIBE", "framework_id": {"value": "f"}, "executor_id": {"value": "e"}}),
                "Failed to validate Executor::Call: Expecting 'subscribe' to be present",
            ),
            (
                update(
                    json!({"task_id": {"value": "t"}, "state": "TASK_RUNNING", "source": "SOURCE_EXECUTOR"}),
                ),
                "Failed to validate Executor::Call: Expecting 'uuid' to be present",
            ),
            (
                update(json!({"task_id": {"value": "t"}, "state": "TASK_RUNNING", "uuid": UUID})),
                "Failed to validate Executor::Call: Received Call from executor e of framework f with invalid source, expecting 'SOURCE_EXECUTOR'",
            ),
            (
                update(
                    json!({"task_id": {"value": "t"}, "state": "TASK_STAGING", "source": "SOURCE_EXECUTOR", "uuid": UUID}),
                ),
                "Failed to validate Executor::Call: Received TASK_STAGING from executor e of framework f which is not allowed",
            ),
            (
                update(
                    json!({"task_id": {"value": "t"}, "state": "TASK_RUNNING", "source": "SOURCE_EXECUTOR",
                "uuid": UUID, "executor_id": {"value": "other"}}),
                ),
                "Failed to validate Executor::Call: ExecutorID in Call: e does not match ExecutorID in TaskStatus: other",
            ),
            (
                json!({"type": "LAUNCH", "framework_id": {"value": "f"}, "executor_id": {"value": "e"}}),
                "Failed to convert JSON into Call protobuf: Failed to find enum for 'LAUNCH'",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(call(body.clone()).unwrap_err().to_string(), want, "{body}");
        }
        assert!(matches!(parse(b"{"), Err(CallError::Json(_))));
    }

    #[test]
    fn a_message_is_decoded() {
        let c = call(json!({"type": "MESSAGE", "framework_id": {"value": "f"},
            "executor_id": {"value": "e"}, "message": {"data": "aGk="}}))
        .unwrap();
        assert_eq!(
            c.kind,
            CallKind::Message {
                data: b"hi".to_vec()
            }
        );
    }
}
