//! Task sandboxes in the Mesos layout under the agent's work dir:
//!
//! ```text
//! <work_dir>/slaves/<agent>/frameworks/<framework>/executors/<executor>/runs/<container>/
//!     stdout, stderr                 the executor's (or the command task's) output
//!     tasks/<task>/stdout, stderr    one per task of a task group
//! <...>/executors/<executor>/runs/latest -> <container>
//! ```
//!
//! Every id becomes one path component, so ids are checked first: a task id
//! of `..` or with a `/` must never leave the work dir. Creation is
//! idempotent (recovery can run it again).

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{kind} id {id:?} cannot name a sandbox directory")]
    InvalidId { kind: &'static str, id: String },
    #[error("sandbox {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SandboxError + '_ {
    move |source| SandboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One path component: non-empty, not `.`/`..`, no `/` or NUL.
fn component<'a>(kind: &'static str, id: &'a str) -> Result<&'a str, SandboxError> {
    if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\0']) || id.len() > 255 {
        return Err(SandboxError::InvalidId {
            kind,
            id: id.to_string(),
        });
    }
    Ok(id)
}

/// `<work_dir>/slaves/<agent>/frameworks/<fw>/executors/<executor>/runs`.
pub fn runs_dir(
    work_dir: &Path,
    agent_id: &str,
    framework_id: &str,
    executor_id: &str,
) -> Result<PathBuf, SandboxError> {
    Ok(work_dir
        .join("slaves")
        .join(component("agent", agent_id)?)
        .join("frameworks")
        .join(component("framework", framework_id)?)
        .join("executors")
        .join(component("executor", executor_id)?)
        .join("runs"))
}

/// The container's run directory: the executor's sandbox.
pub fn run_dir(runs_dir: &Path, container_id: &str) -> Result<PathBuf, SandboxError> {
    Ok(runs_dir.join(component("container", container_id)?))
}

/// The sandbox of one task of a task group.
pub fn task_dir(run_dir: &Path, task_id: &str) -> Result<PathBuf, SandboxError> {
    Ok(run_dir.join("tasks").join(component("task", task_id)?))
}

/// Creates `dir` with empty `stdout` and `stderr` files (kept if present).
pub fn create(dir: &Path) -> Result<(), SandboxError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    for name in ["stdout", "stderr"] {
        let path = dir.join(name);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
    }
    Ok(())
}

/// Gives `dir` and its `stdout`/`stderr` to `uid`:`gid`.
pub fn chown(dir: &Path, uid: u32, gid: u32) -> Result<(), SandboxError> {
    let owner = (
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    );
    for path in [dir.to_path_buf(), dir.join("stdout"), dir.join("stderr")] {
        rustix::fs::chown(&path, owner.0, owner.1).map_err(|e| io(&path)(e.into()))?;
    }
    Ok(())
}

/// Points `<runs>/latest` at `container_id` (replaced atomically).
pub fn link_latest(runs_dir: &Path, container_id: &str) -> Result<(), SandboxError> {
    // A name of its own per call: the tasks of a group link the same
    // container at once, and must not remove each other's link.
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let latest = runs_dir.join("latest");
    let tmp = runs_dir.join(format!(".latest.{container_id}.{n}"));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(component("container", container_id)?, &tmp).map_err(io(&tmp))?;
    fs::rename(&tmp, &latest).map_err(io(&latest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_mesos() {
        let runs = runs_dir(Path::new("/w"), "a-S0", "fw-1", "t1").unwrap();
        assert_eq!(
            runs,
            Path::new("/w/slaves/a-S0/frameworks/fw-1/executors/t1/runs")
        );
        let run = run_dir(&runs, "c1").unwrap();
        assert_eq!(task_dir(&run, "t2").unwrap(), run.join("tasks/t2"));
    }

    #[test]
    fn ids_cannot_escape() {
        for bad in ["", ".", "..", "a/b", "../x", "a\0b"] {
            assert!(runs_dir(Path::new("/w"), "a", bad, "e").is_err(), "{bad:?}");
            assert!(task_dir(Path::new("/w"), bad).is_err(), "{bad:?}");
        }
        assert!(runs_dir(Path::new("/w"), "a", "..a", "e.x").is_ok());
    }

    #[test]
    fn creation_is_idempotent_and_latest_moves() {
        let dir = tempfile::tempdir().unwrap();
        let runs = runs_dir(dir.path(), "a", "f", "e").unwrap();
        for c in ["c1", "c2"] {
            let run = run_dir(&runs, c).unwrap();
            create(&run).unwrap();
            fs::write(run.join("stdout"), "kept").unwrap();
            create(&run).unwrap();
            assert_eq!(fs::read_to_string(run.join("stdout")).unwrap(), "kept");
            link_latest(&runs, c).unwrap();
            link_latest(&runs, c).unwrap();
            assert_eq!(fs::read_link(runs.join("latest")).unwrap(), Path::new(c));
        }
    }
}
