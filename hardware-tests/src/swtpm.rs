//! One software TPM 2.0 per guest (Debian `swtpm`), its state in the
//! guest's directory, talking to QEMU over a unix socket. It exits when
//! QEMU closes the connection; dropping it kills it in any case.
//!
//! [`Swtpm::start_tcp`] serves a host process instead (tpm2-tss's swtpm
//! TCTI, [`Swtpm::tcti`]): the agent's TPM admission tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum SwtpmError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start swtpm (Debian package swtpm): {0}")]
    Spawn(std::io::Error),
    #[error("swtpm did not create {0} within 10s")]
    NoSocket(PathBuf),
    #[error("swtpm did not listen on 127.0.0.1:{0} within 10s")]
    NoPort(u16),
    #[error("no two adjacent free ports on 127.0.0.1")]
    NoPorts,
}

pub struct Swtpm {
    child: Child,
    /// TCP: the command port (the control port is the next one).
    port: Option<u16>,
}

impl Swtpm {
    /// The control socket QEMU connects to.
    pub fn socket(dir: &Path) -> PathBuf {
        dir.join("swtpm.sock")
    }

    pub fn start(dir: &Path) -> Result<Self, SwtpmError> {
        std::fs::create_dir_all(dir).map_err(|source| SwtpmError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let socket = Self::socket(dir);
        let _ = std::fs::remove_file(&socket);
        let child = Command::new("swtpm")
            .arg("socket")
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(format!("dir={}", dir.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", socket.display()))
            .arg("--terminate")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(SwtpmError::Spawn)?;
        let mut tpm = Swtpm { child, port: None };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if Instant::now() > deadline || matches!(tpm.child.try_wait(), Ok(Some(_))) {
                tpm.kill();
                return Err(SwtpmError::NoSocket(socket));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(tpm)
    }

    /// Whether swtpm is installed (tests skip, saying so, without it).
    pub fn installed() -> bool {
        Command::new("swtpm")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A TPM for host processes on 127.0.0.1, its state in `dir` (kept
    /// across restarts, like a chip's), already started up.
    pub fn start_tcp(dir: &Path) -> Result<Self, SwtpmError> {
        std::fs::create_dir_all(dir).map_err(|source| SwtpmError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let port = free_port_pair().ok_or(SwtpmError::NoPorts)?;
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
            .arg("--tpmstate")
            .arg(format!("dir={}", dir.display()))
            .arg("--server")
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(SwtpmError::Spawn)?;
        let mut tpm = Swtpm {
            child,
            port: Some(port),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || matches!(tpm.child.try_wait(), Ok(Some(_))) {
                tpm.kill();
                return Err(SwtpmError::NoPort(port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(tpm)
    }

    /// The TCTI of a [`Swtpm::start_tcp`] TPM.
    pub fn tcti(&self) -> Option<String> {
        self.port.map(|p| format!("swtpm:host=127.0.0.1,port={p}"))
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port P with P + 1 free too (the swtpm TCTI's control port).
fn free_port_pair() -> Option<u16> {
    (0..100).find_map(|_| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        (port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok())
            .then_some(port)
    })
}
