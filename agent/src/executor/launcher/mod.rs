//! The one place that starts, signals and reaps task processes.
//!
//! [`ProcessLauncher`] is the kernel surface; [`linux::LinuxLauncher`] is the
//! real implementation (a new process group per task, no `unsafe`) and
//! [`fake::FakeLauncher`] records what it was asked and lets a test decide
//! when and how each process exits. Everything above this module is plain,
//! safe Rust over these traits.

pub mod fake;
pub mod linux;

use std::future::Future;
use std::path::PathBuf;

/// Everything needed to start one task process.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    #[error("refusing to signal process group {pgid}")]
    InvalidGroup { pgid: u32 },
    #[error("cannot signal process group {pgid}: {source}")]
    Signal { pgid: u32, source: std::io::Error },
    #[error("cannot wait for process {pid}: {reason}")]
    Wait { pid: u32, reason: String },
}

/// Starts task processes and signals their process groups.
pub trait ProcessLauncher: Send + Sync + 'static {
    type Process: Process;

    /// Starts `spec` as the leader of a new process group (pgid = its pid).
    fn spawn(&self, spec: &LaunchSpec) -> Result<Self::Process, LauncherError>;

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
