//! The state the writer's handle, its thread and [`super::Durability`]
//! share: the queue of writes, the log's tail in memory, and how far the
//! thread has got.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openraft::{EntryPayload, LogId, Vote};
use tokio::sync::watch;

use crate::replication::raft::db::{Db, StoreError};
use crate::replication::raft::types::{LogEntry, NodeId};
use crate::replication::raft::wal::WalReader;

/// Durable entries kept in memory, so that replication and apply read
/// recent entries without the disk (and without decoding them).
pub(super) const KEEP: usize = 256;

/// Told once an append is durable (or failed).
pub(crate) type OnFlushed = Box<dyn FnOnce(io::Result<()>) + Send>;

pub(super) struct Shared {
    pub(super) db: Arc<Db>,
    /// Reads entries that left the tail.
    pub(super) reader: WalReader,
    pub(super) state: Mutex<State>,
    /// Wakes the thread: writes queued, or the store closed.
    pub(super) work: Condvar,
    pub(super) progress: watch::Sender<Progress>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Progress {
    /// Every write with a sequence number up to this one is durable.
    pub(super) durable: u64,
    pub(super) failed: bool,
}

pub(super) struct State {
    pub(super) vote: Option<Vote<NodeId>>,
    pub(super) purged: Option<LogId<NodeId>>,
    /// The last entry, `None` while the log holds none after `purged`.
    pub(super) last: Option<LogId<NodeId>>,
    /// The committed log id openraft last reported, once it has; written
    /// with the next append.
    pub(super) committed: Option<Option<LogId<NodeId>>>,
    /// The entries from `tail_start` on, all of them, as submitted.
    pub(super) tail: VecDeque<Cached>,
    pub(super) tail_start: u64,
    /// The id of the entry before `tail_start`, where known.
    pub(super) before_tail: Option<LogId<NodeId>>,
    pub(super) queue: Vec<Queued>,
    /// Sequence number of the last queued write.
    pub(super) submitted: u64,
    /// Sequence number of the last durable write.
    pub(super) durable: u64,
    pub(super) failed: Option<String>,
    /// Why the thread cannot write now (an I/O error it retries after).
    pub(super) trouble: Option<String>,
    pub(super) closed: bool,
    /// Test hook: the thread leaves the queue alone.
    pub(super) held: bool,
}

pub(super) struct Cached {
    pub(super) entry: LogEntry,
    /// The write that put it there.
    pub(super) seq: u64,
}

pub(super) struct Queued {
    pub(super) seq: u64,
    pub(super) write: LogWrite,
    pub(super) flushed: Option<OnFlushed>,
}

/// One queued change, values already encoded.
pub(super) enum LogWrite {
    /// Log entries by index, to the segments.
    Entries(Vec<(u64, Vec<u8>)>),
    /// Deletes the entries from this index on (conflicting entries).
    TruncateFrom(u64),
    /// Records the purged log id, `raw`, then deletes the segments holding
    /// only entries up to `index`.
    PurgeUpto { index: u64, raw: Vec<u8> },
    /// One redb `meta` value.
    Meta { key: &'static str, raw: Vec<u8> },
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn closed(&self) -> StoreError {
        StoreError::Closed {
            path: self.db.path().to_path_buf(),
        }
    }

    pub(super) fn check(&self, s: &State) -> Result<(), StoreError> {
        match &s.failed {
            Some(e) => Err(self.db.invalid(format!("an earlier log write failed: {e}"))),
            None => Ok(()),
        }
    }

    pub(super) fn set_trouble(&self, trouble: Option<String>) {
        self.lock().trouble = trouble;
    }

    /// Waits `pause`; `true` if the store closed meanwhile.
    pub(super) fn closed_within(&self, pause: Duration) -> bool {
        let deadline = Instant::now() + pause;
        let mut s = self.lock();
        while !s.closed {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            s = self
                .work
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    pub(super) async fn wait_seq(&self, seq: u64) -> Result<(), StoreError> {
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
    pub(super) fn next_index(&self) -> u64 {
        self.tail_start + self.tail.len() as u64
    }

    pub(super) fn push(&mut self, write: LogWrite, flushed: Option<OnFlushed>) -> u64 {
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
    pub(super) fn cut_tail(&mut self, from: u64) {
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
    pub(super) fn known_id(&self, index: Option<u64>) -> Option<Option<LogId<NodeId>>> {
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
    pub(super) fn leader_own(&self, me: NodeId, entries: &[LogEntry]) -> bool {
        let Some(vote) = self.vote else {
            return false;
        };
        vote.leader_id.node_id == me
            && entries.iter().all(|e| {
                e.log_id.leader_id == vote.leader_id && matches!(e.payload, EntryPayload::Normal(_))
            })
    }

    /// The write that must be durable for entry `log_id` to be.
    pub(super) fn seq_of(&self, log_id: LogId<NodeId>) -> u64 {
        if log_id.index < self.tail_start {
            return 0;
        }
        match self.tail.get((log_id.index - self.tail_start) as usize) {
            Some(c) if c.entry.log_id == log_id => c.seq,
            _ => self.submitted,
        }
    }

    pub(super) fn evict(&mut self) {
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
