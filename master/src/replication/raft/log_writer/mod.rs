//! The Raft log's single writer. One thread owns every write to the log,
//! the vote and the log's metadata: writes queue in the order openraft
//! makes them, and the thread writes whatever queued up meanwhile, in that
//! order, then reports durability. Entries go to the segment files
//! ([`super::wal`]), one `fdatasync` per batch; the vote and the purged
//! log id to redb. Where a batch mixes the two, each run of segment writes
//! is synced before the redb commit after it and each redb commit is done
//! before the segment writes after it, so a crash still leaves a prefix of
//! the writes on disk. The committed log id rides along with a batch's
//! redb commit, after its entries are synced, and is written on close;
//! with no redb commit it is only kept in memory (see
//! [`super::log_store`]).
//!
//! The log as submitted, durable or not, is kept in memory (its tail; older
//! entries are read from the segments), so reads see a write as soon as it
//! is queued.
//!
//! # A leader's fsync beside replication
//!
//! openraft 0.9.25's core awaits the `LogFlushed` callback of an append
//! before it runs its next command (`RaftCore::append_to_log` blocks on
//! it), and only then tells the replication tasks about the new entries.
//! Deferring the callback to the fsync therefore overlaps nothing. So for a
//! leader's own new entries (`Writer::append` given `me`, in `me`'s term)
//! the callback fires when they are queued, and replication starts at
//! once. openraft then counts the leader in the quorum for entries that may
//! not be on its disk yet; that count becomes observable only through what
//! is applied and what the followers learn, and both wait for this fsync:
//!
//! - nothing is applied (so acknowledged to a client, or read) before its
//!   entry is durable here: `Durability::wait_for`, in the state machine;
//! - followers never hear of a commit beyond what is durable here:
//!   `Durability::commit_bound`, on every AppendEntries.
//!
//! A follower answers AppendEntries only once its own fsync is done
//! (openraft awaits the callback there too, and a follower's callback waits
//! for the fsync). So a write is applied only once it is on the leader's
//! disk and on the disks of the followers openraft counted with it: on a
//! quorum. A leader that dies before its fsync loses entries nobody
//! applied. Membership (and blank) entries are never acknowledged early: a
//! configuration must really be committed before the next one is proposed.
//!
//! Here the handle, `Writer`; `state.rs` what it shares with the thread
//! (`batch.rs`) and with [`Durability`] (`durability.rs`).

mod batch;
mod durability;
mod state;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::io;
use std::ops::Bound;
use std::sync::{Arc, Condvar, Mutex};

use openraft::{LogId, Vote};
use tokio::sync::watch;

use super::db::{Db, Recovered, StoreError, key};
use super::types::{LogEntry, NodeId};
pub use durability::Durability;
pub(crate) use state::OnFlushed;
use state::{Cached, LogWrite, Progress, Shared, State};

