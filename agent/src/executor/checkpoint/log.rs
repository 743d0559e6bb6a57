//! A task's status update log (`task.updates`): every update is appended
//! and fsynced before it is sent, every acknowledgement appended when it
//! arrives (made durable by the next update's fsync, see
//! [`UpdateLog::append_ack`]).
//! Replaying the log gives the updates still waiting for their ack, in
//! order, with their original uuids (so a resend is a duplicate the master
//! and the framework recognise).
//!
//! ```text
//! record = len:u32le | fnv1a32(kind|payload):u32le | kind:u8 | payload
//! kind 1: a StatusUpdate (protobuf)      kind 2: an ack (the 16-byte uuid)
//! ```
//!
//! A crash can only tear the tail (the record being appended, or
//! acknowledgements not yet fsynced: everything before a synced update is
//! on disk); replay
//! stops at the first record that is short or fails its checksum, and
//! [`UpdateLog::open`] cuts the file there before appending again.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use keel_api::mesos::TaskState;
use keel_api::pb;
use prost::Message;

use super::{CheckpointError, io};

const KIND_UPDATE: u8 = 1;
const KIND_ACK: u8 = 2;
const HEADER: usize = 8;
/// No single record comes near this; anything larger is damage.
const MAX_RECORD: usize = 16 << 20;
/// Zeros a new log starts with: room for a task's usual updates and acks.
pub const PREALLOCATED: usize = 4096;

/// What a log says about its task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replay {
    /// Every update, oldest first.
    pub updates: Vec<pb::StatusUpdate>,
    /// How many of them (from the front) were acknowledged.
    pub acked: usize,
    /// The log ended in a torn or damaged record (dropped).
    pub torn: bool,
}

impl Replay {
    /// Updates still waiting for an acknowledgement, in order.
    pub fn pending(&self) -> &[pb::StatusUpdate] {
        &self.updates[self.acked..]
    }

    pub fn latest(&self) -> Option<&pb::TaskStatus> {
        self.updates.last().and_then(|u| u.status.as_ref())
    }

    pub fn latest_state(&self) -> Option<TaskState> {
        self.latest().and_then(|s| TaskState::from_name(&s.state))
    }

    /// The task's terminal update was acknowledged: nothing is left to do.
    pub fn done(&self) -> bool {
        self.acked == self.updates.len() && self.latest_state().is_some_and(TaskState::is_terminal)
    }

