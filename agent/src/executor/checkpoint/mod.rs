//! What the agent writes to disk so that a restarted agent (even one that
//! was SIGKILLed) can carry on: every container and task it launched, every
//! status update before it is sent, every acknowledgement, every kill.
//!
//! ```text
//! <work_dir>/meta/slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>/
//!     container.json              ids, sandbox paths, task group, capabilities
//!     tasks/<task>/task.info      the TaskInfo JSON: the typed task serialized
//!                                 (earlier agents kept the master's text; both
//!                                 read as one, see [`TaskDescription::read`])
//!     tasks/<task>/task.updates   status update log (see [`log`])
//!     tasks/<task>/killed         the task was asked to die (grace period, ms)
//!     tasks/<task>/process/       the launcher's own files (the task supervisor's
//!                                 pid, start time and exit status)
//! ```
//!
//! The layout mirrors the sandbox tree (and Mesos' `meta/slaves/...`), so
//! ids are checked the same way ([`crate::executor::sandbox`]). Whole files
//! are written atomically (temp file, rename). A new task's directories and
//! files are made durable together by one [`Durable`] pass before its first
//! update is sent: every new file and every directory that got an entry is
//! fsynced, all after the writes, so a journalling file system commits them
//! once instead of once per step. Status updates are appended and fsynced
//! record by record; acknowledgements are appended without an fsync (see
//! [`log`]). Reading it all back is [`recover::scan`].
//!
//! A write that fails (a full disk, an fsync error) returns its error and
//! leaves what was there: a whole file keeps its old contents and its temp
//! file is removed; a failed append to an update log is undone before the
//! next (see [`log`]). Nothing written before is lost, and writes work
//! again once the disk does. What to do with a task whose checkpoint
//! failed is the runtime's decision.

mod disk;
pub mod log;
pub mod recover;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sandbox::{self, SandboxError};
use super::task::TaskDescription;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint {path}: an earlier append failed and cannot be undone yet: {source}")]
    Unrepaired {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint {path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("checkpoint {path}: cannot encode: {source}")]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Id(#[from] SandboxError),
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One container (an executor run): what is needed to rebuild its tasks'
/// contexts after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerCheckpoint {
    pub agent_id: String,
    pub framework_id: String,
    pub executor_id: String,
    pub container_id: String,
    /// The task group's executor id (LAUNCH_GROUP); `None` for a command task.
    #[serde(default)]
    pub group: Option<String>,
    /// The framework has `TASK_KILLING_STATE`.
    #[serde(default)]
    pub killing_state: bool,
    /// The container's cgroup (its tasks' leaves are below it).
    #[serde(default)]
    pub cgroup: Option<PathBuf>,
    /// Its place on the agent's network, if it has its own namespace.
    #[serde(default)]
    pub network: Option<crate::isolation::network::NetworkAttachment>,
    /// A task group's executor resources (Mesos v1 JSON): the container is
    /// sized to them plus its live tasks'.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub executor_resources: Vec<keel_api::mesos::Resource>,
    /// A custom executor's container: what it needs after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<CustomCheckpoint>,
}

/// A custom executor (`docs/design/0014-custom-executors.md`): its
/// ExecutorInfo and FrameworkInfo (for SUBSCRIBED after a restart) and
/// the token it was given. Its process's files are in `executor/process/`
/// beside `container.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomCheckpoint {
    pub executor_info: keel_api::mesos::ExecutorInfo,
    pub framework_info: keel_api::mesos::FrameworkInfo,
    pub token: String,
}

/// Paths under `<work_dir>/meta`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaDir {
    root: PathBuf,
}

pub const CONTAINER_FILE: &str = "container.json";
pub const TASK_INFO_FILE: &str = "task.info";
pub const UPDATES_FILE: &str = "task.updates";
pub const KILLED_FILE: &str = "killed";
pub const PROCESS_DIR: &str = "process";
/// A custom executor's own directory in its container's checkpoint.
pub const EXECUTOR_DIR: &str = "executor";

impl MetaDir {
    /// `meta` is `<work_dir>/meta`.
    pub fn new(meta: impl Into<PathBuf>) -> Self {
        MetaDir { root: meta.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `meta/slaves`: everything recovery scans.
    pub fn slaves(&self) -> PathBuf {
        self.root.join("slaves")
    }

    /// The container's checkpoint directory.
    pub fn container_dir(&self, c: &ContainerCheckpoint) -> Result<PathBuf, CheckpointError> {
        // The sandbox rules (one checked component per id) apply here too.
        let runs = sandbox::runs_dir(&self.root, &c.agent_id, &c.framework_id, &c.executor_id)?;
        Ok(sandbox::run_dir(&runs, &c.container_id)?)
    }

    /// `<container_dir>/tasks/<task>`.
    pub fn task_dir(container_dir: &Path, task_id: &str) -> Result<PathBuf, CheckpointError> {
        Ok(sandbox::task_dir(container_dir, task_id)?)
    }
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    replace(path, bytes, true)?;
    sync_dir(dir)
}

/// Replaces `path` whole (temp file and rename) without an fsync: for
/// runtime state that a machine crash makes meaningless anyway.
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    replace(path, bytes, false)
}

/// Writes `bytes` to a temp file beside `path` (fsynced if `sync`) and
/// renames it over `path`. On a failure `path` is as it was and the temp
/// file is gone: a full disk keeps no half-written copy.
fn replace(path: &Path, bytes: &[u8], sync: bool) -> Result<(), CheckpointError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        if sync { f.sync_all() } else { Ok(()) }
    });
    let (result, at) = match written {
        Ok(()) => (fs::rename(&tmp, path), path),
        Err(e) => (Err(e), tmp.as_path()),
    };
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io(at)(e)
    })
}

