//! The Raft log's entries on disk: append-only segment files in
//! `<raft dir>/wal/`, as etcd keeps its WAL. Only the log writer thread
//! ([`super::log_writer`]) changes them; a [`WalReader`] reads durable
//! entries from any thread.
//!
//! A segment is named after its first entry's index (`{index:020}.wal`) and
//! preallocated (`fallocate`) to [`SEGMENT_SIZE`], so that appending to it
//! changes no file size and `fdatasync` flushes only the data. Each record
//! is `len: u32 LE | crc32: u32 LE | entry`, the entry JSON-encoded as
//! before, the checksum over the length and the entry. Unused space reads
//! as zeros (a zero header ends a segment): fresh segments are allocated
//! zeroed, and truncation zeroes what it cuts off.
//!
//! Writes are ordered so that a crash leaves a prefix of them: appends
//! become durable with [`Wal::sync`], once per batch; truncation is durable
//! before it returns (new entries must not be mixed with the ones they
//! replace); purging deletes whole segments after the purged log id is
//! recorded in redb.
//!
//! [`Wal::open`] checks every record. The only damage a crash can leave is
//! a torn tail: in the last segment, a record cut short, or one whose
//! checksum fails over bytes that include zeros (JSON has none: part of it
//! never reached the disk). That tail was never acknowledged and is cut
//! off. Anything else (a checksum failure over written bytes, a record out
//! of sequence, a missing or short segment) is corruption and refuses the
//! store.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::LogId;

use super::db::LogEntry;
use super::types::NodeId;

/// Preallocated size of a segment; a record larger than that gets a
/// segment of its own, sized to fit.
pub const SEGMENT_SIZE: u64 = 64 << 20;
const HEADER: u64 = 8;
const SUFFIX: &str = ".wal";

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("raft log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("raft log {path} is corrupt: {reason}; refusing to start on it")]
    Corrupt { path: PathBuf, reason: String },
}

/// The log's segment files, written by one thread.
pub struct Wal {
    dir: PathBuf,
    segment_size: u64,
    index: Arc<Mutex<Index>>,
    /// Segments written since the last [`Wal::sync`].
    dirty: Vec<Arc<File>>,
}

/// Reads durable entries; cheap to clone.
#[derive(Clone)]
pub struct WalReader {
    index: Arc<Mutex<Index>>,
}

#[derive(Default)]
struct Index {
    segments: Vec<Segment>,
}

/// One segment; it always holds at least one entry.
struct Segment {
    first: u64,
    path: PathBuf,
    file: Arc<File>,
    /// Where each record starts: entry `first + i` at `offsets[i]`.
    offsets: Vec<u64>,
    /// Where the next record goes.
    end: u64,
    size: u64,
}

/// What [`Wal::open`] found.
pub struct Opened {
    pub wal: Wal,
    pub last: Option<LogId<NodeId>>,
}

impl Segment {
    /// The index after its last entry.
    fn next(&self) -> u64 {
        self.first + self.offsets.len() as u64
    }
}

