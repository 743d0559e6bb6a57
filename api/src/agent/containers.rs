//! The nested-container calls of the agent's v1 operator API
//! (`POST /api/v1` on an agent), typed once: LAUNCH_NESTED_CONTAINER_SESSION,
//! ATTACH_CONTAINER_INPUT / ATTACH_CONTAINER_OUTPUT, LAUNCH/WAIT/KILL/REMOVE
//! _CONTAINER and their deprecated `_NESTED_` forms, with Mesos' validation
//! messages (`src/slave/validation.cpp`, the I/O switchboard's), and the
//! `ProcessIO` records streamed both ways (`include/mesos/v1/agent/agent.proto`).

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::mesos::{CommandInfo, ContainerInfo};

mod encode;
mod process_io;
pub use encode::call_json;
pub use process_io::{
    InputRecord, ProcessIo, ProcessIoData, Stream, attach_input_first, attach_input_record,
    parse_input_record,
};

/// The longest container id value (Mesos' `MAX_CONTAINER_ID_LENGTH`).
pub const MAX_CONTAINER_ID_LENGTH: usize = 242;

/// The longest record an ATTACH_CONTAINER_INPUT stream may carry: stdin
/// arrives in pieces, and a bigger record is a peer to refuse.
pub const MAX_INPUT_RECORD: usize = 1 << 20;

/// `ContainerID`: a value and, for a nested container, its parent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContainerId {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<ContainerId>>,
}

impl ContainerId {
    pub fn new(value: impl Into<String>) -> Self {
        ContainerId {
            value: value.into(),
            parent: None,
        }
    }

    /// `value` nested under `parent`.
    pub fn nested(parent: ContainerId, value: impl Into<String>) -> Self {
        ContainerId {
            value: value.into(),
            parent: Some(Box::new(parent)),
        }
    }

    /// The top of its tree (itself for a top-level container).
    pub fn root(&self) -> &ContainerId {
        match &self.parent {
            Some(p) => p.root(),
            None => self,
        }
    }

    /// Mesos' rules (`validateContainerId`), with its messages.
    pub fn validate(&self) -> Result<(), String> {
        let id = &self.value;
        if id.is_empty() {
            return Err("ID must not be empty".into());
        }
        if id.len() > 255 {
            return Err("ID must not be greater than 255 characters".into());
        }
        if id == "." || id == ".." {
            return Err(format!("'{id}' is disallowed"));
        }
        if id.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
            return Err(format!("'{id}' contains invalid characters"));
        }
        if id.len() > MAX_CONTAINER_ID_LENGTH {
            return Err(format!(
                "'ContainerID.value' '{id}' exceeds the maximum length ({MAX_CONTAINER_ID_LENGTH})"
            ));
        }
        if id.contains(['.', ' ']) {
            return Err(format!(
                "'ContainerID.value' '{id}' contains invalid characters"
            ));
        }
        if let Some(p) = &self.parent {
            p.validate()
                .map_err(|e| format!("'ContainerID.parent' is invalid: {e}"))?;
        }
        Ok(())
    }
}

/// As Mesos prints it: `<root>.<child>.<grandchild>`.
impl std::fmt::Display for ContainerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = &self.parent {
            write!(f, "{p}.")?;
        }
        f.write_str(&self.value)
    }
}

/// `TTYInfo.WindowSize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSize {
    pub rows: u32,
    pub columns: u32,
}

/// `TTYInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TtyInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_size: Option<WindowSize>,
}

/// What a launch call asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub container_id: ContainerId,
    pub command: Option<CommandInfo>,
    pub container: Option<ContainerInfo>,
    /// LAUNCH_CONTAINER's resources (a standalone container's), as sent.
    pub resources: Vec<Json>,
}

impl Launch {
    /// `container.tty_info`, when the container wants a terminal.
    pub fn tty(&self) -> Option<TtyInfo> {
        let info = self.container.as_ref()?.tty_info.as_ref()?;
        Some(serde_json::from_value(info.clone()).unwrap_or_default())
    }
}

/// Which form of a call was used: the deprecated `*_NESTED_CONTAINER` or
/// the `*_CONTAINER` one (the answer to a wait says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Nested,
    Container,
}

/// One typed nested-container call (ATTACH_CONTAINER_INPUT is the first
/// record of a stream: [`AgentCall::AttachInput`]).
#[derive(Debug, Clone, PartialEq)]
pub enum ContainerCall {
    LaunchSession(Launch),
    Launch(Launch, Form),
    Wait(ContainerId, Form),
    /// Signal number (SIGKILL when unset).
    Kill(ContainerId, i32, Form),
    Remove(ContainerId, Form),
    AttachOutput(ContainerId),
}

