//! [`Durability`]: what the state machine waits for and the network bounds
//! commits by (see the [`super`] documentation).

use std::path::PathBuf;
use std::sync::{Arc, Weak};

use openraft::LogId;

use super::state::Shared;
use crate::replication::raft::db::StoreError;
use crate::replication::raft::types::NodeId;

/// Waits for, and bounds by, what the writer has made durable. Holds the
/// writer weakly: it does not keep the store open.
#[derive(Clone)]
pub struct Durability {
    shared: Weak<Shared>,
    path: PathBuf,
}

impl Durability {
    pub(super) fn new(shared: &Arc<Shared>) -> Durability {
        Durability {
            shared: Arc::downgrade(shared),
            path: shared.db.path().to_path_buf(),
        }
    }

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

    /// Why the log cannot be written now, while its writer retries after
    /// an I/O error (a full disk, an fsync error): what is written meanwhile
    /// becomes durable only once the disk lets it. `None` when it writes.
    pub(crate) fn trouble(&self) -> Option<String> {
        let shared = self.shared.upgrade()?;
        let s = shared.lock();
        s.trouble.clone()
    }

    /// Whether the store closed (its writer stopped).
    pub(crate) fn closed(&self) -> bool {
        self.shared.upgrade().is_none_or(|s| s.lock().closed)
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
