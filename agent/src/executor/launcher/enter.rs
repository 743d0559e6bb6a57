//! `keel-agent enter [OPTIONS] PID CWD -- PROGRAM ARGV0 ARGS...`: runs a
//! program in the namespaces of process PID (a task's container init), for
//! COMMAND health checks and the agent's nested containers (`crate::containers`).
//! It joins each namespace that differs from its own (mount last), changes
//! to CWD, runs the program as its child (a PID namespace only applies to
//! children), waits and exits with its status (a program killed by a
//! signal kills it with the same signal). It is a fresh single-threaded
//! process, as `setns` of a mount namespace needs.
//!
//! Options (before PID):
//! - `--cgroup DIR`: move into the cgroup DIR (the task's) first;
//! - `--user UID:GID`: run the program as this user;
//! - `--tty`: stdin is a terminal: start a new session with it as the
//!   controlling terminal (so the program gets job control and SIGHUP);
//! - `--die-with-parent`: when the process that started `enter` (the
//!   agent) dies, `enter` kills its process group: the program and what
//!   it started go with the agent.

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use std::os::fd::OwnedFd;

use rustix::process::{Pid, PidfdFlags, Signal};
use rustix::thread::LinkNameSpaceType;

/// Namespaces joined, in order (mount last: the others' files are opened first).
const KINDS: [(&str, LinkNameSpaceType); 5] = [
    ("ipc", LinkNameSpaceType::InterProcessCommunication),
    ("uts", LinkNameSpaceType::HostNameAndNISDomainName),
    ("net", LinkNameSpaceType::Network),
    ("pid", LinkNameSpaceType::ProcessID),
    ("mnt", LinkNameSpaceType::Mount),
];

#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    #[error(
        "usage: enter [--cgroup DIR] [--user UID:GID] [--tty] [--die-with-parent] PID CWD -- PROGRAM ARGV0 [ARGS...]"
    )]
    Usage,
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("setns {path}: {source}")]
    Setns {
        path: String,
        source: rustix::io::Errno,
    },
    #[error("the terminal: {0}")]
    Tty(rustix::io::Errno),
    #[error("the agent is gone already")]
    Orphan,
    #[error("cannot watch the agent and the program: {0}")]
    Watch(rustix::io::Errno),
    #[error("cannot run {program}: {source}")]
    Run {
        program: String,
        source: std::io::Error,
    },
}

/// What the command line asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnterArgs {
    pub cgroup: Option<PathBuf>,
    pub user: Option<(u32, u32)>,
    pub tty: bool,
    pub die_with_parent: bool,
    pub pid: String,
    pub cwd: PathBuf,
    pub program: OsString,
    pub argv: Vec<OsString>,
}

impl EnterArgs {
    /// The arguments after `enter` for these options.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = Vec::new();
        if let Some(dir) = &self.cgroup {
            out.extend(["--cgroup".into(), dir.into()]);
        }
        if let Some((uid, gid)) = self.user {
            out.extend(["--user".into(), format!("{uid}:{gid}").into()]);
        }
        if self.tty {
            out.push("--tty".into());
        }
        if self.die_with_parent {
            out.push("--die-with-parent".into());
        }
        out.extend([
            self.pid.clone().into(),
            self.cwd.clone().into(),
            "--".into(),
            self.program.clone(),
        ]);
        out.extend(self.argv.iter().cloned());
        out
    }
}

/// Parses what follows `enter`.
pub fn parse(args: &[OsString]) -> Result<EnterArgs, EnterError> {
    let mut out = EnterArgs::default();
    let mut rest = args;
    loop {
        match rest {
            [flag, dir, more @ ..] if flag == "--cgroup" => {
                out.cgroup = Some(PathBuf::from(dir));
                rest = more;
            }
            [flag, user, more @ ..] if flag == "--user" => {
                let text = user.to_string_lossy();
                let (uid, gid) = text.split_once(':').ok_or(EnterError::Usage)?;
                out.user = Some((
                    uid.parse().map_err(|_| EnterError::Usage)?,
                    gid.parse().map_err(|_| EnterError::Usage)?,
                ));
                rest = more;
            }
            [flag, more @ ..] if flag == "--tty" => {
                out.tty = true;
                rest = more;
            }
            [flag, more @ ..] if flag == "--die-with-parent" => {
                out.die_with_parent = true;
                rest = more;
            }
            _ => break,
        }
    }
    match rest {
        [pid, cwd, sep, program, argv @ ..] if sep == "--" && !argv.is_empty() => {
            out.pid = pid.to_string_lossy().into_owned();
            out.cwd = PathBuf::from(cwd);
            out.program = program.clone();
            out.argv = argv.to_vec();
            Ok(out)
        }
        _ => Err(EnterError::Usage),
    }
}

/// The helper's `main`: `args` are what follows `enter`.
pub fn main(args: &[OsString]) -> i32 {
    match parse(args).and_then(|a| run(&a)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keel enter: {e}");
            126
        }
    }
}

