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

use std::collections::VecDeque;
use std::io;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

use openraft::{EntryPayload, LogId, Vote};
use tokio::sync::watch;

use super::db::{Db, LogEntry, Recovered, StoreError, key};
use super::types::NodeId;
use super::wal::WalReader;
use batch::LogWrite;

/// Durable entries kept in memory, so that replication and apply read
/// recent entries without the disk (and without decoding them).
const KEEP: usize = 256;

/// Told once an append is durable (or failed).
pub(crate) type OnFlushed = Box<dyn FnOnce(io::Result<()>) + Send>;

/// The writer's handle. Dropping it writes what is queued, stops the
/// thread and waits for it: the file is closed afterwards.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Waits for, and bounds by, what the writer has made durable. Holds the
/// writer weakly: it does not keep the store open.
#[derive(Clone)]
pub struct Durability {
    shared: Weak<Shared>,
    path: PathBuf,
}

struct Shared {
    db: Arc<Db>,
    /// Reads entries that left the tail.
    reader: WalReader,
    state: Mutex<State>,
    /// Wakes the thread: writes queued, or the store closed.
    work: Condvar,
    progress: watch::Sender<Progress>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// Every write with a sequence number up to this one is durable.
    durable: u64,
    failed: bool,
}

struct State {
    vote: Option<Vote<NodeId>>,
    purged: Option<LogId<NodeId>>,
    /// The last entry, `None` while the log holds none after `purged`.
    last: Option<LogId<NodeId>>,
    /// The committed log id openraft last reported, once it has; written
    /// with the next append.
    committed: Option<Option<LogId<NodeId>>>,
    /// The entries from `tail_start` on, all of them, as submitted.
    tail: VecDeque<Cached>,
    tail_start: u64,
    /// The id of the entry before `tail_start`, where known.
    before_tail: Option<LogId<NodeId>>,
    queue: Vec<Queued>,
    /// Sequence number of the last queued write.
    submitted: u64,
    /// Sequence number of the last durable write.
    durable: u64,
    failed: Option<String>,
    closed: bool,
    /// Test hook: the thread leaves the queue alone.
    held: bool,
}

struct Cached {
    entry: LogEntry,
    /// The write that put it there.
    seq: u64,
}

struct Queued {
    seq: u64,
    write: LogWrite,
    flushed: Option<OnFlushed>,
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
        Durability {
            shared: Arc::downgrade(&self.shared),
            path: self.shared.db.path().to_path_buf(),
        }
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

impl Durability {
    /// Waits until the entry `log_id` is durable here.
    pub(crate) async fn wait_for(&self, log_id: LogId<NodeId>) -> Result<(), StoreError> {
        let shared = self.shared.upgrade().ok_or_else(|| StoreError::Closed {
            path: self.path.clone(),
        })?;
        let seq = {
            let s = shared.lock();
            shared.check(&s)?;
            s.seq_of(log_id)
        };
        shared.wait_seq(seq).await
    }

    /// `committed`, or the last durable entry before it when it is not
    /// durable here yet: what a leader may tell followers is committed.
    pub(crate) fn commit_bound(&self, committed: Option<LogId<NodeId>>) -> Option<LogId<NodeId>> {
        let (Some(shared), Some(c)) = (self.shared.upgrade(), committed) else {
            return committed;
        };
        let s = shared.lock();
        if c.index < s.tail_start {
            return committed;
        }
        let upto = c.index.min(s.next_index().saturating_sub(1));
        let mut i = upto;
        while i >= s.tail_start {
            let cached = &s.tail[(i - s.tail_start) as usize];
            if cached.seq <= s.durable {
                return if i == c.index {
                    committed
                } else {
                    Some(cached.entry.log_id)
                };
            }
            if i == 0 {
                break;
            }
            i -= 1;
        }
        s.before_tail.filter(|b| b.index < c.index)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn closed(&self) -> StoreError {
        StoreError::Closed {
            path: self.db.path().to_path_buf(),
        }
    }

    fn check(&self, s: &State) -> Result<(), StoreError> {
        match &s.failed {
            Some(e) => Err(self.db.invalid(format!("an earlier log write failed: {e}"))),
            None => Ok(()),
        }
    }

    async fn wait_seq(&self, seq: u64) -> Result<(), StoreError> {
        let mut rx = self.progress.subscribe();
        let p = *rx
            .wait_for(|p| p.durable >= seq || p.failed)
            .await
            .map_err(|_| self.closed())?;
        if p.durable >= seq {
            return Ok(());
        }
        Err(self
            .check(&self.lock())
            .err()
            .unwrap_or_else(|| self.closed()))
    }
}

impl State {
    fn next_index(&self) -> u64 {
        self.tail_start + self.tail.len() as u64
    }

    fn push(&mut self, write: LogWrite, flushed: Option<OnFlushed>) -> u64 {
        self.submitted += 1;
        let seq = self.submitted;
        self.queue.push(Queued {
            seq,
            write,
            flushed,
        });
        seq
    }

    /// Forgets the entries from `from` on.
    fn cut_tail(&mut self, from: u64) {
        if from < self.tail_start {
            self.tail.clear();
            self.tail_start = from;
            self.before_tail = None;
        } else {
            self.tail.truncate((from - self.tail_start) as usize);
        }
    }

    /// The id of entry `index` if known without the disk: `Some(None)` when
    /// there is none (before the log, or purged).
    fn known_id(&self, index: Option<u64>) -> Option<Option<LogId<NodeId>>> {
        let Some(i) = index else {
            return Some(None);
        };
        if let Some(p) = self.purged
            && i <= p.index
        {
            return Some(None);
        }
        if i >= self.tail_start {
            return Some(
                self.tail
                    .get((i - self.tail_start) as usize)
                    .map(|c| c.entry.log_id),
            );
        }
        match self.before_tail {
            Some(b) if b.index == i => Some(Some(b)),
            _ => None,
        }
    }

    /// Whether `entries` are new entries of the leader `me`, in its term,
    /// and ordinary ones (see the module documentation).
    fn leader_own(&self, me: NodeId, entries: &[LogEntry]) -> bool {
        let Some(vote) = self.vote else {
            return false;
        };
        vote.leader_id.node_id == me
            && entries.iter().all(|e| {
                e.log_id.leader_id == vote.leader_id && matches!(e.payload, EntryPayload::Normal(_))
            })
    }

    /// The write that must be durable for entry `log_id` to be.
    fn seq_of(&self, log_id: LogId<NodeId>) -> u64 {
        if log_id.index < self.tail_start {
            return 0;
        }
        match self.tail.get((log_id.index - self.tail_start) as usize) {
            Some(c) if c.entry.log_id == log_id => c.seq,
            _ => self.submitted,
        }
    }

    fn evict(&mut self) {
        while self.tail.len() > KEEP
            && let Some(front) = self.tail.front()
            && front.seq <= self.durable
        {
            self.before_tail = Some(front.entry.log_id);
            self.tail_start += 1;
            self.tail.pop_front();
        }
    }
}

#[path = "log_writer_batch.rs"]
mod batch;

#[cfg(test)]
#[path = "log_writer_tests.rs"]
mod tests;
