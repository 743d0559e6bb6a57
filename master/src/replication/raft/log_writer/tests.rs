//! The writer's ordering: reads of queued writes, truncation and purge over
//! them, a crash before the fsync, and the leader's early acknowledgement.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use openraft::testing::{blank_ent, log_id, membership_ent};
use openraft::{Entry, EntryPayload, Vote};

use super::state::KEEP;
use super::*;
use crate::replication::disk::Disk;
use crate::replication::raft::types::{Batch, TypeConfig};

const ME: NodeId = 7;

fn normal(term: u64, node: NodeId, index: u64) -> LogEntry {
    Entry {
        log_id: log_id(term, node, index),
        payload: EntryPayload::Normal(Batch(Vec::new())),
    }
}

fn blanks(term: u64, indexes: std::ops::Range<u64>) -> Vec<LogEntry> {
    indexes
        .map(|i| blank_ent::<TypeConfig>(term, 1, i))
        .collect()
}

/// A callback and what it reports.
fn flushed() -> (OnFlushed, mpsc::Receiver<io::Result<()>>) {
    let (tx, rx) = mpsc::channel();
    (
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
        rx,
    )
}

fn open(path: &Path) -> (Arc<Db>, Writer) {
    let (db, recovered) = Db::open(path).unwrap();
    let db = Arc::new(db);
    let writer = Writer::start(db.clone(), recovered).unwrap();
    (db, writer)
}

/// Drops the writer and waits for its thread to let go of the file.
async fn close(db: Arc<Db>, writer: Writer) {
    drop(writer);
    for _ in 0..500 {
        if Arc::strong_count(&db) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the writer did not stop");
}

async fn all(w: &Writer) -> Vec<LogId<NodeId>> {
    let entries = w.entries((Bound::Unbounded, Bound::Unbounded)).await;
    entries.unwrap().iter().map(|e| e.log_id).collect()
}

fn ids(term: u64, node: NodeId, indexes: std::ops::Range<u64>) -> Vec<LogId<NodeId>> {
    indexes.map(|i| log_id(term, node, i)).collect()
}

async fn durable(w: &Writer, id: LogId<NodeId>) -> bool {
    let durability = w.durability();
    tokio::time::timeout(Duration::from_millis(100), durability.wait_for(id))
        .await
        .map(|r| r.unwrap())
        .is_ok()
}

#[tokio::test]
async fn queued_entries_are_read_before_they_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (db, w) = open(&dir.path().join("raft.redb"));
    w.hold(true);
    let (cb, rx) = flushed();
    w.append(blanks(1, 0..5), None, cb).unwrap();
    assert_eq!(all(&w).await, ids(1, 1, 0..5));
    assert_eq!(w.log_state(), (None, Some(log_id(1, 1, 4))));
    let some = w.entries((Bound::Included(1), Bound::Excluded(3))).await;
    assert_eq!(some.unwrap().len(), 2);
    assert!(rx.try_recv().is_err(), "acknowledged before the fsync");
    assert!(!durable(&w, log_id(1, 1, 4)).await);
    w.hold(false);
    rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert!(durable(&w, log_id(1, 1, 4)).await);
    close(db, w).await;
}

#[tokio::test]
async fn truncating_queued_entries_reaches_the_disk_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.redb");
    let (db, w) = open(&path);
    w.hold(true);
    w.append(blanks(1, 0..6), None, flushed().0).unwrap();
    w.truncate(3).await.unwrap();
    assert_eq!(w.log_state(), (None, Some(log_id(1, 1, 2))));
    let (cb, rx) = flushed();
    w.append(blanks(2, 3..5), None, cb).unwrap();
    let mut expected = ids(1, 1, 0..3);
    expected.extend(ids(2, 1, 3..5));
    assert_eq!(all(&w).await, expected);
    w.hold(false);
    rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    close(db, w).await;
    let (db, w) = open(&path);
    assert_eq!(all(&w).await, expected);
    // Overwriting without an explicit truncation drops the rest too.
    let (cb, rx) = flushed();
    w.append(blanks(3, 2..3), None, cb).unwrap();
    rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    close(db, w).await;
    let (db, w) = open(&path);
    let mut expected = ids(1, 1, 0..2);
    expected.push(log_id(3, 1, 2));
    assert_eq!(all(&w).await, expected);
    close(db, w).await;
}

#[tokio::test]
async fn truncating_into_entries_only_the_segments_have() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.redb");
    let (db, w) = open(&path);
    let (cb, rx) = flushed();
    w.append(blanks(1, 0..(KEEP as u64 + 50)), None, cb)
        .unwrap();
    rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    close(db, w).await;
    // Reopened, the tail is empty: everything is read from the segments.
    let (db, w) = open(&path);
    w.truncate(10).await.unwrap();
    assert_eq!(w.log_state(), (None, Some(log_id(1, 1, 9))));
    assert_eq!(all(&w).await, ids(1, 1, 0..10));
    w.append(blanks(2, 10..12), None, flushed().0).unwrap();
    let mut expected = ids(1, 1, 0..10);
    expected.extend(ids(2, 1, 10..12));
    assert_eq!(all(&w).await, expected);
    close(db, w).await;
    let (db, w) = open(&path);
    assert_eq!(all(&w).await, expected);
    close(db, w).await;
}