fn io(path: impl Into<String>) -> impl FnOnce(std::io::Error) -> EnterError {
    let path = path.into();
    move |source| EnterError::Io { path, source }
}

fn run(a: &EnterArgs) -> Result<i32, EnterError> {
    // The agent, watched (before anything can make it go unnoticed).
    let parent = match a.die_with_parent {
        true => Some(watch_parent()?),
        false => None,
    };
    if a.tty {
        // A new session whose controlling terminal is stdin (a pty's
        // slave side, as the agent opened it).
        rustix::process::setsid().map_err(EnterError::Tty)?;
        rustix::process::ioctl_tiocsctty(std::io::stdin()).map_err(EnterError::Tty)?;
    }
    if let Some(dir) = &a.cgroup {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, std::process::id().to_string())
            .map_err(io(procs.display().to_string()))?;
    }
    let pid = &a.pid;
    let mut files = Vec::new();
    for (name, kind) in KINDS {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let same = std::fs::read_link(&theirs).ok()
            == std::fs::read_link(format!("/proc/self/ns/{name}")).ok();
        if !same {
            let f = std::fs::File::open(&theirs).map_err(io(theirs.clone()))?;
            files.push((f, kind, theirs));
        }
    }
    for (f, kind, path) in &files {
        use std::os::fd::AsFd;
        rustix::thread::move_into_link_name_space(f.as_fd(), Some(*kind)).map_err(|source| {
            EnterError::Setns {
                path: path.clone(),
                source,
            }
        })?;
    }
    std::env::set_current_dir(Path::new(&a.cwd)).map_err(io(a.cwd.display().to_string()))?;
    let mut cmd = Command::new(&a.program);
    cmd.arg0(&a.argv[0]).args(&a.argv[1..]);
    if let Some((uid, gid)) = a.user {
        cmd.uid(uid).gid(gid);
    }
    let run = |source| EnterError::Run {
        program: a.program.to_string_lossy().into_owned(),
        source,
    };
    let mut child = cmd.spawn().map_err(run)?;
    if let Some(parent) = parent {
        until_either_ends(&parent, &child)?;
    }
    let status = child.wait().map_err(run)?;
    if let Some(sig) = status.signal() {
        // Die the same way, so the agent's wait sees the signal.
        if let Some(sig) = Signal::from_named_raw(sig) {
            let _ = rustix::process::kill_process(rustix::process::getpid(), sig);
        }
        return Ok(128 + sig);
    }
    Ok(status.code().unwrap_or(126))
}

/// A pidfd of the process that started `enter` (the agent).
fn watch_parent() -> Result<OwnedFd, EnterError> {
    let ppid = rustix::process::getppid().ok_or(EnterError::Orphan)?;
    rustix::process::pidfd_open(ppid, PidfdFlags::empty()).map_err(EnterError::Watch)
}

/// Waits until the program ends, or the agent does: then the whole
/// process group goes (the program, what it started, `enter` itself), so
/// nothing launched through the agent outlives it.
fn until_either_ends(parent: &OwnedFd, child: &std::process::Child) -> Result<(), EnterError> {
    use rustix::event::{PollFd, PollFlags, poll};
    let child = rustix::process::pidfd_open(Pid::from_child(child), PidfdFlags::empty())
        .map_err(EnterError::Watch)?;
    loop {
        let mut fds = [
            PollFd::new(parent, PollFlags::IN),
            PollFd::new(&child, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(EnterError::Watch(e)),
        }
        if !fds[1].revents().is_empty() {
            return Ok(());
        }
        if !fds[0].revents().is_empty() {
            let _ = rustix::process::kill_process_group(rustix::process::getpgrp(), Signal::KILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn options_come_before_the_pid_and_round_trip() {
        let a = parse(&args(&[
            "--cgroup",
            "/sys/fs/cgroup/keel/c",
            "--user",
            "1000:100",
            "--tty",
            "42",
            "/mnt/mesos/sandbox",
            "--",
            "/bin/sh",
            "sh",
            "-c",
            "id",
        ]))
        .unwrap();
        assert_eq!(a.cgroup, Some(PathBuf::from("/sys/fs/cgroup/keel/c")));
        assert_eq!(a.user, Some((1000, 100)));
        assert!(a.tty && !a.die_with_parent);
        assert_eq!(a.pid, "42");
        assert_eq!(a.argv, args(&["sh", "-c", "id"]));
        assert_eq!(parse(&a.to_args()).unwrap(), a);
        // The health checks' form has no options.
        let plain = parse(&args(&["7", "/", "--", "/bin/true", "true"])).unwrap();
        assert_eq!(plain.cgroup, None);
        assert!(parse(&args(&["--user", "x", "7", "/", "--", "a", "a"])).is_err());
        assert!(parse(&args(&["7", "/", "--", "/bin/true"])).is_err());
    }
}
