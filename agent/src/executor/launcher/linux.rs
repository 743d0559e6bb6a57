//! The real launcher: one [`shim`](super::shim) per task, forked by the
//! agent's [fork server](super::forkserver) (`keel-agent forkserver`, found
//! at `/proc/self/exe` in the agent), process groups signalled with
//! `kill(-pgid, sig)`, and every shim watched through a pidfd; those of an
//! earlier agent are found again by pid + start time + boot id.

use std::fs::{self, File};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, kill_process_group};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::forkserver::{ForkServer, ForkServerError, Spawned};
use super::shim::{EXIT_FILE, LAUNCH_FILE, LOG_FILE, PID_FILE, PidRecord, ShimEnd, ShimReport};
use super::{Adopted, ExitStatus, LaunchSpec, LauncherError, Process, ProcessLauncher, Signal};
use crate::isolation::procfs::ProcFs;

/// How long a shim may take to report that its task runs.
const REPORT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a restarted agent waits for a live shim to record its task.
const ADOPT_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct LinuxLauncher {
    /// A `keel-agent` binary: run as `<program> forkserver`.
    program: PathBuf,
    proc: ProcFs,
    /// Started on the first spawn, again if it died.
    server: Arc<Mutex<Option<ForkServer>>>,
}

impl LinuxLauncher {
    /// The fork server is started as `<program> forkserver`.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        LinuxLauncher {
            program: program.into(),
            proc: ProcFs::default(),
            server: Arc::new(Mutex::new(None)),
        }
    }

    /// The agent's own binary (kept reachable even if replaced on disk).
    pub fn current_exe() -> Self {
        Self::new("/proc/self/exe")
    }

    fn shim_error(&self, reason: impl Into<String>) -> LauncherError {
        LauncherError::Shim {
            program: self.program.display().to_string(),
            reason: reason.into(),
        }
    }

    /// The shim's pidfd if the shim of `rec` still runs.
    fn live_shim(&self, rec: &PidRecord) -> Option<OwnedFd> {
        if rec.boot_id.is_some() && rec.boot_id != self.proc.boot_id() {
            return None;
        }
        let pid = i32::try_from(rec.shim_pid).ok().and_then(Pid::from_raw)?;
        // pidfd first: a pid recycled before this shows another start time.
        let fd = rustix::process::pidfd_open(pid, PidfdFlags::NONBLOCK).ok()?;
        (self.proc.start_time(rec.shim_pid) == Some(rec.shim_start_time)).then_some(fd)
    }

    /// Has the fork server fork a shim (blocking: on a blocking thread).
    /// A server that died is replaced once.
    fn fork_shim(
        &self,
        dir: &Path,
        cgroup: Option<&Path>,
        report: std::io::PipeWriter,
        log: File,
    ) -> Result<Spawned, ForkServerError> {
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        for attempt in 0..2 {
            if !server.as_mut().is_some_and(ForkServer::alive) {
                let started = ForkServer::start(&self.program)?;
                tracing::info!(pid = started.pid(), "fork server started");
                *server = Some(started);
            }
            let Some(running) = server.as_mut() else {
                continue;
            };
            match running.spawn_shim(dir, cgroup, report.as_fd(), log.as_fd()) {
                // Not delivered: nothing was forked, another server may try.
                Err(ForkServerError::Send(e)) if attempt == 0 => {
                    tracing::warn!(error = %e, "the fork server is gone; starting another");
                    *server = None;
                }
                Err(e @ ForkServerError::NoReply(_)) => {
                    // It may have forked: stop it from doing anything more.
                    *server = None;
                    return Err(e);
                }
                other => return other,
            }
        }
        Err(ForkServerError::Refused("it keeps failing".into()))
    }

    /// [`ProcessLauncher::spawn`]; `again`: an unanswered fork may be
    /// tried once more.
    async fn spawn_once(
        &self,
        spec: &LaunchSpec,
        again: bool,
    ) -> Result<LinuxProcess, LauncherError> {
        let dir = &spec.state_dir;
        let io_err = |what: &str, e: std::io::Error| self.shim_error(format!("{what}: {e}"));
        fs::create_dir_all(dir).map_err(|e| io_err(&dir.display().to_string(), e))?;
        let json = serde_json::to_vec(spec).map_err(|e| self.shim_error(e.to_string()))?;
        fs::write(dir.join(LAUNCH_FILE), json).map_err(|e| io_err(LAUNCH_FILE, e))?;
        let log = File::create(dir.join(LOG_FILE)).map_err(|e| io_err(LOG_FILE, e))?;
        let (reader, writer) = std::io::pipe().map_err(|e| io_err("pipe", e))?;
        let forked = {
            let (launcher, dir) = (self.clone(), dir.clone());
            let cgroup = spec.supervisor_cgroup.clone();
            // Our copy of the pipe's write end is closed when this ends.
            tokio::task::spawn_blocking(move || {
                launcher.fork_shim(&dir, cgroup.as_deref(), writer, log)
            })
            .await
            .map_err(|e| self.shim_error(e.to_string()))?
        };
        let forked = match forked {
            Ok(forked) => forked,
            // A shim may run without the agent knowing its pid: find it as
            // a restarted agent would, and start one only if there is none
            // (never two for one task).
            Err(ForkServerError::NoReply(e)) => {
                tracing::warn!(error = %e, dir = %dir.display(),
                    "no answer from the fork server; looking for the task's shim");
                return match self.adopt(dir).await {
                    Adopted::Running(process) => Ok(process),
                    Adopted::Exited(status) => Ok(LinuxProcess {
                        task_pid: 0,
                        shim_pid: 0,
                        state_dir: dir.clone(),
                        shim: None,
                        ended: Some(status),
                    }),
                    Adopted::LaunchFailed(message) => Err(LauncherError::Launch { message }),
                    Adopted::Gone(_) | Adopted::NotStarted if again => {
                        Box::pin(self.spawn_once(spec, false)).await
                    }
                    Adopted::Gone(reason) => Err(self.shim_error(reason)),
                    Adopted::NotStarted => Err(self.shim_error(e.to_string())),
                };
            }
            Err(e) => return Err(self.shim_error(e.to_string())),
        };
        let shim_pid = forked.pid;
        let shim = watch(forked.pidfd).map_err(|e| io_err("pidfd", e))?;
        let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
            .map_err(|e| io_err("pipe", e))?;
        let mut line = String::new();
        let read =
            tokio::time::timeout(REPORT_TIMEOUT, BufReader::new(reader).read_line(&mut line)).await;
        if read.is_err() {
            let _ =
                rustix::process::pidfd_send_signal(shim.get_ref(), rustix::process::Signal::KILL);
        }
        match serde_json::from_str::<ShimReport>(line.trim()) {
            Ok(ShimReport::Started { pid }) => Ok(LinuxProcess {
                task_pid: pid,
                shim_pid,
                state_dir: dir.clone(),
                shim: Some(shim),
                ended: None,
            }),
            Ok(ShimReport::Failed { message, .. }) => {
                let _ = shim.readable().await;
                Err(LauncherError::Launch { message })
            }
            Err(_) => {
                let _ = shim.readable().await;
                Err(self.shim_error(format!(
                    "it ended without starting the task: {}",
                    shim_log(dir)
                )))
            }
        }
    }
}

