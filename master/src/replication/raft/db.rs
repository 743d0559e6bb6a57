//! The Raft store on disk, in `<work_dir>/raft/`: the log's entries in
//! append-only segment files under `wal/` ([`super::wal`]), everything else
//! in one redb file, `raft.redb`:
//!
//! - `meta`: small JSON values: the format marker, vote, committed log id,
//!   last purged log id and this master's identity;
//! - `snapshot`: the last snapshot's metadata and data;
//! - `log` (format `keel-raft-1` only): the entries, as stores written
//!   before the segment files kept them. [`Db::open`] moves them into
//!   segments once and marks the file `keel-raft-2`, which older masters
//!   refuse.
//!
//! Every redb write is one transaction committed with immediate durability
//! (fsync) before the call returns; the log's writer
//! ([`super::log_writer`]) orders them with the segment writes.
//!
//! redb refuses every call after an I/O error (a full disk, an fsync error)
//! until the database is reopened, and repairs itself on open from its last
//! good commit. So an I/O error closes the database here, and the next call
//! reopens it (and is retried once when redb refused it for an earlier
//! error): a write that failed is simply not there, and the caller writes
//! it again once the disk lets it ([`StoreError::is_io`]).
//! [`Db::open`] reads everything back and refuses a store it cannot fully
//! trust: a master must not serve a registry rebuilt from a damaged log.

