//! `LIST_FILES` and `READ_FILE` on the master's `/api/v1`: an agent's
//! sandbox read through the master, so an operator never needs to reach
//! agents directly (`docs/design/0011-files-and-volumes.md`).
//!
//! Paths are `/agents/<agent-id>/frameworks/<framework-id>[/...]`; what
//! follows the agent id is the agent's own virtual sandbox path (its
//! `/files` API: `/frameworks/<fw>/executors/<ex>/runs/latest/stdout`).
//! The caller is authorized as for a sandbox grant (`access_sandboxes`
//! for the framework's user, `auth.rs`); the master then asks the agent's
//! port, over TLS with its master certificate and a grant it signs for
//! that one framework when the cluster has TLS, over plain HTTP
//! otherwise. The agent confines the path to its sandboxes.

use axum::http::StatusCode;
use axum::response::Response;
use keel_api::operator::files::{self as wire, mode_bits};
use keel_api::operator::{FileInfo, ListFilesAnswer, ReadFileAnswer, Response as Answer};
use keel_client::{AgentFiles, ClientError, FileEntry};
use keel_pki::Grant;

use super::error::ApiError;
use super::operator_body::{RawCall, typed_body};
use super::{json, plain};
use crate::auth::Caller;
use crate::core::{Master, unix_now};

/// Mesos reads at most 16 pages per READ_FILE.
pub const MAX_READ: u64 = 16 * 4096;
/// How long the grant the master signs for one call lasts.
const GRANT_SECS: i64 = 60;

/// A sandbox path on the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPath {
    pub agent_id: String,
    pub framework_id: String,
    /// The agent's virtual path: `/frameworks/<fw>[/...]`.
    pub agent_path: String,
}

impl SandboxPath {
    /// The master's path for one of the agent's paths.
    fn on_master(&self, agent_path: &str) -> String {
        format!("/agents/{}{agent_path}", self.agent_id)
    }
}

/// A files call, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilesCall {
    List(SandboxPath),
    Read {
        path: SandboxPath,
        offset: u64,
        /// At most [`MAX_READ`].
        length: u64,
    },
}

impl FilesCall {
    pub fn path(&self) -> &SandboxPath {
        match self {
            FilesCall::List(p) | FilesCall::Read { path: p, .. } => p,
        }
    }
}

fn bad(reason: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, reason)
}

/// Reads `/agents/<agent-id>/frameworks/<framework-id>[/...]`: `..` is
/// refused (400), a path outside that scheme is not found (404).
pub fn parse_path(text: &str) -> Result<SandboxPath, ApiError> {
    if !text.starts_with('/') || text.contains('\0') {
        return Err(bad(format!("path {text:?} is not absolute")));
    }
    let parts: Vec<&str> = text.split('/').filter(|p| !p.is_empty()).collect();
    if parts.contains(&"..") {
        return Err(bad(format!("path {text:?} must not contain '..'")));
    }
    let parts: Vec<&str> = parts.into_iter().filter(|p| *p != ".").collect();
    match parts.as_slice() {
        ["agents", agent, "frameworks", fw, rest @ ..] => {
            let mut agent_path = format!("/frameworks/{fw}");
            for p in rest {
                agent_path.push('/');
                agent_path.push_str(p);
            }
            Ok(SandboxPath {
                agent_id: agent.to_string(),
                framework_id: fw.to_string(),
                agent_path,
            })
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no such path {text:?}: this master serves agents' sandboxes as \
                 /agents/<agent-id>/frameworks/<framework-id>/..."
            ),
        )),
    }
}

/// `list_files{path}` or `read_file{path, offset, length?}`.
pub fn parse(call: &RawCall<'_>, kind: &str) -> Result<FilesCall, ApiError> {
    if kind == "LIST_FILES" {
        let b: wire::ListFiles = typed_body(call, "list_files")?;
        return Ok(FilesCall::List(parse_path(&b.path)?));
    }
    let b: wire::ReadFile = typed_body(call, "read_file")?;
    if b.offset < 0 {
        return Err(bad("Negative offset provided"));
    }
    let length = match b.length {
        Some(l) if l < 0 => return Err(bad("Negative length provided")),
        Some(l) => (l as u64).min(MAX_READ),
        None => MAX_READ,
    };
    Ok(FilesCall::Read {
        path: parse_path(&b.path)?,
        offset: b.offset as u64,
        length,
    })
}

/// Answers an authorized files call from the agent.
pub async fn answer(master: &Master, caller: &Caller, call: &FilesCall) -> Response {
    match ask_agent(master, caller, call).await {
        Ok(answer) => json(StatusCode::OK, &answer),
        Err(e) => plain(e.status, e.reason),
    }
}

