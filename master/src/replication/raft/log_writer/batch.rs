//! The log writer's thread: takes what queued up, writes it in order (see
//! the [`super`] documentation for the order between segments and redb),
//! then reports durability and calls back.
//!
//! A batch is planned as steps, some of which leave everything before them
//! durable (a sync of the segments, a truncation, a redb commit, a purge).
//! When a step fails for an I/O error (a full disk, an fsync error), the
//! segments roll back to their last such point ([`Wal`]), redb reopens
//! ([`crate::replication::raft::db`]), and the steps from that point on are
//! written again, after a pause that doubles up to [`RETRY_MAX`], until
//! they succeed or the store closes. Meanwhile nothing of the batch is
//! reported durable, writes queue up behind it, and the error is the
//! store's trouble ([`super::Durability::trouble`]): the master refuses new
//! proposals with it. Any other error (a log out of sequence, a value that
//! does not encode) fails the store for good.

use std::io;
use std::time::{Duration, Instant};

use openraft::LogId;

use super::state::{LogWrite, Progress, Shared};
use crate::replication::raft::db::{StoreError, key};
use crate::replication::raft::types::NodeId;
use crate::replication::raft::wal::Wal;

/// The first pause before a failed batch is written again.
const RETRY_FIRST: Duration = Duration::from_millis(20);
/// The longest pause between two tries.
pub(super) const RETRY_MAX: Duration = Duration::from_secs(1);

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
            None => write(shared, &mut wal, &mut saved, plan(writes), committed),
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

/// One step of a batch.
enum Step {
    /// Entries to the segments, durable with the next [`Step::Sync`].
    Append(Vec<(u64, Vec<u8>)>),
    Sync,
    /// Deletes the entries from this index on, durably.
    Truncate(u64),
    /// One redb commit; with `last`, the committed log id rides along.
    Meta {
        values: Vec<(&'static str, Vec<u8>)>,
        last: bool,
    },
    /// Deletes the segments holding only entries up to this index.
    Purge(u64),
}

impl Step {
    /// Whether everything up to and including this step is durable once
    /// it is done: a failure after it starts over after it.
    fn settles(&self) -> bool {
        !matches!(self, Step::Append(_))
    }
}

/// The steps that write `writes` in order: each run of segment appends is
/// synced before a redb commit or a truncation after it, and each redb
/// commit is done before the appends after it.
fn plan(writes: Vec<LogWrite>) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut values = Vec::new();
    let mut purge = None;
    let mut unsynced = false;
    let commit = |steps: &mut Vec<Step>, values: &mut Vec<_>, purge: &mut Option<u64>| {
        if !values.is_empty() {
            steps.push(Step::Meta {
                values: std::mem::take(values),
                last: false,
            });
        }
        if let Some(index) = purge.take() {
            steps.push(Step::Purge(index));
        }
    };
    for w in writes {
        match w {
            LogWrite::Entries(entries) => {
                commit(&mut steps, &mut values, &mut purge);
                steps.push(Step::Append(entries));
                unsynced = true;
            }
            LogWrite::TruncateFrom(index) => {
                commit(&mut steps, &mut values, &mut purge);
                if std::mem::take(&mut unsynced) {
                    steps.push(Step::Sync);
                }
                steps.push(Step::Truncate(index));
            }
            LogWrite::PurgeUpto { index, raw } => {
                if std::mem::take(&mut unsynced) {
                    steps.push(Step::Sync);
                }
                values.push((key::PURGED, raw));
                purge = Some(index);
            }
            LogWrite::Meta { key, raw } => {
                if std::mem::take(&mut unsynced) {
                    steps.push(Step::Sync);
                }
                values.push((key, raw));
            }
        }
    }
    if unsynced {
        steps.push(Step::Sync);
    }
    // Every entry up to `committed` is durable by now: it rides along with
    // the last commit, if there is one.
    if !values.is_empty() {
        steps.push(Step::Meta {
            values: std::mem::take(&mut values),
            last: true,
        });
    }
    if let Some(index) = purge {
        steps.push(Step::Purge(index));
    }
    steps
}

/// Writes `steps`, again and again from the last settled one while they
/// fail for I/O errors (see the module documentation).
fn write(
    shared: &Shared,
    wal: &mut Wal,
    saved: &mut Committed,
    steps: Vec<Step>,
    committed: Option<Option<LogId<NodeId>>>,
) -> Result<(), String> {
    let mut settled = 0;
    let mut pause = RETRY_FIRST;
    let mut since: Option<Instant> = None;
    loop {
        let e = match write_steps(shared, wal, saved, &steps, &mut settled, committed) {
            Ok(()) => {
                if let Some(since) = since {
                    tracing::info!(after = ?since.elapsed(), "raft log writes again");
                    shared.set_trouble(None);
                }
                return Ok(());
            }
            Err(e) if e.is_io() => e,
            Err(e) => return Err(e.to_string()),
        };
        let reason = e.to_string();
        if since.is_none() {
            tracing::error!(error = %reason,
                "raft log write failed; writing it again once the disk lets it");
            since = Some(Instant::now());
        }
        shared.set_trouble(Some(reason.clone()));
        if shared.closed_within(pause) {
            return Err(format!("closed before the log could be written: {reason}"));
        }
        pause = (pause * 2).min(RETRY_MAX);
        // A log broken by the failure rolls back before its next write.
        if let Err(e) = wal.heal() {
            tracing::debug!(error = %e, "raft log: the rollback failed too");
        }
    }
}

/// Writes the steps from `*settled` on, moving `*settled` past each one
/// that settles.
fn write_steps(
    shared: &Shared,
    wal: &mut Wal,
    saved: &mut Committed,
    steps: &[Step],
    settled: &mut usize,
    committed: Option<Option<LogId<NodeId>>>,
) -> Result<(), StoreError> {
    for (n, step) in steps.iter().enumerate().skip(*settled) {
        match step {
            Step::Append(entries) => wal.append(entries)?,
            Step::Sync => wal.sync()?,
            Step::Truncate(index) => wal.truncate(*index)?,
            Step::Meta { values, last: true } => saved.write(shared, committed, values.clone())?,
            Step::Meta { values, .. } => shared.db.put_raw(values)?,
            Step::Purge(index) => wal.purge(*index)?,
        }
        if step.settles() {
            *settled = n + 1;
        }
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
