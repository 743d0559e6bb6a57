//! The process of a container launched through the agent's API and its
//! I/O: `keel-agent enter` started with pipes or a pseudo-terminal, its
//! output read as it comes and handed to whoever is attached (and to the
//! sandbox's `stdout`/`stderr` files for a container that is not a
//! session), its stdin written from ATTACH_CONTAINER_INPUT. Like Mesos' I/O
//! switchboard, without a separate process: these containers die with the
//! agent (`docs/design/0013-nested-containers.md`).

use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_api::agent::containers::{Stream, WindowSize};
use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Mutex, broadcast, watch};

use super::plan::Plan;

/// Output records kept for a slow reader before it loses some.
const OUTPUT_QUEUE: usize = 1024;
/// How long output may still arrive after the process exited (from
/// processes it left behind that hold its stdout).
const DRAIN: Duration = Duration::from_secs(1);

/// One piece of output, or its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    Data(Stream, Arc<[u8]>),
    End,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("Failed to open a pseudo terminal: {0}")]
    Pty(rustix::io::Errno),
    #[error("Failed to create the sandbox {path}: {source}")]
    Sandbox {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Failed to launch the container: {0}")]
    Spawn(std::io::Error),
    #[error("Unable to send signal to container: {0}")]
    Signal(String),
    #[error("Failed writing to stdin: {0}")]
    Stdin(std::io::Error),
    #[error("Unable to set the window size: {0}")]
    Window(String),
}

type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// A running (or ended) container process and its I/O.
pub struct ContainerProcess {
    /// Its process group (the `enter` helper leads it).
    pub pgid: u32,
    output: broadcast::Sender<Chunk>,
    stdin: Mutex<Option<Writer>>,
    input_attached: AtomicBool,
    /// The terminal's controlling side, for window changes.
    tty: Option<OwnedFd>,
    /// The wait(2) status once it ended.
    exit: watch::Receiver<Option<i32>>,
}

impl ContainerProcess {
    /// Starts `plan` with the agent binary `helper`; output also goes to
    /// files in its sandbox when it has one.
    /// The receiver gets all of its output (it subscribed before it ran).
    pub fn start(
        plan: &Plan,
        helper: &Path,
    ) -> Result<(Arc<Self>, broadcast::Receiver<Chunk>), ProcessError> {
        if let Some(dir) = &plan.sandbox {
            std::fs::create_dir_all(dir).map_err(|source| ProcessError::Sandbox {
                path: dir.clone(),
                source,
            })?;
        }
        let mut cmd = tokio::process::Command::new(helper);
        cmd.arg0("keel-agent")
            .arg("enter")
            .args(plan.enter.to_args())
            .env_clear()
            .envs(plan.env.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(false);
        let (output, first) = broadcast::channel(OUTPUT_QUEUE);
        let (exit_tx, exit) = watch::channel(None);
        let mut readers: Vec<(Stream, Box<dyn AsyncRead + Send + Unpin>)> = Vec::new();
        let (stdin, tty): (Option<Writer>, _) = match plan.tty {
            Some(size) => {
                let (master, slave) = open_pty(size)?;
                let dup = |fd: &OwnedFd| fd.try_clone().map_err(ProcessError::Spawn);
                cmd.stdin(Stdio::from(dup(&slave)?))
                    .stdout(Stdio::from(dup(&slave)?))
                    .stderr(Stdio::from(slave));
                let file = |fd: OwnedFd| tokio::fs::File::from_std(std::fs::File::from(fd));
                readers.push((Stream::Stdout, Box::new(file(dup(&master)?))));
                (Some(Box::new(file(dup(&master)?))), Some(master))
            }
            None => {
                // Its own process group (with a terminal, `enter --tty`
                // makes its own session instead).
                cmd.process_group(0)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                (None, None)
            }
        };
        let mut child = cmd.spawn().map_err(ProcessError::Spawn)?;
        drop(cmd);
        let pgid = child.id().unwrap_or(0);
        let stdin: Option<Writer> = match stdin {
            Some(w) => Some(w),
            None => child.stdin.take().map(|s| Box::new(s) as Writer),
        };
        if let Some(out) = child.stdout.take() {
            readers.push((Stream::Stdout, Box::new(out)));
        }
        if let Some(err) = child.stderr.take() {
            readers.push((Stream::Stderr, Box::new(err)));
        }
        let process = Arc::new(ContainerProcess {
            pgid,
            output: output.clone(),
            stdin: Mutex::new(stdin),
            input_attached: AtomicBool::new(false),
            tty,
            exit,
        });
        let pumps: Vec<_> = readers
            .into_iter()
            .map(|(stream, r)| {
                let file = plan.sandbox.as_ref().map(|d| d.join(file_name(stream)));
                tokio::spawn(pump(stream, r, output.clone(), file))
            })
            .collect();
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => s.into_raw(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot wait for a nested container");
                    SIGKILL
                }
            };
            let drained = futures::future::join_all(pumps);
            let _ = tokio::time::timeout(DRAIN, drained).await;
            let _ = output.send(Chunk::End);
            let _ = exit_tx.send(Some(status));
        });
        Ok((process, first))
    }

    /// Output from now on (the first reader subscribes before anything runs).
    pub fn subscribe(&self) -> broadcast::Receiver<Chunk> {
        self.output.subscribe()
    }

    pub fn exit(&self) -> watch::Receiver<Option<i32>> {
        self.exit.clone()
    }

    pub fn running(&self) -> bool {
        self.exit.borrow().is_none()
    }

    pub fn has_tty(&self) -> bool {
        self.tty.is_some()
    }

    /// Sends signal number `signal` to the container's processes.
    pub fn signal(&self, signal: i32) -> Result<(), ProcessError> {
        let sig = Signal::from_named_raw(signal)
            .ok_or_else(|| ProcessError::Signal("Invalid argument".into()))?;
        let pgid = Pid::from_raw(self.pgid as i32)
            .ok_or_else(|| ProcessError::Signal("no process".into()))?;
        match rustix::process::kill_process_group(pgid, sig) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(ProcessError::Signal(e.to_string())),
        }
    }

    /// Takes the input side; `false` when someone else has it.
    pub fn claim_input(&self) -> bool {
        !self.input_attached.swap(true, Ordering::SeqCst)
    }

    pub fn release_input(&self) {
        self.input_attached.store(false, Ordering::SeqCst);
    }

    /// Writes `bytes` to its stdin; empty bytes close it (without a
    /// terminal: with one, the client sends EOT).
    pub async fn write_stdin(&self, bytes: &[u8]) -> Result<(), ProcessError> {
        let mut stdin = self.stdin.lock().await;
        if bytes.is_empty() {
            if self.tty.is_none()
                && let Some(mut w) = stdin.take()
            {
                let _ = w.shutdown().await;
            }
            return Ok(());
        }
        let Some(w) = stdin.as_mut() else {
            return Err(ProcessError::Stdin(std::io::ErrorKind::BrokenPipe.into()));
        };
        w.write_all(bytes).await.map_err(ProcessError::Stdin)?;
        w.flush().await.map_err(ProcessError::Stdin)
    }

    pub fn resize(&self, size: WindowSize) -> Result<(), ProcessError> {
        let Some(tty) = &self.tty else {
            return Err(ProcessError::Window("the container has no terminal".into()));
        };
        rustix::termios::tcsetwinsize(tty, winsize(size))
            .map_err(|e| ProcessError::Window(e.to_string()))
    }
}

