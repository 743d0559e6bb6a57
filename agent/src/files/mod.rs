//! Task sandboxes over HTTP, as Mesos' files API on the agent's port:
//! `/files/browse`, `/files/read`, `/files/download` ([`http`]).
//!
//! Only the sandbox tree (`<work_dir>/slaves`) is served. A path is either
//! the sandbox's absolute path, or Mesos' virtual path of an executor's
//! latest run, `/frameworks/<fw>/executors/<ex>/runs/latest/...`, which
//! is this agent's `<work_dir>/slaves/<agent>/frameworks/<fw>/...`.
//!
//! Confinement never opens anything outside: a request's path is first made
//! relative to the sandbox root (a path outside it is "not found" without
//! a system call on it), then resolved below the root's descriptor with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` and `O_PATH`
//! ([`beneath`]). The one link followed is a run's `latest`, which must
//! name a sibling run directory. What was found is checked with `fstat`
//! before anything is opened for reading: FIFOs, sockets and devices are
//! refused (nothing opened, so a FIFO's writer is not released and a
//! device's open has no effect), and so are regular files with more than
//! one link (a task's hard link to a file outside its sandbox). Directory
//! entries are listed without following links.

pub mod beneath;
pub mod http;

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilesError {
    #[error("{0}")]
    BadRequest(String),
    /// Missing, or outside the sandboxes (the two are not told apart).
    #[error("no such sandbox path: {0}")]
    NotFound(String),
    /// Inside a sandbox, but not something this API serves.
    #[error("refused to serve {path}: {reason}")]
    Refused { path: String, reason: String },
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

/// Found below the root, not yet opened (an `O_PATH` descriptor).
struct Found {
    fd: OwnedFd,
    stat: Stat,
    dir: bool,
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

    /// The path a request names, relative to the sandbox root; checks only
    /// its shape. A path outside the root is not found.
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
        let not_found = || FilesError::NotFound(requested.to_string());
        if let Ok(rest) = path.strip_prefix("/frameworks") {
            let agent = agent_id.ok_or_else(not_found)?;
            return Ok(Path::new(agent).join("frameworks").join(rest));
        }
        if let Ok(rest) = path.strip_prefix(&self.root) {
            return Ok(rest.to_path_buf());
        }
        // The root as the kernel names it (the work dir may be reached
        // through a link); resolving the root itself is the operator's.
        let canonical = std::fs::canonicalize(&self.root).map_err(|_| not_found())?;
        path.strip_prefix(&canonical)
            .map(Path::to_path_buf)
            .map_err(|_| not_found())
    }

    fn root_fd(&self) -> Result<OwnedFd, FilesError> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        rustix::fs::open(&self.root, flags, Mode::empty())
            .map_err(|_| FilesError::NotFound(self.root.display().to_string()))
    }

    /// Finds what `requested` names below the root without opening it,
    /// and refuses anything but directories and singly linked files.
    fn find(&self, requested: &str, agent_id: Option<&str>) -> Result<Found, FilesError> {
        let rel = self.resolve(requested, agent_id)?;
        let root = self.root_fd()?;
        let rel = latest_run(root.as_fd(), rel).map_err(|e| lookup_error(requested, e))?;
        let (fd, stat) =
            beneath::locate(root.as_fd(), &rel).map_err(|e| lookup_error(requested, e))?;
        let refused = |reason: String| FilesError::Refused {
            path: requested.to_string(),
            reason,
        };
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => Ok(Found {
                fd,
                stat,
                dir: true,
            }),
            FileType::RegularFile if stat.st_nlink > 1 => Err(refused(format!(
                "it has {} hard links (a file linked from elsewhere is not served)",
                stat.st_nlink
            ))),
            FileType::RegularFile => Ok(Found {
                fd,
                stat,
                dir: false,
            }),
            _ => Err(refused(format!(
                "it is {}; only regular files and directories are served",
                beneath::kind_name(stat.st_mode)
            ))),
        }
    }

    /// Opens what `requested` names for reading (see the module's rules).
    pub fn open(&self, requested: &str, agent_id: Option<&str>) -> Result<Opened, FilesError> {
        let found = self.find(requested, agent_id)?;
        let io = |e: std::io::Error| FilesError::Io {
            path: requested.to_string(),
            reason: e.to_string(),
        };
        if found.dir {
            return Ok(Opened::Dir(found.fd, found.stat));
        }
        let file = beneath::reopen_file(&found.fd, &found.stat).map_err(io)?;
        Ok(Opened::File(file, found.stat))
    }

    /// `[FileInfo]` for a directory (its entries) or a file (itself).
    pub fn browse(
        &self,
        requested: &str,
        agent_id: Option<&str>,
    ) -> Result<Vec<FileInfo>, FilesError> {
        let found = self.find(requested, agent_id)?;
        if !found.dir {
            return Ok(vec![file_info(requested.to_string(), &found.stat)]);
        }
        let shown = requested.trim_end_matches('/');
        let io = |e: std::io::Error| FilesError::Io {
            path: requested.to_string(),
            reason: e.to_string(),
        };
        let dir = beneath::reopen_dir(&found.fd).map_err(io)?;
        let mut out = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| io(e.into()))?;
            let name = entry.file_name();
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let Ok(stat) = rustix::fs::statat(&found.fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            let name = OsStr::from_bytes(bytes).to_string_lossy();
            out.push(file_info(format!("{shown}/{name}"), &stat));
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

/// Resolution failures are "not found" (outside, missing, a link); what
/// the kernel ran short of is an I/O error.
fn lookup_error(requested: &str, e: std::io::Error) -> FilesError {
    let hidden = [
        Errno::NOENT,
        Errno::LOOP,
        Errno::XDEV,
        Errno::NOTDIR,
        Errno::ACCESS,
        Errno::PERM,
        Errno::NAMETOOLONG,
        Errno::INVAL,
    ];
    match e.raw_os_error() {
        Some(code) if hidden.iter().any(|h| h.raw_os_error() == code) => {
            FilesError::NotFound(requested.to_string())
        }
        _ => FilesError::Io {
            path: requested.to_string(),
            reason: e.to_string(),
        },
    }
}

/// `<agent>/frameworks/<fw>/executors/<ex>/runs/latest/...` with `latest`
/// (a link the agent made) replaced by the run it names, which must be a
/// plain sibling name. Any other path is returned as it is.
fn latest_run(root: BorrowedFd<'_>, rel: PathBuf) -> std::io::Result<PathBuf> {
    let names = beneath::components(&rel)?;
    let is = |i: usize, s: &str| names.get(i).is_some_and(|n| *n == OsStr::new(s));
    if !(is(1, "frameworks") && is(3, "executors") && is(5, "runs") && is(6, "latest")) {
        return Ok(rel);
    }
    let runs: PathBuf = names[..6].iter().collect();
    let runs = beneath::open_beneath(root, &runs, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
    let target = rustix::fs::readlinkat(&runs, "latest", Vec::new())?;
    let target = Path::new(OsStr::from_bytes(target.as_bytes()));
    match beneath::components(target)?.as_slice() {
        [run] if *run != OsStr::new("latest") => {}
        _ => return Err(Errno::XDEV.into()),
    }
    let mut out: PathBuf = names[..6].iter().collect();
    out.push(target);
    out.extend(&names[7..]);
    Ok(out)
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
mod tests;
