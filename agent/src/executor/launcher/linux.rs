//! The real launcher: tokio child processes in their own process group,
//! signalled with `kill(-pgid, sig)` through rustix.

use std::fs::{File, OpenOptions};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;

use rustix::io::Errno;
use rustix::process::{Pid, kill_process_group};

use super::{ExitStatus, LaunchSpec, LauncherError, Process, ProcessLauncher, Signal};

/// Spawns tasks as direct children of the agent.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinuxLauncher;

pub struct LinuxProcess {
    pid: u32,
    child: tokio::process::Child,
}

fn open_output(path: &Path) -> Result<File, LauncherError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| LauncherError::Output {
            path: path.to_path_buf(),
            source,
        })
}

impl ProcessLauncher for LinuxLauncher {
    type Process = LinuxProcess;

    fn spawn(&self, spec: &LaunchSpec) -> Result<LinuxProcess, LauncherError> {
        let stdout = open_output(&spec.stdout)?;
        let stderr = open_output(&spec.stderr)?;
        let mut cmd = tokio::process::Command::new(&spec.program);
        if let Some((argv0, rest)) = spec.argv.split_first() {
            cmd.arg0(argv0).args(rest);
        }
        cmd.env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.cwd)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(false);
        let spawn_err = |source| LauncherError::Spawn {
            program: spec.program.clone(),
            source,
        };
        let child = cmd.spawn().map_err(spawn_err)?;
        let pid = child.id().ok_or_else(|| {
            spawn_err(std::io::Error::other(
                "child exited before its pid was read",
            ))
        })?;
        Ok(LinuxProcess { pid, child })
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
        self.pid
    }

    async fn wait(&mut self) -> Result<ExitStatus, LauncherError> {
        let status = self.child.wait().await.map_err(|e| LauncherError::Wait {
            pid: self.pid,
            reason: e.to_string(),
        })?;
        match (status.code(), status.signal()) {
            (Some(code), _) => Ok(ExitStatus::Exited(code)),
            (None, Some(sig)) => Ok(ExitStatus::Signaled(sig)),
            (None, None) => Err(LauncherError::Wait {
                pid: self.pid,
                reason: format!("unexpected wait status {status:?}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, program: &str, argv: &[&str]) -> LaunchSpec {
        LaunchSpec {
            program: program.to_string(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: dir.to_path_buf(),
            stdout: dir.join("stdout"),
            stderr: dir.join("stderr"),
        }
    }

    #[tokio::test]
    async fn runs_in_its_own_group_and_reports_the_exit() {
        let dir = tempfile::tempdir().unwrap();
        let l = LinuxLauncher;
        let script = "echo $$ $(cut -d' ' -f5 /proc/$$/stat); exit 7";
        let mut p = l
            .spawn(&spec(dir.path(), "/bin/sh", &["sh", "-c", script]))
            .unwrap();
        assert_eq!(p.wait().await.unwrap(), ExitStatus::Exited(7));
        let out = std::fs::read_to_string(dir.path().join("stdout")).unwrap();
        let mut words = out.split_whitespace();
        let (pid, pgid) = (words.next().unwrap(), words.next().unwrap());
        assert_eq!(pid, p.pid().to_string());
        assert_eq!(pid, pgid, "the task leads its own process group");
    }

    #[tokio::test]
    async fn kill_reaches_the_group_and_missing_groups_are_fine() {
        let dir = tempfile::tempdir().unwrap();
        let l = LinuxLauncher;
        let mut p = l
            .spawn(&spec(dir.path(), "sleep", &["sleep", "30"]))
            .unwrap();
        l.signal_group(p.pid(), Signal::Kill).unwrap();
        assert_eq!(p.wait().await.unwrap(), ExitStatus::Signaled(9));
        l.signal_group(p.pid(), Signal::Term).unwrap();
        assert!(matches!(
            l.signal_group(1, Signal::Kill),
            Err(LauncherError::InvalidGroup { pgid: 1 })
        ));
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let err = LinuxLauncher
            .spawn(&spec(dir.path(), "/nonexistent/x", &["x"]))
            .err()
            .unwrap();
        assert!(matches!(err, LauncherError::Spawn { .. }), "{err}");
    }
}
