//! The agent's work dir: the agent id it was given, kept across restarts so
//! the master recognises it (`<work_dir>/meta/agent_id`).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum WorkDirError {
    #[error("work dir {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("agent id file {path} holds an invalid id {id:?}")]
    InvalidId { path: PathBuf, id: String },
}

pub struct WorkDir {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WorkDirError + '_ {
    move |source| WorkDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl WorkDir {
    /// Creates the work dir layout if needed.
    pub fn open(root: &Path) -> Result<Self, WorkDirError> {
        let meta = root.join("meta");
        fs::create_dir_all(&meta).map_err(io(&meta))?;
        Ok(WorkDir {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn id_path(&self) -> PathBuf {
        self.root.join("meta").join("agent_id")
    }

    /// The persisted agent id, if this agent registered before.
    pub fn agent_id(&self) -> Result<Option<String>, WorkDirError> {
        let path = self.id_path();
        match fs::read_to_string(&path) {
            Ok(text) => {
                let id = text.trim().to_string();
                if keel_api::valid_id(&id) {
                    Ok(Some(id))
                } else {
                    Err(WorkDirError::InvalidId { path, id })
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Persists `id` atomically (temp file, fsync, rename, fsync dir).
    pub fn set_agent_id(&self, id: &str) -> Result<(), WorkDirError> {
        let path = self.id_path();
        if !keel_api::valid_id(id) {
            return Err(WorkDirError::InvalidId {
                path,
                id: id.to_string(),
            });
        }
        let tmp = path.with_extension("tmp");
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(format!("{id}\n").as_bytes())
            .map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        let dir = self.root.join("meta");
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let wd = WorkDir::open(dir.path()).unwrap();
        assert_eq!(wd.agent_id().unwrap(), None);
        wd.set_agent_id("abc-S3").unwrap();
        let again = WorkDir::open(dir.path()).unwrap();
        assert_eq!(again.agent_id().unwrap().as_deref(), Some("abc-S3"));
    }

    #[test]
    fn a_damaged_id_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let wd = WorkDir::open(dir.path()).unwrap();
        fs::write(dir.path().join("meta/agent_id"), "../../etc\n").unwrap();
        assert!(matches!(wd.agent_id(), Err(WorkDirError::InvalidId { .. })));
        assert!(wd.set_agent_id("a/b").is_err());
    }
}