/// The writer's handle. Dropping it writes what is queued, stops the
/// thread and waits for it: the file is closed afterwards.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Takes over the log `db` and its segments (`recovered`) and starts
    /// the thread.
    pub(crate) fn start(db: Arc<Db>, recovered: Recovered) -> Result<Writer, StoreError> {
        let purged = recovered.last_purged;
        let last = recovered.last_log.filter(|l| Some(*l) != purged);
        let wal = recovered.wal;
        let tail_start = last.or(purged).map_or(0, |l| l.index + 1);
        let state = State {
            vote: db.get(key::VOTE)?,
            purged,
            last,
            committed: None,
            tail: VecDeque::new(),
            tail_start,
            before_tail: last.or(purged),
            queue: Vec::new(),
            submitted: 0,
            durable: 0,
            failed: None,
            trouble: None,
            closed: false,
            held: false,
        };
        let shared = Arc::new(Shared {
            db: db.clone(),
            reader: wal.reader(),
            state: Mutex::new(state),
            work: Condvar::new(),
            progress: watch::channel(Progress::default()).0,
        });
        let thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("raft-log".into())
            .spawn(move || batch::run(&thread, wal))
            .map_err(|e| db.invalid(format!("cannot start the log writer: {e}")))?;
        Ok(Writer {
            shared,
            thread: Some(thread),
        })
    }

    pub(crate) fn durability(&self) -> Durability {
        Durability::new(&self.shared)
    }

    pub(crate) fn db(&self) -> &Arc<Db> {
        &self.shared.db
    }

    pub(crate) fn vote(&self) -> Option<Vote<NodeId>> {
        self.shared.lock().vote
    }

    pub(crate) fn committed(&self) -> Option<Option<LogId<NodeId>>> {
        self.shared.lock().committed
    }

    /// Kept in memory and written with the next append, so that it costs no
    /// I/O of its own.
    pub(crate) fn set_committed(&self, committed: Option<LogId<NodeId>>) {
        self.shared.lock().committed = Some(committed);
    }

    /// `(last purged, last)` log ids as submitted.
    pub(crate) fn log_state(&self) -> (Option<LogId<NodeId>>, Option<LogId<NodeId>>) {
        let s = self.shared.lock();
        (s.purged, s.last.or(s.purged))
    }

    /// Queues the vote and waits until it (and everything before) is
    /// durable.
    pub(crate) async fn save_vote(&self, vote: Vote<NodeId>) -> Result<(), StoreError> {
        let raw = self.shared.db.encode(key::VOTE, &vote)?;
        let seq = {
            let mut s = self.shared.lock();
            self.shared.check(&s)?;
            s.vote = Some(vote);
            s.push(
                LogWrite::Meta {
                    key: key::VOTE,
                    raw,
                },
                None,
            )
        };
        self.shared.work.notify_one();
        self.shared.wait_seq(seq).await
    }

    /// Queues `entries`; `flushed` hears when they are durable, or at once
    /// when they are the own new entries of the leader `me` (see the module
    /// documentation). Readable when this returns.
    pub(crate) fn append(
        &self,
        entries: Vec<LogEntry>,
        me: Option<NodeId>,
        flushed: OnFlushed,
    ) -> Result<(), StoreError> {
        let Some(first) = entries.first().map(|e| e.log_id.index) else {
            flushed(Ok(()));
            return Ok(());
        };
        let raw = entries
            .iter()
            .map(|e| Ok((e.log_id.index, self.shared.db.encode("log entry", e)?)))
            .collect::<Result<Vec<_>, StoreError>>();
        let early = {
            let mut s = self.shared.lock();
            let raw = match raw.and_then(|raw| self.shared.check(&s).map(|()| raw)) {
                Ok(raw) => raw,
                Err(e) => {
                    drop(s);
                    flushed(Err(io::Error::other(e.to_string())));
                    return Err(e);
                }
            };
            if first < s.next_index() {
                // Overwriting: the conflicting entries go first, on disk too.
                s.push(LogWrite::TruncateFrom(first), None);
            }
            s.cut_tail(first);
            if first > s.next_index() {
                s.tail.clear();
                s.tail_start = first;
                s.before_tail = None;
            }
            let early = me.is_some_and(|me| s.leader_own(me, &entries));
            let seq = s.submitted + 1;
            s.last = entries.last().map(|e| e.log_id);
            s.tail
                .extend(entries.into_iter().map(|entry| Cached { entry, seq }));
            let write = LogWrite::Entries(raw);
            if early {
                s.push(write, None);
                Some(flushed)
            } else {
                s.push(write, Some(flushed));
                None
            }
        };
        self.shared.work.notify_one();
        if let Some(flushed) = early {
            flushed(Ok(()));
        }
        Ok(())
    }

    /// Queues deleting the entries from `from` on.
    pub(crate) async fn truncate(&self, from: u64) -> Result<(), StoreError> {
        let prev = from.checked_sub(1);
        // The new last entry, when only the segments have it (nothing
        // queued writes below the tail).
        let known = self.shared.lock().known_id(prev);
        let stored = match (known, prev) {
            (None, Some(p)) => self.read(p, p + 1).await?.first().map(|e| e.log_id),
            _ => None,
        };
        {
            let mut s = self.shared.lock();
            self.shared.check(&s)?;
            if from >= s.next_index() {
                return Ok(());
            }
            let last = s.known_id(prev).unwrap_or(stored);
            s.cut_tail(from);
            s.last = last;
            s.push(LogWrite::TruncateFrom(from), None);
        }
        self.shared.work.notify_one();
        Ok(())
    }

    /// Queues deleting the entries up to and including `upto`.
    pub(crate) fn purge(&self, upto: LogId<NodeId>) -> Result<(), StoreError> {
        let raw = self.shared.db.encode(key::PURGED, &upto)?;
        {
            let mut s = self.shared.lock();
            self.shared.check(&s)?;
            s.purged = Some(upto);
            if s.last.is_some_and(|l| l.index <= upto.index) {
                s.last = None;
            }
            while s
                .tail
                .front()
                .is_some_and(|c| c.entry.log_id.index <= upto.index)
            {
                s.tail.pop_front();
            }
            if s.tail_start <= upto.index {
                s.tail_start = upto.index + 1;
                s.before_tail = Some(upto);
            }
            s.push(
                LogWrite::PurgeUpto {
                    index: upto.index,
                    raw,
                },
                None,
            );
        }
        self.shared.work.notify_one();
        Ok(())
    }

    /// The entries in `range` as submitted, in order.
    pub(crate) async fn entries(
        &self,
        range: (Bound<u64>, Bound<u64>),
    ) -> Result<Vec<LogEntry>, StoreError> {
        let lo = match range.0 {
            Bound::Included(i) => i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let hi = match range.1 {
            Bound::Included(i) => i.saturating_add(1),
            Bound::Excluded(i) => i,
            Bound::Unbounded => u64::MAX,
        };
        let (stored, mut tail) = {
            let s = self.shared.lock();
            self.shared.check(&s)?;
            let lo = lo.max(s.purged.map_or(0, |p| p.index + 1));
            let hi = hi.min(s.next_index());
            let from_tail = lo.max(s.tail_start);
            let tail: Vec<LogEntry> = if from_tail < hi {
                let at = (from_tail - s.tail_start) as usize;
                let n = (hi - from_tail) as usize;
                s.tail.range(at..at + n).map(|c| c.entry.clone()).collect()
            } else {
                Vec::new()
            };
            let below = hi.min(s.tail_start);
            ((lo < below).then_some(lo..below), tail)
        };
        let Some(stored) = stored else {
            return Ok(tail);
        };
        let mut entries = self.read(stored.start, stored.end).await?;
        entries.append(&mut tail);
        Ok(entries)
    }

    /// Entries `lo..hi` from the segments, on the blocking pool.
    async fn read(&self, lo: u64, hi: u64) -> Result<Vec<LogEntry>, StoreError> {
        let reader = self.shared.reader.clone();
        let path = self.shared.db.wal_dir();
        tokio::task::spawn_blocking(move || reader.read(lo, hi).map_err(StoreError::from))
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Invalid {
                    path,
                    reason: format!("log read failed: {e}"),
                })
            })
    }

    /// Test hook: the thread leaves queued writes alone while `held`.
    #[cfg(test)]
    pub(crate) fn hold(&self, held: bool) {
        self.shared.lock().held = held;
        self.shared.work.notify_one();
    }

    /// Test hook, a crash: queued writes are dropped unwritten, and the
    /// store refuses everything from now on.
    #[cfg(test)]
    pub(crate) fn crash(&self) {
        let mut s = self.shared.lock();
        s.queue.clear();
        s.failed = Some("crashed".into());
        s.closed = true;
        self.shared.progress.send_replace(Progress {
            durable: s.durable,
            failed: true,
        });
        drop(s);
        self.shared.work.notify_one();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.work.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
