//! Readers of `/proc/<pid>/stat`, taking the proc root as a path (tests use
//! temp trees). Used to recognise a process after a restart (pid + start
//! time: a recycled pid has a different start time) and to find the
//! processes a task left behind.

use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a stat line: {line:?}")]
    Parse { path: PathBuf, line: String },
}

/// The fields of `/proc/<pid>/stat` Keel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    /// `R`, `S`, `Z`, ...
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    pub session: u32,
    /// Clock ticks after boot (field 22).
    pub start_time: u64,
}

/// Parses one stat line. The command name sits in parentheses and may hold
/// spaces and parentheses itself, so fields are counted from the last `)`.
pub fn parse_stat(line: &str) -> Option<ProcStat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line[..open].trim().parse().ok()?;
    // Fields 3.. follow the command name.
    let rest: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).copied();
    Some(ProcStat {
        pid,
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        session: field(6)?.parse().ok()?,
        start_time: field(22)?.parse().ok()?,
    })
}

/// `/proc` (or a test tree shaped like it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcFs {
    root: PathBuf,
}

impl ProcFs {
    /// `sys/kernel/random/boot_id`: changes with every boot.
    pub fn boot_id(&self) -> Option<String> {
        let text = fs::read_to_string(self.root.join("sys/kernel/random/boot_id")).ok()?;
        Some(text.trim().to_string()).filter(|t| !t.is_empty())
    }
}

impl Default for ProcFs {
    fn default() -> Self {
        ProcFs::new("/proc")
    }
}

impl ProcFs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProcFs { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `None` when the process does not exist.
    pub fn stat(&self, pid: u32) -> Result<Option<ProcStat>, ProcError> {
        let path = self.root.join(pid.to_string()).join("stat");
        let line = match fs::read_to_string(&path) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            // ESRCH: the process went away between open and read.
            Err(e) if e.raw_os_error() == Some(3) => return Ok(None),
            Err(source) => return Err(ProcError::Io { path, source }),
        };
        parse_stat(&line)
            .map(Some)
            .ok_or(ProcError::Parse { path, line })
    }

    /// The start time of `pid`, if it is alive (zombies count as gone).
    pub fn start_time(&self, pid: u32) -> Option<u64> {
        let st = self.stat(pid).ok()??;
        (st.state != 'Z' && st.state != 'X').then_some(st.start_time)
    }

    /// Every process on the machine, as far as it could be read.
    pub fn all(&self) -> Vec<ProcStat> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| self.stat(pid).ok().flatten())
            .collect()
    }

    /// Live children of `ppid`.
    pub fn children(&self, ppid: u32) -> Vec<u32> {
        self.all()
            .into_iter()
            .filter(|s| s.ppid == ppid && s.state != 'Z')
            .map(|s| s.pid)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on the dev box (Debian 12): `sleep 5` started from a shell.
    const SLEEP: &str = "9274 (sleep) R 9272 9272 26138 0 -1 4194304 109 0 1 0 0 0 0 0 20 0 1 0 330575 2424832 245 18446744073709551615 93915046891520 93915046909449 140737436923808 0 0 0 0 6 0 0 0 0 17 1 0 0 0 0 0 93915046923536 93915046924800 93915075125248 140737436932646 140737436932654 140737436932654 140737436934121 0\n";
    // Made up: a zombie whose name holds spaces and parentheses.
    const ODD: &str = "7 (a (b) c) Z 1 7 7 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn parses_stat_lines() {
        assert_eq!(
            parse_stat(SLEEP),
            Some(ProcStat {
                pid: 9274,
                state: 'R',
                ppid: 9272,
                pgrp: 9272,
                session: 26138,
                start_time: 330575,
            })
        );
        let odd = parse_stat(ODD).unwrap();
        assert_eq!((odd.pid, odd.state, odd.start_time), (7, 'Z', 99));
        assert_eq!(parse_stat("12 (x) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_a_proc_tree() {
        let dir = tempfile::tempdir().unwrap();
        for (pid, line) in [("9274", SLEEP), ("7", ODD)] {
            fs::create_dir(dir.path().join(pid)).unwrap();
            fs::write(dir.path().join(pid).join("stat"), line).unwrap();
        }
        fs::create_dir(dir.path().join("self")).unwrap();
        fs::create_dir(dir.path().join("99")).unwrap();
        fs::write(dir.path().join("99/stat"), "junk").unwrap();
        let proc = ProcFs::new(dir.path());
        assert_eq!(proc.start_time(9274), Some(330575));
        assert_eq!(proc.start_time(7), None, "zombies are gone");
        assert_eq!(proc.start_time(5), None);
        assert!(matches!(proc.stat(99), Err(ProcError::Parse { .. })));
        assert_eq!(proc.children(9272), vec![9274]);
        assert_eq!(proc.children(1), Vec::<u32>::new());
        assert_eq!(proc.boot_id(), None);
        fs::create_dir_all(dir.path().join("sys/kernel/random")).unwrap();
        fs::write(
            dir.path().join("sys/kernel/random/boot_id"),
            "0b5b2a4e-8c61-4f41-9d3c-0c3b6f0e4d1a\n",
        )
        .unwrap();
        assert_eq!(
            proc.boot_id().as_deref(),
            Some("0b5b2a4e-8c61-4f41-9d3c-0c3b6f0e4d1a")
        );
    }

    #[test]
    fn reads_this_process() {
        let proc = ProcFs::default();
        let me = std::process::id();
        let st = proc.stat(me).unwrap().unwrap();
        assert_eq!(st.pid, me);
        assert!(proc.start_time(me).is_some());
        assert_eq!(proc.start_time(me), proc.start_time(me));
    }
}
