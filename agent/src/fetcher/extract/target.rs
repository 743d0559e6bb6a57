//! Where archive entries land: below one directory, whatever the entry's
//! name says.
//!
//! - a name that is absolute or has `..` is refused (the fetch fails);
//! - parent directories are made one at a time, following no symlink;
//! - files are created afresh (`O_EXCL | O_NOFOLLOW`, whatever had the
//!   name is removed first), with the permission bits only: setuid,
//!   setgid and sticky bits are dropped;
//! - a symlink is made only when its target is relative and can only
//!   point inside: leading `..`s no deeper than the link's own directory,
//!   then no `..` at all (so chains of such links stay inside too);
//! - a hard link becomes a copy of a file extracted before (the files API
//!   does not serve files with several links);
//! - devices and FIFOs are never made: they are skipped and listed;
//! - every byte written counts against the extract budget.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use super::ExtractError;
use crate::fetcher::sink::{self, Budget, SinkError};
use crate::files::beneath;

pub struct Target {
    root: OwnedFd,
    budget: Budget,
    /// Entries not made (devices, FIFOs, unknown kinds).
    pub skipped: Vec<String>,
}

/// An entry's name for a message (at most 200 bytes of it).
pub fn shown(name: &[u8]) -> String {
    let cut = &name[..name.len().min(200)];
    let more = if cut.len() < name.len() { "..." } else { "" };
    format!("{}{more}", String::from_utf8_lossy(cut))
}

fn refused(name: &[u8], why: &'static str) -> ExtractError {
    ExtractError::Refused {
        entry: shown(name),
        why,
    }
}

/// The entry's path below the target (`None`: the target itself, `./`).
pub fn entry_path(name: &[u8]) -> Result<Option<PathBuf>, ExtractError> {
    if name.contains(&0) {
        return Err(refused(name, "its name has a NUL byte"));
    }
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(name)).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err(refused(name, "its path has '..'")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refused(name, "its path is absolute"));
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Whether a link at `at` (an entry path) to `target` can only point
/// inside: see the module's rule.
pub fn link_stays_inside(at: &Path, target: &[u8]) -> bool {
    let mut depth = at.components().count().saturating_sub(1);
    let mut climbing = true;
    if target.is_empty() {
        return false;
    }
    for c in Path::new(OsStr::from_bytes(target)).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if climbing && depth > 0 => depth -= 1,
            Component::Normal(_) => climbing = false,
            _ => return false,
        }
    }
    true
}

impl Target {
    pub fn open(into: &Path, limit: u64) -> Result<Self, ExtractError> {
        let root = sink::open_dir(into).map_err(|source| ExtractError::Write {
            entry: into.display().to_string(),
            source,
        })?;
        Ok(Target {
            root,
            budget: Budget::new(limit),
            skipped: Vec::new(),
        })
    }

    pub fn written(&self) -> u64 {
        self.budget.used()
    }

    /// The parent directory of `rel` (made) and `rel`'s last name, with
    /// whatever had that name removed (a directory stays).
    fn place<'a>(&self, name: &[u8], rel: &'a Path) -> Result<(OwnedFd, &'a OsStr), ExtractError> {
        let write = |source| ExtractError::Write {
            entry: shown(name),
            source,
        };
        let (parent, last) = sink::split(rel).map_err(write)?;
        let dir = sink::make_dirs(self.root.as_fd(), parent, 0o755).map_err(write)?;
        match rustix::fs::unlinkat(&dir, last, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok((dir, last)),
            Err(e) => Err(write(e.into())),
        }
    }

    pub fn dir(&mut self, name: &[u8], mode: u32) -> Result<(), ExtractError> {
        let Some(rel) = entry_path(name)? else {
            return Ok(());
        };
        // Owner rwx, so that the entries below can be written.
        sink::make_dirs(self.root.as_fd(), &rel, (mode & 0o777) | 0o700).map_err(|source| {
            ExtractError::Write {
                entry: shown(name),
                source,
            }
        })?;
        Ok(())
    }

    /// A regular file with `data`, permission bits of `mode`, and `mtime`
    /// (seconds) when known. A file cut short by an error is removed.
    pub fn file(
        &mut self,
        name: &[u8],
        mode: u32,
        mtime: Option<u64>,
        data: &mut dyn Read,
    ) -> Result<(), ExtractError> {
        let rel = entry_path(name)?.ok_or_else(|| refused(name, "a file needs a name"))?;
        let (dir, last) = self.place(name, &rel)?;
        let write = |source| ExtractError::Write {
            entry: shown(name),
            source,
        };
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&dir, last, flags, Mode::from_raw_mode(0o600))
            .map_err(|e| write(e.into()))?;
        let mut file = std::fs::File::from(fd);
        let copied = self.budget.copy(data, &mut file);
        let finished = copied.map_err(|e| self.sink_error(name, e)).and_then(|_| {
            rustix::fs::fchmod(&file, Mode::from_raw_mode(mode & 0o777))
                .map_err(|e| write(e.into()))?;
            if let Some(secs) = mtime {
                let t = Timespec {
                    tv_sec: secs.min(i64::MAX as u64) as i64,
                    tv_nsec: 0,
                };
                let times = Timestamps {
                    last_access: t,
                    last_modification: t,
                };
                let _ = rustix::fs::futimens(&file, &times);
            }
            Ok(())
        });
        if finished.is_err() {
            let _ = rustix::fs::unlinkat(&dir, last, AtFlags::empty());
        }
        finished
    }

    pub fn symlink(&mut self, name: &[u8], target: &[u8]) -> Result<(), ExtractError> {
        let rel = entry_path(name)?.ok_or_else(|| refused(name, "a link needs a name"))?;
        if !link_stays_inside(&rel, target) {
            return Err(refused(name, "it is a symlink pointing outside"));
        }
        let (dir, last) = self.place(name, &rel)?;
        rustix::fs::symlinkat(OsStr::from_bytes(target), &dir, last).map_err(|e| {
            ExtractError::Write {
                entry: shown(name),
                source: e.into(),
            }
        })
    }

    /// A hard link to `target` (an entry extracted before), made a copy.
    pub fn hard_link(&mut self, name: &[u8], target: &[u8]) -> Result<(), ExtractError> {
        let from = entry_path(target)?.ok_or_else(|| refused(name, "a link needs a target"))?;
        let read = |source| ExtractError::Write {
            entry: shown(target),
            source,
        };
        let (fd, stat) = beneath::locate(self.root.as_fd(), &from).map_err(read)?;
        let mut file = beneath::reopen_file(&fd, &stat).map_err(read)?;
        let mtime = u64::try_from(stat.st_mtime).ok();
        self.file(name, stat.st_mode, mtime, &mut file)
    }

    /// Reads what is left of an entry's data, counting it.
    pub fn discard(&mut self, data: &mut dyn Read) -> Result<(), ExtractError> {
        self.budget
            .copy(data, &mut std::io::sink())
            .map(|_| ())
            .map_err(|e| self.sink_error(b"", e))
    }

    pub fn skip(&mut self, name: &[u8], what: &str) {
        self.skipped.push(format!("{} ({what})", shown(name)));
    }

    fn sink_error(&self, name: &[u8], e: SinkError) -> ExtractError {
        match e {
            SinkError::Read(e) => ExtractError::Read(e),
            SinkError::Write(source) => ExtractError::Write {
                entry: shown(name),
                source,
            },
            SinkError::Over { limit } => ExtractError::TooLarge { limit },
        }
    }
}