    fn apply_ack(&mut self, uuid: &[u8]) {
        let head = self.updates.get(self.acked).and_then(|u| u.status.as_ref());
        if head.is_some_and(|s| s.uuid == uuid) {
            self.acked += 1;
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(1 + payload.len());
    body.push(kind);
    body.extend_from_slice(payload);
    let mut rec = Vec::with_capacity(HEADER + body.len());
    rec.extend_from_slice(&(body.len() as u32).to_le_bytes());
    rec.extend_from_slice(&fnv1a(&body).to_le_bytes());
    rec.extend_from_slice(&body);
    rec
}

/// Replays `bytes`; also returns the length of the good prefix.
pub fn replay(bytes: &[u8]) -> (Replay, usize) {
    let mut r = Replay::default();
    let mut at = 0;
    while at < bytes.len() {
        // A record's length is never 0 (its kind byte counts), so only a
        // zero length can start the preallocated zeros: the rest of the file
        // is scanned there, once, not after every record.
        if bytes[at..].iter().take(4).all(|b| *b == 0) && bytes[at..].iter().all(|b| *b == 0) {
            // Preallocated space: the end of the log.
            break;
        }
        let Some(header) = bytes.get(at..at + HEADER) else {
            r.torn = true;
            break;
        };
        let len = u32::from_le_bytes(header[..4].try_into().unwrap_or_default()) as usize;
        let sum = u32::from_le_bytes(header[4..].try_into().unwrap_or_default());
        let body = bytes.get(at + HEADER..at + HEADER + len);
        let Some(body) = body.filter(|b| (1..=MAX_RECORD).contains(&len) && fnv1a(b) == sum) else {
            r.torn = true;
            break;
        };
        match body[0] {
            KIND_UPDATE => match pb::StatusUpdate::decode(&body[1..]) {
                Ok(u) => r.updates.push(u),
                Err(_) => {
                    r.torn = true;
                    break;
                }
            },
            KIND_ACK => r.apply_ack(&body[1..]),
            _ => {
                r.torn = true;
                break;
            }
        }
        at += HEADER + len;
    }
    (r, at)
}

/// An open log, appended to with fsync.
#[derive(Debug)]
pub struct UpdateLog {
    path: PathBuf,
    file: File,
    /// Where the next record goes (the end of the good records).
    end: u64,
}

impl UpdateLog {
    /// Opens (or creates, with [`PREALLOCATED`] zeros) the log at `path`
    /// and replays it; a torn tail is zeroed so that records continue after
    /// the last good one. A new log's zeros are made durable by the task's
    /// checkpoint pass (`checkpoint::Durable`), not here.
    pub fn open(path: &Path) -> Result<(UpdateLog, Replay), CheckpointError> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(io(path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(path))?;
        if bytes.is_empty() {
            file.write_all_at(&[0; PREALLOCATED], 0).map_err(io(path))?;
        }
        let (replay, good) = replay(&bytes);
        if replay.torn {
            let zeros = vec![0; bytes.len() - good];
            file.write_all_at(&zeros, good as u64).map_err(io(path))?;
            file.sync_all().map_err(io(path))?;
        }
        let log = UpdateLog {
            path: path.to_path_buf(),
            file,
            end: good as u64,
        };
        Ok((log, replay))
    }

    /// Replays the log at `path` without changing it.
    pub fn read(path: &Path) -> Result<Replay, CheckpointError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        Ok(replay(&bytes).0)
    }

    fn append(&mut self, record: &[u8]) -> Result<(), CheckpointError> {
        self.file
            .write_all_at(record, self.end)
            .map_err(io(&self.path))?;
        self.end += record.len() as u64;
        Ok(())
    }

    /// Appends `update`; it is on disk when this returns.
    pub fn append_update(&mut self, update: &pb::StatusUpdate) -> Result<(), CheckpointError> {
        self.append(&encode(KIND_UPDATE, &update.encode_to_vec()))?;
        self.file.sync_data().map_err(io(&self.path))
    }

    /// Appends the acknowledgement of the update with `uuid`, without an
    /// fsync: it reaches the disk with the next update's, or with the
    /// kernel's writeback. Lost in a machine crash, it only makes the
    /// restarted agent send that update again, and a scheduler
    /// acknowledges a duplicate like the first (the Mesos contract).
    pub fn append_ack(&mut self, uuid: &[u8]) -> Result<(), CheckpointError> {
        self.append(&encode(KIND_ACK, uuid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(state: &str, uuid: u8) -> pb::StatusUpdate {
        pb::StatusUpdate {
            framework_id: "fw".into(),
            status: Some(pb::TaskStatus {
                task_id: "t".into(),
                state: state.into(),
                uuid: vec![uuid; 16],
                message: "m".into(),
                healthy: Some(true),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn updates_and_acks_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("task.updates");
        let (mut log, r) = UpdateLog::open(&path).unwrap();
        assert_eq!(r, Replay::default());
        log.append_update(&update("TASK_STARTING", 1)).unwrap();
        log.append_update(&update("TASK_RUNNING", 2)).unwrap();
        log.append_ack(&[1; 16]).unwrap();
        // A duplicate ack and an ack out of order change nothing.
        log.append_ack(&[1; 16]).unwrap();
        log.append_ack(&[9; 16]).unwrap();
        drop(log);

        let (mut log, r) = UpdateLog::open(&path).unwrap();
        assert_eq!(r.updates.len(), 2);
        assert_eq!(r.acked, 1);
        assert_eq!(r.pending(), &[update("TASK_RUNNING", 2)][..]);
        assert_eq!(r.latest_state(), Some(TaskState::TASK_RUNNING));
        assert!(!r.done() && !r.torn);

        log.append_update(&update("TASK_FINISHED", 3)).unwrap();
        log.append_ack(&[2; 16]).unwrap();
        assert!(!UpdateLog::read(&path).unwrap().done());
        log.append_ack(&[3; 16]).unwrap();
        assert!(UpdateLog::read(&path).unwrap().done());
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            PREALLOCATED as u64,
            "records went into the preallocated zeros"
        );
    }

    #[test]
    fn a_log_grows_past_its_preallocated_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("task.updates");
        let (mut log, _) = UpdateLog::open(&path).unwrap();
        let big = pb::StatusUpdate {
            status: Some(pb::TaskStatus {
                message: "x".repeat(PREALLOCATED),
                ..update("TASK_RUNNING", 1).status.unwrap()
            }),
            ..update("TASK_RUNNING", 1)
        };
        log.append_update(&update("TASK_STARTING", 0)).unwrap();
        log.append_update(&big).unwrap();
        log.append_ack(&[0; 16]).unwrap();
        drop(log);
        let (mut log, r) = UpdateLog::open(&path).unwrap();
        assert_eq!((r.updates.len(), r.acked, r.torn), (2, 1, false));
        log.append_update(&update("TASK_FINISHED", 2)).unwrap();
        let r = UpdateLog::read(&path).unwrap();
        assert_eq!(r.updates.len(), 3);
        assert_eq!(r.updates[1], big);
    }

    #[test]
    fn a_torn_tail_is_dropped_and_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("task.updates");
        let (mut log, _) = UpdateLog::open(&path).unwrap();
        log.append_update(&update("TASK_STARTING", 1)).unwrap();
        drop(log);
        let good = replay(&std::fs::read(&path).unwrap()).1 as u64;
        let whole = encode(KIND_UPDATE, &update("TASK_RUNNING", 2).encode_to_vec());
        for cut in [3, HEADER, whole.len() - 1] {
            let mut bytes = std::fs::read(&path).unwrap()[..good as usize].to_vec();
            bytes.extend_from_slice(&whole[..cut]);
            std::fs::write(&path, &bytes).unwrap();
            let (mut log, r) = UpdateLog::open(&path).unwrap();
            assert!(r.torn, "cut at {cut}");
            assert_eq!(r.updates.len(), 1);
            let after = std::fs::read(&path).unwrap();
            assert!(after[good as usize..].iter().all(|b| *b == 0), "zeroed");
            log.append_ack(&[1; 16]).unwrap();
            drop(log);
            let r = UpdateLog::read(&path).unwrap();
            assert_eq!((r.acked, r.torn), (1, false));
            // Back to the one update for the next round.
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..good as usize]).unwrap();
        }
    }

    #[test]
    fn zeros_are_free_space_and_garbage_is_damage() {
        let (r, good) = replay(&[0u8; 64]);
        assert!(!r.torn && r.updates.is_empty() && good == 0);
        let mut record = encode(KIND_UPDATE, &update("TASK_RUNNING", 1).encode_to_vec());
        let len = record.len();
        record.extend_from_slice(&[0; 100]);
        let (r, good) = replay(&record);
        assert!(!r.torn && r.updates.len() == 1 && good == len);
        let mut zeros_then_junk = vec![0u8; 64];
        zeros_then_junk.push(1);
        assert!(replay(&zeros_then_junk).0.torn);
        let mut bytes = encode(KIND_UPDATE, &update("TASK_RUNNING", 1).encode_to_vec());
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let (r, good) = replay(&bytes);
        assert!(r.torn && r.updates.is_empty() && good == 0);
        let (r, _) = replay(&encode(7, b"x"));
        assert!(r.torn);
    }
}
