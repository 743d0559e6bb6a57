//! One master alone: [`LocalLog`], the [`Replicator`] over [`CommandLog`],
//! a durable command log: one JSON [`Command`] per line, fsynced before the
//! command takes effect. Replaying it rebuilds the [`Registry`].
//!
//! A crash can tear only the last line (written without its newline); that
//! tail is cut off on open, since its command was never acknowledged. Any
//! other damage is an error: the master refuses to start rather than serve a
//! registry it cannot trust. Raft ([`super::raft`]) replaces this file when
//! masters are replicated; the commands stay the same.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{BoxFuture, ClusterView, Leadership, Member, ProposeError, Replicator};
use crate::registry::{Applied, Command, Registry, RegistryError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("command log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("command log {path} line {line} is corrupt: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

pub struct CommandLog {
    path: PathBuf,
    file: File,
}

impl CommandLog {
    /// Opens (or creates) the log at `path` and replays it.
    pub fn open(path: &Path) -> Result<(Self, Registry), StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let mut registry = Registry::default();
        let mut good_len = 0u64;
        let mut reader = BufReader::new(&file);
        let mut line = String::new();
        let mut number = 0usize;
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(io)?;
            if n == 0 {
                break;
            }
            number += 1;
            if !line.ends_with('\n') {
                tracing::warn!(path = %path.display(), line = number,
                    "dropping a torn last command (never acknowledged)");
                break;
            }
            let corrupt = |reason: String| StoreError::Corrupt {
                path: path.to_path_buf(),
                line: number,
                reason,
            };
            let cmd: Command = serde_json::from_str(&line).map_err(|e| corrupt(e.to_string()))?;
            registry
                .apply(&cmd)
                .map_err(|e: RegistryError| corrupt(e.to_string()))?;
            good_len += n as u64;
        }
        drop(reader);
        if file.metadata().map_err(io)?.len() != good_len {
            file.set_len(good_len).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok((
            CommandLog {
                path: path.to_path_buf(),
                file,
            },
            registry,
        ))
    }

    /// Appends `cmd` and waits until it is on disk.
    pub fn append(&mut self, cmd: &Command) -> Result<(), StoreError> {
        let mut line = serde_json::to_vec(cmd).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            line: 0,
            reason: format!("cannot encode command: {e}"),
        })?;
        line.push(b'\n');
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(io)
    }
}

/// The one term of a single master.
const TERM: u64 = 1;
const SINGLE: &str =
    "this master runs alone on a local command log; start masters with --masters to replicate";

/// A single master's registry: the fsynced JSON-lines command log.
pub struct LocalLog {
    state: Mutex<(CommandLog, Registry)>,
    addr: String,
}

impl LocalLog {
    /// `addr` is this master's `host:port`, reported as the only member.
    pub fn open(path: &Path, addr: String) -> Result<Self, StoreError> {
        let (log, registry) = CommandLog::open(path)?;
        Ok(LocalLog {
            state: Mutex::new((log, registry)),
            addr,
        })
    }
}

impl Replicator for LocalLog {
    fn propose(
        &self,
        cmd: Command,
    ) -> BoxFuture<'_, Result<Result<Applied, RegistryError>, ProposeError>> {
        let result = (|| {
            let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let (log, registry) = &mut *guard;
            if let Err(e) = registry.validate(&cmd) {
                return Ok(Err(e));
            }
            log.append(&cmd)
                .map_err(|e| ProposeError::Store(e.to_string()))?;
            Ok(registry.apply(&cmd))
        })();
        Box::pin(std::future::ready(result))
    }

    fn barrier(&self) -> BoxFuture<'_, Result<(), ProposeError>> {
        // Appends are applied before `propose` returns.
        Box::pin(std::future::ready(Ok(())))
    }

    fn registry(&self) -> Registry {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    fn cluster(&self) -> ClusterView {
        ClusterView {
            leadership: Leadership::Leader,
            term: TERM,
            members: vec![Member {
                id: 1,
                addr: self.addr.clone(),
                voter: true,
            }],
            me: 1,
            log: None,
            problem: None,
        }
    }

    fn leadership_changed<'a>(&'a self, seen: &'a ClusterView) -> BoxFuture<'a, ()> {
        // The view never changes: resolved only by one that already differs.
        if (&seen.leadership, seen.term) != (&Leadership::Leader, TERM) {
            return Box::pin(std::future::ready(()));
        }
        Box::pin(std::future::pending())
    }

    fn add_member(&self, _addr: String) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(std::future::ready(Err(ProposeError::Unsupported(
            SINGLE.into(),
        ))))
    }

    fn remove_member(&self, _id: u64) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(std::future::ready(Err(ProposeError::Unsupported(
            SINGLE.into(),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(id: &str) -> Command {
        Command::Bootstrap {
            master_id: id.into(),
        }
    }

    #[test]
    fn replays_what_was_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.log");
        {
            let (mut log, reg) = CommandLog::open(&path).unwrap();
            assert_eq!(reg, Registry::default());
            log.append(&boot("m1")).unwrap();
        }
        let (_, reg) = CommandLog::open(&path).unwrap();
        assert_eq!(reg.master_id(), Some("m1"));
    }

    #[test]
    fn torn_tail_is_dropped_and_log_stays_appendable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.log");
        std::fs::write(
            &path,
            b"{\"command\":\"bootstrap\",\"master_id\":\"m1\"}\n{\"comm",
        )
        .unwrap();
        let (mut log, reg) = CommandLog::open(&path).unwrap();
        assert_eq!(reg.master_id(), Some("m1"));
        log.append(&Command::DisconnectAgent {
            agent_id: "x".into(),
            at: 1.0,
        })
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().nth(1).unwrap().contains("disconnect_agent"));
    }

    #[test]
    fn corrupt_middle_line_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.log");
        std::fs::write(
            &path,
            b"{\"command\":\"bootstrap\",\"master_id\":\"m1\"}\nnot json\n",
        )
        .unwrap();
        let err = CommandLog::open(&path).err().expect("must fail");
        assert!(matches!(err, StoreError::Corrupt { line: 2, .. }), "{err}");
    }

    #[test]
    fn a_log_that_does_not_apply_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.log");
        std::fs::write(
            &path,
            b"{\"command\":\"mark_agent_unreachable\",\"agent_id\":\"a\",\"at\":1.0}\n",
        )
        .unwrap();
        let err = CommandLog::open(&path).err().expect("must fail");
        assert!(err.to_string().contains("not bootstrapped"), "{err}");
    }

    #[tokio::test]
    async fn local_log_persists_before_answering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.log");
        let log = LocalLog::open(&path, "127.0.0.1:5050".into()).unwrap();
        let applied = log
            .propose(Command::Bootstrap {
                master_id: "m".into(),
            })
            .await
            .unwrap();
        assert_eq!(applied, Ok(Applied::Bootstrapped));
        // A refused command is the registry's verdict, not a store failure,
        // and is not written.
        let refused = log
            .propose(Command::Bootstrap {
                master_id: "n".into(),
            })
            .await
            .unwrap();
        assert!(refused.is_err());
        let again = LocalLog::open(&path, "127.0.0.1:5050".into()).unwrap();
        assert_eq!(again.cluster().leadership, Leadership::Leader);
        assert_eq!(again.registry().master_id(), Some("m"));
    }
}
