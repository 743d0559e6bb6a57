//! [`WalReader`]: reads durable entries from any thread while the writer
//! appends.

use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use super::error::{WalError, corrupt, io_err};
use super::record::{HEADER, Record, decode};
use super::segment::Index;
use crate::replication::raft::types::LogEntry;

/// Reads durable entries; cheap to clone.
#[derive(Clone)]
pub struct WalReader {
    index: Arc<Mutex<Index>>,
}

impl WalReader {
    pub(super) fn new(index: Arc<Mutex<Index>>) -> WalReader {
        WalReader { index }
    }

    /// The entries with indexes in `lo..hi` that the log holds, in order.
    pub fn read(&self, lo: u64, hi: u64) -> Result<Vec<LogEntry>, WalError> {
        let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for s in &index.segments {
            let (from, to) = (lo.max(s.first), hi.min(s.next()));
            if from >= to {
                continue;
            }
            let start = s.offsets[(from - s.first) as usize];
            let end = s
                .offsets
                .get((to - s.first) as usize)
                .copied()
                .unwrap_or(s.end);
            let mut bytes = vec![0; (end - start) as usize];
            s.file
                .read_exact_at(&mut bytes, start)
                .map_err(|e| io_err(&s.path, e))?;
            let mut at = 0;
            for i in from..to {
                let Record::Ok(raw) = decode(&bytes, at) else {
                    return Err(corrupt(&s.path, format!("entry {i} no longer reads back")));
                };
                let entry: LogEntry = serde_json::from_slice(raw)
                    .map_err(|e| corrupt(&s.path, format!("log entry {i} does not decode: {e}")))?;
                if entry.log_id.index != i {
                    return Err(corrupt(&s.path, format!("entry {i} reads back as another")));
                }
                at += HEADER + raw.len() as u64;
                out.push(entry);
            }
        }
        Ok(out)
    }
}