/// fsync of a directory, so that a new entry in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Directories and files written now and made durable together by
/// [`Durable::sync`]: the fsyncs come after all the writes, so that a
/// journalling file system commits everything with the first.
#[derive(Debug, Default)]
pub struct Durable {
    files: Vec<PathBuf>,
    /// Directories that got a new entry.
    dirs: BTreeSet<PathBuf>,
}

impl Durable {
    /// Creates `dir` and its missing parents.
    pub fn create_dir(&mut self, dir: &Path) -> Result<(), CheckpointError> {
        let mut cur = dir;
        while !cur.exists() {
            match cur.parent() {
                Some(parent) => {
                    self.dirs.insert(parent.to_path_buf());
                    cur = parent;
                }
                None => break,
            }
        }
        fs::create_dir_all(dir).map_err(io(dir))
    }

    /// Replaces `path` whole (temp file and rename).
    pub fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
        if let Some(dir) = path.parent() {
            self.create_dir(dir)?;
            self.dirs.insert(dir.to_path_buf());
        }
        replace_file(path, bytes)?;
        self.files.push(path.to_path_buf());
        Ok(())
    }

    /// A file created and written by other means (its contents and its
    /// entry in its directory).
    pub fn created(&mut self, path: &Path) {
        if let Some(dir) = path.parent() {
            self.dirs.insert(dir.to_path_buf());
        }
        self.files.push(path.to_path_buf());
    }

    /// fsyncs every file written, then every directory changed.
    pub fn sync(self) -> Result<(), CheckpointError> {
        for file in &self.files {
            File::open(file)
                .and_then(|f| f.sync_all())
                .map_err(io(file))?;
        }
        for dir in &self.dirs {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

impl ContainerCheckpoint {
    /// Writes `container.json` into `dir` (created if needed), durably.
    pub fn write(&self, dir: &Path) -> Result<(), CheckpointError> {
        let mut batch = Durable::default();
        self.write_into(dir, &mut batch)?;
        batch.sync()
    }

    /// Writes `container.json` into `dir`, durable with `batch`.
    pub fn write_into(&self, dir: &Path, batch: &mut Durable) -> Result<(), CheckpointError> {
        let json = serde_json::to_vec_pretty(self).map_err(|source| CheckpointError::Encode {
            path: dir.join(CONTAINER_FILE),
            source,
        })?;
        batch.write(&dir.join(CONTAINER_FILE), &json)
    }

    pub fn read(dir: &Path) -> Result<Self, CheckpointError> {
        let path = dir.join(CONTAINER_FILE);
        let text = fs::read(&path).map_err(io(&path))?;
        serde_json::from_slice(&text).map_err(|e| CheckpointError::Damaged {
            path,
            reason: e.to_string(),
        })
    }
}

/// Writes the task's `task.info` into its (new) checkpoint directory,
/// durable with `batch`.
pub fn write_task_info_into(
    task_dir: &Path,
    task: &TaskDescription,
    batch: &mut Durable,
) -> Result<(), CheckpointError> {
    let path = task_dir.join(TASK_INFO_FILE);
    let json = task.to_json().map_err(|source| CheckpointError::Encode {
        path: path.clone(),
        source,
    })?;
    batch.write(&path, json.as_bytes())
}

/// Writes the task's `task.info` into its (new) checkpoint directory, durably.
pub fn write_task_info(task_dir: &Path, task: &TaskDescription) -> Result<(), CheckpointError> {
    let mut batch = Durable::default();
    write_task_info_into(task_dir, task, &mut batch)?;
    batch.sync()
}

/// Records that the task was asked to die, with the grace period it got.
pub fn write_killed(task_dir: &Path, grace_ms: u64) -> Result<(), CheckpointError> {
    write_atomic(&task_dir.join(KILLED_FILE), grace_ms.to_string().as_bytes())
}

/// The grace period of a recorded kill, if the task was asked to die.
pub fn read_killed(task_dir: &Path) -> Option<u64> {
    let text = fs::read_to_string(task_dir.join(KILLED_FILE)).ok()?;
    Some(text.trim().parse().unwrap_or(0))
}

/// Removes a task's checkpoint, and its container's once no task is left.
pub fn remove_task(task_dir: &Path) -> Result<(), CheckpointError> {
    match fs::remove_dir_all(task_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(task_dir)(e)),
    }
    let Some(tasks) = task_dir.parent() else {
        return Ok(());
    };
    let empty = fs::read_dir(tasks)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true);
    // A custom executor's container stays while the executor lives.
    if empty
        && let Some(container) = tasks.parent()
        && !container.join(EXECUTOR_DIR).exists()
    {
        fs::remove_dir_all(container).map_err(io(container))?;
    }
    Ok(())
}

