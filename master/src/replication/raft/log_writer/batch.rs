//! The log writer's thread: takes what queued up, writes it in order (see
//! the [`super`] documentation for the order between segments and redb),
//! then reports durability and calls back.

use std::io;

use openraft::LogId;

use super::state::{LogWrite, Progress, Shared};
use crate::replication::raft::db::{StoreError, key};
use crate::replication::raft::types::NodeId;
use crate::replication::raft::wal::Wal;

/// The thread: writes what is queued, in order, until the store closes.
pub(super) fn run(shared: &Shared, mut wal: Wal) {
    let mut saved = Committed::default();
    loop {
        let (batch, committed, failed) = {
            let mut s = shared.lock();
            loop {
                if !s.queue.is_empty() && (!s.held || s.closed) {
                    break;
                }
                if s.closed {
                    let (committed, failed) = (s.committed, s.failed.is_some());
                    drop(s);
                    if !failed && let Err(e) = saved.write(shared, committed, Vec::new()) {
                        tracing::error!("raft log: cannot save the committed id: {e}");
                    }
                    return;
                }
                s = shared.work.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            (std::mem::take(&mut s.queue), s.committed, s.failed.clone())
        };
        let upto = batch.last().map_or(0, |q| q.seq);
        let mut writes = Vec::with_capacity(batch.len());
        let mut callbacks = Vec::new();
        for q in batch {
            writes.push(q.write);
            callbacks.extend(q.flushed);
        }
        let result = match failed {
            Some(e) => Err(e),
            None => {
                commit(shared, &mut wal, &mut saved, writes, committed).map_err(|e| e.to_string())
            }
        };
        let progress = {
            let mut s = shared.lock();
            match &result {
                Ok(()) => {
                    s.durable = upto;
                    s.evict();
                }
                Err(e) => {
                    tracing::error!("raft log write failed: {e}");
                    s.failed.get_or_insert_with(|| e.clone());
                }
            }
            Progress {
                durable: s.durable,
                failed: s.failed.is_some(),
            }
        };
        shared.progress.send_replace(progress);
        for flushed in callbacks {
            flushed(result.clone().map_err(io::Error::other));
        }
    }
}

/// Writes one batch, in order (see the module documentation).
fn commit(
    shared: &Shared,
    wal: &mut Wal,
    saved: &mut Committed,
    writes: Vec<LogWrite>,
    committed: Option<Option<LogId<NodeId>>>,
) -> Result<(), StoreError> {
    let mut meta = Vec::new();
    let mut purge = None;
    let mut unsynced = false;
    for w in writes {
        match w {
            LogWrite::Entries(entries) => {
                flush_meta(shared, wal, &mut meta, &mut purge)?;
                wal.append(&entries)?;
                unsynced = true;
            }
            LogWrite::TruncateFrom(index) => {
                flush_meta(shared, wal, &mut meta, &mut purge)?;
                wal.truncate(index)?;
            }
            LogWrite::PurgeUpto { index, raw } => {
                if std::mem::take(&mut unsynced) {
                    wal.sync()?;
                }
                meta.push((key::PURGED, raw));
                purge = Some(index);
            }
            LogWrite::Meta { key, raw } => {
                if std::mem::take(&mut unsynced) {
                    wal.sync()?;
                }
                meta.push((key, raw));
            }
        }
    }
    if unsynced {
        wal.sync()?;
    }
    if meta.is_empty() {
        return Ok(());
    }
    // Every entry up to `committed` is durable now: it rides along.
    saved.write(shared, committed, std::mem::take(&mut meta))?;
    if let Some(index) = purge {
        wal.purge(index)?;
    }
    Ok(())
}

/// Commits the queued redb values, then deletes what a purge among them
/// left behind in the segments.
fn flush_meta(
    shared: &Shared,
    wal: &mut Wal,
    meta: &mut Vec<(&'static str, Vec<u8>)>,
    purge: &mut Option<u64>,
) -> Result<(), StoreError> {
    if meta.is_empty() {
        return Ok(());
    }
    shared.db.put_raw(meta)?;
    meta.clear();
    if let Some(index) = purge.take() {
        wal.purge(index)?;
    }
    Ok(())
}

/// The committed log id as last written to redb.
#[derive(Default)]
struct Committed(Option<Option<LogId<NodeId>>>);

impl Committed {
    /// Commits `meta` with `committed` when it changed (nothing when there
    /// is nothing to write).
    fn write(
        &mut self,
        shared: &Shared,
        committed: Option<Option<LogId<NodeId>>>,
        mut meta: Vec<(&'static str, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        if let Some(c) = committed
            && committed != self.0
        {
            meta.push((key::COMMITTED, shared.db.encode(key::COMMITTED, &c)?));
        }
        if !meta.is_empty() {
            shared.db.put_raw(&meta)?;
            self.0 = committed;
        }
        Ok(())
    }
}
