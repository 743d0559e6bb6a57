//! The segment files: reopening, rolling, truncating and purging across
//! segments, a torn tail cut off, damage refused.

use std::os::unix::fs::FileExt;

use openraft::testing::{blank_ent, log_id};

use super::*;
use crate::replication::disk::tests::Tmpfs;
use crate::replication::raft::types::TypeConfig;

/// Small segments, so that a few entries span several.
const SMALL: u64 = 4096;

fn raw(term: u64, indexes: std::ops::Range<u64>) -> Vec<(u64, Vec<u8>)> {
    indexes
        .map(|i| {
            let e = blank_ent::<TypeConfig>(term, 1, i);
            (i, serde_json::to_vec(&e).unwrap())
        })
        .collect()
}

fn open(dir: &Path, purged: Option<u64>) -> Result<Opened, WalError> {
    Wal::open(dir, SMALL, purged)
}

fn ids(w: &Wal, lo: u64, hi: u64) -> Vec<LogId<NodeId>> {
    let entries = w.reader().read(lo, hi).unwrap();
    entries.iter().map(|e| e.log_id).collect()
}

fn expected(term: u64, indexes: std::ops::Range<u64>) -> Vec<LogId<NodeId>> {
    indexes.map(|i| log_id(term, 1, i)).collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
}

/// 200 entries over several segments, closed.
fn written(dir: &Path) {
    let mut w = open(dir, None).unwrap().wal;
    for chunk in (0..200).collect::<Vec<u64>>().chunks(7) {
        w.append(&raw(1, chunk[0]..chunk[chunk.len() - 1] + 1))
            .unwrap();
        w.sync().unwrap();
    }
}

fn poke(path: &Path, at: u64, bytes: &[u8]) {
    let file = File::options().write(true).open(path).unwrap();
    file.write_all_at(bytes, at).unwrap();
}

#[test]
fn reopens_after_many_appends_over_several_segments() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    assert!(segments(dir.path()).len() > 3, "no segment was rolled");
    let opened = open(dir.path(), None).unwrap();
    assert_eq!(opened.last, Some(log_id(1, 1, 199)));
    assert_eq!(opened.wal.next_index(), Some(200));
    assert_eq!(ids(&opened.wal, 0, 200), expected(1, 0..200));
    assert_eq!(ids(&opened.wal, 50, 150), expected(1, 50..150));
    // And goes on where it stopped.
    let mut w = opened.wal;
    w.append(&raw(1, 200..210)).unwrap();
    w.sync().unwrap();
    drop(w);
    let w = open(dir.path(), None).unwrap().wal;
    assert_eq!(ids(&w, 0, 300), expected(1, 0..210));
}

#[test]
fn truncating_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let before = segments(dir.path()).len();
    let mut w = open(dir.path(), None).unwrap().wal;
    w.truncate(100).unwrap();
    assert!(segments(dir.path()).len() < before, "no segment deleted");
    assert_eq!(ids(&w, 0, 300), expected(1, 0..100));
    w.append(&raw(2, 100..105)).unwrap();
    w.sync().unwrap();
    drop(w);
    let opened = open(dir.path(), None).unwrap();
    assert_eq!(opened.last, Some(log_id(2, 1, 104)));
    let mut want = expected(1, 0..100);
    want.extend(expected(2, 100..105));
    assert_eq!(ids(&opened.wal, 0, 300), want);
    // Truncating at a segment's first entry deletes the segment.
    let mut w = opened.wal;
    let starts: Vec<u64> = w.lock().segments.iter().map(|s| s.first).collect();
    w.truncate(starts[1]).unwrap();
    assert_eq!(segments(dir.path()).len(), 1);
    assert!(starts.len() > 2, "{starts:?}");
    drop(w);
    let w = open(dir.path(), None).unwrap().wal;
    assert_eq!(w.next_index(), Some(starts[1]));
}

