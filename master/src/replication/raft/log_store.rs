//! openraft's [`RaftLogStorage`] over the store: the log's entries in
//! segment files ([`super::wal`]), the vote and the committed log id in the
//! redb [`Db`]. Every write goes through the log's single writer
//! ([`super::log_writer`]), which fsyncs in the background and serves what
//! is not durable yet from memory.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};

use super::db::{Db, Recovered, StoreError, key};
use super::log_writer::{Durability, Writer};
use super::types::{LogEntry, NodeId, TypeConfig};

/// Cheap to clone: every clone is a handle on the same store. The writer
/// stops once the last clone is dropped.
#[derive(Clone)]
pub struct LogStore {
    writer: Arc<Writer>,
    /// This master's node id when its own entries, as leader, are
    /// acknowledged before their fsync (see [`super::log_writer`]).
    leader_early_ack: Option<NodeId>,
}

impl LogStore {
    /// A store over `db` and the segments [`Db::open`] found beside it
    /// that acknowledges every append once it is durable.
    pub fn new(db: Arc<Db>, recovered: Recovered) -> Result<Self, StoreError> {
        Ok(LogStore {
            writer: Arc::new(Writer::start(db, recovered)?),
            leader_early_ack: None,
        })
    }

    /// A store for master `me` that, while `me` leads, acknowledges its own
    /// new entries before their fsync so that replication overlaps it.
    pub fn with_early_leader_ack(
        db: Arc<Db>,
        recovered: Recovered,
        me: NodeId,
    ) -> Result<Self, StoreError> {
        Ok(LogStore {
            leader_early_ack: Some(me),
            ..LogStore::new(db, recovered)?
        })
    }

    /// What the state machine and the network wait for and bound by.
    pub fn durability(&self) -> Durability {
        self.writer.durability()
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

/// [`blocking`], again after every I/O error (a full disk) until it
/// succeeds or the store closes: for the state machine's snapshot writes
/// and reads, which openraft cannot retry (an error from them stops Raft).
pub(crate) async fn persisting<T: Send + 'static>(
    db: &Arc<Db>,
    durability: &Durability,
    f: impl Fn(&Db) -> Result<T, StoreError> + Send + Sync + 'static,
) -> Result<T, StoreError> {
    let f = Arc::new(f);
    let mut pause = Duration::from_millis(20);
    let mut failing = false;
    loop {
        let attempt = f.clone();
        match blocking(db, move |db| attempt(db)).await {
            Err(e) if e.is_io() && !durability.closed() => {
                if !failing {
                    tracing::error!(error = %e,
                        "raft snapshot store failed; trying again until the disk lets it");
                    failing = true;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            other => {
                if failing && other.is_ok() {
                    tracing::info!("raft snapshot store works again");
                }
                return other;
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<LogEntry>, StorageError<NodeId>> {
        let bounds: (Bound<u64>, Bound<u64>) =
            (range.start_bound().cloned(), range.end_bound().cloned());
        self.writer
            .entries(bounds)
            .await
            .map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let (purged, last) = self.writer.log_state();
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// Durable when this returns, with every write before it.
    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.writer
            .save_vote(*vote)
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.writer.vote())
    }

    /// Kept in memory and written with the next redb commit the writer
    /// makes anyway (a vote, a purge) and on close, so that it costs no I/O
    /// of its own: a lost or stale committed id only means that a restarted
    /// master re-applies less of its log until the leader tells it again.
    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.writer.set_committed(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        if let Some(committed) = self.writer.committed() {
            return Ok(committed);
        }
        blocking(self.writer.db(), |db| {
            Ok(db.get::<Option<LogId<NodeId>>>(key::COMMITTED)?.flatten())
        })
        .await
        .map_err(|e| StorageIOError::read(&e).into())
    }

    /// Readable on return; `callback` hears when the entries are durable
    /// (or, for a leader's own entries, at once: see [`super::log_writer`]).
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
        self.writer
            .append(
                entries,
                self.leader_early_ack,
                Box::new(move |r| callback.log_io_completed(r)),
            )
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.writer
            .truncate(log_id.index)
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.writer
            .purge(log_id)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