pub struct LinuxProcess {
    task_pid: u32,
    shim_pid: u32,
    state_dir: PathBuf,
    /// The shim's pidfd: readable once it exited.
    shim: Option<AsyncFd<OwnedFd>>,
    /// Found already ended (an unanswered spawn whose task ran meanwhile).
    ended: Option<ExitStatus>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

fn shim_log(dir: &Path) -> String {
    let text = fs::read_to_string(dir.join(LOG_FILE)).unwrap_or_default();
    let text = text.trim();
    let tail = text.len().saturating_sub(2000);
    let tail = (tail..=text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[tail..].to_string()
}

fn end_status(end: ShimEnd) -> Result<ExitStatus, String> {
    match end {
        ShimEnd::Exited(code) => Ok(ExitStatus::Exited(code)),
        ShimEnd::Signaled(sig) => Ok(ExitStatus::Signaled(sig)),
        ShimEnd::LaunchFailed { message, .. } => Err(message),
    }
}

/// Registers a pidfd with the reactor: readable once the process exits.
#[allow(unsafe_code)]
fn watch(pidfd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, which owns it for
    // its whole life: the descriptor stays open and `as_raw_fd` always
    // returns the same one, as `register` requires.
    unsafe { AsyncFd::register(pidfd) }.map_err(std::io::Error::from)
}

impl ProcessLauncher for LinuxLauncher {
    type Process = LinuxProcess;

    async fn spawn(&self, spec: &LaunchSpec) -> Result<LinuxProcess, LauncherError> {
        self.spawn_once(spec, true).await
    }

    async fn adopt(&self, dir: &Path) -> Adopted<LinuxProcess> {
        let deadline = tokio::time::Instant::now() + ADOPT_WAIT;
        loop {
            if let Some(end) = read_json::<ShimEnd>(&dir.join(EXIT_FILE)) {
                return match end_status(end) {
                    Ok(status) => Adopted::Exited(status),
                    Err(message) => Adopted::LaunchFailed(message),
                };
            }
            let Some(rec) = read_json::<PidRecord>(&dir.join(PID_FILE)) else {
                if !dir.join(LAUNCH_FILE).exists() {
                    return Adopted::NotStarted;
                }
                if tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                return Adopted::Gone("its supervisor never recorded its pid".into());
            };
            let Some(pidfd) = self.live_shim(&rec) else {
                // It may have finished between the two reads.
                if let Some(end) = read_json::<ShimEnd>(&dir.join(EXIT_FILE)) {
                    return match end_status(end) {
                        Ok(status) => Adopted::Exited(status),
                        Err(message) => Adopted::LaunchFailed(message),
                    };
                }
                return Adopted::Gone(format!(
                    "its supervisor (pid {}) ended without recording how the task ended",
                    rec.shim_pid
                ));
            };
            match rec.task_pid {
                Some(task_pid) => {
                    return match watch(pidfd) {
                        Ok(fd) => Adopted::Running(LinuxProcess {
                            task_pid,
                            shim_pid: rec.shim_pid,
                            state_dir: dir.to_path_buf(),
                            shim: Some(fd),
                            ended: None,
                        }),
                        Err(e) => Adopted::Gone(format!("cannot watch its supervisor: {e}")),
                    };
                }
                None if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                None => {
                    // A supervisor that never starts its task: stop it.
                    let _ =
                        rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
                    return Adopted::Gone(format!(
                        "its supervisor (pid {}) never started it",
                        rec.shim_pid
                    ));
                }
            }
        }
    }

    fn signal_group(&self, pgid: u32, signal: Signal) -> Result<(), LauncherError> {
        // kill(-1) would reach every process we may signal: never allow it.
        let pid = i32::try_from(pgid)
            .ok()
            .filter(|p| *p > 1)
            .and_then(Pid::from_raw)
            .ok_or(LauncherError::InvalidGroup { pgid })?;
        let sig = match signal {
            Signal::Term => rustix::process::Signal::TERM,
            Signal::Kill => rustix::process::Signal::KILL,
        };
        match kill_process_group(pid, sig) {
            Ok(()) | Err(Errno::SRCH) => Ok(()),
            Err(e) => Err(LauncherError::Signal {
                pgid,
                source: e.into(),
            }),
        }
    }
}

impl Process for LinuxProcess {
    fn pid(&self) -> u32 {
        self.task_pid
    }

    async fn wait(&mut self) -> Result<ExitStatus, LauncherError> {
        if let Some(status) = self.ended {
            return Ok(status);
        }
        let shim = match &self.shim {
            // Readable: the process exited. Readiness is kept, so a second
            // wait returns at once.
            Some(fd) => match fd.readable().await {
                Ok(_) => "exited".to_string(),
                Err(e) => format!("cannot be watched: {e}"),
            },
            None => "is not watched".to_string(),
        };
        match read_json::<ShimEnd>(&self.state_dir.join(EXIT_FILE)).map(end_status) {
            Some(Ok(status)) => Ok(status),
            Some(Err(message)) => Err(LauncherError::Launch { message }),
            None => Err(LauncherError::Wait {
                pid: self.task_pid,
                reason: format!(
                    "its supervisor (pid {}) {shim} without recording how the task ended: {}",
                    self.shim_pid,
                    shim_log(&self.state_dir)
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launcher_with_boot_id(dir: &Path, boot_id: &str) -> LinuxLauncher {
        let me = std::process::id();
        let stat = fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
        fs::create_dir_all(dir.join(me.to_string())).unwrap();
        fs::write(dir.join(me.to_string()).join("stat"), stat).unwrap();
        fs::create_dir_all(dir.join("sys/kernel/random")).unwrap();
        fs::write(dir.join("sys/kernel/random/boot_id"), boot_id).unwrap();
        LinuxLauncher {
            proc: ProcFs::new(dir),
            ..LinuxLauncher::new("/proc/self/exe")
        }
    }

    #[tokio::test]
    async fn a_fork_server_that_never_answers_fails_the_launch() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        // Reads nothing, answers nothing, exits.
        let server = tmp.path().join("mute-forkserver");
        fs::write(&server, "#!/bin/sh\nexit 0\n").unwrap();
        fs::set_permissions(&server, fs::Permissions::from_mode(0o755)).unwrap();
        let launcher = LinuxLauncher::new(&server);
        let spec = LaunchSpec {
            program: "true".into(),
            argv: vec!["true".into()],
            env: Vec::new(),
            cwd: tmp.path().into(),
            stdout: tmp.path().join("stdout"),
            stderr: tmp.path().join("stderr"),
            state_dir: tmp.path().join("process"),
            ..LaunchSpec::default()
        };
        let started = std::time::Instant::now();
        let err = launcher
            .spawn(&spec)
            .await
            .err()
            .expect("no task can start");
        assert!(matches!(err, LauncherError::Shim { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn a_shim_recorded_in_another_boot_is_not_alive() {
        let tmp = tempfile::tempdir().unwrap();
        let launcher = launcher_with_boot_id(tmp.path(), "boot-b");
        let me = std::process::id();
        let record = |boot_id: Option<&str>| PidRecord {
            shim_pid: me,
            shim_start_time: launcher.proc.start_time(me).unwrap(),
            task_pid: None,
            boot_id: boot_id.map(str::to_string),
        };
        assert!(launcher.live_shim(&record(Some("boot-b"))).is_some());
        assert!(
            launcher.live_shim(&record(None)).is_some(),
            "records from before boot ids were kept"
        );
        assert!(
            launcher.live_shim(&record(Some("boot-a"))).is_none(),
            "same pid and start time, but another boot"
        );
        let recycled = PidRecord {
            shim_start_time: 1,
            ..record(Some("boot-b"))
        };
        assert!(launcher.live_shim(&recycled).is_none());
    }
}
