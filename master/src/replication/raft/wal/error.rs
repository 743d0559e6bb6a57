//! [`WalError`] and the helpers that build it.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("raft log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("raft log {path} is corrupt: {reason}; refusing to start on it")]
    Corrupt { path: PathBuf, reason: String },
}

pub(super) fn io_err(path: &Path, source: io::Error) -> WalError {
    WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn corrupt(path: &Path, reason: String) -> WalError {
    WalError::Corrupt {
        path: path.to_path_buf(),
        reason,
    }
}
