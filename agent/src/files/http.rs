//! `/files/browse`, `/files/read`, `/files/download`: the query is parsed
//! into one [`FilesCall`], then answered from [`Sandboxes`].
//!
//! - `browse?path=P`: JSON array of `FileInfo` (a file lists itself).
//! - `read?path=P&offset=O&length=L`: `{"data": "...", "offset": O}`;
//!   `offset=-1` answers the file's size as `offset` with empty data; reads
//!   are capped at 16 pages (64 KiB) as Mesos does, and never end inside a
//!   UTF-8 character (the reader advances by the bytes of `data`).
//! - `download?path=P`: the file's bytes as an attachment, streamed; a
//!   `Range: bytes=START-[END]` header (one range) answers `206` with that
//!   part and `Content-Range: bytes START-END/SIZE`, or `416` with
//!   `Content-Range: bytes */SIZE` past the end (the master's READ_FILE
//!   reads exact bytes this way).
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
        /// From a `Range` header: the first byte and, if given, the last.
        range: Option<(u64, Option<u64>)>,
    },
}

/// One `bytes=START-[END]` range (the only form served); `Ok(None)`
/// without a header.
pub fn parse_range(header: Option<&str>) -> Result<Option<(u64, Option<u64>)>, FilesError> {
    let Some(text) = header else {
        return Ok(None);
    };
    let bad = || {
        FilesError::BadRequest(format!(
            "unsupported Range {text:?}: expected bytes=START-[END]"
        ))
    };
    let spec = text.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (start, end) = spec.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end = match end.trim() {
        "" => None,
        e => Some(e.parse::<u64>().map_err(|_| bad())?),
    };
    if end.is_some_and(|e| e < start) {
        return Err(bad());
    }
    Ok(Some((start, end)))
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
            | FilesCall::Download { path, .. } => path,
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
            "download" => Ok(FilesCall::Download { path, range: None }),
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
    range: Option<&str>,
) -> Response {
    let Some(Extension(access)) = access else {
        return crate::access::refusal(&AccessError::Unauthenticated);
    };
    let call = match FilesCall::parse(endpoint, &q) {
        Ok(FilesCall::Download { path, .. }) => match parse_range(range) {
            Ok(range) => FilesCall::Download { path, range },
            Err(e) => return error(e),
        },
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
        FilesCall::Download { path, range } => download_file(sb, &path, agent_id, range),
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
    range: Option<(u64, Option<u64>)>,
) -> Result<Response, FilesError> {
    let (mut file, stat) = match sb.open(path, agent_id)? {
        Opened::File(f, st) => (f, st),
        Opened::Dir(..) => {
            return Err(FilesError::BadRequest("Cannot download a directory".into()));
        }
    };
    let size = stat.st_size.max(0) as u64;
    let (status, first, len) = match range {
        None => (StatusCode::OK, 0, size),
        Some((start, _)) if start >= size => {
            let mut resp = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
        Some((start, end)) => {
            let last = end.map_or(size - 1, |e| e.min(size - 1));
            (StatusCode::PARTIAL_CONTENT, start, last - start + 1)
        }
    };
    if first > 0 {
        file.seek(SeekFrom::Start(first))
            .map_err(|e| FilesError::Io {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
    }
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().replace('"', ""))
        .unwrap_or_default();
    let body = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), len);
    let mut resp = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(body)));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{}/{size}", first + len - 1))
    {
        headers.insert(header::CONTENT_RANGE, v);
    }
    Ok(resp)
}

async fn browse(
    State(view): State<FilesView>,
    access: Option<Extension<Access>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    answer(view, access, "browse", q, None).await
}

async fn read(
    State(view): State<FilesView>,
    access: Option<Extension<Access>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    answer(view, access, "read", q, None).await
}

async fn download(
    State(view): State<FilesView>,
    access: Option<Extension<Access>>,
    headers: axum::http::HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    answer(view, access, "download", q, range).await
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

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_range(None), Ok(None));
        assert_eq!(parse_range(Some("bytes=5-")), Ok(Some((5, None))));
        assert_eq!(parse_range(Some("bytes=0-9")), Ok(Some((0, Some(9)))));
        for bad in [
            "bytes=-5",
            "bytes=9-3",
            "items=0-1",
            "bytes=0-1,4-5",
            "bytes=x-",
        ] {
            assert!(parse_range(Some(bad)).is_err(), "{bad}");
        }
    }
}
