//! The one place that starts, signals and reaps task processes.
//!
//! [`ProcessLauncher`] is the kernel surface; [`linux::LinuxLauncher`] is the
//! real implementation and [`fake::FakeLauncher`] records what it was asked
//! and lets a test decide when and how each process exits. Everything above
//! this module is plain, safe Rust over these traits.
//!
//! Tasks must outlive the agent (it can be SIGKILLed and restarted), so a
//! task is never the agent's own child: the real launcher has its
//! [`forkserver`] fork a small per-task supervisor, the [`shim`] (a new
//! session, child subreaper), which forks the task's first process
//! ([`init`]) into the task's cgroup, waits for it, records its exit status
//! in the task's state directory and exits. A restarted agent finds the
//! shim again by pid, start time and boot id ([`ProcessLauncher::adopt`]).
//!
//! ```text
//!  agent (multi-threaded) --socket--> fork server (one per agent, single-threaded)
//!                                        --clone3--> shim (supervisors cgroup)
//!                                                      --clone3--> init (task cgroup) --> task
//! ```

pub mod clone;
pub mod enter;
pub mod fake;
pub mod forkserver;
pub mod init;
pub mod linux;
pub mod shim;

use std::future::Future;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::isolation::Namespaces;

/// Everything needed to start one task process (`Default`: no isolation,
/// empty paths; callers fill in what they use).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// The program to exec; without a `/` it is looked up in the spec's `PATH`.
    pub program: String,
    /// The whole argv, argv[0] included.
    pub argv: Vec<String>,
    /// The complete environment: nothing is inherited from the agent.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Opened for appending (created if missing).
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// The launcher's own files about this process (pid, exit status),
    /// kept in the task's checkpoint so a restarted agent finds them.
    pub state_dir: PathBuf,
    /// The cgroup the task starts in (set by the cgroup hook).
    #[serde(default)]
    pub cgroup: Option<PathBuf>,
    /// Where the task's supervisor waits (outside the task's cgroup, so a
    /// kill of the task's cgroup leaves it to record the exit).
    #[serde(default)]
    pub supervisor_cgroup: Option<PathBuf>,
    /// Namespaces of the task's own; with any of them (or `netns`) a
    /// container init sets them up before the task runs.
    #[serde(default)]
    pub namespaces: Namespaces,
    /// The host name in a UTS namespace.
    #[serde(default)]
    pub hostname: Option<String>,
    /// With a mount namespace: the sandbox on the host, bound at
    /// `/mnt/mesos/sandbox` (then `cwd`), and host directories to hide.
    #[serde(default)]
    pub sandbox: Option<PathBuf>,
    #[serde(default)]
    pub hide: Vec<PathBuf>,
    /// With a mount namespace: persistent volumes bound into the sandbox.
    #[serde(default)]
    pub volumes: Vec<crate::isolation::mounts::VolumeBind>,
    /// A network namespace (a bind-mounted nsfs file) to join.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// Run as this uid and gid (`None`: as the agent).
    #[serde(default)]
    pub user: Option<(u32, u32)>,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }
}

/// The signals the agent sends to tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

#[derive(Debug, thiserror::Error)]
pub enum LauncherError {
    #[error("cannot open {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    /// The task could not be started; the text says why (errno included).
    #[error("{message}")]
    Launch { message: String },
    #[error("cannot start the task supervisor {program}: {reason}")]
    Shim { program: String, reason: String },
    #[error("refusing to signal process group {pgid}")]
    InvalidGroup { pgid: u32 },
    #[error("cannot signal process group {pgid}: {source}")]
    Signal { pgid: u32, source: std::io::Error },
    #[error("cannot wait for process {pid}: {reason}")]
    Wait { pid: u32, reason: String },
}

/// What a restarted agent finds of a task process it launched before.
#[derive(Debug)]
pub enum Adopted<P> {
    /// Still running: wait for it and signal it as if just spawned.
    Running(P),
    /// It ended while nobody watched, with this status.
    Exited(ExitStatus),
    /// It never ran: starting it failed (with this reason).
    LaunchFailed(String),
    /// Its supervisor is gone without recording how the task ended.
    Gone(String),
    /// Nothing was started for it (no state in its directory).
    NotStarted,
}

/// Starts task processes and signals their process groups.
pub trait ProcessLauncher: Send + Sync + 'static {
    type Process: Process;

    /// Starts `spec` as the leader of a new process group (pgid = its pid)
    /// and returns once it runs, or with the reason it could not start.
    fn spawn(
        &self,
        spec: &LaunchSpec,
    ) -> impl Future<Output = Result<Self::Process, LauncherError>> + Send;

    /// Finds the process started earlier with state in `state_dir`.
    fn adopt(&self, state_dir: &Path) -> impl Future<Output = Adopted<Self::Process>> + Send;

    /// Sends `signal` to every process in group `pgid`. A group that no
    /// longer exists is not an error.
    fn signal_group(&self, pgid: u32, signal: Signal) -> Result<(), LauncherError>;
}

/// A started process: the leader of its own process group.
pub trait Process: Send + 'static {
    fn pid(&self) -> u32;

    /// Waits until the process exits and reaps it. Cancel-safe: dropping the
    /// future and calling again keeps waiting for the same process.
    fn wait(&mut self) -> impl Future<Output = Result<ExitStatus, LauncherError>> + Send;
}
