//! LIST_FILES and READ_FILE on the agent's sandboxes: the same paths,
//! confinement and access as `/files/*` ([`crate::files`]), Mesos' v1
//! answers (`file_infos`; `size` and base64 `data`, at most 16 pages).

use std::io::{Read, Seek, SeekFrom};

use keel_api::agent::state::Response as Answer;
use keel_api::mesos::Nanos;
use keel_api::operator::{FileInfo, ListFilesAnswer, ReadFile, ReadFileAnswer, files::mode_bits};

use super::ApiError;
use crate::access::Access;
use crate::files::http::MAX_READ;
use crate::files::{FilesError, Opened, Sandboxes};
use crate::http::AgentView;

impl From<FilesError> for ApiError {
    fn from(e: FilesError) -> Self {
        match e {
            FilesError::BadRequest(m) => ApiError::BadRequest(m),
            FilesError::NotFound(_) => ApiError::NotFound(e.to_string()),
            FilesError::Refused { .. } => ApiError::Forbidden(e.to_string()),
            FilesError::Io { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

/// Runs `f` on the sandboxes off the async threads, once `path` is known
/// to be within `access`.
async fn within<T: Send + 'static>(
    view: &AgentView,
    access: &Access,
    path: &str,
    f: impl FnOnce(&Sandboxes, Option<&str>) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let agent_id = view.status.borrow().agent_id.clone();
    let sandboxes = view.sandboxes.clone();
    let access = access.clone();
    let path = path.to_string();
    tokio::task::spawn_blocking(move || {
        let rel = sandboxes.resolve(&path, agent_id.as_deref())?;
        access
            .permits(&rel, agent_id.as_deref())
            .map_err(|e| ApiError::Forbidden(e.to_string()))?;
        f(&sandboxes, agent_id.as_deref())
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// LIST_FILES: a directory's entries, or a file itself.
pub async fn list(view: &AgentView, access: &Access, path: &str) -> Result<Answer, ApiError> {
    let shown = path.to_string();
    let entries = within(view, access, path, move |sb, agent| {
        Ok(sb.browse(&shown, agent)?)
    })
    .await?;
    let file_infos = entries
        .into_iter()
        .map(|e| FileInfo {
            path: e.path,
            nlink: i32::try_from(e.nlink).ok(),
            size: Some(e.size),
            mtime: Some(Nanos {
                nanoseconds: (e.mtime * 1e9) as i64,
            }),
            mode: mode_bits(&e.mode),
            uid: Some(e.uid),
            gid: Some(e.gid),
        })
        .collect();
    Ok(Answer::ListFiles(ListFilesAnswer { file_infos }))
}

/// READ_FILE: up to `length` bytes (at most 16 pages) from `offset`.
pub async fn read(view: &AgentView, access: &Access, r: &ReadFile) -> Result<Answer, ApiError> {
    if r.offset < 0 {
        return Err(ApiError::BadRequest(format!(
            "Negative offset provided: {}",
            r.offset
        )));
    }
    if let Some(l) = r.length.filter(|l| *l < 0) {
        return Err(ApiError::BadRequest(format!(
            "Negative length provided: {l}"
        )));
    }
    let offset = r.offset as u64;
    let want = r.length.map_or(MAX_READ, |l| (l as u64).min(MAX_READ));
    let path = r.path.clone();
    let (size, data) = within(view, access, &r.path, move |sb, agent| {
        let (mut file, stat) = match sb.open(&path, agent)? {
            Opened::File(f, st) => (f, st),
            Opened::Dir(..) => {
                return Err(ApiError::BadRequest(format!(
                    "Cannot read a directory: {path}"
                )));
            }
        };
        let size = stat.st_size.max(0) as u64;
        let mut data = Vec::new();
        if offset < size {
            let io = |e: std::io::Error| ApiError::Internal(format!("cannot read {path}: {e}"));
            file.seek(SeekFrom::Start(offset)).map_err(io)?;
            file.take(want).read_to_end(&mut data).map_err(io)?;
        }
        Ok((size, data))
    })
    .await?;
    Ok(Answer::ReadFile(ReadFileAnswer {
        size,
        data: keel_api::mesos::base64_encode(&data),
    }))
}