#[test]
fn purging_deletes_whole_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let mut w = open(dir.path(), None).unwrap().wal;
    let starts: Vec<u64> = w.lock().segments.iter().map(|s| s.first).collect();
    let before = starts.len();
    w.purge(starts[2]).unwrap();
    // Entry starts[2] shares its segment with later ones: that one stays.
    assert_eq!(segments(dir.path()).len(), before - 2);
    assert_eq!(ids(&w, 0, 300), expected(1, starts[2]..200));
    drop(w);
    // A purge whose segments were not deleted yet (a crash) is finished
    // on open.
    let opened = open(dir.path(), Some(starts[3])).unwrap();
    assert_eq!(segments(dir.path()).len(), before - 3);
    assert_eq!(opened.last, Some(log_id(1, 1, 199)));
    // Purged past its end, the log goes on with a new segment.
    let mut w = opened.wal;
    w.purge(250).unwrap();
    assert_eq!(w.next_index(), None);
    w.append(&raw(3, 251..253)).unwrap();
    w.sync().unwrap();
    drop(w);
    let opened = open(dir.path(), Some(250)).unwrap();
    assert_eq!(
        ids(&opened.wal, 0, 300),
        [log_id(3, 1, 251), log_id(3, 1, 252)]
    );
}

/// Where the last segment's last record starts and ends.
fn last_record(dir: &Path) -> (PathBuf, u64, u64) {
    let w = open(dir, None).unwrap().wal;
    let index = w.lock();
    let s = index.segments.last().unwrap();
    (s.path.clone(), s.offsets[s.offsets.len() - 1], s.end)
}

#[test]
fn a_torn_tail_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    // The last record's second half never reached the disk.
    let (last, at, end) = last_record(dir.path());
    let half = at + (end - at) / 2;
    poke(&last, half, &vec![0; (end - half) as usize]);
    let opened = open(dir.path(), None).unwrap();
    assert_eq!(opened.last, Some(log_id(1, 1, 198)));
    // Cut off for good: new entries follow the intact ones.
    let mut w = opened.wal;
    w.append(&raw(2, 199..201)).unwrap();
    w.sync().unwrap();
    drop(w);
    let w = open(dir.path(), None).unwrap().wal;
    let mut want = expected(1, 0..199);
    want.extend(expected(2, 199..201));
    assert_eq!(ids(&w, 0, 300), want);
    // A header written without its record is torn too.
    let (last, _, end) = last_record(dir.path());
    poke(&last, end, &[200, 0, 0, 0, 1, 2, 3, 4]);
    let opened = open(dir.path(), None).unwrap();
    assert_eq!(opened.last, Some(log_id(2, 1, 200)));
}

#[test]
fn a_checksum_failure_before_the_tail_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let first = segments(dir.path()).remove(0);
    poke(&first, 20, b"X");
    let err = open(dir.path(), None).err().expect("must refuse");
    assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains("entry 0 fails its checksum"),
        "{err}"
    );
    // In the last segment, a flipped byte followed by more records is no
    // torn write either.
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let last = segments(dir.path()).pop().unwrap();
    poke(&last, 20, b"X");
    let err = open(dir.path(), None).err().expect("must refuse");
    assert!(err.to_string().contains("fails its checksum"), "{err}");
}

#[test]
fn a_missing_or_short_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let mut names = segments(dir.path());
    std::fs::remove_file(&names[2]).unwrap();
    let err = open(dir.path(), None).err().expect("must refuse");
    assert!(err.to_string().contains("a segment is missing"), "{err}");
    // The first segment gone: the log no longer starts where it should.
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    names = segments(dir.path());
    std::fs::remove_file(&names[0]).unwrap();
    let err = open(dir.path(), None).err().expect("must refuse");
    assert!(err.to_string().contains("is not purged"), "{err}");
    // A segment cut short, even the last.
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let last = segments(dir.path()).pop().unwrap();
    File::options()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(100)
        .unwrap();
    let err = open(dir.path(), None).err().expect("must refuse");
    assert!(err.to_string().contains("truncated"), "{err}");
}

/// Every segment file and its bytes.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    segments(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn reopened(dir: &Path) -> Vec<LogId<NodeId>> {
    let w = open(dir, None).unwrap().wal;
    ids(&w, 0, 1000)
}

#[test]
fn a_write_cut_short_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let mut w = open(dir.path(), None).unwrap().wal;
    let before = contents(dir.path());
    w.disk().cut_next_write(10);
    let err = w.append(&raw(1, 200..203)).unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    assert_eq!(contents(dir.path()), before, "the partial record stays");
    assert_eq!(w.next_index(), Some(200));
    w.append(&raw(1, 200..203)).unwrap();
    w.sync().unwrap();
    drop(w);
    assert_eq!(reopened(dir.path()), expected(1, 0..203));
}

