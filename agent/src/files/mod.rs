//! Task sandboxes over HTTP, as Mesos' files API on the agent's port:
//! `/files/browse`, `/files/read`, `/files/download` ([`http`]).
//!
//! Only the sandbox tree (`<work_dir>/slaves`) is served. A path is either
//! the sandbox's absolute path, or Mesos' virtual path of an executor's
//! latest run, `/frameworks/<fw>/executors/<ex>/runs/latest/...`, which
//! is this agent's `<work_dir>/slaves/<agent>/frameworks/<fw>/...`.
//!
//! Confinement does not trust the path text: what was actually opened is
//! checked (`/proc/self/fd/N` must lie under the sandbox root), so `..`,
//! symlinks a task planted in its sandbox, and races that swap a directory
//! for a link all end in "not found". Directory entries are examined
//! relative to the opened directory without following links.

pub mod http;

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilesError {
    #[error("{0}")]
    BadRequest(String),
    /// Missing, or outside the sandboxes (the two are not told apart).
    #[error("no such sandbox path: {0}")]
    NotFound(String),
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
}

/// One entry of a listing, as Mesos' `FileInfo`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileInfo {
    pub path: String,
    pub nlink: u64,
    pub size: u64,
    pub mtime: f64,
    pub mode: String,
    pub uid: String,
    pub gid: String,
}

/// An opened path under the sandbox root.
pub enum Opened {
    File(File, Stat),
    Dir(OwnedFd, Stat),
}

/// The sandbox tree of one agent.
#[derive(Debug, Clone)]
pub struct Sandboxes {
    /// `<work_dir>/slaves` (absolute).
    root: PathBuf,
}

