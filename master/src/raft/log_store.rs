//! openraft's [`RaftLogStorage`] over the redb [`Db`]: the vote, the
//! committed log id and the log itself. redb is synchronous and fsyncs on
//! commit, so every call runs on the blocking pool.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};

use super::db::{Db, LogEntry, StoreError, key};
use super::types::{NodeId, TypeConfig};

/// Cheap to clone: every clone is a handle on the same file.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Db>,
    /// The committed log id openraft last reported; written to the store
    /// with the next append (see [`LogStore::save_committed`]).
    committed: Arc<Mutex<Option<Option<LogId<NodeId>>>>>,
}

impl LogStore {
    pub fn new(db: Arc<Db>) -> Self {
        LogStore {
            db,
            committed: Arc::default(),
        }
    }

    fn committed(&self) -> std::sync::MutexGuard<'_, Option<Option<LogId<NodeId>>>> {
        self.committed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs `f` on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    db: &Arc<Db>,
    f: impl FnOnce(&Db) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let db = db.clone();
    let path = db.path().to_path_buf();
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .unwrap_or_else(|e| {
            Err(StoreError::Invalid {
                path,
                reason: format!("store task failed: {e}"),
            })
        })
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<LogEntry>, StorageError<NodeId>> {
        let bounds: (Bound<u64>, Bound<u64>) =
            (range.start_bound().cloned(), range.end_bound().cloned());
        blocking(&self.db, move |db| db.entries(bounds))
            .await
            .map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let (purged, last) = blocking(&self.db, |db| {
            Ok((db.get::<LogId<NodeId>>(key::PURGED)?, db.last_entry()?))
        })
        .await
        .map_err(|e| StorageIOError::read_logs(&e))?;
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last.or(purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let vote = *vote;
        blocking(&self.db, move |db| db.put(key::VOTE, &vote))
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        blocking(&self.db, |db| db.get(key::VOTE))
            .await
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    /// Kept in memory and written with the next append, so that it costs no
    /// I/O of its own: a lost committed id only means that a restarted
    /// master re-applies less of its log until the leader tells it again.
    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        *self.committed() = Some(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        if let Some(committed) = *self.committed() {
            return Ok(committed);
        }
        blocking(&self.db, |db| {
            Ok(db.get::<Option<LogId<NodeId>>>(key::COMMITTED)?.flatten())
        })
        .await
        .map_err(|e| StorageIOError::read(&e).into())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = LogEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<LogEntry> = entries.into_iter().collect();
        let committed = *self.committed();
        match blocking(&self.db, move |db| db.append(&entries, committed)).await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        blocking(&self.db, move |db| db.truncate_from(log_id.index))
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        blocking(&self.db, move |db| db.purge_upto(&log_id))
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
