//! Histories of concurrent operations on a replicated map, and a
//! linearizability check over them.
//!
//! A test records every operation its clients perform with [`Recorder`]:
//! when it was invoked, when (and whether) it completed, and what it wrote
//! or read. [`check_map`] then decides whether some order of the
//! operations, each taking effect at one instant between its invocation and
//! its completion, explains every read. Maps are checked key by key
//! (linearizability is local: a history is linearizable if and only if the
//! history of every object in it is), each key as a register with the
//! search of Wing and Gong, with Lowe's cache of visited states
//! ([`register`]).
//!
//! Operations that failed without an answer (a timeout, a dropped
//! connection) may or may not have taken effect: record them as
//! [`Completion::Unknown`]. Writes of this kind may be ordered anywhere
//! after their invocation, or not at all; unanswered reads say nothing and
//! are left out.

mod recorder;
pub mod register;

use std::collections::{BTreeMap, BTreeSet};

pub use recorder::Recorder;
pub use register::{Op as RegisterOp, Violation as RegisterViolation};

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// It was answered at this time (nanoseconds since the history began).
    At(u64),
    /// No answer: it may have taken effect at any time after its
    /// invocation, or never.
    Unknown,
}

/// What an operation on the map did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapAction {
    /// Set `key` to `value`. Every value written to one key must be unique.
    Write { key: String, value: u64 },
    /// Read the whole map: `seen` holds every key the read returned.
    Read { seen: BTreeMap<String, u64> },
}

/// One operation of a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapOp {
    /// Which client performed it (for reports).
    pub client: usize,
    /// Nanoseconds since the history began.
    pub invoked: u64,
    pub completed: Completion,
    pub action: MapAction,
}

/// A history that no order of its operations explains.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key {key:?}: {violation}")]
pub struct MapViolation {
    pub key: String,
    pub violation: RegisterViolation,
}

/// Checks that the history of a map (initially empty) is linearizable.
pub fn check_map(ops: &[MapOp]) -> Result<(), MapViolation> {
    let mut keys = BTreeSet::new();
    for op in ops {
        match &op.action {
            MapAction::Write { key, .. } => {
                keys.insert(key.clone());
            }
            MapAction::Read { seen } => keys.extend(seen.keys().cloned()),
        }
    }
    for key in keys {
        let projected: Vec<RegisterOp> = ops.iter().filter_map(|op| project(op, &key)).collect();
        register::check(&projected).map_err(|violation| MapViolation {
            key: key.clone(),
            violation,
        })?;
    }
    Ok(())
}

/// `op` as an operation on the register that holds `key`, if it touches it.
fn project(op: &MapOp, key: &str) -> Option<RegisterOp> {
    let action = match &op.action {
        MapAction::Write { key: k, value } if k == key => register::Action::Write(*value),
        MapAction::Write { .. } => return None,
        MapAction::Read { seen } => {
            // An unanswered read carries no observation.
            if op.completed == Completion::Unknown {
                return None;
            }
            register::Action::Read(seen.get(key).copied())
        }
    };
    Some(RegisterOp {
        client: op.client,
        invoked: op.invoked,
        completed: op.completed,
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(client: usize, invoked: u64, completed: Completion, key: &str, value: u64) -> MapOp {
        MapOp {
            client,
            invoked,
            completed,
            action: MapAction::Write {
                key: key.into(),
                value,
            },
        }
    }

    fn read(client: usize, invoked: u64, completed: u64, seen: &[(&str, u64)]) -> MapOp {
        MapOp {
            client,
            invoked,
            completed: Completion::At(completed),
            action: MapAction::Read {
                seen: seen.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            },
        }
    }

    #[test]
    fn keys_are_checked_apart() {
        let ops = [
            write(0, 0, Completion::At(10), "a", 1),
            write(1, 0, Completion::At(10), "b", 1),
            read(2, 20, 30, &[("a", 1), ("b", 1)]),
            write(0, 40, Completion::At(50), "a", 2),
            read(2, 60, 70, &[("a", 2), ("b", 1)]),
        ];
        assert_eq!(check_map(&ops), Ok(()));
    }

    #[test]
    fn an_acknowledged_write_that_vanishes_is_found() {
        // The finding this crate was written for: a write answered 200,
        // then a leader change, then reads without it.
        let ops = [
            write(0, 0, Completion::At(10), "bars", 7),
            read(1, 20, 30, &[]),
        ];
        let v = check_map(&ops).unwrap_err();
        assert_eq!(v.key, "bars");
    }

    #[test]
    fn a_stale_read_of_one_key_is_found_among_others() {
        let ops = [
            write(0, 0, Completion::At(10), "a", 1),
            write(0, 20, Completion::At(30), "a", 2),
            write(1, 0, Completion::At(5), "b", 9),
            read(2, 40, 50, &[("a", 1), ("b", 9)]),
        ];
        assert_eq!(check_map(&ops).unwrap_err().key, "a");
    }

    #[test]
    fn unanswered_reads_say_nothing() {
        let mut r = read(1, 20, 30, &[]);
        r.completed = Completion::Unknown;
        let ops = [write(0, 0, Completion::At(10), "a", 1), r];
        assert_eq!(check_map(&ops), Ok(()));
    }
}
