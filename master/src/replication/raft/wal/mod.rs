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
//! A write that fails (a disk too full for a new segment, a write cut
//! short, an fsync error) is rolled back to the last [`Wal::sync`] (or
//! truncation, purge, open): segments started since are deleted, and what
//! was written into the last one since is zeroed and synced again. Every
//! page written since that sync is so written once more before the next
//! fsync that counts, which is what makes an fsync error safe to go on
//! from: the pages it failed to write are in an unknown state, and they
//! are all among those. If the rollback fails too, the log is broken until
//! it succeeds: [`Wal::append`], [`Wal::truncate`] and [`Wal::purge`] try
//! it first, and [`Wal::sync`] fails. The caller writes again what was
//! rolled back (see [`super::log_writer`]); none of it was reported
//! durable.
//!
//! [`Wal::open`] checks every record. The only damage a crash can leave is
//! a torn tail: in the last segment, a record cut short, or one whose
//! checksum fails over bytes that include zeros (JSON has none: part of it
//! never reached the disk). That tail was never acknowledged and is cut
//! off. Anything else (a checksum failure over written bytes, a record out
//! of sequence, a missing or short segment) is corruption and refuses the
//! store.
//!
//! Here the writer, [`Wal`]; `record.rs` the record format (pure),
//! `segment.rs` one segment file (create, read back on open), `reader.rs`
//! the [`WalReader`], `error.rs` the [`WalError`].

mod error;
mod reader;
mod record;
mod segment;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::LogId;

use super::types::NodeId;
use crate::replication::disk::Disk;
pub use error::WalError;
use error::{corrupt, io_err};
pub use reader::WalReader;
use record::{HEADER, encode};
use segment::{Index, Segment, remove, sync_dir};

/// Preallocated size of a segment; a record larger than that gets a
/// segment of its own, sized to fit.
pub const SEGMENT_SIZE: u64 = 64 << 20;

/// The log's segment files, written by one thread.
pub struct Wal {
    dir: PathBuf,
    segment_size: u64,
    index: Arc<Mutex<Index>>,
    /// Segments written since they were last flushed.
    dirty: Vec<Arc<File>>,
    /// The log as of the last sync, truncation, purge or open: what a
    /// failed write rolls back to.
    mark: Option<Mark>,
    /// A write failed since `mark`.
    broken: bool,
    disk: Disk,
}

/// Where the last segment stood at the mark (`None`: no segment).
#[derive(Debug, Clone, Copy)]
struct Mark {
    first: u64,
    entries: usize,
    end: u64,
}