#[test]
fn appends_whose_fsync_failed_are_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let mut w = open(dir.path(), None).unwrap().wal;
    let before = contents(dir.path());
    w.disk().fail_syncs(1);
    w.append(&raw(1, 200..203)).unwrap();
    assert!(w.sync().is_err());
    // Linux reports a failed writeback once: a second fsync can succeed
    // without the pages ever reaching the disk. They are written again
    // instead.
    assert_eq!(w.next_index(), Some(200), "the appends are still there");
    assert_eq!(ids(&w, 0, 300), expected(1, 0..200));
    assert_eq!(contents(dir.path()), before);
    w.append(&raw(1, 200..203)).unwrap();
    w.sync().unwrap();
    drop(w);
    assert_eq!(reopened(dir.path()), expected(1, 0..203));
}

#[test]
fn segments_started_since_the_last_sync_are_deleted_on_rollback() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let mut w = open(dir.path(), None).unwrap().wal;
    let before = contents(dir.path());
    // More than a small segment holds: new segments are started.
    w.append(&raw(1, 200..300)).unwrap();
    assert!(segments(dir.path()).len() > before.len());
    w.disk().fail_syncs(1);
    assert!(w.sync().is_err());
    assert_eq!(contents(dir.path()), before);
    // Written again, in another term (as a new leader's would be).
    w.append(&raw(2, 200..210)).unwrap();
    w.sync().unwrap();
    drop(w);
    let mut want = expected(1, 0..200);
    want.extend(expected(2, 200..210));
    assert_eq!(reopened(dir.path()), want);
}

#[test]
fn a_rollback_that_fails_is_tried_again_before_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let mut w = open(dir.path(), None).unwrap().wal;
    let before = contents(dir.path());
    // The fsync fails, then the rollback's own, twice more: nothing is
    // written meanwhile, and no sync counts.
    w.disk().fail_syncs(4);
    w.append(&raw(1, 200..203)).unwrap();
    assert!(w.sync().is_err());
    assert!(w.sync().is_err(), "a sync counted before the rollback");
    assert!(w.append(&raw(1, 200..203)).is_err());
    assert!(w.truncate(150).is_err());
    assert_eq!(w.next_index(), Some(203), "not rolled back yet");
    // The disk works again.
    w.append(&raw(1, 200..203)).unwrap();
    assert_eq!(
        contents(dir.path())[..before.len() - 1],
        before[..before.len() - 1]
    );
    w.sync().unwrap();
    drop(w);
    assert_eq!(reopened(dir.path()), expected(1, 0..203));
}

#[test]
fn a_truncation_whose_fsync_fails_is_done_again() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let mut w = open(dir.path(), None).unwrap().wal;
    w.disk().fail_syncs(1);
    assert!(w.truncate(190).is_err());
    w.truncate(190).unwrap();
    w.append(&raw(2, 190..192)).unwrap();
    w.sync().unwrap();
    drop(w);
    let mut want = expected(1, 0..190);
    want.extend(expected(2, 190..192));
    assert_eq!(reopened(dir.path()), want);
}

#[test]
fn a_segment_a_full_disk_has_no_room_for_leaves_nothing_behind() {
    let Some(fs) = Tmpfs::mount(1 << 20) else {
        return;
    };
    let dir = fs.path().join("wal");
    let mut w = Wal::open(&dir, 64 << 10, None).unwrap().wal;
    w.append(&raw(1, 0..10)).unwrap();
    w.sync().unwrap();
    fs.fill();
    // Appends go into the preallocated segment until it is full.
    let mut next = 10;
    let err = loop {
        match w.append(&raw(1, next..next + 10)).and_then(|()| w.sync()) {
            Ok(()) => next += 10,
            Err(e) => break e,
        }
        assert!(next < 10_000, "the segment never filled");
    };
    assert!(err.to_string().contains("No space left"), "{err}");
    let names = |dir: &Path| -> Vec<String> {
        segments(dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names(&dir), [format!("{:020}.wal", 0)], "a leftover");
    assert_eq!(ids(&w, 0, 100_000), expected(1, 0..next));
    fs.free();
    w.append(&raw(1, next..next + 10)).unwrap();
    w.sync().unwrap();
    drop(w);
    let w = Wal::open(&dir, 64 << 10, None).unwrap().wal;
    assert_eq!(ids(&w, 0, 100_000), expected(1, 0..next + 10));
}
