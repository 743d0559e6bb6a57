//! The Raft store on disk: one redb file, `<work_dir>/raft/raft.redb`.
//!
//! - `log`: log index -> JSON of the openraft entry;
//! - `meta`: small JSON values: the format marker, vote, committed log id,
//!   last purged log id and this master's identity;
//! - `snapshot`: the last snapshot's metadata and data.
//!
//! Every write is one redb transaction committed with immediate durability
//! (fsync) before the call returns; the log's writer
//! ([`super::log_writer`]) commits everything queued meanwhile in one. The
//! committed log id rides along with log appends (Raft can always learn it
//! again). [`Db::open`] reads everything back and refuses a
//! file it cannot fully trust: a master must not serve a registry rebuilt
//! from a damaged log.

use std::ops::RangeBounds;
use std::path::{Path, PathBuf};

use openraft::{Entry, LogId, SnapshotMeta};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::types::{MasterNode, NodeId, TypeConfig};

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
const FORMAT: &str = "keel-raft-1";

pub type LogEntry = Entry<TypeConfig>;

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
}

/// The redb database and its path (for error messages).
pub struct Db {
    db: Database,
    path: PathBuf,
}

/// One change [`Db::commit_writes`] makes, values already encoded.
#[derive(Debug)]
pub enum LogWrite {
    /// Log entries by index.
    Entries(Vec<(u64, Vec<u8>)>),
    /// Deletes the entries from this index on (conflicting entries).
    TruncateFrom(u64),
    /// Deletes the entries up to and including `index` and records the
    /// purged log id, `raw`.
    PurgeUpto { index: u64, raw: Vec<u8> },
    /// One `meta` value.
    Meta { key: &'static str, raw: Vec<u8> },
}

/// What [`Db::open`] found, already checked.
#[derive(Debug, Default)]
pub struct Recovered {
    pub last_purged: Option<LogId<NodeId>>,
    pub last_log: Option<LogId<NodeId>>,
    pub snapshot_last: Option<LogId<NodeId>>,
}

impl Db {
    /// Opens or creates the store at `path` and checks all of it: every value
    /// must decode, and the log must be contiguous after the purged prefix.
    ///
    /// redb panics on some damage (a garbled page header) instead of
    /// returning an error; that panic is caught and reported as corruption.
    pub fn open(path: &Path) -> Result<(Db, Recovered), StoreError> {
        std::panic::catch_unwind(|| Db::open_unguarded(path)).unwrap_or_else(|panic| {
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

    fn open_unguarded(path: &Path) -> Result<(Db, Recovered), StoreError> {
        let existed = std::fs::metadata(path)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        let db = Database::create(path).map_err(|e| classify(path, e.into()))?;
        let db = Db {
            db,
            path: path.to_path_buf(),
        };
        if existed {
            match db.get_raw(META, key::FORMAT)? {
                Some(f) if f == FORMAT.as_bytes() => {}
                Some(f) => {
                    return Err(db.corrupt(format!(
                        "unknown format {:?} (expected {FORMAT})",
                        String::from_utf8_lossy(&f)
                    )));
                }
                None => return Err(db.corrupt("format marker missing".into())),
            }
        } else {
            let txn = db.db.begin_write().map_err(|e| db.err(e))?;
            {
                txn.open_table(LOG).map_err(|e| db.err(e))?;
                txn.open_table(SNAPSHOT).map_err(|e| db.err(e))?;
                let mut meta = txn.open_table(META).map_err(|e| db.err(e))?;
                meta.insert(key::FORMAT, FORMAT.as_bytes())
                    .map_err(|e| db.err(e))?;
            }
            txn.commit().map_err(|e| db.err(e))?;
        }
        let recovered = db.verify()?;
        Ok((db, recovered))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn verify(&self) -> Result<Recovered, StoreError> {
        let _: Option<openraft::Vote<NodeId>> = self.get(key::VOTE)?;
        let _: Option<LogId<NodeId>> = self.get(key::COMMITTED)?;
        let _: Option<serde_json::Value> = self.get(key::IDENTITY)?;
        let last_purged: Option<LogId<NodeId>> = self.get(key::PURGED)?;
        let snapshot: Option<(SnapshotMeta<NodeId, MasterNode>, Vec<u8>)> = self.snapshot()?;
        let snapshot_last = snapshot.and_then(|(meta, _)| meta.last_log_id);
        let first = last_purged.map_or(0, |l| l.index + 1);
        let mut last_log = last_purged;
        for (expected, entry) in (first..).zip(self.entries(..)?) {
            if entry.log_id.index != expected {
                return Err(self.corrupt(format!(
                    "log entry {} found where {expected} was expected",
                    entry.log_id.index
                )));
            }
            last_log = Some(entry.log_id);
        }
        Ok(Recovered {
            last_purged,
            last_log,
            snapshot_last,
        })
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

    /// Log entries with indexes in `range`, in order.
    pub fn entries(&self, range: impl RangeBounds<u64>) -> Result<Vec<LogEntry>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
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

    /// The id of the last log entry, if the log holds any.
    pub fn last_entry(&self) -> Result<Option<LogId<NodeId>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(LOG).map_err(|e| self.err(e))?;
        match table.last().map_err(|e| self.err(e))? {
            Some((k, v)) => {
                let entry: LogEntry =
                    self.decode(&format!("log entry {}", k.value()), v.value())?;
                Ok(Some(entry.log_id))
            }
            None => Ok(None),
        }
    }

    /// Commits `writes` in one transaction, in order, durably (one fsync
    /// for all of them): the log's writer groups whatever queued up.
    pub fn commit_writes(&self, writes: &[LogWrite]) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut log = txn.open_table(LOG)?;
            let mut meta = txn.open_table(META)?;
            for w in writes {
                match w {
                    LogWrite::Entries(entries) => {
                        for (index, raw) in entries {
                            log.insert(*index, raw.as_slice())?;
                        }
                    }
                    LogWrite::TruncateFrom(index) => log.retain_in(*index.., |_, _| false)?,
                    LogWrite::PurgeUpto { index, raw } => {
                        log.retain_in(..=*index, |_, _| false)?;
                        meta.insert(key::PURGED, raw.as_slice())?;
                    }
                    LogWrite::Meta { key, raw } => {
                        meta.insert(*key, raw.as_slice())?;
                    }
                }
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
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(def) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(name)) => {
                return Err(self.corrupt(format!("table {name} is missing")));
            }
            Err(e) => return Err(self.err(e)),
        };
        let value = table.get(key).map_err(|e| self.err(e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// One transaction, committed durably (fsynced) before returning.
    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        f(&txn).map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
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
