//! The fork server (`keel-agent forkserver`): a single-threaded process the
//! agent starts once, which forks each task's [`shim`](super::shim).
//!
//! The agent is multi-threaded, so a child of its own may only `exec`; a
//! shim started that way costs an exec of the whole agent binary and a move
//! into the supervisors' cgroup (a `synchronize_rcu` in the kernel), several
//! milliseconds each. The fork server is a fresh exec of the agent that
//! stays single-threaded, so its children run the shim's code directly,
//! each created in the supervisors' cgroup (`CLONE_INTO_CGROUP`).
//!
//! ```text
//!  agent ----request (seqpacket)----------> fork server (stdin: socket)
//!         {"dir": DIR, "cgroup": CG|null}      clone3 into CG
//!         + fds [report pipe, shim.log]          child: stdout = report pipe,
//!                                                  stderr = shim.log, runs
//!                                                  shim::run(DIR), _exit
//!  agent <---reply---------------------------
//!         {"pid": N} + fd [pidfd] | {"error": ...}
//! ```
//!
//! Shims are reaped by the kernel (the server ignores SIGCHLD); the agent
//! watches each through its pidfd. The server exits when the agent's end of
//! the socket closes; shims it forked keep running.

use std::fs::File;
use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde::{Deserialize, Serialize};

use super::clone::{self, CloneOptions, Forked};
use super::shim;

/// How long the agent waits for the fork server's reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// A request holds two paths of up to PATH_MAX each, in JSON.
const MAX_MESSAGE: usize = 16 << 10;

