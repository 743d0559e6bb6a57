//! `agent::Call` parsed from a request body, once, with the messages of
//! Mesos' agent (`src/slave/http.cpp`, `src/slave/validation.cpp`):
//! `Failed to parse body into JSON: ...`, `Failed to convert JSON into
//! Call protobuf: ...`, `Failed to validate agent::Call: Expecting 'x' to
//! be present`. As stout reads JSON, nulls are unset, unknown fields are
//! ignored, and an unknown `type` name is dropped (so the call has no
//! type).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::mesos::bounded::{self, JsonLimits, ReadError};
use crate::operator::{GetMetricsCall, ListFiles, ReadFile, SetLoggingLevel};

/// Agent calls are small: no list needs more than this.
pub const LIMITS: JsonLimits = JsonLimits {
    max_depth: 32,
    max_values: 10_000,
    max_list_items: 1_000,
    lists: &[],
};

/// The container calls (nested containers, sessions, attach, standalone
/// containers): parsed and answered by their own module.
pub const CONTAINER_CALLS: &[&str] = &[
    "LAUNCH_NESTED_CONTAINER",
    "WAIT_NESTED_CONTAINER",
    "KILL_NESTED_CONTAINER",
    "REMOVE_NESTED_CONTAINER",
    "LAUNCH_NESTED_CONTAINER_SESSION",
    "ATTACH_CONTAINER_INPUT",
    "ATTACH_CONTAINER_OUTPUT",
    "LAUNCH_CONTAINER",
    "WAIT_CONTAINER",
    "KILL_CONTAINER",
    "REMOVE_CONTAINER",
];

/// Calls Mesos knows that this agent does not offer (no resource
/// providers, no container images).
pub const UNSUPPORTED_CALLS: &[&str] = &[
    "ADD_RESOURCE_PROVIDER_CONFIG",
    "UPDATE_RESOURCE_PROVIDER_CONFIG",
    "REMOVE_RESOURCE_PROVIDER_CONFIG",
    "MARK_RESOURCE_PROVIDER_GONE",
    "PRUNE_IMAGES",
];

/// `get_containers`: whether nested and standalone containers are listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetContainersCall {
    #[serde(default)]
    pub show_nested: bool,
    #[serde(default)]
    pub show_standalone: bool,
}

/// One call to the agent's operator API.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `UNKNOWN`: Mesos answers 501.
    Unknown,
    GetHealth,
    GetFlags,
    GetVersion,
    GetMetrics(GetMetricsCall),
    GetLoggingLevel,
    SetLoggingLevel(SetLoggingLevel),
    ListFiles(ListFiles),
    ReadFile(ReadFile),
    GetState,
    GetContainers(GetContainersCall),
    GetFrameworks,
    GetExecutors,
    GetOperations,
    GetTasks,
    GetAgent,
    GetResourceProviders,
    /// One of [`CONTAINER_CALLS`], by its type name.
    Container(&'static str),
    /// One of [`UNSUPPORTED_CALLS`], by its type name.
    Unsupported(&'static str),
}

/// Why a body is not a call; the text is Mesos' 400 reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("Failed to parse body into JSON: {0}")]
    Json(String),
    #[error("Failed to convert JSON into Call protobuf: {0}")]
    Convert(String),
    #[error("Failed to validate agent::Call: {0}")]
    Validate(String),
}

impl Call {
    /// Reads a JSON request body.
    pub fn parse(body: &[u8]) -> Result<Call, CallError> {
        let text = bounded::prepare(body, &LIMITS).map_err(|e| match e {
            ReadError::Syntax(e) => CallError::Json(e.to_string()),
            ReadError::Limit(e) => CallError::Convert(e.to_string()),
            ReadError::Invalid(e) => CallError::Convert(e),
        })?;
        let value: Json =
            serde_json::from_slice(&text).map_err(|e| CallError::Json(e.to_string()))?;
        let Json::Object(mut fields) = value else {
            return Err(CallError::Convert("Expecting a JSON object".into()));
        };
        let kind = match fields.get("type") {
            None => None,
            Some(Json::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(CallError::Convert(format!(
                    "Failed to find enum for '{other}'"
                )));
            }
        };
        let mut body = |name: &str| fields.remove(name);
        let missing = || CallError::Validate("Expecting 'type' to be present".into());
        let call = match kind.as_deref().ok_or_else(missing)? {
            "UNKNOWN" => Call::Unknown,
            "GET_HEALTH" => Call::GetHealth,
            "GET_FLAGS" => Call::GetFlags,
            "GET_VERSION" => Call::GetVersion,
            "GET_METRICS" => Call::GetMetrics(required(body("get_metrics"), "get_metrics")?),
            "GET_LOGGING_LEVEL" => Call::GetLoggingLevel,
            "SET_LOGGING_LEVEL" => {
                Call::SetLoggingLevel(required(body("set_logging_level"), "set_logging_level")?)
            }
            "LIST_FILES" => Call::ListFiles(required(body("list_files"), "list_files")?),
            "READ_FILE" => Call::ReadFile(required(body("read_file"), "read_file")?),
            "GET_STATE" => Call::GetState,
            "GET_CONTAINERS" => Call::GetContainers(optional(body("get_containers"))?),
            "GET_FRAMEWORKS" => Call::GetFrameworks,
            "GET_EXECUTORS" => Call::GetExecutors,
            "GET_OPERATIONS" => Call::GetOperations,
            "GET_TASKS" => Call::GetTasks,
            "GET_AGENT" => Call::GetAgent,
            "GET_RESOURCE_PROVIDERS" => Call::GetResourceProviders,
            other => {
                if let Some(c) = CONTAINER_CALLS.iter().find(|c| **c == other) {
                    Call::Container(c)
                } else if let Some(u) = UNSUPPORTED_CALLS.iter().find(|u| **u == other) {
                    Call::Unsupported(u)
                } else {
                    // stout drops an unknown name of an optional enum.
                    return Err(missing());
                }
            }
        };
        Ok(call)
    }