impl Sandboxes {
    pub fn new(work_dir: &Path) -> Self {
        let work_dir = std::path::absolute(work_dir).unwrap_or_else(|_| work_dir.to_path_buf());
        Sandboxes {
            root: work_dir.join("slaves"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The real path a request names; checks only its shape.
    pub fn resolve(&self, requested: &str, agent_id: Option<&str>) -> Result<PathBuf, FilesError> {
        if requested.is_empty() {
            return Err(FilesError::BadRequest(
                "Expecting 'path=value' in query".into(),
            ));
        }
        let path = Path::new(requested);
        if !path.is_absolute() || requested.contains('\0') {
            return Err(FilesError::BadRequest(format!(
                "path {requested:?} is not absolute"
            )));
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(FilesError::BadRequest(format!(
                "path {requested:?} must not contain '..'"
            )));
        }
        if let Ok(rest) = path.strip_prefix("/frameworks") {
            let agent = agent_id.ok_or_else(|| FilesError::NotFound(requested.into()))?;
            return Ok(self.root.join(agent).join("frameworks").join(rest));
        }
        Ok(path.to_path_buf())
    }

    fn canonical_root(&self) -> Result<PathBuf, FilesError> {
        std::fs::canonicalize(&self.root)
            .map_err(|_| FilesError::NotFound(self.root.display().to_string()))
    }

    /// Opens `real` (from [`Self::resolve`]) and checks that what was opened
    /// lies inside the sandbox root.
    pub fn open(&self, real: &Path, shown: &str) -> Result<Opened, FilesError> {
        let not_found = || FilesError::NotFound(shown.to_string());
        let root = self.canonical_root()?;
        // NONBLOCK: a FIFO a task made must not hang the request (it is
        // refused below, as anything but files and directories).
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
        let fd: OwnedFd = rustix::fs::open(real, flags, Mode::empty()).map_err(|_| not_found())?;
        let opened = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map_err(|_| not_found())?;
        if !opened.starts_with(&root) {
            return Err(not_found());
        }
        let stat = rustix::fs::fstat(&fd).map_err(|e| FilesError::Io {
            path: shown.to_string(),
            reason: e.to_string(),
        })?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => Ok(Opened::Dir(fd, stat)),
            FileType::RegularFile => Ok(Opened::File(File::from(fd), stat)),
            _ => Err(not_found()),
        }
    }

    /// `[FileInfo]` for a directory (its entries) or a file (itself).
    pub fn browse(
        &self,
        requested: &str,
        agent_id: Option<&str>,
    ) -> Result<Vec<FileInfo>, FilesError> {
        let real = self.resolve(requested, agent_id)?;
        let shown = requested.trim_end_matches('/');
        match self.open(&real, requested)? {
            Opened::File(_, stat) => Ok(vec![file_info(requested.to_string(), &stat)]),
            Opened::Dir(fd, _) => {
                let io = |e: rustix::io::Errno| FilesError::Io {
                    path: requested.to_string(),
                    reason: e.to_string(),
                };
                let dir = rustix::fs::Dir::read_from(&fd).map_err(io)?;
                let mut out = Vec::new();
                for entry in dir {
                    let entry = entry.map_err(io)?;
                    let name = entry.file_name();
                    let bytes = name.to_bytes();
                    if bytes == b"." || bytes == b".." {
                        continue;
                    }
                    let Ok(stat) = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
                        continue;
                    };
                    let name = OsStr::from_bytes(bytes).to_string_lossy();
                    out.push(file_info(format!("{shown}/{name}"), &stat));
                }
                out.sort_by(|a, b| a.path.cmp(&b.path));
                Ok(out)
            }
        }
    }
}

/// `ls -l` style mode text: `drwxr-xr-x`.
pub fn mode_string(mode: u32) -> String {
    let kind = match FileType::from_raw_mode(mode) {
        FileType::Directory => 'd',
        FileType::Symlink => 'l',
        FileType::CharacterDevice => 'c',
        FileType::BlockDevice => 'b',
        FileType::Fifo => 'p',
        FileType::Socket => 's',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn file_info(path: String, st: &Stat) -> FileInfo {
    FileInfo {
        path,
        nlink: st.st_nlink,
        size: st.st_size.max(0) as u64,
        mtime: st.st_mtime as f64,
        mode: mode_string(st.st_mode),
        uid: st.st_uid.to_string(),
        gid: st.st_gid.to_string(),
    }
}

/// The longest prefix of `bytes` that does not end inside a UTF-8
/// sequence (so a reader that advances by the bytes it got never splits a
/// character between two reads).
pub fn utf8_prefix(bytes: &[u8]) -> &[u8] {
    match std::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() => &bytes[..e.valid_up_to()],
        _ => bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Sandboxes, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let sb = Sandboxes::new(dir.path());
        let run = sb.root().join("a-S0/frameworks/fw/executors/t1/runs/c1");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("stdout"), "hello\n").unwrap();
        std::fs::write(run.join("stderr"), "").unwrap();
        std::os::unix::fs::symlink("c1", run.parent().unwrap().join("latest")).unwrap();
        std::fs::write(dir.path().join("secret"), "no").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), run.join("planted")).unwrap();
        std::os::unix::fs::symlink("/etc", run.join("etc")).unwrap();
        (dir, sb, run)
    }

    #[test]
    fn virtual_and_real_paths_resolve() {
        let (_d, sb, run) = tree();
        let virt = "/frameworks/fw/executors/t1/runs/latest/stdout";
        let real = sb.resolve(virt, Some("a-S0")).unwrap();
        assert!(matches!(sb.open(&real, virt), Ok(Opened::File(..))));
        let abs = run.join("stdout");
        let p = sb.resolve(abs.to_str().unwrap(), None).unwrap();
        assert_eq!(p, abs);
        assert!(matches!(
            sb.resolve(virt, None),
            Err(FilesError::NotFound(_))
        ));
    }

    #[test]
    fn nothing_outside_the_sandboxes_is_served() {
        let (d, sb, run) = tree();
        for bad in ["relative/x", "", "/frameworks/../../secret"] {
            assert!(
                matches!(sb.resolve(bad, Some("a")), Err(FilesError::BadRequest(_))),
                "{bad}"
            );
        }
        let outside = [
            d.path().join("secret"),
            run.join("planted"),
            run.join("etc/passwd"),
            PathBuf::from("/etc/passwd"),
            d.path().to_path_buf(),
        ];
        for p in outside {
            let shown = p.display().to_string();
            let real = sb.resolve(&shown, None).unwrap();
            assert!(
                matches!(sb.open(&real, &shown), Err(FilesError::NotFound(_))),
                "{shown} was served"
            );
        }
    }

    #[test]
    fn browse_lists_a_directory_without_following_links() {
        let (_d, sb, _run) = tree();
        let v = "/frameworks/fw/executors/t1/runs/latest";
        let entries = sb.browse(v, Some("a-S0")).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            names,
            [
                format!("{v}/etc"),
                format!("{v}/planted"),
                format!("{v}/stderr"),
                format!("{v}/stdout")
            ]
        );
        assert_eq!(entries[0].mode, "lrwxrwxrwx");
        assert_eq!(entries[3].size, 6);
        assert!(entries[3].mode.starts_with("-rw"));
        assert!(entries[3].mtime > 1.6e9);
        let one = sb.browse(&format!("{v}/stdout"), Some("a-S0")).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].path, format!("{v}/stdout"));
    }

    #[test]
    fn modes_and_utf8_prefixes() {
        assert_eq!(mode_string(0o40755), "drwxr-xr-x");
        assert_eq!(mode_string(0o100640), "-rw-r-----");
        let text = "añb".as_bytes();
        assert_eq!(utf8_prefix(&text[..2]), b"a");
        assert_eq!(utf8_prefix(text), text);
        assert_eq!(utf8_prefix(b"\xffx"), b"\xffx", "invalid bytes are kept");
    }
}