#[derive(Debug, thiserror::Error)]
pub enum ForkServerError {
    #[error("cannot start the fork server {program}: {source}")]
    Start {
        program: String,
        source: std::io::Error,
    },
    /// The request did not reach it: nothing was forked.
    #[error("fork server: cannot send: {0}")]
    Send(std::io::Error),
    /// The request reached it but no answer came back: a shim may or may
    /// not have been forked.
    #[error("fork server: no reply: {0}")]
    NoReply(std::io::Error),
    #[error("fork server: {0}")]
    Refused(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    dir: PathBuf,
    cgroup: Option<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Pid(u32),
    Error(String),
}

/// A shim the fork server started.
#[derive(Debug)]
pub struct Spawned {
    pub pid: u32,
    pub pidfd: OwnedFd,
}

/// The agent's handle on its fork server.
#[derive(Debug)]
pub struct ForkServer {
    /// A `SOCK_SEQPACKET` pair: messages keep their bounds, and the server
    /// reads end-of-file once the agent's end is closed (with a datagram
    /// pair it would wait forever).
    sock: OwnedFd,
    child: Child,
}

impl ForkServer {
    /// Starts `program forkserver`.
    pub fn start(program: &Path) -> Result<Self, ForkServerError> {
        let start = |source| ForkServerError::Start {
            program: program.display().to_string(),
            source,
        };
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| start(e.into()))?;
        rustix::net::sockopt::set_socket_timeout(
            &ours,
            rustix::net::sockopt::Timeout::Recv,
            Some(REPLY_TIMEOUT),
        )
        .map_err(|e| start(e.into()))?;
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(program)
                .arg0("keel-agent")
                .arg("forkserver")
                // Room for the shims' command lines (see `set_identity`).
                .arg(" ".repeat(clone::CMDLINE_ROOM))
                .env_clear()
                .current_dir("/")
                .stdin(Stdio::from(theirs))
                .stdout(Stdio::null())
                .spawn()
                .map_err(start)?
        };
        Ok(ForkServer { sock: ours, child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Forks a shim for `dir` in `cgroup`, its stdout on `report` and its
    /// stderr on `log`.
    pub fn spawn_shim(
        &self,
        dir: &Path,
        cgroup: Option<&Path>,
        report: BorrowedFd<'_>,
        log: BorrowedFd<'_>,
    ) -> Result<Spawned, ForkServerError> {
        let request = serde_json::to_vec(&Request {
            dir: dir.to_path_buf(),
            cgroup: cgroup.map(Path::to_path_buf),
        })
        .map_err(|e| ForkServerError::Refused(e.to_string()))?;
        send(self.sock.as_fd(), &request, &[report, log]).map_err(ForkServerError::Send)?;
        let (bytes, mut fds) = recv(self.sock.as_fd()).map_err(ForkServerError::NoReply)?;
        if bytes.is_empty() {
            let exited = std::io::Error::other("it exited");
            return Err(ForkServerError::NoReply(exited));
        }
        match serde_json::from_slice::<Reply>(&bytes) {
            Ok(Reply::Pid(pid)) if !fds.is_empty() => Ok(Spawned {
                pid,
                pidfd: fds.remove(0),
            }),
            Ok(Reply::Pid(_)) => Err(ForkServerError::Refused("no pidfd in the reply".into())),
            Ok(Reply::Error(e)) => Err(ForkServerError::Refused(e)),
            Err(e) => Err(ForkServerError::Refused(format!("bad reply: {e}"))),
        }
    }
}

impl Drop for ForkServer {
    fn drop(&mut self) {
        // It would exit once our end of the socket closes; killing it makes
        // that immediate. Shims it forked keep running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn send(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(std::io::Error::other("too many descriptors"));
    }
    rustix::net::sendmsg(
        sock,
        &[std::io::IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

fn recv(sock: BorrowedFd<'_>) -> std::io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = loop {
        match rustix::net::recvmsg(
            sock,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other?,
        }
    };
    let mut fds = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = msg {
            fds.extend(received);
        }
    }
    buf.truncate(got.bytes);
    Ok((buf, fds))
}

/// The server's `main` (stdin is its socket): returns the exit code.
pub fn main() -> i32 {
    clone::set_identity("keel-forkserver", &["keel-agent", "forkserver"]);
    // Shims are reaped by the kernel; each resets this for its own children.
    set_sigchld(libc::SIG_IGN);
    let sock = std::io::stdin();
    loop {
        let (bytes, fds) = match recv(sock.as_fd()) {
            Ok(got) => got,
            Err(e) => {
                eprintln!("keel forkserver: {e}");
                return 1;
            }
        };
        if bytes.is_empty() {
            // The agent closed its end.
            return 0;
        }
        let reply = serve(&bytes, fds);
        let (json, pidfd) = match reply {
            Ok(forked) => (Reply::Pid(forked.pid), Some(forked.pidfd)),
            Err(e) => (Reply::Error(e), None),
        };
        let json = serde_json::to_vec(&json).unwrap_or_default();
        let fds: Vec<BorrowedFd<'_>> = pidfd.iter().map(|f| f.as_fd()).collect();
        if let Err(e) = send(sock.as_fd(), &json, &fds) {
            eprintln!("keel forkserver: reply: {e}");
            return 1;
        }
    }
}

fn serve(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<Spawned, String> {
    let request: Request =
        serde_json::from_slice(bytes).map_err(|e| format!("bad request: {e}"))?;
    let [report, log]: [OwnedFd; 2] = fds
        .try_into()
        .map_err(|_| "a request brings two descriptors".to_string())?;
    let cgroup = match &request.cgroup {
        Some(dir) => Some(File::open(dir).map_err(|e| format!("{}: {e}", dir.display()))?),
        None => None,
    };
    let options = CloneOptions {
        cgroup: cgroup.as_ref().map(|f| f.as_fd()),
        new_pid_namespace: false,
    };
    match clone::fork_into(options).map_err(|e| format!("clone3: {e}"))? {
        Forked::Child => {
            drop(cgroup);
            clone::exit_child(child(&request.dir, report, log))
        }
        Forked::Parent { pid, pidfd } => Ok(Spawned { pid, pidfd }),
    }
}

/// In the forked child: becomes the shim.
fn child(dir: &Path, report: OwnedFd, log: OwnedFd) -> i32 {
    set_sigchld(libc::SIG_DFL);
    let redirect = || -> std::io::Result<()> {
        let null = File::open("/dev/null")?;
        rustix::stdio::dup2_stdin(&null)?;
        rustix::stdio::dup2_stdout(&report)?;
        rustix::stdio::dup2_stderr(&log)?;
        Ok(())
    };
    if let Err(e) = redirect() {
        eprintln!("keel forkserver: shim stdio: {e}");
        return 1;
    }
    drop((report, log));
    let dir_text = dir.to_string_lossy();
    clone::set_identity("keel-shim", &["keel-agent", "shim", &dir_text]);
    shim::main(dir)
}

/// Sets SIGCHLD's disposition (`SIG_IGN`: children are reaped by the kernel).
#[allow(unsafe_code)]
fn set_sigchld(disposition: libc::sighandler_t) {
    // SAFETY: SIG_IGN and SIG_DFL install no handler code; this process is
    // single-threaded.
    unsafe { libc::signal(libc::SIGCHLD, disposition) };
}
