//! openraft's [`RaftStateMachine`]: committed [`Command`]s applied to the
//! [`Registry`] in memory.
//!
//! The registry is not written on every apply. It is rebuilt on start from
//! the last snapshot (stored in the redb file) plus the committed log after
//! it, which openraft re-applies; snapshots are taken by openraft's snapshot
//! policy, after which it purges the log they cover. Commands the registry
//! refuses are not errors here: the refusal is deterministic, so it is the
//! entry's response on every master.

use std::io::Cursor;
use std::sync::{Arc, RwLock};

use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use super::db::{Db, StoreError};
use super::log_store::persisting;
use super::log_writer::Durability;
use super::types::{ApplyResponse, Batch, LogEntry, MasterNode, NodeId, TypeConfig};
use crate::registry::{Applied, Command, Registry, RegistryError};

/// How many events a slow subscriber may fall behind before it lags.
const EVENT_BUFFER: usize = 4096;

/// One committed command and what applying it did.
#[derive(Debug)]
pub struct AppliedEntry {
    /// The log entry; commands proposed together share it.
    pub index: u64,
    /// The command's position in its entry.
    pub pos: usize,
    pub term: u64,
    pub command: Command,
    pub result: Result<Applied, RegistryError>,
}

/// What happened to the applied state, in log order.
#[derive(Debug, Clone)]
pub enum StateEvent {
    /// A committed command was applied (refused ones too: see `result`).
    Applied(Arc<AppliedEntry>),
    /// The registry was replaced by a snapshot from the leader (this master
    /// was too far behind): read it again.
    SnapshotInstalled { index: u64 },
}

/// The applied state as [`super::RaftNode`] reads it.
pub(crate) struct SmState {
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: StoredMembership<NodeId, MasterNode>,
    pub registry: Arc<Registry>,
}

/// Shared between the state machine (owned by openraft) and the node.
pub(crate) struct SmShared {
    pub state: RwLock<SmState>,
    pub events: broadcast::Sender<StateEvent>,
    pub applied: watch::Sender<u64>,
}

impl SmShared {
    pub fn read<T>(&self, f: impl FnOnce(&SmState) -> T) -> T {
        f(&self.state.read().unwrap_or_else(|p| p.into_inner()))
    }
}

#[derive(Serialize)]
struct SnapshotDataRef<'a> {
    registry: &'a Registry,
}

#[derive(Deserialize)]
struct SnapshotData {
    registry: Registry,
}

type Meta = SnapshotMeta<NodeId, MasterNode>;

pub struct StateMachine {
    shared: Arc<SmShared>,
    db: Arc<Db>,
    /// The log's: entries are applied only once durable on this master.
    durable: Durability,
}

impl StateMachine {
    /// The state machine as of the stored snapshot (empty without one),
    /// applying entries once `durable` says they are on disk.
    pub(crate) fn restore(
        db: Arc<Db>,
        durable: Durability,
    ) -> Result<(StateMachine, Arc<SmShared>), StoreError> {
        let mut state = SmState {
            last_applied: None,
            membership: StoredMembership::default(),
            registry: Arc::new(Registry::default()),
        };
        if let Some((meta, data)) = db.snapshot::<Meta>()? {
            let data: SnapshotData = serde_json::from_slice(&data)
                .map_err(|e| db.corrupt(format!("snapshot data does not decode: {e}")))?;
            state.last_applied = meta.last_log_id;
            state.membership = meta.last_membership;
            state.registry = Arc::new(data.registry);
        }
        let index = state.last_applied.map_or(0, |l| l.index);
        let shared = Arc::new(SmShared {
            state: RwLock::new(state),
            events: broadcast::channel(EVENT_BUFFER).0,
            applied: watch::channel(index).0,
        });
        Ok((
            StateMachine {
                shared: shared.clone(),
                db,
                durable,
            },
            shared,
        ))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, MasterNode>), StorageError<NodeId>>
    {
        Ok(self.shared.read(|s| (s.last_applied, s.membership.clone())))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = LogEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<LogEntry> = entries.into_iter().collect();
        // A leader's own entries may be committed before its fsync is done
        // (see `log_writer`); they take effect only after it.
        if let Some(last) = entries.last() {
            let last = last.log_id;
            self.durable
                .wait_for(last)
                .await
                .map_err(|e| StorageIOError::apply(last, &e))?;
        }
        let mut responses = Vec::with_capacity(entries.len());
        let mut guard = self.shared.state.write().unwrap_or_else(|p| p.into_inner());
        let state = &mut *guard;
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => responses.push(ApplyResponse::Internal),
                EntryPayload::Membership(m) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), m);
                    responses.push(ApplyResponse::Internal);
                }
                EntryPayload::Normal(Batch(commands)) => {
                    let mut results = Vec::with_capacity(commands.len());
                    for (pos, command) in commands.into_iter().enumerate() {
                        let result = Arc::make_mut(&mut state.registry).apply(&command);
                        results.push(result.clone());
                        // Sent under the lock, so that a subscriber sees either
                        // the registry before this entry and then its events,
                        // or the registry after it and none of them.
                        let _ =
                            self.shared
                                .events
                                .send(StateEvent::Applied(Arc::new(AppliedEntry {
                                    index: entry.log_id.index,
                                    pos,
                                    term: entry.log_id.leader_id.term,
                                    command,
                                    result,
                                })));
                    }
                    responses.push(ApplyResponse::Commands(results));
                }
            }
        }
        let index = state.last_applied.map_or(0, |l| l.index);
        drop(guard);
        self.shared.applied.send_replace(index);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
            db: self.db.clone(),
            durable: self.durable.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let decoded: SnapshotData = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let stored = meta.clone();
        let bytes = data.clone();
        persisting(&self.db, &self.durable, move |db| {
            db.put_snapshot(&stored, &bytes)
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let index = meta.last_log_id.map_or(0, |l| l.index);
        {
            let mut state = self.shared.state.write().unwrap_or_else(|p| p.into_inner());
            state.last_applied = meta.last_log_id;
            state.membership = meta.last_membership.clone();
            state.registry = Arc::new(decoded.registry);
            let _ = self
                .shared
                .events
                .send(StateEvent::SnapshotInstalled { index });
        }
        self.shared.applied.send_replace(index);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let stored = persisting(&self.db, &self.durable, |db| db.snapshot::<Meta>())
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(stored.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Serializes the registry as of the last applied entry and stores it.
pub struct SnapshotBuilder {
    shared: Arc<SmShared>,
    db: Arc<Db>,
    durable: Durability,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (last, membership, registry) = self
            .shared
            .read(|s| (s.last_applied, s.membership.clone(), s.registry.clone()));
        let data = serde_json::to_vec(&SnapshotDataRef {
            registry: &registry,
        })
        .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let snapshot_id = match last {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, uuid::Uuid::new_v4()),
            None => format!("0-0-{}", uuid::Uuid::new_v4()),
        };
        let meta = Meta {
            last_log_id: last,
            last_membership: membership,
            snapshot_id,
        };
        let (stored, bytes) = (meta.clone(), data.clone());
        persisting(&self.db, &self.durable, move |db| {
            db.put_snapshot(&stored, &bytes)
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
