//! `/files/browse`, `/files/read`, `/files/download`: the query is parsed
//! into one [`FilesCall`], then answered from [`Sandboxes`].
//!
//! - `browse?path=P`: JSON array of `FileInfo` (a file lists itself).
//! - `read?path=P&offset=O&length=L`: `{"data": "...", "offset": O}`;
//!   `offset=-1` answers the file's size as `offset` with empty data; reads
//!   are capped at 16 pages (64 KiB) as Mesos does, and never end inside a
//!   UTF-8 character (the reader advances by the bytes of `data`).
//! - `download?path=P`: the file's bytes as an attachment, streamed.
//!
//! Each call is within the request's [`Access`] (`crate::access`): a
//! path outside it is 403 with the reason.
//!
//! Errors: 400 for a bad query or reading a directory, 404 for a path that
//! does not exist, is outside the sandboxes or goes through a symlink, 403
//! for a FIFO, socket, device or hard-linked file inside one, each with a
//! plain-text reason.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::{FilesError, Opened, Sandboxes, utf8_prefix};
use crate::access::{Access, AccessError};

/// Mesos reads at most 16 pages per request.
pub const MAX_READ: u64 = 16 * 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilesCall {
    Browse {
        path: String,
    },
    Read {
        path: String,
        /// `None`: from the start; `Some(-1)`: only the size.
        offset: Option<i64>,
        length: Option<i64>,
    },
    Download {
        path: String,
    },
}

fn number(q: &HashMap<String, String>, name: &str) -> Result<Option<i64>, FilesError> {
    q.get(name)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|e| FilesError::BadRequest(format!("Failed to parse {name}: {e}")))
        })
        .transpose()
}

impl FilesCall {
    /// The path the call names.
    pub fn path(&self) -> &str {
        match self {
            FilesCall::Browse { path }
            | FilesCall::Read { path, .. }
            | FilesCall::Download { path } => path,
        }
    }

    /// `endpoint` is `browse`, `read` or `download`.
    pub fn parse(endpoint: &str, q: &HashMap<String, String>) -> Result<Self, FilesError> {
        let path = q
            .get("path")
            .cloned()
            .ok_or_else(|| FilesError::BadRequest("Expecting 'path=value' in query".into()))?;
        match endpoint {
            "browse" => Ok(FilesCall::Browse { path }),
            "download" => Ok(FilesCall::Download { path }),
            "read" => {
                let offset = number(q, "offset")?;
                let length = number(q, "length")?;
                if offset.is_some_and(|o| o < -1) {
                    return Err(FilesError::BadRequest("Negative offset provided".into()));
                }
                if length.is_some_and(|l| l < -1) {
                    return Err(FilesError::BadRequest("Negative length provided".into()));
                }
                Ok(FilesCall::Read {
                    path,
                    offset,
                    length,
                })
            }
            other => Err(FilesError::BadRequest(format!("unknown endpoint {other}"))),
        }
    }
}

/// What the handlers need: the sandbox tree and this agent's id (for
/// virtual paths), which is known once the agent registered.
#[derive(Clone)]
pub struct FilesView {
    pub sandboxes: Sandboxes,
    pub agent_id: Arc<dyn Fn() -> Option<String> + Send + Sync>,
}

pub fn router(view: FilesView) -> Router {
    Router::new()
        .route("/files/browse", get(browse))
        .route("/files/read", get(read))
        .route("/files/download", get(download))
        .with_state(view)
}

fn error(e: FilesError) -> Response {
    let status = match e {
        FilesError::BadRequest(_) => StatusCode::BAD_REQUEST,
        FilesError::NotFound(_) => StatusCode::NOT_FOUND,
        FilesError::Refused { .. } => StatusCode::FORBIDDEN,
        FilesError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, e.to_string()).into_response()
}

