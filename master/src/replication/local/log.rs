//! [`CommandLog`], a single master's durable command log: one JSON
//! [`Command`] per line, fsynced before the command takes effect. Replaying
//! it rebuilds the [`Registry`]. Each line is `crc32 (8 hex digits) SP
//! json`, the checksum over the JSON, so that a damaged byte is found
//! rather than replayed as another command (lines of earlier logs, bare
//! JSON, are still read).
//!
//! A crash can tear only the last line (written without its newline, or
//! with pages of it never written, which read as zeros); that tail is cut
//! off on open, since its command was never acknowledged. Any other damage
//! is an error: the master refuses to start rather than serve a registry it
//! cannot trust.
//!
//! A write that fails (a full disk, an fsync error) fails its command and
//! leaves the log as it was: the file is cut back to the acknowledged
//! commands and fsynced before anything else is written, so a partial line
//! is never followed by the next command. An fsync error leaves the pages
//! it was to write in an unknown state; those are only the failed line's
//! (every acknowledged command had its own fsync), and cutting them off
//! rewrites the page they share with the last acknowledged line. Until the
//! cut is done and synced the log refuses appends; each append tries it
//! again first, so the master takes writes again once the disk does.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::registry::{Command, Registry, RegistryError};
use crate::replication::disk::Disk;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("command log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "command log {path} line {line} is corrupt (at byte {offset}): {reason}; \
         refusing to start on it"
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        offset: u64,
        reason: String,
    },
    #[error("command log {path}: cannot encode a command: {reason}")]
    Encode { path: PathBuf, reason: String },
    #[error(
        "command log {path}: an earlier write failed and the log cannot be cut back \
         to its acknowledged commands yet: {source}"
    )]
    Unrepaired {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct CommandLog {
    path: PathBuf,
    file: File,
    /// The bytes of the acknowledged commands; the next line goes here.
    len: u64,
    /// A write past `len` failed and was not cut off yet.
    dirty: bool,
    disk: Disk,
}

impl CommandLog {
    /// Opens (or creates) the log at `path` and replays it.
    pub fn open(path: &Path) -> Result<(Self, Registry), StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let mut registry = Registry::default();
        let mut good_len = 0u64;
        let mut reader = BufReader::new(&file);
        let mut line = Vec::new();
        let mut number = 0usize;
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(io)?;
            if n == 0 {
                break;
            }
            number += 1;
            if !line.ends_with(b"\n") {
                tracing::warn!(path = %path.display(), line = number,
                    "dropping a torn last command (never acknowledged)");
                break;
            }
            let corrupt = |reason: String| StoreError::Corrupt {
                path: path.to_path_buf(),
                line: number,
                offset: good_len,
                reason,
            };
            let json = match checked(&line) {
                Ok(json) => json,
                Err(_) if line.contains(&0) && at_end(&mut reader).map_err(io)? => {
                    tracing::warn!(path = %path.display(), line = number,
                        "dropping a last command with unwritten pages (never acknowledged)");
                    break;
                }
                Err(reason) => return Err(corrupt(reason)),
            };
            let cmd: Command = serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))?;
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
        Ok((
            CommandLog {
                path: path.to_path_buf(),
                file,
                len: good_len,
                dirty: false,
                disk: Disk::default(),
            },
            registry,
        ))
    }

    /// Appends `cmd` and waits until it is on disk. On an error nothing
    /// was appended: the file holds the acknowledged commands only (or is
    /// cut back to them before the next append).
    pub fn append(&mut self, cmd: &Command) -> Result<(), StoreError> {
        let json = serde_json::to_vec(cmd).map_err(|e| StoreError::Encode {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let mut line = format!("{:08x} ", crc32fast::hash(&json)).into_bytes();
        line.extend_from_slice(&json);
        line.push(b'\n');
        self.repair().map_err(|source| StoreError::Unrepaired {
            path: self.path.clone(),
            source,
        })?;
        self.dirty = true;
        let written = self
            .disk
            .write_all_at(&self.file, &line, self.len)
            .and_then(|()| self.disk.sync_data(&self.file));
        if let Err(source) = written {
            if let Err(e) = self.repair() {
                tracing::error!(path = %self.path.display(), error = %e,
                    "cannot cut a failed command off the log yet; retrying before the next one");
            }
            return Err(StoreError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.len += line.len() as u64;
        self.dirty = false;
        Ok(())
    }

    /// Cuts what a failed write left after the acknowledged commands, and
    /// makes the cut durable.
    fn repair(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.file.set_len(self.len)?;
        self.disk.sync_all(&self.file)?;
        self.dirty = false;
        Ok(())
    }
}

/// The JSON of one line (its newline included), its checksum verified;
/// a line without a checksum is one of an earlier log.
fn checked(line: &[u8]) -> Result<&[u8], String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if line.starts_with(b"{") {
        return Ok(line);
    }
    let (sum, body) = match line.get(8) {
        Some(b' ') => line.split_at(8),
        _ => return Err("no checksum before the command".into()),
    };
    let sum = std::str::from_utf8(sum).map_err(|_| "the checksum is not text".to_string())?;
    let want = u32::from_str_radix(sum, 16).map_err(|_| format!("bad checksum {sum:?}"))?;
    let body = &body[1..];
    let got = crc32fast::hash(body);
    if got != want {
        return Err(format!(
            "checksum {sum} does not match the command ({got:08x})"
        ));
    }
    Ok(body)
}

/// Whether nothing but zeros (unwritten space) follows.
fn at_end(reader: &mut impl BufRead) -> std::io::Result<bool> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(true);
        }
        if buf.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        let n = buf.len();
        reader.consume(n);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::replication::disk::tests::Tmpfs;

    pub(crate) fn boot(id: &str) -> Command {
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

    fn weight(role: &str) -> Command {
        serde_json::from_value(serde_json::json!(
            {"command": "update_weights", "weights": [[role, 2.0]]}))
        .unwrap()
    }

    #[test]
    fn a_damaged_byte_is_found_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.log");
        {
            let (mut log, _) = CommandLog::open(&path).unwrap();
            log.append(&boot("m1")).unwrap();
            log.append(&weight("r1")).unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.iter().position(|&b| b == b'm').unwrap();
        bytes[at + 1] = b'2';
        std::fs::write(&path, &bytes).unwrap();
        let err = CommandLog::open(&path).err().expect("must fail");
        assert!(
            matches!(&err, StoreError::Corrupt { line: 1, reason, .. } if reason.contains("checksum")),
            "{err}"
        );
    }

    #[test]
    fn a_log_of_bare_json_lines_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.log");
        std::fs::write(&path, b"{\"command\":\"bootstrap\",\"master_id\":\"m1\"}\n").unwrap();
        let (mut log, reg) = CommandLog::open(&path).unwrap();
        assert_eq!(reg.master_id(), Some("m1"));
        log.append(&weight("r1")).unwrap();
        drop(log);
        let (_, reg) = CommandLog::open(&path).unwrap();
        assert_eq!(reg.master_id(), Some("m1"));
        assert_eq!(
            reg.weights().collect::<Vec<_>>(),
            [(&"r1".to_string(), &2.0)]
        );
    }

    #[test]
    fn a_last_line_with_unwritten_pages_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.log");
        {
            let (mut log, _) = CommandLog::open(&path).unwrap();
            log.append(&boot("m1")).unwrap();
            log.append(&weight("r1")).unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let first = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        let end = bytes.len() - 1;
        bytes[first + 12..end].fill(0);
        bytes.extend_from_slice(&[0; 100]);
        std::fs::write(&path, &bytes).unwrap();
        let (_, reg) = CommandLog::open(&path).unwrap();
        assert_eq!(reg.master_id(), Some("m1"));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), first as u64);
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

    pub(crate) fn framework(n: usize) -> Command {
        Command::AddFramework {
            info: keel_api::mesos::FrameworkInfo {
                user: "disk".into(),
                // Long enough that a few lines fill a page.
                name: format!("fw-{n}-{}", "x".repeat(400)),
                id: None,
                failover_timeout: None,
                checkpoint: None,
                role: None,
                roles: Vec::new(),
                hostname: None,
                principal: None,
                webui_url: None,
                capabilities: Vec::new(),
                labels: None,
                offer_filters: None,
            },
            at: 1.0,
        }
    }

    pub(crate) fn names(reg: &Registry) -> Vec<String> {
        reg.frameworks()
            .map(|f| f.info.name.split('-').take(2).collect::<Vec<_>>().join("-"))
            .collect()
    }

    pub(crate) fn expected(n: std::ops::Range<usize>) -> Vec<String> {
        n.map(|i| format!("fw-{i}")).collect()
    }

    /// The log holds exactly `bootstrap` and frameworks `0..n`, each on
    /// its own line.
    fn holds_exactly(path: &Path, n: usize) {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.ends_with('\n'), "a partial line is left");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), n + 1, "{} lines for {n} commands", lines.len());
        for line in lines {
            let json = checked(line.as_bytes()).expect("every line checksummed");
            serde_json::from_slice::<Command>(json).expect("every line a command");
        }
        let (_, reg) = CommandLog::open(path).expect("reopens");
        assert_eq!(names(&reg), expected(0..n));
    }

    #[test]
    fn a_full_disk_fails_the_append_and_leaves_the_log_as_it_was() {
        let Some(fs) = Tmpfs::mount(1 << 20) else {
            return;
        };
        let path = fs.path().join("registry.log");
        let (mut log, _) = CommandLog::open(&path).unwrap();
        log.append(&boot("m1")).unwrap();
        fs.fill();
        // Lines go into the last page until one needs a new one.
        let mut acked = 0;
        let err = loop {
            match log.append(&framework(acked)) {
                Ok(()) => acked += 1,
                Err(e) => break e,
            }
            assert!(acked < 100, "the disk never filled");
        };
        let StoreError::Io { source, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(source.raw_os_error(), Some(28), "{err}");
        holds_exactly(&path, acked);
        // Still full: fails again, still leaves it as it was.
        assert!(log.append(&framework(acked)).is_err());
        holds_exactly(&path, acked);
        // Space back: the same log takes writes again, no reopening.
        fs.free();
        log.append(&framework(acked)).unwrap();
        log.append(&framework(acked + 1)).unwrap();
        drop(log);
        holds_exactly(&path, acked + 2);
    }

    /// A log with `bootstrap` and frameworks 0 and 1.
    fn two_written(dir: &Path) -> (PathBuf, CommandLog) {
        let path = dir.join("registry.log");
        let (mut log, _) = CommandLog::open(&path).unwrap();
        log.append(&boot("m1")).unwrap();
        log.append(&framework(0)).unwrap();
        log.append(&framework(1)).unwrap();
        (path, log)
    }

    #[test]
    fn a_write_cut_short_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut log) = two_written(dir.path());
        let before = std::fs::read(&path).unwrap();
        log.disk.cut_next_write(100);
        let err = log.append(&framework(2)).unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the partial line stays"
        );
        log.append(&framework(2)).unwrap();
        drop(log);
        holds_exactly(&path, 3);
    }

    #[test]
    fn a_command_whose_fsync_failed_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut log) = two_written(dir.path());
        let before = std::fs::read(&path).unwrap();
        // The line was written but may not be on disk: it is not
        // acknowledged, and must not come back after a restart.
        log.disk.fail_syncs(1);
        let err = log.append(&framework(2)).unwrap_err();
        assert!(err.to_string().contains("Input/output error"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        log.append(&framework(3)).unwrap();
        drop(log);
        let (_, reg) = CommandLog::open(&path).unwrap();
        assert_eq!(names(&reg), ["fw-0", "fw-1", "fw-3"]);
    }

    #[test]
    fn a_cut_that_fails_is_done_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut log) = two_written(dir.path());
        // The fsync fails, and so does the cut's: the failed line is still
        // in the file.
        log.disk.fail_syncs(2);
        assert!(log.append(&framework(2)).is_err());
        // The cut fails again: the next command is refused unwritten.
        log.disk.fail_syncs(1);
        let err = log.append(&framework(3)).unwrap_err();
        assert!(matches!(err, StoreError::Unrepaired { .. }), "{err}");
        // Then the disk works again: the cut, then the command.
        log.append(&framework(4)).unwrap();
        drop(log);
        let (_, reg) = CommandLog::open(&path).unwrap();
        assert_eq!(names(&reg), ["fw-0", "fw-1", "fw-4"]);
    }
}
