//! The per-task supervisor process. The agent has the
//! [fork server](super::forkserver) fork one per task, in the supervisors'
//! cgroup; it outlives the agent, so tasks keep running while the agent
//! restarts.
//!
//! ```text
//!  fork server --clone3--> shim: setsid, child subreaper, writes pid.json
//!                     | clone3 the task's process into its cgroup leaf (as
//!                     | PID 1 of a new PID namespace if asked): it becomes
//!                     | the container init (`init.rs`), which execs or
//!                     | spawns the task
//!                     |   fails --> exit.json {launch_failed}, stdout {"failed":..}
//!                     v
//!                   stdout {"started":{"pid":N}} (the agent reads one line)
//!                   pid.json += task pid
//!                   waitpid(-1) until the task exits (reaping orphans too)
//!                   SIGKILL its group and every process left to the shim
//!                   exit.json {exited|signaled} (atomic rename), exit 0
//! ```
//!
//! Files in DIR: `launch.json` (the [`LaunchSpec`], written by the agent),
//! `pid.json`, `exit.json`, `shim.log` (the shim's own stderr). No exec
//! happens on the way to the task's own: the shim and the init are forks of
//! the single-threaded fork server.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, PipeReader, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, Signal as RSignal, WaitOptions};
use serde::{Deserialize, Serialize};

use super::clone::{self, CloneOptions, Forked};
use super::{LaunchSpec, init};
use crate::executor::checkpoint::replace_file;
use crate::isolation::procfs::ProcFs;

pub const LAUNCH_FILE: &str = "launch.json";
pub const PID_FILE: &str = "pid.json";
pub const EXIT_FILE: &str = "exit.json";
pub const LOG_FILE: &str = "shim.log";

/// `pid.json`: who to look for after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidRecord {
    pub shim_pid: u32,
    /// From `/proc/<pid>/stat`: tells the shim from a process that got its pid later.
    pub shim_start_time: u64,
    /// Set once the task runs: the leader of its process group.
    #[serde(default)]
    pub task_pid: Option<u32>,
    /// The kernel's boot id when the shim started: pids and start times
    /// from another boot mean nothing.
    #[serde(default)]
    pub boot_id: Option<String>,
}

/// `exit.json`: how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShimEnd {
    Exited(i32),
    Signaled(i32),
    LaunchFailed { errno: Option<i32>, message: String },
}

/// The one line the shim writes on its stdout for the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShimReport {
    Started { pid: u32 },
    Failed { errno: Option<i32>, message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("cannot read {path}: {reason}")]
    Spec { path: String, reason: String },
    #[error(transparent)]
    Checkpoint(#[from] crate::executor::checkpoint::CheckpointError),
    #[error("waiting for the task: {0}")]
    Wait(std::io::Error),
}

/// The shim's `main`: returns the process exit code.
pub fn main(dir: &Path) -> i32 {
    match run(dir) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("keel shim: {e}");
            1
        }
    }
}

fn run(dir: &Path) -> Result<(), ShimError> {
    // Out of the agent's session and process group: signals meant for the
    // agent (a terminal's Ctrl-C, a group kill) do not reach its tasks.
    let _ = rustix::process::setsid();
    let me = rustix::process::getpid();
    // Orphans of the task are re-parented here, so they can be reaped and
    // killed when the task ends.
    if let Err(e) = rustix::process::set_child_subreaper(Some(me)) {
        eprintln!("keel shim: cannot become a subreaper: {e}");
    }
    let spec_path = dir.join(LAUNCH_FILE);
    let spec: LaunchSpec = fs::read(&spec_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|reason| ShimError::Spec {
            path: spec_path.display().to_string(),
            reason,
        })?;
    let my_pid = me.as_raw_nonzero().get() as u32;
    let proc = ProcFs::default();
    let mut record = PidRecord {
        shim_pid: my_pid,
        shim_start_time: proc.start_time(my_pid).unwrap_or(0),
        task_pid: None,
        boot_id: proc.boot_id(),
    };
    write_json(&dir.join(PID_FILE), &record)?;

    let (task_pid, init_out) = match start(&spec) {
        Ok(started) => started,
        Err((errno, message)) => {
            write_json(
                &dir.join(EXIT_FILE),
                &ShimEnd::LaunchFailed {
                    errno,
                    message: message.clone(),
                },
            )?;
            report(&ShimReport::Failed { errno, message });
            return Ok(());
        }
    };
    report(&ShimReport::Started { pid: task_pid });
    record.task_pid = Some(task_pid);
    write_json(&dir.join(PID_FILE), &record)?;

    let mut end = wait_for(task_pid)?;
    // A PID namespace's init says how its task ended; its own status only
    // counts when it could not (it was killed).
    if let Some(mut out) = init_out {
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        if let Ok(task_end) = serde_json::from_str::<ShimEnd>(line.trim()) {
            end = task_end;
        }
    }
    clean_up(my_pid, task_pid);
    write_json(&dir.join(EXIT_FILE), &end)?;
    Ok(())
}

/// The shim's files are rewritten whole (temp file and rename) but not
/// fsynced: they describe processes, which a machine crash ends anyway, and
/// `pid.json` carries the boot id to tell a record from before a reboot.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ShimError> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    Ok(replace_file(path, &bytes)?)
}

/// The final line of a container init: how its task ended.
pub(super) fn report_end(out: &mut impl Write, end: &ShimEnd) {
    write_line(out, &serde_json::to_string(end).unwrap_or_default());
}

