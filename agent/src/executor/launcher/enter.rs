//! `keel-agent enter PID CWD -- PROGRAM ARGV0 ARGS...`: runs a program in
//! the namespaces of process PID (a task's container init), for COMMAND
//! health checks. It joins each namespace that differs from its own (mount
//! last), changes to CWD, runs the program as its child (a PID namespace
//! only applies to children), waits and exits with its status. It is a
//! fresh single-threaded process, as `setns` of a mount namespace needs.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::Command;

use rustix::thread::LinkNameSpaceType;

/// Namespaces joined, in order (mount last: the others' files are opened first).
const KINDS: [(&str, LinkNameSpaceType); 5] = [
    ("ipc", LinkNameSpaceType::InterProcessCommunication),
    ("uts", LinkNameSpaceType::HostNameAndNISDomainName),
    ("net", LinkNameSpaceType::Network),
    ("pid", LinkNameSpaceType::ProcessID),
    ("mnt", LinkNameSpaceType::Mount),
];

/// The helper's `main`: `args` are what follows `enter`.
pub fn main(args: &[std::ffi::OsString]) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keel enter: {e}");
            126
        }
    }
}

fn run(args: &[std::ffi::OsString]) -> Result<i32, String> {
    let (pid, cwd, rest) = match args {
        [pid, cwd, sep, rest @ ..] if sep == "--" && rest.len() >= 2 => (pid, cwd, rest),
        _ => return Err("usage: enter PID CWD -- PROGRAM ARGV0 [ARGS...]".into()),
    };
    let pid = pid.to_string_lossy();
    let mut files = Vec::new();
    for (name, kind) in KINDS {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let same = std::fs::read_link(&theirs).ok()
            == std::fs::read_link(format!("/proc/self/ns/{name}")).ok();
        if !same {
            let f = std::fs::File::open(&theirs).map_err(|e| format!("{theirs}: {e}"))?;
            files.push((f, kind, theirs));
        }
    }
    for (f, kind, path) in &files {
        use std::os::fd::AsFd;
        rustix::thread::move_into_link_name_space(f.as_fd(), Some(*kind))
            .map_err(|e| format!("setns {path}: {e}"))?;
    }
    std::env::set_current_dir(Path::new(cwd))
        .map_err(|e| format!("chdir {}: {e}", cwd.to_string_lossy()))?;
    let status = Command::new(&rest[0])
        .arg0(&rest[1])
        .args(&rest[2..])
        .status()
        .map_err(|e| format!("cannot run {}: {e}", rest[0].to_string_lossy()))?;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