impl ContainerCall {
    /// Whether the answer is a stream of `ProcessIO` records.
    pub fn streams(&self) -> bool {
        matches!(
            self,
            ContainerCall::LaunchSession(_) | ContainerCall::AttachOutput(_)
        )
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            ContainerCall::LaunchSession(_) => "LAUNCH_NESTED_CONTAINER_SESSION",
            ContainerCall::Launch(_, Form::Nested) => "LAUNCH_NESTED_CONTAINER",
            ContainerCall::Launch(_, Form::Container) => "LAUNCH_CONTAINER",
            ContainerCall::Wait(_, Form::Nested) => "WAIT_NESTED_CONTAINER",
            ContainerCall::Wait(_, Form::Container) => "WAIT_CONTAINER",
            ContainerCall::Kill(_, _, Form::Nested) => "KILL_NESTED_CONTAINER",
            ContainerCall::Kill(_, _, Form::Container) => "KILL_CONTAINER",
            ContainerCall::Remove(_, Form::Nested) => "REMOVE_NESTED_CONTAINER",
            ContainerCall::Remove(_, Form::Container) => "REMOVE_CONTAINER",
            ContainerCall::AttachOutput(_) => "ATTACH_CONTAINER_OUTPUT",
        }
    }

    /// The container the call is about.
    pub fn container_id(&self) -> &ContainerId {
        match self {
            ContainerCall::LaunchSession(l) | ContainerCall::Launch(l, _) => &l.container_id,
            ContainerCall::Wait(id, _)
            | ContainerCall::Kill(id, _, _)
            | ContainerCall::Remove(id, _)
            | ContainerCall::AttachOutput(id) => id,
        }
    }
}

/// An agent `Call` as far as this module knows it.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentCall {
    Container(Box<ContainerCall>),
    /// The first record of an ATTACH_CONTAINER_INPUT stream.
    AttachInput(ContainerId),
    /// Another call type (its name), for another handler.
    Other(String),
}

/// Why a call is refused (the text is Mesos').
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerCallError {
    #[error("Failed to parse body into JSON: {0}")]
    Json(String),
    #[error("Failed to convert JSON into Call protobuf: {0}")]
    Convert(String),
    #[error("Failed to validate agent::Call: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct RawCall {
    #[serde(rename = "type")]
    kind: Option<String>,
    launch_nested_container: Option<RawLaunch>,
    launch_nested_container_session: Option<RawLaunch>,
    launch_container: Option<RawLaunch>,
    wait_nested_container: Option<RawId>,
    wait_container: Option<RawId>,
    kill_nested_container: Option<RawKill>,
    kill_container: Option<RawKill>,
    remove_nested_container: Option<RawId>,
    remove_container: Option<RawId>,
    attach_container_output: Option<RawId>,
    attach_container_input: Option<RawAttachInput>,
}

#[derive(Deserialize)]
struct RawLaunch {
    container_id: Option<ContainerId>,
    command: Option<CommandInfo>,
    container: Option<ContainerInfo>,
    #[serde(default)]
    resources: Vec<Json>,
}

#[derive(Deserialize)]
struct RawId {
    container_id: Option<ContainerId>,
}

#[derive(Deserialize)]
struct RawKill {
    container_id: Option<ContainerId>,
    signal: Option<i32>,
}

#[derive(Deserialize)]
struct RawAttachInput {
    #[serde(rename = "type")]
    kind: Option<String>,
    container_id: Option<ContainerId>,
}

const SIGKILL: i32 = 9;

fn present<T>(v: Option<T>, field: &str) -> Result<T, ContainerCallError> {
    v.ok_or_else(|| ContainerCallError::Invalid(format!("Expecting '{field}' to be present")))
}

fn required(id: Option<ContainerId>, field: &str) -> Result<ContainerId, ContainerCallError> {
    id.ok_or_else(|| {
        ContainerCallError::Convert(format!("Missing required fields: {field}.container_id"))
    })
}

fn checked(id: ContainerId, field: &str) -> Result<ContainerId, ContainerCallError> {
    id.validate().map_err(|e| {
        ContainerCallError::Invalid(format!("'{field}.container_id' is invalid: {e}"))
    })?;
    Ok(id)
}

/// `id` must be nested (the `_NESTED_` calls and sessions).
fn with_parent(id: ContainerId, field: &str) -> Result<ContainerId, ContainerCallError> {
    if id.parent.is_none() {
        return Err(ContainerCallError::Invalid(format!(
            "Expecting '{field}.container_id.parent' to be present"
        )));
    }
    Ok(id)
}

fn launch(raw: RawLaunch, field: &str, nested: bool) -> Result<Launch, ContainerCallError> {
    let id = checked(required(raw.container_id, field)?, field)?;
    let id = if nested { with_parent(id, field)? } else { id };
    if let Some(c) = &raw.container
        && c.kind.as_deref().is_some_and(|k| k != "MESOS")
    {
        return Err(ContainerCallError::Invalid(format!(
            "'{field}.container' is invalid: only MESOS containers can be nested"
        )));
    }
    Ok(Launch {
        container_id: id,
        command: raw.command,
        container: raw.container,
        resources: raw.resources,
    })
}

fn id_of(raw: Option<RawId>, field: &str, nested: bool) -> Result<ContainerId, ContainerCallError> {
    let id = checked(required(present(raw, field)?.container_id, field)?, field)?;
    if nested {
        with_parent(id, field)
    } else {
        Ok(id)
    }
}

