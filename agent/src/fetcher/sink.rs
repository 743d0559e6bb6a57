//! Writing below a directory the fetcher fills (a sandbox, the cache):
//! parent directories made one at a time without following a symlink, a
//! temporary file renamed into place (removed if the fetch fails or is
//! dropped), and copies that stop at a byte budget.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::files::beneath;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{0}")]
    Read(io::Error),
    #[error("{0}")]
    Write(io::Error),
    #[error("more than {limit} bytes")]
    Over { limit: u64 },
}

/// Opens `dir` (trusted: the agent's own path) as an `O_PATH` descriptor.
pub fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(rustix::fs::open(dir, flags, Mode::empty())?)
}

/// Makes the directories of `rel` below `root` (`mode` for new ones),
/// following no symlink: an existing link in the way is an error
/// (`ENOTDIR`). Returns the last directory (`O_PATH`).
pub fn make_dirs(root: BorrowedFd<'_>, rel: &Path, mode: u32) -> io::Result<OwnedFd> {
    let step = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir = rustix::fs::openat(root, ".", step, Mode::empty())?;
    for name in beneath::components(rel)? {
        match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(mode)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        dir = rustix::fs::openat(&dir, name, step, Mode::empty())?;
    }
    Ok(dir)
}

/// Splits a relative path into its parent and last name.
pub fn split(rel: &Path) -> io::Result<(&Path, &OsStr)> {
    let name = rel.file_name().ok_or(Errno::INVAL)?;
    Ok((rel.parent().unwrap_or(Path::new("")), name))
}

/// A file being written below a directory; it appears under its name only
/// on [`PartFile::commit`].
pub struct PartFile {
    dir: OwnedFd,
    tmp: OsString,
    name: OsString,
    file: File,
    committed: bool,
}

impl PartFile {
    /// A temporary file beside `rel` below `root`.
    pub fn create(root: &Path, rel: &Path) -> io::Result<Self> {
        let (parent, name) = split(rel)?;
        let dir = make_dirs(open_dir(root)?.as_fd(), parent, 0o755)?;
        let tmp = OsString::from(format!(".keel-part-{}", uuid::Uuid::new_v4().simple()));
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&dir, &tmp, flags, Mode::from_raw_mode(0o644))?;
        Ok(PartFile {
            dir,
            tmp,
            name: name.to_os_string(),
            file: File::from(fd),
            committed: false,
        })
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Gives it its name (replacing what had it), with `mode` if given.
    pub fn commit(mut self, mode: Option<u32>) -> io::Result<()> {
        self.file.flush()?;
        if let Some(mode) = mode {
            rustix::fs::fchmod(&self.file, Mode::from_raw_mode(mode))?;
        }
        rustix::fs::renameat(&self.dir, &self.tmp, &self.dir, &self.name)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = rustix::fs::unlinkat(&self.dir, &self.tmp, AtFlags::empty());
        }
    }
}

/// Bytes that may still be written.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    limit: u64,
    used: u64,
}

impl Budget {
    pub fn new(limit: u64) -> Self {
        Budget { limit, used: 0 }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn used(&self) -> u64 {
        self.used
    }

    /// Counts `n` more bytes; past the limit is an error.
    pub fn take(&mut self, n: u64) -> Result<(), SinkError> {
        match self.used.checked_add(n) {
            Some(total) if total <= self.limit => {
                self.used = total;
                Ok(())
            }
            _ => Err(SinkError::Over { limit: self.limit }),
        }
    }

    /// Copies `from` into `to`, failing as soon as the budget is spent
    /// (nothing past it is written; at most one buffer past it is read).
    pub fn copy(&mut self, from: &mut dyn Read, to: &mut dyn Write) -> Result<u64, SinkError> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut copied = 0;
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => return Ok(copied),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SinkError::Read(e)),
            };
            self.take(n as u64)?;
            to.write_all(&buf[..n]).map_err(SinkError::Write)?;
            copied += n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_file_appears_on_commit_and_goes_away_otherwise() {
        let d = tempfile::tempdir().unwrap();
        let mut part = PartFile::create(d.path(), Path::new("a/b/out")).unwrap();
        part.file().write_all(b"x").unwrap();
        assert!(!d.path().join("a/b/out").exists());
        part.commit(Some(0o755)).unwrap();
        assert_eq!(std::fs::read(d.path().join("a/b/out")).unwrap(), b"x");
        let part = PartFile::create(d.path(), Path::new("a/b/gone")).unwrap();
        drop(part);
        let left: Vec<_> = std::fs::read_dir(d.path().join("a/b")).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn parents_through_a_symlink_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(out.path(), d.path().join("link")).unwrap();
        assert!(PartFile::create(d.path(), Path::new("link/x")).is_err());
        assert!(PartFile::create(d.path(), Path::new("../x")).is_err());
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_copy_stops_at_the_budget() {
        let mut b = Budget::new(10);
        let mut out = Vec::new();
        assert_eq!(b.copy(&mut &b"12345"[..], &mut out).unwrap(), 5);
        assert!(matches!(
            b.copy(&mut &b"123456"[..], &mut out),
            Err(SinkError::Over { limit: 10 })
        ));
        assert_eq!(out.len(), 5);
    }
}