/// A custom executor ended: its own files go, and its container's
/// checkpoint with them when no task is left in it.
pub fn remove_executor(container_dir: &Path) -> Result<(), CheckpointError> {
    let dir = container_dir.join(EXECUTOR_DIR);
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&dir)(e)),
    }
    let tasks = container_dir.join("tasks");
    let empty = fs::read_dir(&tasks)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true);
    if empty {
        match fs::remove_dir_all(container_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(container_dir)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container() -> ContainerCheckpoint {
        ContainerCheckpoint {
            agent_id: "a-S0".into(),
            framework_id: "fw".into(),
            executor_id: "ex".into(),
            container_id: "c1".into(),
            group: Some("ex".into()),
            killing_state: true,
            cgroup: Some("/sys/fs/cgroup/keel/c1".into()),
            network: None,
            executor_resources: Vec::new(),
            custom: None,
        }
    }

    #[test]
    fn layout_mirrors_mesos() {
        let meta = MetaDir::new("/w/meta");
        let dir = meta.container_dir(&container()).unwrap();
        assert_eq!(
            dir,
            Path::new("/w/meta/slaves/a-S0/frameworks/fw/executors/ex/runs/c1")
        );
        assert_eq!(MetaDir::task_dir(&dir, "t").unwrap(), dir.join("tasks/t"));
        let bad = ContainerCheckpoint {
            framework_id: "..".into(),
            ..container()
        };
        assert!(meta.container_dir(&bad).is_err());
        assert!(MetaDir::task_dir(&dir, "a/b").is_err());
    }

    #[test]
    fn container_and_task_files_round_trip_and_go_away() {
        let tmp = tempfile::tempdir().unwrap();
        let meta = MetaDir::new(tmp.path());
        let c = container();
        let dir = meta.container_dir(&c).unwrap();
        c.write(&dir).unwrap();
        c.write(&dir).unwrap();
        assert_eq!(ContainerCheckpoint::read(&dir).unwrap(), c);

        let t1 = MetaDir::task_dir(&dir, "t1").unwrap();
        let t2 = MetaDir::task_dir(&dir, "t2").unwrap();
        let info = TaskDescription::Unreadable("{}".into());
        write_task_info(&t1, &info).unwrap();
        write_task_info(&t2, &info).unwrap();
        assert_eq!(read_killed(&t1), None);
        write_killed(&t1, 1500).unwrap();
        assert_eq!(read_killed(&t1), Some(1500));

        remove_task(&t1).unwrap();
        remove_task(&t1).unwrap();
        assert!(dir.exists(), "t2 is still there");
        remove_task(&t2).unwrap();
        assert!(!dir.exists(), "the last task takes its container along");
    }

    #[test]
    fn a_damaged_container_file_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(CONTAINER_FILE), "{").unwrap();
        assert!(matches!(
            ContainerCheckpoint::read(tmp.path()),
            Err(CheckpointError::Damaged { .. })
        ));
    }

    /// Hidden files (temp files) in `dir`.
    fn temp_files(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect()
    }

    #[test]
    fn a_full_disk_keeps_the_old_checkpoint_and_no_temp_file() {
        let Some(fs) = disk::tests::Tmpfs::mount(1 << 20) else {
            return;
        };
        let meta = MetaDir::new(fs.path());
        let c = container();
        let dir = meta.container_dir(&c).unwrap();
        c.write(&dir).unwrap();
        let task = MetaDir::task_dir(&dir, "t1").unwrap();
        write_task_info(&task, &TaskDescription::Unreadable("{}".into())).unwrap();
        write_killed(&task, 1500).unwrap();
        fs.fill();
        let changed = ContainerCheckpoint {
            killing_state: false,
            ..container()
        };
        let err = changed.write(&dir).unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        assert!(write_killed(&task, 3000).is_err());
        // What was there stays, and no half-written copy takes space.
        assert_eq!(ContainerCheckpoint::read(&dir).unwrap(), c);
        assert_eq!(read_killed(&task), Some(1500));
        assert_eq!(temp_files(&dir), Vec::<String>::new());
        assert_eq!(temp_files(&task), Vec::<String>::new());
        // Space back: the same calls work, and a restart reads them.
        fs.free();
        changed.write(&dir).unwrap();
        write_killed(&task, 3000).unwrap();
        let (found, problems) = recover::scan(&meta);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(found[0].checkpoint, changed);
        assert_eq!(found[0].tasks[0].killed, Some(3000));
    }
}