fn kill(
    raw: Option<RawKill>,
    field: &str,
    form: Form,
) -> Result<ContainerCall, ContainerCallError> {
    let raw = present(raw, field)?;
    let id = checked(required(raw.container_id, field)?, field)?;
    let id = if form == Form::Nested {
        with_parent(id, field)?
    } else {
        id
    };
    Ok(ContainerCall::Kill(id, raw.signal.unwrap_or(SIGKILL), form))
}

/// Parses one agent `Call` (a request body, or the first record of an
/// ATTACH_CONTAINER_INPUT stream).
pub fn parse_call(body: &[u8]) -> Result<AgentCall, ContainerCallError> {
    let json: Json =
        serde_json::from_slice(body).map_err(|e| ContainerCallError::Json(e.to_string()))?;
    let raw: RawCall =
        serde_json::from_value(json).map_err(|e| ContainerCallError::Convert(e.to_string()))?;
    let kind = present(raw.kind, "type")?;
    use ContainerCall as C;
    let call = match kind.as_str() {
        "LAUNCH_NESTED_CONTAINER_SESSION" => {
            let f = "launch_nested_container_session";
            C::LaunchSession(launch(
                present(raw.launch_nested_container_session, f)?,
                f,
                true,
            )?)
        }
        "LAUNCH_NESTED_CONTAINER" => {
            let f = "launch_nested_container";
            C::Launch(
                launch(present(raw.launch_nested_container, f)?, f, true)?,
                Form::Nested,
            )
        }
        "LAUNCH_CONTAINER" => {
            let f = "launch_container";
            C::Launch(
                launch(present(raw.launch_container, f)?, f, false)?,
                Form::Container,
            )
        }
        "WAIT_NESTED_CONTAINER" => {
            let f = "wait_nested_container";
            C::Wait(id_of(raw.wait_nested_container, f, true)?, Form::Nested)
        }
        "WAIT_CONTAINER" => C::Wait(
            id_of(raw.wait_container, "wait_container", false)?,
            Form::Container,
        ),
        "KILL_NESTED_CONTAINER" => kill(
            raw.kill_nested_container,
            "kill_nested_container",
            Form::Nested,
        )?,
        "KILL_CONTAINER" => kill(raw.kill_container, "kill_container", Form::Container)?,
        "REMOVE_NESTED_CONTAINER" => {
            let f = "remove_nested_container";
            C::Remove(id_of(raw.remove_nested_container, f, true)?, Form::Nested)
        }
        "REMOVE_CONTAINER" => C::Remove(
            id_of(raw.remove_container, "remove_container", false)?,
            Form::Container,
        ),
        "ATTACH_CONTAINER_OUTPUT" => C::AttachOutput(id_of(
            raw.attach_container_output,
            "attach_container_output",
            false,
        )?),
        "ATTACH_CONTAINER_INPUT" => {
            let f = "attach_container_input";
            let input = present(raw.attach_container_input, f)?;
            let kind = present(input.kind, "attach_container_input.type")?;
            return match kind.as_str() {
                "CONTAINER_ID" => Ok(AgentCall::AttachInput(checked(
                    required(input.container_id, f)?,
                    f,
                )?)),
                "PROCESS_IO" => Err(ContainerCallError::Invalid(
                    "Expecting 'attach_container_input.type' to be CONTAINER_ID".into(),
                )),
                _ => Err(ContainerCallError::Invalid(
                    "'attach_container_input.type' is unknown".into(),
                )),
            };
        }
        other => return Ok(AgentCall::Other(other.to_string())),
    };
    Ok(AgentCall::Container(Box::new(call)))
}

/// `Response.WaitContainer` / `WaitNestedContainer`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WaitAnswer {
    /// The wait(2) status of the container's first process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl WaitAnswer {
    /// The exit code a shell would report (128 + signal when killed).
    pub fn code(&self) -> Option<i32> {
        let s = self.exit_status?;
        Some(if s & 0x7f == 0 {
            (s >> 8) & 0xff
        } else {
            128 + (s & 0x7f)
        })
    }
}

/// The whole answer to a wait call, as the form asked for.
pub fn wait_response(form: Form, answer: &WaitAnswer) -> Json {
    match form {
        Form::Nested => serde_json::json!({
            "type": "WAIT_NESTED_CONTAINER", "wait_nested_container": answer,
        }),
        Form::Container => serde_json::json!({
            "type": "WAIT_CONTAINER", "wait_container": answer,
        }),
    }
}

/// Reads a wait answer (either form) back.
pub fn parse_wait_response(body: &[u8]) -> Option<WaitAnswer> {
    let json: Json = serde_json::from_slice(body).ok()?;
    let inner = json
        .get("wait_container")
        .or_else(|| json.get("wait_nested_container"))?;
    serde_json::from_value(inner.clone()).ok()
}

/// Keel's lookup of a task's container (`GET
/// /api/keel/v1/tasks/<framework>/<task>/container` on an agent, and
/// through the master): Mesos clients read the id from the task's
/// `container_status` instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskContainer {
    pub container_id: ContainerId,
}

#[cfg(test)]
mod tests;
