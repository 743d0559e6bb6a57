//! One software TPM 2.0 per guest (Debian `swtpm`), its state in the
//! guest's directory, talking to QEMU over a unix socket. It exits when
//! QEMU closes the connection; dropping it kills it in any case.

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
}

pub struct Swtpm {
    child: Child,
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
        let mut tpm = Swtpm { child };
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