/// Best effort: nobody is left to read what it wrote.
impl Drop for ContainerProcess {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.signal(SIGKILL);
        }
    }
}

/// The status of a process killed by SIGKILL.
const SIGKILL: i32 = 9;

fn file_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stderr => "stderr",
        _ => "stdout",
    }
}

fn winsize(size: WindowSize) -> rustix::termios::Winsize {
    rustix::termios::Winsize {
        ws_row: size.rows.min(u32::from(u16::MAX)) as u16,
        ws_col: size.columns.min(u32::from(u16::MAX)) as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// A pseudo-terminal of `size`: (controlling side, terminal side).
fn open_pty(size: WindowSize) -> Result<(OwnedFd, OwnedFd), ProcessError> {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::OpenptFlags;
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).map_err(ProcessError::Pty)?;
    rustix::pty::grantpt(&master).map_err(ProcessError::Pty)?;
    rustix::pty::unlockpt(&master).map_err(ProcessError::Pty)?;
    let name = rustix::pty::ptsname(&master, Vec::new()).map_err(ProcessError::Pty)?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(ProcessError::Pty)?;
    rustix::termios::tcsetwinsize(&master, winsize(size)).map_err(ProcessError::Pty)?;
    Ok((master, slave))
}

/// Reads `r` to its end (a terminal's end reads as EIO) into `out`, and
/// into `file` when given.
async fn pump(
    stream: Stream,
    mut r: Box<dyn AsyncRead + Send + Unpin>,
    out: broadcast::Sender<Chunk>,
    file: Option<PathBuf>,
) {
    let mut log = match &file {
        Some(path) => tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .inspect_err(|e| {
                tracing::warn!(path = %path.display(), error = %e,
                "cannot keep a nested container's output")
            })
            .ok(),
        None => None,
    };
    let mut buf = vec![0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(f) = log.as_mut() {
                    let _ = f.write_all(&buf[..n]).await;
                }
                let _ = out.send(Chunk::Data(stream, Arc::from(&buf[..n])));
            }
        }
    }
    if let Some(mut f) = log {
        let _ = f.flush().await;
    }
}