#[tokio::test]
async fn old_entries_are_read_from_the_segments_and_recent_ones_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (db, w) = open(&dir.path().join("raft.redb"));
    let n = KEEP as u64 * 2;
    for i in 0..n {
        let (cb, rx) = flushed();
        w.append(blanks(1, i..i + 1), None, cb).unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    }
    assert!(w.shared.lock().tail_start > 0, "nothing was evicted");
    assert_eq!(all(&w).await, ids(1, 1, 0..n));
    let some = w
        .entries((Bound::Included(5), Bound::Included(n - 5)))
        .await;
    assert_eq!(
        some.unwrap().iter().map(|e| e.log_id).collect::<Vec<_>>(),
        ids(1, 1, 5..n - 4)
    );
    w.purge(log_id(1, 1, 20)).unwrap();
    assert_eq!(all(&w).await, ids(1, 1, 21..n));
    assert_eq!(
        w.log_state(),
        (Some(log_id(1, 1, 20)), Some(log_id(1, 1, n - 1)))
    );
    close(db, w).await;
}

#[tokio::test]
async fn purging_past_queued_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.redb");
    let (db, w) = open(&path);
    w.hold(true);
    w.append(blanks(1, 0..5), None, flushed().0).unwrap();
    w.purge(log_id(1, 1, 6)).unwrap();
    assert_eq!(
        w.log_state(),
        (Some(log_id(1, 1, 6)), Some(log_id(1, 1, 6)))
    );
    assert!(all(&w).await.is_empty());
    let (cb, rx) = flushed();
    w.append(blanks(1, 7..9), None, cb).unwrap();
    w.hold(false);
    rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    close(db, w).await;
    let (db, w) = open(&path);
    assert_eq!(all(&w).await, ids(1, 1, 7..9));
    assert_eq!(
        w.log_state(),
        (Some(log_id(1, 1, 6)), Some(log_id(1, 1, 8)))
    );
    close(db, w).await;
}

#[tokio::test]
async fn a_crash_before_the_fsync_loses_only_unacknowledged_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.redb");
    let (db, w) = open(&path);
    let (cb, acked) = flushed();
    w.append(blanks(1, 0..3), None, cb).unwrap();
    acked.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    w.hold(true);
    let (cb, pending) = flushed();
    w.append(blanks(1, 3..6), None, cb).unwrap();
    w.crash();
    // Never acknowledged: the callback is dropped, or told of the failure.
    assert!(!matches!(
        pending.recv_timeout(Duration::from_secs(1)),
        Ok(Ok(()))
    ));
    assert!(w.durability().wait_for(log_id(1, 1, 4)).await.is_err());
    assert!(w.append(blanks(1, 6..7), None, flushed().0).is_err());
    close(db, w).await;
    let (db, w) = open(&path);
    assert_eq!(all(&w).await, ids(1, 1, 0..3));
    close(db, w).await;
}

#[tokio::test]
async fn a_leader_acknowledges_its_own_entries_before_the_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.redb");
    let (db, w) = open(&path);
    w.save_vote(Vote::new_committed(2, ME)).await.unwrap();
    let (cb, rx) = flushed();
    w.append(vec![blank_ent::<TypeConfig>(2, ME, 0)], Some(ME), cb)
        .unwrap();
    rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    w.hold(true);
    let (cb, rx) = flushed();
    w.append(vec![normal(2, ME, 1), normal(2, ME, 2)], Some(ME), cb)
        .unwrap();
    rx.try_recv().expect("acknowledged at once").unwrap();
    // Until the fsync: not applied, and followers hear of no commit past
    // entry 0.
    assert!(!durable(&w, log_id(2, ME, 2)).await);
    let bound = w.durability().commit_bound(Some(log_id(2, ME, 2)));
    assert_eq!(bound, Some(log_id(2, ME, 0)));
    let bound = w.durability().commit_bound(Some(log_id(2, ME, 0)));
    assert_eq!(bound, Some(log_id(2, ME, 0)));
    // A membership entry waits for its fsync.
    let (cb, rx) = flushed();
    let config = vec![BTreeSet::from([ME])];
    w.append(
        vec![membership_ent::<TypeConfig>(2, ME, 3, config)],
        Some(ME),
        cb,
    )
    .unwrap();
    assert!(rx.try_recv().is_err());
    w.hold(false);
    rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert!(durable(&w, log_id(2, ME, 2)).await);
    let bound = w.durability().commit_bound(Some(log_id(2, ME, 2)));
    assert_eq!(bound, Some(log_id(2, ME, 2)));
    close(db, w).await;
    let (db, w) = open(&path);
    assert_eq!(all(&w).await, ids(2, ME, 0..4));
    close(db, w).await;
}