async fn ask_agent(master: &Master, caller: &Caller, call: &FilesCall) -> Result<Answer, ApiError> {
    let path = call.path();
    let agent_id = &path.agent_id;
    let address = master.agent_address(agent_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Agent '{agent_id}' not found"),
        )
    })?;
    let config = master.config();
    let grant = match &config.grants {
        Some(signer) => {
            let grant = Grant {
                agent_id: agent_id.clone(),
                frameworks: vec![path.framework_id.clone()],
                principal: caller.name().map(str::to_string),
                expires_at: unix_now() as i64 + GRANT_SECS,
            };
            Some(
                signer
                    .sign(&grant)
                    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
            )
        }
        None => None,
    };
    let files = AgentFiles::new(config.agent_tls.as_deref(), agent_id, &address)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let grant = grant.as_deref();
    let relayed = |e: ClientError| agent_error(agent_id, e);
    Ok(match call {
        FilesCall::List(p) => {
            let entries = files.browse(&p.agent_path, grant).await.map_err(relayed)?;
            Answer::ListFiles(ListFilesAnswer {
                file_infos: entries.iter().map(|e| file_info(p, e)).collect(),
            })
        }
        FilesCall::Read {
            path,
            offset,
            length,
        } => {
            let read = files
                .read_bytes(&path.agent_path, *offset, *length, grant)
                .await
                .map_err(relayed)?;
            Answer::ReadFile(ReadFileAnswer {
                size: read.size,
                data: keel_api::mesos::base64_encode(&read.data),
            })
        }
    })
}

/// The agent's refusal as the caller's: its 400, 403 and 404 as they
/// are; anything else (the agent unreachable, refusing the master, or
/// failing) is 502 with the reason.
fn agent_error(agent_id: &str, e: ClientError) -> ApiError {
    match e.status() {
        Some(s @ (400 | 403 | 404 | 416)) => ApiError::new(
            StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_REQUEST),
            format!("agent {agent_id}: {}", reason_of(&e)),
        ),
        _ => ApiError::new(StatusCode::BAD_GATEWAY, format!("agent {agent_id}: {e}")),
    }
}

fn reason_of(e: &ClientError) -> String {
    match e {
        ClientError::Status { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// One agent listing entry as Mesos' `FileInfo`, with the master's path.
fn file_info(asked: &SandboxPath, e: &FileEntry) -> FileInfo {
    FileInfo {
        path: asked.on_master(&e.path),
        nlink: i32::try_from(e.nlink).ok(),
        size: Some(e.size),
        mtime: Some(keel_api::mesos::Nanos {
            nanoseconds: (e.mtime * 1e9) as i64,
        }),
        mode: mode_bits(&e.mode),
        uid: Some(e.uid.clone()),
        gid: Some(e.gid.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_paths_name_an_agent_and_a_framework() {
        let p =
            parse_path("/agents/m-S0/frameworks/m-0001/executors/t/runs/latest/stdout").unwrap();
        assert_eq!(p.agent_id, "m-S0");
        assert_eq!(p.framework_id, "m-0001");
        assert_eq!(
            p.agent_path,
            "/frameworks/m-0001/executors/t/runs/latest/stdout"
        );
        assert_eq!(
            p.on_master(&p.agent_path),
            "/agents/m-S0/frameworks/m-0001/executors/t/runs/latest/stdout"
        );
        let p = parse_path("//agents/a/./frameworks/f/").unwrap();
        assert_eq!(p.agent_path, "/frameworks/f");
        for (path, status) in [
            ("/agents/a/frameworks/f/../../g", StatusCode::BAD_REQUEST),
            ("/agents/a/frameworks/../x", StatusCode::BAD_REQUEST),
            ("agents/a/frameworks/f", StatusCode::BAD_REQUEST),
            ("/master/log", StatusCode::NOT_FOUND),
            ("/agents/a", StatusCode::NOT_FOUND),
            ("/agents/a/frameworks", StatusCode::NOT_FOUND),
            ("/agents/a/slaves/f", StatusCode::NOT_FOUND),
        ] {
            assert_eq!(parse_path(path).unwrap_err().status, status, "{path}");
        }
    }

    #[test]
    fn agent_refusals_keep_their_status() {
        let status = |s: u16| {
            agent_error(
                "a",
                ClientError::Status {
                    method: "GET".into(),
                    url: "u".into(),
                    status: s,
                    reason: "r".into(),
                },
            )
            .status
        };
        assert_eq!(status(404), StatusCode::NOT_FOUND);
        assert_eq!(status(400), StatusCode::BAD_REQUEST);
        assert_eq!(status(401), StatusCode::BAD_GATEWAY);
        assert_eq!(status(500), StatusCode::BAD_GATEWAY);
    }
}