impl Wal {
    /// Opens (creating it if need be) the log in `dir`, whose entries up to
    /// `purged` are no longer needed, and checks all of it.
    pub fn open(dir: &Path, segment_size: u64, purged: Option<u64>) -> Result<Opened, WalError> {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
            if let Some(parent) = dir.parent() {
                File::open(parent)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| io_err(parent, e))?;
            }
        }
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
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            segment_size,
            index: Arc::default(),
            dirty: Vec::new(),
        };
        let mut last = None;
        let count = names.len();
        for (n, (first, path)) in names.into_iter().enumerate() {
            let (segment, last_id) = wal.recover(first, path, n + 1 == count)?;
            let mut index = wal.lock();
            let prev = index.segments.last().map(|s| s.next() - 1);
            let Some(segment) = segment else { continue };
            match prev {
                Some(p) if segment.first != p + 1 && purged.is_none_or(|u| p > u) => {
                    return Err(corrupt(
                        &segment.path,
                        format!("follows entry {p}: a segment is missing"),
                    ));
                }
                _ => {}
            }
            index.segments.push(segment);
            last = last_id;
        }
        if let Some(upto) = purged {
            wal.purge(upto)?;
        }
        let index = wal.lock();
        if index.segments.is_empty() {
            last = None;
        }
        if let Some(s) = index.segments.first() {
            let start = purged.map_or(0, |u| u + 1);
            if s.first > start {
                return Err(corrupt(
                    &s.path,
                    format!(
                        "the log starts at {} but entry {start} is not purged",
                        s.first
                    ),
                ));
            }
        }
        drop(index);
        Ok(Opened { wal, last })
    }

    pub fn reader(&self) -> WalReader {
        WalReader {
            index: self.index.clone(),
        }
    }

    /// The index the next entry must have to follow the log, `None` while
    /// the log is empty.
    pub fn next_index(&self) -> Option<u64> {
        self.lock().segments.last().map(Segment::next)
    }

    /// Writes encoded entries (by index, consecutive) after the log, or
    /// starting a new segment when the log was purged past them. Durable
    /// after [`Wal::sync`].
    pub fn append(&mut self, entries: &[(u64, Vec<u8>)]) -> Result<(), WalError> {
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        for (i, raw) in entries {
            let need = HEADER + raw.len() as u64;
            let (fits, next) = {
                let index = self.lock();
                let s = index.segments.last();
                let start = s.map_or(0, |s| s.end);
                let room = s.is_some_and(|s| s.size - start >= buf.len() as u64 + need);
                (room, s.map(|s| s.next() + offsets.len() as u64))
            };
            if next.is_some_and(|n| n > *i) {
                let path = self.dir.clone();
                return Err(corrupt(
                    &path,
                    format!("entry {i} appended before {next:?}"),
                ));
            }
            if !fits || next != Some(*i) {
                // The segment before is synced first: only the last one can
                // be torn by a crash.
                self.write_out(&mut buf, &mut offsets)?;
                self.sync()?;
                self.create(*i, need)?;
            }
            let at = self.lock().segments.last().map_or(0, |s| s.end) + buf.len() as u64;
            offsets.push(at);
            encode(raw, &mut buf);
        }
        self.write_out(&mut buf, &mut offsets)
    }

    /// Makes every append so far durable: one `fdatasync` per segment
    /// written, usually one.
    pub fn sync(&mut self) -> Result<(), WalError> {
        for file in std::mem::take(&mut self.dirty) {
            file.sync_data().map_err(|e| io_err(&self.dir, e))?;
        }
        Ok(())
    }

    /// Deletes the entries from `from` on, durably before returning.
    pub fn truncate(&mut self, from: u64) -> Result<(), WalError> {
        self.sync()?;
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(s) = index.segments.last_mut() {
            if s.first >= from {
                // Last first, each durable before the next: a crash leaves
                // no hole behind.
                remove(&s.path)?;
                index.segments.pop();
                self.sync_dir()?;
                continue;
            }
            if s.next() > from {
                let at = s.offsets[(from - s.first) as usize];
                let zeros = vec![0; (s.end - at) as usize];
                s.file
                    .write_all_at(&zeros, at)
                    .map_err(|e| io_err(&s.path, e))?;
                s.file.sync_data().map_err(|e| io_err(&s.path, e))?;
                s.offsets.truncate((from - s.first) as usize);
                s.end = at;
            }
            break;
        }
        Ok(())
    }

    /// Deletes the segments that hold only entries up to `upto`. Call once
    /// the purged log id is durable.
    pub fn purge(&mut self, upto: u64) -> Result<(), WalError> {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let mut unlinked = false;
        while index.segments.first().is_some_and(|s| s.next() <= upto + 1) {
            let s = index.segments.remove(0);
            remove(&s.path)?;
            self.dirty.retain(|f| !Arc::ptr_eq(f, &s.file));
            unlinked = true;
        }
        drop(index);
        if unlinked {
            self.sync_dir()?;
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `buf` (records at `offsets`) at the end of the last segment.
    fn write_out(&mut self, buf: &mut Vec<u8>, offsets: &mut Vec<u64>) -> Result<(), WalError> {
        if buf.is_empty() {
            return Ok(());
        }
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = index.segments.last_mut() else {
            return Ok(());
        };
        s.file
            .write_all_at(buf, s.end)
            .map_err(|e| io_err(&s.path, e))?;
        s.end += buf.len() as u64;
        s.offsets.append(offsets);
        if !self.dirty.iter().any(|f| Arc::ptr_eq(f, &s.file)) {
            self.dirty.push(s.file.clone());
        }
        buf.clear();
        Ok(())
    }

    /// Starts segment `first`, big enough for `need` bytes: preallocated,
    /// then renamed into place, so a segment file always has its full size.
    fn create(&mut self, first: u64, need: u64) -> Result<(), WalError> {
        let path = self.dir.join(format!("{first:020}{SUFFIX}"));
        let tmp = path.with_extension("wal.tmp");
        let size = self.segment_size.max(need);
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io_err(&tmp, e))?;
        rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, size)
            .map_err(|e| io_err(&tmp, e.into()))?;
        file.sync_all().map_err(|e| io_err(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
        self.sync_dir()?;
        self.lock().segments.push(Segment {
            first,
            path,
            file: Arc::new(file),
            offsets: Vec::new(),
            end: 0,
            size,
        });
        Ok(())
    }

    fn sync_dir(&self) -> Result<(), WalError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(&self.dir, e))
    }

    /// Reads segment `first` back: its records, up to a torn tail when it
    /// is the `last` segment (cut off here). `None` when it holds no entry
    /// (deleted).
    fn recover(
        &self,
        first: u64,
        path: PathBuf,
        last: bool,
    ) -> Result<(Option<Segment>, Option<LogId<NodeId>>), WalError> {
        let bytes = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
        let size = bytes.len() as u64;
        if size < self.segment_size {
            return Err(corrupt(
                &path,
                format!("{size} bytes, shorter than a segment: the file was truncated"),
            ));
        }
        let mut offsets = Vec::new();
        let mut at = 0u64;
        let mut last_id = None;
        let torn = loop {
            let index = first + offsets.len() as u64;
            match decode(&bytes, at) {
                Record::End => break false,
                Record::Torn if last => break true,
                Record::Torn => {
                    return Err(corrupt(&path, format!("entry {index} is cut short")));
                }
                Record::Bad(reason) => {
                    return Err(corrupt(&path, format!("entry {index} {reason}")));
                }
                Record::Ok(raw) => {
                    let entry: LogEntry = serde_json::from_slice(raw).map_err(|e| {
                        corrupt(&path, format!("log entry {index} does not decode: {e}"))
                    })?;
                    if entry.log_id.index != index {
                        return Err(corrupt(
                            &path,
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
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        if torn {
            tracing::warn!(path = %path.display(), offset = at, "cutting off a torn log tail");
            file.set_len(at).map_err(|e| io_err(&path, e))?;
            rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, size)
                .map_err(|e| io_err(&path, e.into()))?;
            file.sync_all().map_err(|e| io_err(&path, e))?;
        }
        if offsets.is_empty() && !last {
            return Err(corrupt(&path, "holds no entry".into()));
        }
        if offsets.is_empty() {
            remove(&path)?;
            self.sync_dir()?;
            return Ok((None, None));
        }
        let segment = Segment {
            first,
            path,
            file: Arc::new(file),
            offsets,
            end: at,
            size,
        };
        Ok((Some(segment), last_id))
    }
}

impl WalReader {
    /// The entries with indexes in `lo..hi` that the log holds, in order.
    pub fn read(&self, lo: u64, hi: u64) -> Result<Vec<LogEntry>, WalError> {
        let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for s in &index.segments {
            let (from, to) = (lo.max(s.first), hi.min(s.next()));
            if from >= to {
                continue;
            }
            let start = s.offsets[(from - s.first) as usize];
            let end = s
                .offsets
                .get((to - s.first) as usize)
                .copied()
                .unwrap_or(s.end);
            let mut bytes = vec![0; (end - start) as usize];
            s.file
                .read_exact_at(&mut bytes, start)
                .map_err(|e| io_err(&s.path, e))?;
            let mut at = 0;
            for i in from..to {
                let Record::Ok(raw) = decode(&bytes, at) else {
                    return Err(corrupt(&s.path, format!("entry {i} no longer reads back")));
                };
                let entry: LogEntry = serde_json::from_slice(raw)
                    .map_err(|e| corrupt(&s.path, format!("log entry {i} does not decode: {e}")))?;
                if entry.log_id.index != i {
                    return Err(corrupt(&s.path, format!("entry {i} reads back as another")));
                }
                at += HEADER + raw.len() as u64;
                out.push(entry);
            }
        }
        Ok(out)
    }
}

enum Record<'a> {
    Ok(&'a [u8]),
    /// A zero header: nothing was written here.
    End,
    /// Cut short or partly unwritten: what a crash leaves.
    Torn,
    /// Damaged.
    Bad(String),
}

fn encode(raw: &[u8], buf: &mut Vec<u8>) {
    let len = (raw.len() as u32).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(raw);
    buf.extend_from_slice(&len);
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
    buf.extend_from_slice(raw);
}

fn decode(bytes: &[u8], at: u64) -> Record<'_> {
    let at = at as usize;
    let Some(header) = bytes.get(at..at + HEADER as usize) else {
        return Record::End;
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 {
        return if crc == 0 { Record::End } else { Record::Torn };
    }
    let start = at + HEADER as usize;
    let Some(raw) = bytes.get(start..start + len as usize) else {
        return Record::Torn;
    };
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..4]);
    hasher.update(raw);
    if hasher.finalize() == crc {
        Record::Ok(raw)
    } else if raw.contains(&0) {
        Record::Torn
    } else {
        Record::Bad("fails its checksum".into())
    }
}

fn remove(path: &Path) -> Result<(), WalError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(path, e)),
        _ => Ok(()),
    }
}

fn io_err(path: &Path, source: io::Error) -> WalError {
    WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, reason: String) -> WalError {
    WalError::Corrupt {
        path: path.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
#[path = "wal_tests.rs"]
mod tests;