/// What [`Wal::open`] found.
pub struct Opened {
    pub wal: Wal,
    pub last: Option<LogId<NodeId>>,
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
        let names = segment::list(dir)?;
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            segment_size,
            index: Arc::default(),
            dirty: Vec::new(),
            mark: None,
            broken: false,
            disk: Disk::default(),
        };
        let mut last = None;
        let count = names.len();
        for (n, (first, path)) in names.into_iter().enumerate() {
            let recovered = Segment::recover(first, path, n + 1 == count, segment_size)?;
            let Some((segment, last_id)) = recovered else {
                continue;
            };
            let mut index = wal.lock();
            let prev = index.segments.last().map(|s| s.next() - 1);
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
            last = Some(last_id);
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
        wal.set_mark();
        Ok(Opened { wal, last })
    }

    pub fn reader(&self) -> WalReader {
        WalReader::new(self.index.clone())
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
        self.heal()?;
        let appended = self.append_unguarded(entries);
        if appended.is_err() {
            self.failed();
        }
        appended
    }

    fn append_unguarded(&mut self, entries: &[(u64, Vec<u8>)]) -> Result<(), WalError> {
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
                self.flush()?;
                self.create(*i, need)?;
            }
            let at = self.lock().segments.last().map_or(0, |s| s.end) + buf.len() as u64;
            offsets.push(at);
            encode(raw, &mut buf);
        }
        self.write_out(&mut buf, &mut offsets)
    }

    /// Makes every append so far durable: one `fdatasync` per segment
    /// written, usually one. On an error the appends since the last sync
    /// are rolled back: they must be written again. Fails while a rollback
    /// is due.
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.broken {
            return Err(io_err(
                &self.dir,
                std::io::Error::other("a write since the last sync failed"),
            ));
        }
        let synced = self.flush();
        match synced {
            Ok(()) => self.set_mark(),
            Err(_) => self.failed(),
        }
        synced
    }

    /// Deletes the entries from `from` on, durably before returning.
    pub fn truncate(&mut self, from: u64) -> Result<(), WalError> {
        self.heal()?;
        let truncated = self.flush().and_then(|()| self.truncate_unguarded(from));
        match truncated {
            Ok(()) => self.set_mark(),
            Err(_) => self.failed(),
        }
        truncated
    }

    fn truncate_unguarded(&mut self, from: u64) -> Result<(), WalError> {
        let index = self.index.clone();
        let mut index = index.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(s) = index.segments.last_mut() {
            if s.first >= from {
                // Last first, each durable before the next: a crash leaves
                // no hole behind.
                remove(&s.path)?;
                self.sync_dir()?;
                index.segments.pop();
                continue;
            }
            if s.next() > from {
                let at = s.offsets[(from - s.first) as usize];
                let zeros = vec![0; (s.end - at) as usize];
                self.disk
                    .write_all_at(&s.file, &zeros, at)
                    .map_err(|e| io_err(&s.path, e))?;
                self.disk
                    .sync_data(&s.file)
                    .map_err(|e| io_err(&s.path, e))?;
                s.offsets.truncate((from - s.first) as usize);
                s.end = at;
                s.touched = at;
            }
            break;
        }
        Ok(())
    }

    /// Deletes the segments that hold only entries up to `upto`. Call once
    /// the purged log id is durable.
    pub fn purge(&mut self, upto: u64) -> Result<(), WalError> {
        self.heal()?;
        let purged = self.flush().and_then(|()| self.purge_unguarded(upto));
        match purged {
            Ok(()) => self.set_mark(),
            Err(_) => self.failed(),
        }
        purged
    }

    fn purge_unguarded(&mut self, upto: u64) -> Result<(), WalError> {
        let index = self.index.clone();
        let mut index = index.lock().unwrap_or_else(|p| p.into_inner());
        let n = index
            .segments
            .iter()
            .take_while(|s| s.next() <= upto + 1)
            .count();
        if n == 0 {
            return Ok(());
        }
        for s in &index.segments[..n] {
            remove(&s.path)?;
        }
        self.sync_dir()?;
        index.segments.drain(..n);
        Ok(())
    }

    /// Rolls a broken log back to its mark (see the module documentation);
    /// nothing to do for one that is not.
    pub fn heal(&mut self) -> Result<(), WalError> {
        if !self.broken {
            return Ok(());
        }
        self.dirty.clear();
        let index = self.index.clone();
        let mut index = index.lock().unwrap_or_else(|p| p.into_inner());
        // Segments started since the mark, last first.
        while let Some(s) = index.segments.last()
            && self.mark.is_none_or(|m| s.first > m.first)
        {
            remove(&s.path)?;
            self.sync_dir()?;
            index.segments.pop();
        }
        if let Some(m) = self.mark
            && let Some(s) = index.segments.last_mut()
            && s.first == m.first
        {
            let end = s.end.min(m.end);
            if s.touched > end {
                let zeros = vec![0; (s.touched - end) as usize];
                self.disk
                    .write_all_at(&s.file, &zeros, end)
                    .map_err(|e| io_err(&s.path, e))?;
                self.disk
                    .sync_data(&s.file)
                    .map_err(|e| io_err(&s.path, e))?;
            }
            s.offsets.truncate(m.entries);
            s.end = end;
            s.touched = end;
        }
        drop(index);
        tracing::info!(dir = %self.dir.display(), "raft log rolled back to its last sync");
        self.broken = false;
        Ok(())
    }

    /// After a failed write: rolls back now if it can, else before the
    /// next write.
    fn failed(&mut self) {
        self.broken = true;
        if let Err(e) = self.heal() {
            tracing::warn!(error = %e, "raft log: cannot roll back yet; trying again before the next write");
        }
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_mark(&mut self) {
        let mark = self.lock().segments.last().map(|s| Mark {
            first: s.first,
            entries: s.offsets.len(),
            end: s.end,
        });
        self.mark = mark;
    }

    /// `fdatasync` of every segment written since the last one.
    fn flush(&mut self) -> Result<(), WalError> {
        while let Some(file) = self.dirty.first() {
            self.disk
                .sync_data(file)
                .map_err(|e| io_err(&self.dir, e))?;
            self.dirty.remove(0);
        }
        Ok(())
    }

    /// Writes `buf` (records at `offsets`) at the end of the last segment.
    fn write_out(&mut self, buf: &mut Vec<u8>, offsets: &mut Vec<u64>) -> Result<(), WalError> {
        if buf.is_empty() {
            return Ok(());
        }
        let index = self.index.clone();
        let mut index = index.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = index.segments.last_mut() else {
            return Ok(());
        };
        if !self.dirty.iter().any(|f| Arc::ptr_eq(f, &s.file)) {
            self.dirty.push(s.file.clone());
        }
        s.touched = s.touched.max(s.end + buf.len() as u64);
        self.disk
            .write_all_at(&s.file, buf, s.end)
            .map_err(|e| io_err(&s.path, e))?;
        s.end += buf.len() as u64;
        s.offsets.append(offsets);
        buf.clear();
        Ok(())
    }

    /// Starts segment `first`, big enough for `need` bytes.
    fn create(&mut self, first: u64, need: u64) -> Result<(), WalError> {
        let segment = Segment::create(&self.dir, first, self.segment_size.max(need))?;
        self.lock().segments.push(segment);
        Ok(())
    }

    fn sync_dir(&self) -> Result<(), WalError> {
        sync_dir(&self.dir)
    }

    /// Test hook: the faults the segments' writes and fsyncs get.
    #[cfg(test)]
    pub(crate) fn disk(&self) -> &Disk {
        &self.disk
    }
}
