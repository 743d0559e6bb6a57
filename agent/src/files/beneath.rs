//! Opening a path below a directory without ever leaving it: the one place
//! the files API and the fetcher resolve a path that a task or a framework
//! chose.
//!
//! [`open_beneath`] is `openat2(dir, rel, RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` with `O_NOFOLLOW`: no
//! symlink is followed anywhere in the path, `..` cannot climb out, and
//! nothing outside `dir` is ever opened. Kernels without `openat2` (before
//! 5.6, or a seccomp filter that refuses it) get the same guarantees from a
//! walk that opens one component at a time with `O_PATH | O_NOFOLLOW`.
//!
//! Callers open with `O_PATH` first (which opens nothing: a FIFO's writer
//! is not released, a device's open routine does not run), check what they
//! got with `fstat`, and only then [`reopen_file`] or [`reopen_dir`] that
//! same inode for reading.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

/// The normal components of `rel`; `..`, `/` and prefixes are refused
/// (`EXDEV`, as `openat2` answers an escape), `.` is skipped.
pub fn components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    rel.components()
        .filter(|c| *c != Component::CurDir)
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            _ => Err(io::Error::from(Errno::XDEV)),
        })
        .collect()
}

/// Opens `rel` below `dir` (`.` when empty) with `flags` plus `O_NOFOLLOW
/// | O_CLOEXEC`. A symlink anywhere in `rel` fails with `ELOOP` (`ENOTDIR`
/// in the walk), except that `O_PATH | O_NOFOLLOW` gives the link itself as
/// the last component (check its type).
pub fn open_beneath(
    dir: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlags,
    mode: Mode,
) -> io::Result<OwnedFd> {
    let names = components(rel)?;
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let path = if names.is_empty() {
        Path::new(".").to_path_buf()
    } else {
        names.iter().collect()
    };
    match rustix::fs::openat2(dir, &path, flags, mode, resolve) {
        Err(Errno::NOSYS | Errno::PERM) => walk(dir, &names, flags, mode),
        other => other.map_err(io::Error::from),
    }
}

/// [`open_beneath`] one component at a time (kernels without `openat2`).
pub fn walk(
    dir: BorrowedFd<'_>,
    names: &[&OsStr],
    flags: OFlags,
    mode: Mode,
) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Some((last, parents)) = names.split_last() else {
        return Ok(rustix::fs::openat(dir, ".", flags, mode)?);
    };
    let mut held: Option<OwnedFd> = None;
    for name in parents {
        let at = held.as_ref().map_or(dir, |fd| fd.as_fd());
        let step = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        held = Some(rustix::fs::openat(at, *name, step, Mode::empty())?);
    }
    let at = held.as_ref().map_or(dir, |fd| fd.as_fd());
    Ok(rustix::fs::openat(at, *last, flags, mode)?)
}

/// `O_PATH` open of `rel` below `dir` and its `fstat`. The last component
/// being a symlink is `ELOOP`, as everywhere else in the path.
pub fn locate(dir: BorrowedFd<'_>, rel: &Path) -> io::Result<(OwnedFd, Stat)> {
    let fd = open_beneath(dir, rel, OFlags::PATH, Mode::empty())?;
    let stat = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink {
        return Err(Errno::LOOP.into());
    }
    Ok((fd, stat))
}

/// The regular file an `O_PATH` descriptor refers to, opened for reading:
/// the same inode (through `/proc/self/fd`), never the path again, so a
/// file swapped for a FIFO meanwhile is not opened.
pub fn reopen_file(fd: &OwnedFd, stat: &Stat) -> io::Result<File> {
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(Errno::INVAL.into());
    }
    let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let file = rustix::fs::open(
        proc.as_str(),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    let again = rustix::fs::fstat(&file)?;
    if (again.st_dev, again.st_ino) != (stat.st_dev, stat.st_ino) {
        return Err(Errno::STALE.into());
    }
    Ok(File::from(file))
}

/// The directory an `O_PATH` descriptor refers to, opened for listing.
pub fn reopen_dir(fd: &OwnedFd) -> io::Result<rustix::fs::Dir> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let dir = rustix::fs::openat(fd, ".", flags, Mode::empty())?;
    Ok(rustix::fs::Dir::new(dir)?)
}

/// What a file type is called in a refusal.
pub fn kind_name(mode: u32) -> &'static str {
    match FileType::from_raw_mode(mode) {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "of an unknown type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both strategies behave alike on one tree.
    fn tree() -> (tempfile::TempDir, OwnedFd) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f"), "in").unwrap();
        std::fs::write(d.path().join("out"), "out").unwrap();
        std::os::unix::fs::symlink("b", root.join("a/inner")).unwrap();
        std::os::unix::fs::symlink(d.path().join("out"), root.join("a/outer")).unwrap();
        std::os::unix::fs::symlink("../..", root.join("a/up")).unwrap();
        let fd = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        (d, fd)
    }

    fn both(dir: &OwnedFd, rel: &str) -> [io::Result<OwnedFd>; 2] {
        let flags = OFlags::RDONLY;
        let names = components(Path::new(rel));
        let walked = names.and_then(|n| walk(dir.as_fd(), &n, flags, Mode::empty()));
        [
            open_beneath(dir.as_fd(), Path::new(rel), flags, Mode::empty()),
            walked,
        ]
    }

    #[test]
    fn only_what_lies_below_without_links_opens() {
        let (_d, root) = tree();
        for r in both(&root, "a/b/f") {
            let mut s = String::new();
            io::Read::read_to_string(&mut File::from(r.unwrap()), &mut s).unwrap();
            assert_eq!(s, "in");
        }
        for rel in [
            "a/inner/f",
            "a/outer",
            "a/up/out",
            "../out",
            "/etc/passwd",
            "a/../../out",
        ] {
            for r in both(&root, rel) {
                assert!(r.is_err(), "{rel} opened");
            }
        }
        assert!(open_beneath(root.as_fd(), Path::new(""), OFlags::RDONLY, Mode::empty()).is_ok());
    }

    #[test]
    fn a_located_file_reopens_as_the_same_inode() {
        let (_d, root) = tree();
        let (fd, st) = locate(root.as_fd(), Path::new("a/b/f")).unwrap();
        let f = reopen_file(&fd, &st).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 2);
        let err = locate(root.as_fd(), Path::new("a/outer")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(Errno::LOOP.raw_os_error()));
        let (dir, st) = locate(root.as_fd(), Path::new("a")).unwrap();
        assert!(reopen_file(&dir, &st).is_err());
        let names: Vec<String> = reopen_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
    }
}