    /// The `type` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Call::Unknown => "UNKNOWN",
            Call::GetHealth => "GET_HEALTH",
            Call::GetFlags => "GET_FLAGS",
            Call::GetVersion => "GET_VERSION",
            Call::GetMetrics(_) => "GET_METRICS",
            Call::GetLoggingLevel => "GET_LOGGING_LEVEL",
            Call::SetLoggingLevel(_) => "SET_LOGGING_LEVEL",
            Call::ListFiles(_) => "LIST_FILES",
            Call::ReadFile(_) => "READ_FILE",
            Call::GetState => "GET_STATE",
            Call::GetContainers(_) => "GET_CONTAINERS",
            Call::GetFrameworks => "GET_FRAMEWORKS",
            Call::GetExecutors => "GET_EXECUTORS",
            Call::GetOperations => "GET_OPERATIONS",
            Call::GetTasks => "GET_TASKS",
            Call::GetAgent => "GET_AGENT",
            Call::GetResourceProviders => "GET_RESOURCE_PROVIDERS",
            Call::Container(kind) | Call::Unsupported(kind) => kind,
        }
    }
}

/// A body the call type needs (Mesos' validation message without it).
fn required<T: DeserializeOwned>(body: Option<Json>, name: &str) -> Result<T, CallError> {
    let body =
        body.ok_or_else(|| CallError::Validate(format!("Expecting '{name}' to be present")))?;
    serde_json::from_value(body).map_err(|e| CallError::Convert(format!("{name}: {e}")))
}

/// A body the call may leave out.
fn optional<T: DeserializeOwned + Default>(body: Option<Json>) -> Result<T, CallError> {
    body.map_or_else(
        || Ok(T::default()),
        |b| serde_json::from_value(b).map_err(|e| CallError::Convert(e.to_string())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Call, String> {
        Call::parse(text.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn calls_parse_with_their_bodies() {
        assert_eq!(parse(r#"{"type":"GET_HEALTH"}"#), Ok(Call::GetHealth));
        assert_eq!(
            parse(r#"{"type":"GET_TASKS","get_metrics":null,"extra":1}"#),
            Ok(Call::GetTasks)
        );
        assert_eq!(
            parse(r#"{"type":"READ_FILE","read_file":{"path":"/p","offset":"3"}}"#),
            Ok(Call::ReadFile(ReadFile {
                path: "/p".into(),
                offset: 3,
                length: None
            }))
        );
        assert_eq!(
            parse(r#"{"type":"GET_CONTAINERS","get_containers":{"show_nested":true}}"#),
            Ok(Call::GetContainers(GetContainersCall {
                show_nested: true,
                show_standalone: false
            }))
        );
        assert_eq!(
            parse(r#"{"type":"GET_CONTAINERS"}"#),
            Ok(Call::GetContainers(GetContainersCall::default()))
        );
        let set = parse(
            r#"{"type":"SET_LOGGING_LEVEL","set_logging_level":{"level":2,"duration":{"nanoseconds":1000}}}"#,
        )
        .unwrap();
        assert_eq!(set.kind(), "SET_LOGGING_LEVEL");
        assert_eq!(
            parse(r#"{"type":"ATTACH_CONTAINER_OUTPUT","attach_container_output":{}}"#),
            Ok(Call::Container("ATTACH_CONTAINER_OUTPUT"))
        );
        assert_eq!(
            parse(r#"{"type":"PRUNE_IMAGES"}"#),
            Ok(Call::Unsupported("PRUNE_IMAGES"))
        );
        assert_eq!(parse(r#"{"type":"UNKNOWN"}"#), Ok(Call::Unknown));
    }

    #[test]
    fn bad_bodies_get_mesos_messages() {
        let e = parse("{not json").unwrap_err();
        assert!(e.starts_with("Failed to parse body into JSON: "), "{e}");
        assert_eq!(
            parse("[1]").unwrap_err(),
            "Failed to convert JSON into Call protobuf: Expecting a JSON object"
        );
        for no_type in [r#"{}"#, r#"{"type":null}"#, r#"{"type":"GET_NOTHING"}"#] {
            assert_eq!(
                parse(no_type).unwrap_err(),
                "Failed to validate agent::Call: Expecting 'type' to be present"
            );
        }
        assert_eq!(
            parse(r#"{"type":"READ_FILE"}"#).unwrap_err(),
            "Failed to validate agent::Call: Expecting 'read_file' to be present"
        );
        assert_eq!(
            parse(r#"{"type":"GET_METRICS"}"#).unwrap_err(),
            "Failed to validate agent::Call: Expecting 'get_metrics' to be present"
        );
        let e = parse(r#"{"type":"READ_FILE","read_file":{"offset":0}}"#).unwrap_err();
        assert!(
            e.starts_with(
                "Failed to convert JSON into Call protobuf: read_file: missing field `path`"
            ),
            "{e}"
        );
        let e = parse(r#"{"type":7}"#).unwrap_err();
        assert!(
            e.starts_with("Failed to convert JSON into Call protobuf"),
            "{e}"
        );
    }
}
