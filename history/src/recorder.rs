//! Recording a history from many client threads.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::{Completion, MapAction, MapOp};

/// A clock and the operations recorded against it; share it between
/// client threads (it is `Sync`).
pub struct Recorder {
    start: Instant,
    ops: Mutex<Vec<MapOp>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
        }
    }
}

impl Recorder {
    /// Nanoseconds since the recorder was made: take it just before sending
    /// a request, and again once its answer is in.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records a write of `value` to `key` invoked at `invoked`.
    pub fn write(&self, client: usize, invoked: u64, completed: Completion, key: &str, value: u64) {
        self.push(MapOp {
            client,
            invoked,
            completed,
            action: MapAction::Write {
                key: key.to_string(),
                value,
            },
        });
    }

    /// Records a read answered at `completed` that returned `seen`.
    pub fn read(&self, client: usize, invoked: u64, completed: u64, seen: BTreeMap<String, u64>) {
        self.push(MapOp {
            client,
            invoked,
            completed: Completion::At(completed),
            action: MapAction::Read { seen },
        });
    }

    fn push(&self, op: MapOp) {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).push(op);
    }

    /// Every operation recorded so far.
    pub fn ops(&self) -> Vec<MapOp> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
