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
//!
//! An append that fails (a full disk, a write cut short, an fsync error)
//! returns the error and is undone before anything else is appended: the
//! bytes it may have written are zeroed, the file is cut back to its size
//! before it, and that is fsynced. So the next record goes where the
//! failed one would have, and the log holds only what was appended
//! successfully. An fsync error leaves the pages it was to write in an
//! unknown state; zeroing the failed record writes its pages again, and
//! acknowledgements before it that were not synced yet may be lost, as in
//! a crash (their updates are sent again). Until the undo has been synced
//! the log refuses appends; each tries it again first.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use keel_api::mesos::TaskState;
use keel_api::pb;
use prost::Message;

use super::disk::Disk;
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
    /// The file's size with the good records (at least its preallocation).
    len: u64,
    /// A failed append may have written from `end` up to here: undone
    /// before the next append.
    failed: Option<u64>,
    disk: Disk,
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
        let mut len = bytes.len() as u64;
        if bytes.is_empty() {
            if let Err(e) = file.write_all_at(&[0; PREALLOCATED], 0) {
                // Left empty, as it was: a log with no record.
                let _ = file.set_len(0);
                return Err(io(path)(e));
            }
            len = PREALLOCATED as u64;
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
            len,
            failed: None,
            disk: Disk::default(),
        };
        Ok((log, replay))
    }

    /// Replays the log at `path` without changing it.
    pub fn read(path: &Path) -> Result<Replay, CheckpointError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        Ok(replay(&bytes).0)
    }

    /// Appends `record` after the good ones, fsynced if `sync`; a failure
    /// leaves the log as it was (see the module documentation).
    fn append(&mut self, record: &[u8], sync: bool) -> Result<(), CheckpointError> {
        self.undo_failed()
            .map_err(|source| CheckpointError::Unrepaired {
                path: self.path.clone(),
                source,
            })?;
        let to = self.end + record.len() as u64;
        self.failed = Some(to);
        let mut written = self.disk.write_all_at(&self.file, record, self.end);
        if sync {
            written = written.and_then(|()| self.disk.sync_data(&self.file));
        }
        if let Err(e) = written {
            if let Err(undo) = self.undo_failed() {
                tracing::warn!(path = %self.path.display(), error = %undo,
                    "cannot undo a failed append yet; retrying before the next one");
            }
            return Err(io(&self.path)(e));
        }
        self.failed = None;
        self.end = to;
        self.len = self.len.max(to);
        Ok(())
    }

    /// Zeroes what a failed append may have written within the file's
    /// size, cuts off what it added past it, and syncs that.
    fn undo_failed(&mut self) -> std::io::Result<()> {
        let Some(to) = self.failed else {
            return Ok(());
        };
        if to > self.len {
            self.file.set_len(self.len)?;
        }
        let zeros = to.min(self.len).saturating_sub(self.end);
        if zeros > 0 {
            self.disk
                .write_all_at(&self.file, &vec![0; zeros as usize], self.end)?;
        }
        self.disk.sync_all(&self.file)?;
        self.failed = None;
        Ok(())
    }

    /// Appends `update`; it is on disk when this returns.
    pub fn append_update(&mut self, update: &pb::StatusUpdate) -> Result<(), CheckpointError> {
        self.append(&encode(KIND_UPDATE, &update.encode_to_vec()), true)
    }

    /// Appends the acknowledgement of the update with `uuid`, without an
    /// fsync: it reaches the disk with the next update's, or with the
    /// kernel's writeback. Lost in a machine crash, it only makes the
    /// restarted agent send that update again, and a scheduler
    /// acknowledges a duplicate like the first (the Mesos contract).
    pub fn append_ack(&mut self, uuid: &[u8]) -> Result<(), CheckpointError> {
        self.append(&encode(KIND_ACK, uuid), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::checkpoint::disk::tests::Tmpfs;

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

    fn long_update(n: u8) -> pb::StatusUpdate {
        let mut u = update("TASK_RUNNING", n);
        if let Some(s) = u.status.as_mut() {
            s.message = format!("{n}: {}", "m".repeat(1000));
        }
        u
    }

    #[test]
    fn a_full_disk_fails_the_append_and_leaves_the_log_as_it_was() {
        let Some(fs) = Tmpfs::mount(1 << 20) else {
            return;
        };
        let path = fs.path().join("task.updates");
        let (mut log, _) = UpdateLog::open(&path).unwrap();
        log.append_update(&update("TASK_STARTING", 0)).unwrap();
        fs.fill();
        // Updates go into the preallocated zeros until one grows the file.
        let mut acked = vec![update("TASK_STARTING", 0)];
        let (err, size) = loop {
            let size = std::fs::read(&path).unwrap();
            let next = long_update(acked.len() as u8);
            match log.append_update(&next) {
                Ok(()) => acked.push(next),
                Err(e) => break (e, size),
            }
            assert!(acked.len() < 50, "the disk never filled");
        };
        let CheckpointError::Io { source, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(source.raw_os_error(), Some(28), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), size, "the file changed");
        let r = UpdateLog::read(&path).unwrap();
        assert_eq!((&r.updates, r.torn), (&acked, false));
        // Space back: the same log goes on where it stopped.
        fs.free();
        let last = long_update(acked.len() as u8);
        log.append_update(&last).unwrap();
        log.append_ack(&[0; 16]).unwrap();
        acked.push(last);
        drop(log);
        let (_, r) = UpdateLog::open(&path).unwrap();
        assert_eq!((&r.updates, r.acked, r.torn), (&acked, 1, false));
    }

    /// A log holding two updates.
    fn two_updates(dir: &Path) -> (PathBuf, UpdateLog) {
        let path = dir.join("task.updates");
        let (mut log, _) = UpdateLog::open(&path).unwrap();
        log.append_update(&update("TASK_STARTING", 1)).unwrap();
        log.append_update(&update("TASK_RUNNING", 2)).unwrap();
        (path, log)
    }

    fn states(path: &Path) -> Vec<String> {
        let r = UpdateLog::read(path).unwrap();
        assert!(!r.torn, "the log reads torn");
        r.updates
            .iter()
            .map(|u| u.status.as_ref().unwrap().message.chars().take(2).collect())
            .collect()
    }

    #[test]
    fn a_write_cut_short_is_undone_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut log) = two_updates(dir.path());
        let before = std::fs::read(&path).unwrap();
        // Within the preallocated zeros.
        log.disk.cut_next_write(20);
        assert!(log.append_update(&long_update(3)).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // Past them: the file is cut back to its size.
        let huge = pb::StatusUpdate {
            status: Some(pb::TaskStatus {
                message: "x".repeat(3 * PREALLOCATED),
                ..update("TASK_RUNNING", 4).status.unwrap()
            }),
            ..update("TASK_RUNNING", 4)
        };
        log.disk.cut_next_write(2 * PREALLOCATED);
        assert!(log.append_update(&huge).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before);
        log.append_update(&long_update(5)).unwrap();
        drop(log);
        assert_eq!(states(&path), ["m", "m", "5:"]);
    }

    #[test]
    fn an_update_whose_fsync_failed_is_undone() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut log) = two_updates(dir.path());
        let before = std::fs::read(&path).unwrap();
        // Written, but maybe not on disk: not checkpointed, so not replayed.
        log.disk.fail_syncs(1);
        let err = log.append_update(&long_update(3)).unwrap_err();
        assert!(err.to_string().contains("Input/output error"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        log.append_update(&long_update(4)).unwrap();
        drop(log);
        assert_eq!(states(&path), ["m", "m", "4:"]);
    }

    #[test]
    fn an_undo_that_fails_is_done_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut log) = two_updates(dir.path());
        // The fsync fails, then the undo's.
        log.disk.fail_syncs(2);
        assert!(log.append_update(&long_update(3)).is_err());
        log.disk.fail_syncs(1);
        let err = log.append_ack(&[1; 16]).unwrap_err();
        assert!(matches!(err, CheckpointError::Unrepaired { .. }), "{err}");
        log.append_update(&long_update(5)).unwrap();
        drop(log);
        assert_eq!(states(&path), ["m", "m", "5:"]);
    }
}
