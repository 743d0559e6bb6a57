//! Unpacking fetched archives into the sandbox, streaming: every kind is
//! decoded as it is read (xz with a bounded dictionary), and entries go
//! through [`target::Target`], which keeps them inside the sandbox, drops
//! setuid/setgid bits, makes no devices or FIFOs, and stops at the extract
//! budget (`--fetcher-max-extract-bytes`). The kind is chosen by the file
//! name, as Mesos' fetcher does.

pub mod target;

use std::cell::Cell;
use std::io::{BufReader, Read, Seek};
use std::path::Path;
use std::rc::Rc;

use target::Target;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tar,
    TarGz,
    TarXz,
    TarZst,
    Zip,
    /// A single gzipped file (`x.gz` -> `x`).
    Gz,
}

pub fn kind(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let ends = |s: &str| name.ends_with(s);
    Some(if ends(".tar") {
        Kind::Tar
    } else if ends(".tar.gz") || ends(".tgz") {
        Kind::TarGz
    } else if ends(".tar.xz") || ends(".txz") {
        Kind::TarXz
    } else if ends(".tar.zst") || ends(".tzst") {
        Kind::TarZst
    } else if ends(".zip") {
        Kind::Zip
    } else if ends(".gz") {
        Kind::Gz
    } else {
        return None;
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("cannot read the archive: {0}")]
    Read(std::io::Error),
    #[error("cannot write {entry}: {source}")]
    Write {
        entry: String,
        source: std::io::Error,
    },
    #[error("entry {entry:?} refused: {why}")]
    Refused { entry: String, why: &'static str },
    #[error("it unpacks to more than --fetcher-max-extract-bytes ({limit} bytes)")]
    TooLarge { limit: u64 },
    #[error("a tar entry's headers, long names and pax extensions take more than {limit} bytes")]
    Metadata { limit: u64 },
}

/// The most memory an xz block's dictionary may take (`xz -9` needs 64 MiB).
pub const XZ_MEMORY_LIMIT_KIB: u32 = 128 * 1024;

/// What an extraction did.
#[derive(Debug, Default)]
pub struct Extracted {
    pub bytes: u64,
    /// Entries not made (devices, FIFOs, unknown kinds).
    pub skipped: Vec<String>,
}

fn read_error(e: impl std::error::Error + Send + Sync + 'static) -> ExtractError {
    ExtractError::Read(std::io::Error::other(e))
}

/// What the tar reader may read between two entries (headers, GNU long
/// names, pax extensions, all held in memory by the tar crate).
pub const TAR_METADATA_LIMIT: u64 = 1 << 20;

/// The bytes a [`Windowed`] reader may still read (`None`: any), and
/// whether it refused some.
#[derive(Clone, Default)]
struct Window {
    left: Rc<Cell<Option<u64>>>,
    tripped: Rc<Cell<bool>>,
}

struct Windowed<R> {
    inner: R,
    window: Window,
}

impl<R: Read> Read for Windowed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(left) = self.window.left.get() else {
            return self.inner.read(buf);
        };
        let n = self.inner.read(buf)? as u64;
        if n > left {
            self.window.tripped.set(true);
            return Err(std::io::Error::other("tar metadata over the limit"));
        }
        self.window.left.set(Some(left - n));
        Ok(n as usize)
    }
}

fn untar(reader: impl Read, t: &mut Target) -> Result<(), ExtractError> {
    use tar::EntryType as E;
    let window = Window::default();
    let mut archive = tar::Archive::new(Windowed {
        inner: reader,
        window: window.clone(),
    });
    let mut entries = archive.entries().map_err(ExtractError::Read)?;
    loop {
        window.left.set(Some(TAR_METADATA_LIMIT));
        let entry = match entries.next() {
            None => return Ok(()),
            Some(Err(_)) if window.tripped.get() => {
                return Err(ExtractError::Metadata {
                    limit: TAR_METADATA_LIMIT,
                });
            }
            Some(entry) => entry.map_err(ExtractError::Read)?,
        };
        window.left.set(None);
        let mut entry = entry;
        let name = entry.path_bytes().into_owned();
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644);
        let mtime = header.mtime().ok();
        let kind = header.entry_type();
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        match kind {
            E::Regular | E::Continuous | E::GNUSparse => t.file(&name, mode, mtime, &mut entry)?,
            E::Directory => t.dir(&name, mode)?,
            E::Symlink | E::Link => {
                let target = link.ok_or_else(|| ExtractError::Refused {
                    entry: target::shown(&name),
                    why: "a link without a target",
                })?;
                if kind == E::Symlink {
                    t.symlink(&name, &target)?
                } else {
                    t.hard_link(&name, &target)?
                }
            }
            E::Char | E::Block => t.skip(&name, "a device"),
            E::Fifo => t.skip(&name, "a FIFO"),
            E::XGlobalHeader => {}
            _ => t.skip(&name, "an unknown entry type"),
        }
        // What an entry carries and was not written still counts.
        t.discard(&mut entry)?;
    }
}

fn unzip(reader: impl Read + Seek, t: &mut Target) -> Result<(), ExtractError> {
    let mut zip = zip::ZipArchive::new(reader).map_err(read_error)?;
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).map_err(read_error)?;
        let name = f.name().map_err(read_error)?.into_owned().into_bytes();
        if f.is_dir() {
            t.dir(&name, f.unix_mode().unwrap_or(0o755))?;
        } else if f.is_symlink() {
            let mut target = Vec::new();
            (&mut f)
                .take(4096)
                .read_to_end(&mut target)
                .map_err(ExtractError::Read)?;
            t.symlink(&name, &target)?;
        } else {
            t.file(&name, f.unix_mode().unwrap_or(0o644), None, &mut f)?;
        }
    }
    Ok(())
}

/// Extracts `archive` (of kind `k`, named `name`) into the directory
/// `into`, writing at most `limit` bytes.
pub fn extract(
    archive: impl Read + Seek,
    k: Kind,
    name: &Path,
    into: &Path,
    limit: u64,
) -> Result<Extracted, ExtractError> {
    let mut t = Target::open(into, limit)?;
    let buffered = BufReader::new(archive);
    match k {
        Kind::Tar => untar(buffered, &mut t)?,
        Kind::TarGz => untar(flate2::bufread::GzDecoder::new(buffered), &mut t)?,
        Kind::TarXz => {
            let xz = lzma_rust2::XzReader::new_mem_limit(buffered, true, XZ_MEMORY_LIMIT_KIB);
            untar(xz, &mut t)?
        }
        Kind::TarZst => {
            let zst = ruzstd::decoding::StreamingDecoder::new(buffered).map_err(read_error)?;
            untar(zst, &mut t)?
        }
        Kind::Zip => unzip(buffered, &mut t)?,
        Kind::Gz => {
            let stem = name.file_stem().ok_or_else(|| ExtractError::Refused {
                entry: name.display().to_string(),
                why: "no file name",
            })?;
            let mut gz = flate2::bufread::GzDecoder::new(buffered);
            t.file(
                std::os::unix::ffi::OsStrExt::as_bytes(stem),
                0o644,
                None,
                &mut gz,
            )?
        }
    }
    Ok(Extracted {
        bytes: t.written(),
        skipped: t.skipped,
    })
}

#[cfg(test)]
mod tests;