fn json_response(body: serde_json::Value) -> Response {
    let mut resp = (StatusCode::OK, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Answers `endpoint`'s call within `access` (the port's middleware
/// decides it; a router without one serves nothing).
async fn answer(
    view: FilesView,
    access: Option<Extension<Access>>,
    endpoint: &'static str,
    q: HashMap<String, String>,
) -> Response {
    let Some(Extension(access)) = access else {
        return crate::access::refusal(&AccessError::Unauthenticated);
    };
    let call = match FilesCall::parse(endpoint, &q) {
        Ok(c) => c,
        Err(e) => return error(e),
    };
    let agent_id = (view.agent_id)();
    // File system work off the async threads.
    let result = tokio::task::spawn_blocking(move || {
        let rel = view.sandboxes.resolve(call.path(), agent_id.as_deref())?;
        if let Err(denied) = access.permits(&rel, agent_id.as_deref()) {
            return Ok(crate::access::refusal(&denied));
        }
        dispatch(&view.sandboxes, call, agent_id.as_deref())
    })
    .await
    .unwrap_or_else(|e| {
        Err(FilesError::Io {
            path: String::new(),
            reason: e.to_string(),
        })
    });
    result.unwrap_or_else(error)
}

fn dispatch(
    sb: &Sandboxes,
    call: FilesCall,
    agent_id: Option<&str>,
) -> Result<Response, FilesError> {
    match call {
        FilesCall::Browse { path } => {
            let entries = sb.browse(&path, agent_id)?;
            Ok(json_response(
                serde_json::to_value(entries).unwrap_or_default(),
            ))
        }
        FilesCall::Read {
            path,
            offset,
            length,
        } => read_file(sb, &path, agent_id, offset, length),
        FilesCall::Download { path } => download_file(sb, &path, agent_id),
    }
}

fn read_file(
    sb: &Sandboxes,
    path: &str,
    agent_id: Option<&str>,
    offset: Option<i64>,
    length: Option<i64>,
) -> Result<Response, FilesError> {
    let (mut file, stat) = match sb.open(path, agent_id)? {
        Opened::File(f, st) => (f, st),
        Opened::Dir(..) => return Err(FilesError::BadRequest("Cannot read a directory".into())),
    };
    let size = stat.st_size.max(0) as u64;
    let offset = match offset {
        Some(-1) => return Ok(json_response(json!({"data": "", "offset": size}))),
        Some(o) => o as u64,
        None => 0,
    };
    if offset >= size {
        return Ok(json_response(json!({"data": "", "offset": offset})));
    }
    let want = match length {
        Some(l) if l >= 0 => (l as u64).min(MAX_READ),
        _ => MAX_READ,
    };
    let io = |e: std::io::Error| FilesError::Io {
        path: path.to_string(),
        reason: e.to_string(),
    };
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut buf = Vec::with_capacity(want as usize);
    file.take(want).read_to_end(&mut buf).map_err(io)?;
    let data = String::from_utf8_lossy(utf8_prefix(&buf)).into_owned();
    Ok(json_response(json!({"data": data, "offset": offset})))
}

fn download_file(
    sb: &Sandboxes,
    path: &str,
    agent_id: Option<&str>,
) -> Result<Response, FilesError> {
    let (file, stat) = match sb.open(path, agent_id)? {
        Opened::File(f, st) => (f, st),
        Opened::Dir(..) => {
            return Err(FilesError::BadRequest("Cannot download a directory".into()));
        }
    };
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().replace('"', ""))
        .unwrap_or_default();
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    let mut resp = Response::new(Body::from_stream(stream));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(stat.st_size.max(0) as u64),
    );
    Ok(resp)
}

async fn browse(
    State(view): State<FilesView>,
    access: Option<Extension<Access>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    answer(view, access, "browse", q).await
}

async fn read(
    State(view): State<FilesView>,
    access: Option<Extension<Access>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    answer(view, access, "read", q).await
}

async fn download(
    State(view): State<FilesView>,
    access: Option<Extension<Access>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    answer(view, access, "download", q).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn queries_parse_into_calls() {
        assert_eq!(
            FilesCall::parse("read", &q(&[("path", "/p"), ("offset", "-1")])),
            Ok(FilesCall::Read {
                path: "/p".into(),
                offset: Some(-1),
                length: None
            })
        );
        assert_eq!(
            FilesCall::parse("browse", &q(&[("path", "/p")])),
            Ok(FilesCall::Browse { path: "/p".into() })
        );
        for bad in [
            q(&[]),
            q(&[("path", "/p"), ("offset", "x")]),
            q(&[("path", "/p"), ("offset", "-2")]),
            q(&[("path", "/p"), ("length", "-5")]),
        ] {
            assert!(matches!(
                FilesCall::parse("read", &bad),
                Err(FilesError::BadRequest(_))
            ));
        }
    }
}
