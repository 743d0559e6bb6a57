//! The segment files: naming, creating (preallocated, renamed into place),
//! and reading one back on open, a torn tail cut off.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::LogId;

use super::error::{WalError, corrupt, io_err};
use super::record::{HEADER, Record, decode};
use crate::replication::raft::types::{LogEntry, NodeId};

const SUFFIX: &str = ".wal";

/// The segments, in log order; shared by the writer and the readers.
#[derive(Default)]
pub(super) struct Index {
    pub(super) segments: Vec<Segment>,
}

/// One segment; it always holds at least one entry.
pub(super) struct Segment {
    pub(super) first: u64,
    pub(super) path: PathBuf,
    pub(super) file: Arc<File>,
    /// Where each record starts: entry `first + i` at `offsets[i]`.
    pub(super) offsets: Vec<u64>,
    /// Where the next record goes.
    pub(super) end: u64,
    /// How far writes reached, failed ones included: a rollback zeroes
    /// from the durable end up to here.
    pub(super) touched: u64,
    pub(super) size: u64,
}

impl Segment {
    /// The index after its last entry.
    pub(super) fn next(&self) -> u64 {
        self.first + self.offsets.len() as u64
    }

    /// Starts segment `first` in `dir`, `size` bytes: preallocated, then
    /// renamed into place, so a segment file always has its full size. On
    /// a failure (a disk too full for it) nothing is left behind.
    pub(super) fn create(dir: &Path, first: u64, size: u64) -> Result<Segment, WalError> {
        let path = dir.join(format!("{first:020}{SUFFIX}"));
        let tmp = path.with_extension("wal.tmp");
        let preallocated = (|| -> std::io::Result<File> {
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, size)?;
            file.sync_all()?;
            Ok(file)
        })();
        let file = match preallocated {
            Ok(file) => file,
            Err(e) => {
                // Gives the space back (a leftover is deleted on open).
                let _ = remove(&tmp);
                return Err(io_err(&tmp, e));
            }
        };
        let placed = std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e));
        if let Err(e) = placed.and_then(|()| sync_dir(dir)) {
            // Not in the log: gone again, or, if that fails too, a segment
            // without entries that is deleted on open.
            let _ = remove(&tmp).and_then(|()| remove(&path));
            let _ = sync_dir(dir);
            return Err(e);
        }
        Ok(Segment {
            first,
            path,
            file: Arc::new(file),
            offsets: Vec::new(),
            end: 0,
            touched: 0,
            size,
        })
    }

    /// Reads segment `first` back: its records, up to a torn tail when it
    /// is the `last` segment (cut off here). `None` when it holds no entry
    /// (deleted). Segments are at least `segment_size` bytes.
    pub(super) fn recover(
        first: u64,
        path: PathBuf,
        last: bool,
        segment_size: u64,
    ) -> Result<Option<(Segment, LogId<NodeId>)>, WalError> {
        let bytes = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
        let size = bytes.len() as u64;
        if size < segment_size {
            return Err(corrupt(
                &path,
                format!("{size} bytes, shorter than a segment: the file was truncated"),
            ));
        }
        let scan = scan(&bytes, first, &path, last)?;
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        if scan.torn {
            tracing::warn!(path = %path.display(), offset = scan.end, "cutting off a torn log tail");
            // Zeroed in place: the segment keeps its size and its space, so
            // this needs no room on the disk and a crash meanwhile leaves
            // a torn tail again, never a short segment.
            let tail = &bytes[scan.end as usize..];
            let written = tail.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
            file.write_all_at(&vec![0; written], scan.end)
                .map_err(|e| io_err(&path, e))?;
            file.sync_data().map_err(|e| io_err(&path, e))?;
        }
        let Some(last_id) = scan.last_id else {
            if !last {
                return Err(corrupt(&path, "holds no entry".into()));
            }
            remove(&path)?;
            sync_dir(path.parent().unwrap_or(Path::new(".")))?;
            return Ok(None);
        };
        let segment = Segment {
            first,
            path,
            file: Arc::new(file),
            offsets: scan.offsets,
            end: scan.end,
            touched: scan.end,
            size,
        };
        Ok(Some((segment, last_id)))
    }
}

/// What a segment's bytes hold.
struct Scan {
    offsets: Vec<u64>,
    /// Where the intact records end.
    end: u64,
    last_id: Option<LogId<NodeId>>,
    /// Whether a torn record follows them.
    torn: bool,
}

/// Checks every record of segment `first`: in sequence, decoding, intact
/// (a torn record only at the end of the `last` segment).
fn scan(bytes: &[u8], first: u64, path: &Path, last: bool) -> Result<Scan, WalError> {
    let mut offsets = Vec::new();
    let mut at = 0u64;
    let mut last_id = None;
    let torn = loop {
        let index = first + offsets.len() as u64;
        match decode(bytes, at) {
            Record::End => break false,
            Record::Torn if last => break true,
            Record::Torn => {
                return Err(corrupt(path, format!("entry {index} is cut short")));
            }
            Record::Bad(reason) => {
                return Err(corrupt(path, format!("entry {index} {reason}")));
            }
            Record::Ok(raw) => {
                let entry: LogEntry = serde_json::from_slice(raw).map_err(|e| {
                    corrupt(path, format!("log entry {index} does not decode: {e}"))
                })?;
                if entry.log_id.index != index {
                    return Err(corrupt(
                        path,
                        format!(
                            "log entry {} found where {index} was expected",
                            entry.log_id.index
                        ),
                    ));
                }
                offsets.push(at);
                at += HEADER + raw.len() as u64;
                last_id = Some(entry.log_id);
            }
        }
    };
    Ok(Scan {
        offsets,
        end: at,
        last_id,
        torn,
    })
}

/// The segment files in `dir` by first index, in order; leftovers of a
/// segment creation that did not finish are deleted.
pub(super) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut names = Vec::new();
    for item in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let item = item.map_err(|e| io_err(dir, e))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            // A segment whose creation did not finish: never used.
            remove(&item.path())?;
        } else if let Some(first) = name.strip_suffix(SUFFIX).and_then(|n| n.parse().ok()) {
            names.push((first, item.path()));
        }
    }
    names.sort();
    Ok(names)
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

pub(super) fn remove(path: &Path) -> Result<(), WalError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(path, e)),
        _ => Ok(()),
    }
}