/// The shim's one line for the agent, on its stdout.
pub(super) fn report(r: &ShimReport) {
    write_line(
        &mut std::io::stdout().lock(),
        &serde_json::to_string(r).unwrap_or_default(),
    );
}

pub(super) fn report_to(out: &mut impl Write, r: &ShimReport) {
    write_line(out, &serde_json::to_string(r).unwrap_or_default());
}

fn write_line(out: &mut impl Write, text: &str) {
    let mut line = text.to_string();
    line.push('\n');
    // The reader may be gone already; the files say the same.
    let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
}

pub(super) fn open_append(path: &Path) -> Result<fs::File, (Option<i32>, String)> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            (
                e.raw_os_error(),
                format!("cannot open {}: {e}", path.display()),
            )
        })
}

/// Why a task could not be started: errno (when there is one) and text.
pub(super) type Failure = (Option<i32>, String);

/// A PID namespace init's reports: its task's end comes last.
type InitOut = BufReader<PipeReader>;

/// Forks the task's process into its cgroup (and new PID namespace, if
/// asked); the child sets up the rest and runs the task ([`init`]).
/// Returns the child's pid (the task's process group) and, with a PID
/// namespace, the pipe on which it reports its task's end.
fn start(spec: &LaunchSpec) -> Result<(u32, Option<InitOut>), Failure> {
    let cgroup = match &spec.cgroup {
        Some(dir) => Some(fs::File::open(dir).map_err(|e| {
            (
                e.raw_os_error(),
                format!("cannot open cgroup {}: {e}", dir.display()),
            )
        })?),
        None => None,
    };
    let (reader, writer) = std::io::pipe().map_err(|e| (e.raw_os_error(), format!("pipe: {e}")))?;
    let options = CloneOptions {
        cgroup: cgroup.as_ref().map(|f| f.as_fd()),
        new_pid_namespace: spec.namespaces.pid,
    };
    let pid = match clone::fork_into(options) {
        Ok(Forked::Child) => {
            drop((reader, cgroup));
            clone::exit_child(init::run(spec, writer))
        }
        Ok(Forked::Parent { pid, .. }) => pid,
        Err(e) => {
            let what = if spec.cgroup.is_some() {
                " into its cgroup (clone3 with CLONE_INTO_CGROUP needs Linux 5.7 or later)"
            } else {
                ""
            };
            return Err((
                e.raw_os_error(),
                format!("cannot start the task's process{what}: {e}"),
            ));
        }
    };
    drop(writer);
    let mut out = BufReader::new(reader);
    let mut line = String::new();
    let _ = out.read_line(&mut line);
    match serde_json::from_str::<ShimReport>(line.trim()) {
        Ok(ShimReport::Started { .. }) => Ok((pid, Some(out))),
        Ok(ShimReport::Failed { errno, message }) => {
            let _ = wait_for(pid);
            Err((errno, message))
        }
        // Nothing said: the child became the task (exec closed the pipe).
        Err(_) if line.is_empty() && !spec.namespaces.pid => Ok((pid, None)),
        Err(_) => {
            let _ = wait_for(pid);
            Err((None, format!("the container init said {line:?}")))
        }
    }
}

/// Reaps children until `task` exits; returns how it ended.
pub(super) fn wait_for(task: u32) -> Result<ShimEnd, ShimError> {
    loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(Some((pid, status))) if pid.as_raw_nonzero().get() as u32 == task => {
                return Ok(match (status.exit_status(), status.terminating_signal()) {
                    (Some(code), _) => ShimEnd::Exited(code),
                    (None, Some(sig)) => ShimEnd::Signaled(sig),
                    (None, None) => ShimEnd::Exited(-1),
                });
            }
            Ok(_) | Err(Errno::INTR) => continue,
            Err(e) => return Err(ShimError::Wait(e.into())),
        }
    }
}

/// The task is over: nothing it started may outlive it. Kills its process
/// group, then every process re-parented to the shim, until none is left.
fn clean_up(me: u32, task: u32) {
    if let Some(pgid) = i32::try_from(task).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pgid, RSignal::KILL);
    }
    let proc = ProcFs::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        // Reap first: with no child left (the usual case) there is nothing
        // to look for in /proc.
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some(_)) | Err(Errno::INTR) => continue,
            Ok(None) => {}
            Err(_) => return,
        }
        for child in proc.children(me) {
            if let Some(pid) = i32::try_from(child).ok().and_then(Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, RSignal::KILL);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_as_json() {
        let end = ShimEnd::LaunchFailed {
            errno: Some(2),
            message: "cannot run x".into(),
        };
        let text = serde_json::to_string(&end).unwrap();
        assert_eq!(
            text,
            r#"{"launch_failed":{"errno":2,"message":"cannot run x"}}"#
        );
        assert_eq!(serde_json::from_str::<ShimEnd>(&text).unwrap(), end);
        assert_eq!(
            serde_json::to_string(&ShimEnd::Signaled(9)).unwrap(),
            r#"{"signaled":9}"#
        );
        let r = ShimReport::Started { pid: 42 };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"started":{"pid":42}}"#
        );
        let p: PidRecord = serde_json::from_str(r#"{"shim_pid":5,"shim_start_time":9}"#).unwrap();
        assert_eq!(p.task_pid, None);
    }
}