#[tokio::test]
async fn followers_and_stale_terms_wait_for_the_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let (db, w) = open(&dir.path().join("raft.redb"));
    // A follower of leader 1 in term 3: entries of the leader.
    w.save_vote(Vote::new_committed(3, 1)).await.unwrap();
    w.hold(true);
    let (cb, rx) = flushed();
    w.append(vec![normal(3, 1, 0)], Some(ME), cb).unwrap();
    assert!(rx.try_recv().is_err(), "a follower acknowledged early");
    // Its own entries from an older term, sent back by the new leader.
    let (cb, rx) = flushed();
    w.append(vec![normal(2, ME, 1)], Some(ME), cb).unwrap();
    assert!(rx.try_recv().is_err(), "an old term acknowledged early");
    // Without a node id, nothing is acknowledged early.
    w.hold(false);
    w.save_vote(Vote::new_committed(4, ME)).await.unwrap();
    w.hold(true);
    let (cb, rx) = flushed();
    w.append(vec![normal(4, ME, 2)], None, cb).unwrap();
    assert!(rx.try_recv().is_err());
    w.hold(false);
    rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    close(db, w).await;
}

#[tokio::test]
async fn the_vote_and_committed_id_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.redb");
    let (db, w) = open(&path);
    w.save_vote(Vote::new(5, 2)).await.unwrap();
    w.set_committed(Some(log_id(1, 1, 1)));
    let (cb, rx) = flushed();
    w.append(blanks(1, 0..3), None, cb).unwrap();
    rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    close(db, w).await;
    let (db, w) = open(&path);
    assert_eq!(w.vote(), Some(Vote::new(5, 2)));
    let committed: Option<Option<LogId<NodeId>>> = w.db().get(key::COMMITTED).unwrap();
    assert_eq!(committed, Some(Some(log_id(1, 1, 1))));
    close(db, w).await;
}

/// [`open`], with the faults the segments' writes get.
fn open_faulty(path: &Path) -> (Arc<Db>, Writer, Disk) {
    let (db, recovered) = Db::open(path).unwrap();
    let disk = recovered.wal.disk().clone();
    let db = Arc::new(db);
    let writer = Writer::start(db.clone(), recovered).unwrap();
    (db, writer, disk)
}

/// The trouble the writer reports, once it does.
async fn trouble(w: &Writer) -> String {
    for _ in 0..500 {
        if let Some(t) = w.durability().trouble() {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the writer reported no trouble");
}

#[tokio::test]
async fn a_write_that_fails_is_written_again_once_the_disk_lets_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.redb");
    let (db, w, disk) = open_faulty(&path);
    let (cb, rx) = flushed();
    w.append(blanks(1, 0..3), None, cb).unwrap();
    rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    // Every fsync fails for now.
    disk.fail_syncs(usize::MAX);
    let (cb, rx) = flushed();
    w.append(blanks(1, 3..6), None, cb).unwrap();
    let t = trouble(&w).await;
    assert!(t.contains("Input/output error"), "{t}");
    // Nothing of it is durable or reported so; it reads as submitted, and
    // what comes after waits behind it.
    assert!(rx.try_recv().is_err(), "told before it was durable");
    assert!(!durable(&w, log_id(1, 1, 5)).await);
    assert_eq!(all(&w).await, ids(1, 1, 0..6));
    let vote = Vote::new(2, 1);
    let voting = tokio::time::timeout(Duration::from_millis(100), w.save_vote(vote));
    assert!(
        voting.await.is_err(),
        "the vote was durable before the entries"
    );
    // The disk works again: everything goes through, in order.
    disk.fail_syncs(0);
    rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert!(durable(&w, log_id(1, 1, 5)).await);
    w.save_vote(vote).await.unwrap();
    assert_eq!(w.durability().trouble(), None);
    close(db, w).await;
    let (db, w) = open(&path);
    assert_eq!(all(&w).await, ids(1, 1, 0..6));
    assert_eq!(w.vote(), Some(vote));
    close(db, w).await;
}

#[tokio::test]
async fn a_write_cut_short_is_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.redb");
    let (db, w, disk) = open_faulty(&path);
    disk.cut_next_write(5);
    let (cb, rx) = flushed();
    w.append(blanks(1, 0..3), None, cb).unwrap();
    rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    let (cb, rx) = flushed();
    w.append(blanks(1, 3..4), None, cb).unwrap();
    rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    close(db, w).await;
    let (db, w) = open(&path);
    assert_eq!(all(&w).await, ids(1, 1, 0..4));
    close(db, w).await;
}