use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use openraft::{LogId, SnapshotMeta};
use redb::{Database, ReadableDatabase, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::types::{LogEntry, MasterNode, NodeId};
use super::wal::{self, Wal, WalError};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");

/// Keys of the `meta` table.
pub mod key {
    pub const FORMAT: &str = "format";
    pub const VOTE: &str = "vote";
    pub const COMMITTED: &str = "committed";
    pub const PURGED: &str = "last_purged";
    pub const IDENTITY: &str = "identity";
}
const SNAPSHOT_META: &str = "meta";
const SNAPSHOT_DATA: &str = "data";
/// Entries in the segment files.
const FORMAT: &str = "keel-raft-2";
/// Entries in redb's `log` table: migrated on open.
const FORMAT_REDB_LOG: &str = "keel-raft-1";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("raft store {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("raft store {path} is corrupt: {reason}; refusing to start on it")]
    Corrupt { path: PathBuf, reason: String },
    #[error("raft store {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("raft store {path}: the store was closed")]
    Closed { path: PathBuf },
    #[error("raft log {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// An I/O failure (a full disk, an fsync error) that the store gets
    /// over once the disk does; the other errors refuse the store.
    pub fn is_io(&self) -> bool {
        match self {
            StoreError::Log { .. } => true,
            StoreError::Db { source, .. } => matches!(
                **source,
                redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed
            ),
            _ => false,
        }
    }

    /// redb refused the call for an earlier I/O error.
    fn is_latched(&self) -> bool {
        matches!(self, StoreError::Db { source, .. } if matches!(**source, redb::Error::PreviousIo))
    }
}

impl From<WalError> for StoreError {
    fn from(e: WalError) -> Self {
        match e {
            WalError::Io { path, source } => StoreError::Log { path, source },
            WalError::Corrupt { path, reason } => StoreError::Corrupt { path, reason },
        }
    }
}

/// The redb database and its path (for error messages).
pub struct Db {
    /// `None` once an I/O error closed it, until the next call reopens it.
    db: RwLock<Option<Database>>,
    path: PathBuf,
}

/// What [`Db::open`] found, already checked.
pub struct Recovered {
    pub last_purged: Option<LogId<NodeId>>,
    pub last_log: Option<LogId<NodeId>>,
    pub snapshot_last: Option<LogId<NodeId>>,
    /// The log's entries, for its writer.
    pub wal: Wal,
}

impl Db {
    /// Opens or creates the store at `path` (and its segments beside it)
    /// and checks all of it: every value must decode, and the log must be
    /// contiguous after the purged prefix.
    ///
    /// redb panics on some damage (a garbled page header) instead of
    /// returning an error; that panic is caught and reported as corruption.
    pub fn open(path: &Path) -> Result<(Db, Recovered), StoreError> {
        Db::open_with(path, wal::SEGMENT_SIZE)
    }

    /// [`Db::open`], the segments `segment_size` bytes (tests make them
    /// small; a store must be reopened with the size it was written with).
    pub fn open_with(path: &Path, segment_size: u64) -> Result<(Db, Recovered), StoreError> {
        guarded(path, || Db::open_unguarded(path, segment_size))
    }

    fn open_unguarded(path: &Path, segment_size: u64) -> Result<(Db, Recovered), StoreError> {
        let existed = std::fs::metadata(path)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        let db = Database::create(path).map_err(|e| classify(path, e.into()))?;
        let db = Db {
            db: RwLock::new(Some(db)),
            path: path.to_path_buf(),
        };
        let wal_dir = db.wal_dir();
        let mut legacy = false;
        if existed {
            match db.get_raw(META, key::FORMAT)? {
                Some(f) if f == FORMAT.as_bytes() => {}
                Some(f) if f == FORMAT_REDB_LOG.as_bytes() => legacy = true,
                Some(f) => {
                    return Err(db.corrupt(format!(
                        "unknown format {:?} (expected {FORMAT})",
                        String::from_utf8_lossy(&f)
                    )));
                }
                None => return Err(db.corrupt("format marker missing".into())),
            }
        } else {
            if segments_in(&wal_dir) {
                return Err(db.corrupt(format!(
                    "{} holds log segments but the store is new",
                    wal_dir.display()
                )));
            }
            db.write(|txn| {
                txn.open_table(SNAPSHOT)?;
                txn.open_table(META)?
                    .insert(key::FORMAT, FORMAT.as_bytes())?;
                Ok(())
            })?;
        }
        let recovered = db.verify(legacy, segment_size)?;
        Ok((db, recovered))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the log's segment files are.
    pub fn wal_dir(&self) -> PathBuf {
        self.path.with_file_name("wal")
    }

    fn verify(&self, legacy: bool, segment_size: u64) -> Result<Recovered, StoreError> {
        let _: Option<openraft::Vote<NodeId>> = self.get(key::VOTE)?;
        let committed = self.get::<Option<LogId<NodeId>>>(key::COMMITTED)?.flatten();
        let _: Option<serde_json::Value> = self.get(key::IDENTITY)?;
        let last_purged: Option<LogId<NodeId>> = self.get(key::PURGED)?;
        let snapshot: Option<(SnapshotMeta<NodeId, MasterNode>, Vec<u8>)> = self.snapshot()?;
        let snapshot_last = snapshot.and_then(|(meta, _)| meta.last_log_id);
        let purged = last_purged.map(|l| l.index);
        let opened = if legacy {
            self.migrate(purged, segment_size)?
        } else {
            Wal::open(&self.wal_dir(), segment_size, purged)?
        };
        // The committed id is written once its entries are durable, and
        // committed entries are never truncated: a log that ends before it
        // lost entries (a segment deleted, say).
        let last_log = opened.last.or(last_purged);
        if let Some(c) = committed
            && last_log.is_none_or(|l| l.index < c.index)
        {
            return Err(self.corrupt(format!(
                "entry {} was committed but the log in {} ends at {:?}",
                c.index,
                self.wal_dir().display(),
                last_log.map(|l| l.index)
            )));
        }
        Ok(Recovered {
            last_purged,
            last_log,
            snapshot_last,
            wal: opened.wal,
        })
    }

    /// Moves a `keel-raft-1` store's entries from redb into segment files,
    /// then (one transaction) drops them from redb and marks the new
    /// format. Until that commit redb's entries are the log: an interrupted
    /// migration starts over.
    fn migrate(&self, purged: Option<u64>, segment_size: u64) -> Result<wal::Opened, StoreError> {
        let first = purged.map_or(0, |p| p + 1);
        let entries = self.entries(..)?;
        for (expected, entry) in (first..).zip(&entries) {
            if entry.log_id.index != expected {
                return Err(self.corrupt(format!(
                    "log entry {} found where {expected} was expected",
                    entry.log_id.index
                )));
            }
        }
        let dir = self.wal_dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|source| StoreError::Log {
                path: dir.clone(),
                source,
            })?;
        }
        let mut opened = Wal::open(&dir, segment_size, purged)?;
        let raw = entries
            .iter()
            .map(|e| Ok((e.log_id.index, self.encode("log entry", e)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        opened.wal.append(&raw)?;
        opened.wal.sync()?;
        opened.last = entries.last().map(|e| e.log_id);
        self.write(|txn| {
            txn.delete_table(LOG)?;
            txn.open_table(META)?
                .insert(key::FORMAT, FORMAT.as_bytes())?;
            Ok(())
        })?;
        tracing::info!(
            store = %self.path.display(),
            entries = entries.len(),
            "moved the raft log from redb into segment files"
        );
        Ok(opened)
    }

    /// Reads and decodes one `meta` value.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.get_raw(META, key)? {
            Some(raw) => Ok(Some(self.decode(key, &raw)?)),
            None => Ok(None),
        }
    }

    /// Writes one `meta` value.
    pub fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let raw = self.encode(key, value)?;
        self.write(|txn| {
            txn.open_table(META)?.insert(key, raw.as_slice())?;
            Ok(())
        })
    }

    /// Entries of a `keel-raft-1` store with indexes in `range`, in order.
    fn entries(&self, range: impl RangeBounds<u64> + Clone) -> Result<Vec<LogEntry>, StoreError> {
        self.with(|db| self.entries_in(db, range.clone()))
    }

    fn entries_in(
        &self,
        db: &Database,
        range: impl RangeBounds<u64>,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let txn = db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(LOG).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in table.range(range).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let entry: LogEntry = self.decode(&format!("log entry {}", k.value()), v.value())?;
            if entry.log_id.index != k.value() {
                return Err(self.corrupt(format!(
                    "log entry stored at {} says it is {}",
                    k.value(),
                    entry.log_id.index
                )));
            }
            out.push(entry);
        }
        Ok(out)
    }

    /// Commits `values` to `meta` in one transaction, durably.
    pub fn put_raw(&self, values: &[(&'static str, Vec<u8>)]) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut meta = txn.open_table(META)?;
            for (key, raw) in values {
                meta.insert(*key, raw.as_slice())?;
            }
            Ok(())
        })
    }

    pub fn put_snapshot<M: Serialize>(&self, meta: &M, data: &[u8]) -> Result<(), StoreError> {
        let raw = self.encode(SNAPSHOT_META, meta)?;
        self.write(|txn| {
            let mut table = txn.open_table(SNAPSHOT)?;
            table.insert(SNAPSHOT_META, raw.as_slice())?;
            table.insert(SNAPSHOT_DATA, data)?;
            Ok(())
        })
    }

    /// The stored snapshot's metadata and data.
    pub fn snapshot<M: DeserializeOwned>(&self) -> Result<Option<(M, Vec<u8>)>, StoreError> {
        let meta = self.get_raw(SNAPSHOT, SNAPSHOT_META)?;
        let data = self.get_raw(SNAPSHOT, SNAPSHOT_DATA)?;
        match (meta, data) {
            (Some(meta), Some(data)) => Ok(Some((self.decode(SNAPSHOT_META, &meta)?, data))),
            (None, None) => Ok(None),
            _ => Err(self.corrupt("snapshot metadata without data or the reverse".into())),
        }
    }

    pub fn corrupt(&self, reason: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }

    pub fn invalid(&self, reason: String) -> StoreError {
        StoreError::Invalid {
            path: self.path.clone(),
            reason,
        }
    }

    fn get_raw(
        &self,
        def: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|db| {
            let txn = db.begin_read().map_err(|e| self.err(e))?;
            let table = match txn.open_table(def) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(name)) => {
                    return Err(self.corrupt(format!("table {name} is missing")));
                }
                Err(e) => return Err(self.err(e)),
            };
            let value = table.get(key).map_err(|e| self.err(e))?;
            Ok(value.map(|v| v.value().to_vec()))
        })
    }

    /// One transaction, committed durably (fsynced) before returning.
    fn write(
        &self,
        f: impl Fn(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StoreError> {
        self.with(|db| {
            let txn = db.begin_write().map_err(|e| self.err(e))?;
            f(&txn).map_err(|e| self.err(e))?;
            txn.commit().map_err(|e| self.err(e))
        })
    }

    /// Runs `f` on the database, reopened first if an I/O error closed it,
    /// and once more after reopening it if redb refused `f` for an earlier
    /// I/O error. An I/O error closes it (see the module documentation).
    fn with<T>(&self, f: impl Fn(&Database) -> Result<T, StoreError>) -> Result<T, StoreError> {
        match self.try_with(&f) {
            Some(Ok(v)) => return Ok(v),
            Some(Err(e)) if !e.is_latched() => {
                if e.is_io() {
                    self.close();
                }
                return Err(e);
            }
            _ => {}
        }
        self.reopen()?;
        match self.try_with(&f) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => {
                if e.is_io() {
                    self.close();
                }
                Err(e)
            }
            None => Err(StoreError::Closed {
                path: self.path.clone(),
            }),
        }
    }

    fn try_with<T>(
        &self,
        f: &impl Fn(&Database) -> Result<T, StoreError>,
    ) -> Option<Result<T, StoreError>> {
        let db = self.db.read().unwrap_or_else(|p| p.into_inner());
        db.as_ref().map(f)
    }

    /// Closes the database after an I/O error: the next call reopens it.
    fn close(&self) {
        let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
        if db.take().is_some() {
            tracing::warn!(store = %self.path.display(),
                "raft store closed after an I/O error; reopened by the next call");
        }
    }

    /// Opens the database again (redb repairs it from its last good
    /// commit); it stays closed if that fails.
    fn reopen(&self) -> Result<(), StoreError> {
        let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
        // The file lock goes with the old handle.
        *db = None;
        let path = self.path.clone();
        let reopened = guarded(&self.path, move || {
            Database::create(&path).map_err(|e| classify(&path, e.into()))
        })?;
        *db = Some(reopened);
        tracing::info!(store = %self.path.display(), "raft store reopened");
        Ok(())
    }

    pub fn encode<T: Serialize>(&self, what: &str, value: &T) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(value).map_err(|e| self.invalid(format!("cannot encode {what}: {e}")))
    }

    fn decode<T: DeserializeOwned>(&self, what: &str, raw: &[u8]) -> Result<T, StoreError> {
        serde_json::from_slice(raw)
            .map_err(|e| self.corrupt(format!("{what} does not decode: {e}")))
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        classify(&self.path, e.into())
    }
}

/// Runs `open`, redb's panics on some damage (a garbled page header)
/// reported as corruption.
fn guarded<T>(path: &Path, open: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(open)).unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("redb panicked while reading it");
        Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        })
    })
}

/// Whether `dir` holds log segment files.
fn segments_in(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| {
        d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".wal")))
    })
}

/// redb's own corruption reports become [`StoreError::Corrupt`].
fn classify(path: &Path, e: redb::Error) -> StoreError {
    match e {
        redb::Error::Corrupted(reason) => StoreError::Corrupt {
            path: path.to_path_buf(),
            reason,
        },
        redb::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            ) =>
        {
            StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: io.to_string(),
            }
        }
        other => StoreError::Db {
            path: path.to_path_buf(),
            source: Box::new(other),
        },
    }
}
