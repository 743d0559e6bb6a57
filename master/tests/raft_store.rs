//! The Raft store (log segments plus redb): openraft's own storage
//! conformance suite, a damaged store refusing to open, and a store written
//! before the segments (entries in redb) moving to them; a master whose
//! disk fills up.

mod raft_support;

use keel_master::replication::raft::{LogStore, StateMachine, StoreError, TypeConfig, open_store};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RedbBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, sm) = open_store(&dir.path().join("raft.redb")).expect("open store");
        Ok((dir, log, sm))
    }
}

#[test]
fn passes_the_openraft_storage_suite() {
    Suite::test_all(RedbBuilder).unwrap();
}

mod damage {
    use super::*;
    use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
    use openraft::testing::{blank_ent, log_id};
    use openraft::{RaftLogReader, RaftSnapshotBuilder, Vote};
    use redb::{ReadableDatabase, TableDefinition};
    use std::path::{Path, PathBuf};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Runtime::new().unwrap()
    }

    /// A closed store holding a vote, entries 11..50 and a snapshot at 49.
    fn written_store(dir: &TempDir) -> PathBuf {
        let path = dir.path().join("raft.redb");
        rt().block_on(async {
            let (mut log, mut sm) = open_store(&path).unwrap();
            log.save_vote(&Vote::new(3, 1)).await.unwrap();
            let entries: Vec<_> = (0..50).map(|i| blank_ent::<TypeConfig>(1, 1, i)).collect();
            log.blocking_append(entries.clone()).await.unwrap();
            sm.apply(entries).await.unwrap();
            sm.get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap();
            log.save_committed(Some(log_id(1, 1, 49))).await.unwrap();
            log.purge(log_id(1, 1, 10)).await.unwrap();
        });
        path
    }

    fn damage(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
        let mut bytes = std::fs::read(path).unwrap();
        f(&mut bytes);
        std::fs::write(path, &bytes).unwrap();
    }

    /// Opening must fail as corrupt, naming the damaged file (the redb file
    /// or a log segment beside it).
    fn assert_refused(path: &Path) -> String {
        let err = open_store(path)
            .err()
            .expect("a damaged store must not open");
        let text = err.to_string();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{text}");
        let dir = path.parent().unwrap().display().to_string();
        assert!(text.contains(&dir), "{text}");
        text
    }

    /// The log segment holding entries 0..50 of [`written_store`].
    fn segment(path: &Path) -> PathBuf {
        path.with_file_name("wal").join(format!("{:020}.wal", 0))
    }

    /// Where entry `index` of `segment` starts, and its encoded bytes.
    fn record(segment: &Path, index: u64) -> (usize, Vec<u8>) {
        let bytes = std::fs::read(segment).unwrap();
        let mut at = 0;
        for i in 0.. {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            if i == index {
                return (at, bytes[at + 8..at + 8 + len].to_vec());
            }
            at += 8 + len;
        }
        unreachable!()
    }

    /// A record as the store writes it: length, checksum, entry.
    fn encode(raw: &[u8]) -> Vec<u8> {
        let len = (raw.len() as u32).to_le_bytes();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&len);
        crc.update(raw);
        let mut out = len.to_vec();
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(raw);
        out
    }

    #[test]
    fn an_intact_store_reopens_with_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = written_store(&dir);
        rt().block_on(async {
            let (mut log, mut sm) = open_store(&path).unwrap();
            assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
            let state = log.get_log_state().await.unwrap();
            assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 10)));
            assert_eq!(state.last_log_id, Some(log_id(1, 1, 49)));
            assert_eq!(log.try_get_log_entries(11..50).await.unwrap().len(), 39);
            // The state machine comes back at the snapshot.
            let (applied, _) = sm.applied_state().await.unwrap();
            assert_eq!(applied, Some(log_id(1, 1, 49)));
        });
    }

    #[test]
    fn a_truncated_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = written_store(&dir);
        damage(&path, |b| b.truncate(b.len() / 2));
        let text = assert_refused(&path);
        assert!(text.contains("truncated"), "{text}");
        // Losing only the tail is just as fatal.
        let dir = tempfile::tempdir().unwrap();
        let path = written_store(&dir);
        damage(&path, |b| b.truncate(b.len() - 100));
        assert_refused(&path);
    }

    #[test]
    fn garbled_pages_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = written_store(&dir);
        // The page holding the snapshot.
        damage(&path, |b| {
            let at = b.windows(8).position(|w| w == b"registry").unwrap();
            let page = at / 4096 * 4096;
            b[page..page + 4096].iter_mut().for_each(|x| *x ^= 0x5a);
        });
        assert_refused(&path);
    }

    #[test]
    fn a_truncated_segment_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = written_store(&dir);
        let segment = segment(&path);
        let (at, _) = record(&segment, 30);
        let file = std::fs::OpenOptions::new().write(true).open(&segment);
        file.unwrap().set_len(at as u64).unwrap();
        let text = assert_refused(&path);
        assert!(text.contains("truncated"), "{text}");
    }

    #[test]
    fn a_garbled_entry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = written_store(&dir);
        let (at, raw) = record(&segment(&path), 20);
        damage(&segment(&path), |b| b[at + 8 + raw.len() / 2] ^= 0x5a);
        let text = assert_refused(&path);
        assert!(text.contains("entry 20 fails its checksum"), "{text}");
    }

    #[test]
    fn a_lost_segment_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = written_store(&dir);
        std::fs::remove_dir_all(path.with_file_name("wal")).unwrap();
        let text = assert_refused(&path);
        assert!(text.contains("entry 49 was committed"), "{text}");
    }

    #[test]
    fn segments_without_their_store_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = written_store(&dir);
        std::fs::remove_file(&path).unwrap();
        let text = assert_refused(&path);
        assert!(text.contains("holds log segments"), "{text}");
    }

    #[test]
    fn a_garbled_or_zeroed_header_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = written_store(&dir);
        damage(&path, |b| b[..64].iter_mut().for_each(|x| *x ^= 0x5a));
        assert_refused(&path);
        damage(&path, |b| b.iter_mut().for_each(|x| *x = 0));
        assert_refused(&path);
    }

    const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");

    /// Writes into the store behind its back, as a bad disk or a bug would.
    fn poke(path: &Path, f: impl FnOnce(&mut redb::Table<u64, &[u8]>)) {
        let db = redb::Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        f(&mut txn.open_table(LOG).unwrap());
        txn.commit().unwrap();
    }

    /// Replaces entry `index` of `segment` with `raw`, checksummed: written
    /// by a bug, not torn by a crash.
    fn rewrite(segment: &Path, index: u64, raw: &[u8]) {
        let (at, old) = record(segment, index);
        // Padded with JSON whitespace to the same length.
        let mut raw = raw.to_vec();
        raw.resize(old.len(), b' ');
        let new = encode(&raw);
        damage(segment, |b| b[at..at + new.len()].copy_from_slice(&new));
    }

    #[test]
    fn an_entry_that_does_not_decode_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = written_store(&dir);
        rewrite(&segment(&path), 20, b"{\"log_id\":");
        let text = assert_refused(&path);
        assert!(text.contains("log entry 20"), "{text}");
    }

    #[test]
    fn a_hole_in_the_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = written_store(&dir);
        let (_, raw) = record(&segment(&path), 31);
        rewrite(&segment(&path), 30, &raw);
        let text = assert_refused(&path);
        assert!(text.contains("31 found where 30"), "{text}");
    }

    #[test]
    fn a_foreign_redb_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        poke(&path, |t| {
            t.insert(1, b"x".as_slice()).unwrap();
        });
        let text = assert_refused(&path);
        assert!(text.contains("missing"), "{text}");
    }

    const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

    #[test]
    fn a_store_with_its_entries_in_redb_moves_them_to_segments() {
        let dir = tempfile::tempdir().unwrap();
        let path = written_store(&dir);
        // Rewritten as the version before the segments kept it: entries in
        // redb's `log` table, format 1. And a migration that was cut short
        // left a segment behind.
        let raws: Vec<Vec<u8>> = (11..50).map(|i| record(&segment(&path), i).1).collect();
        let wal = path.with_file_name("wal");
        std::fs::remove_dir_all(&wal).unwrap();
        poke(&path, |log| {
            for (i, raw) in (11..).zip(&raws) {
                log.insert(i, raw.as_slice()).unwrap();
            }
        });
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("format", b"keel-raft-1".as_slice())
            .unwrap();
        txn.commit().unwrap();
        drop(db);
        std::fs::create_dir(&wal).unwrap();
        std::fs::write(wal.join(format!("{:020}.wal", 11)), b"half a migration").unwrap();
        for _ in 0..2 {
            rt().block_on(async {
                let (mut log, mut sm) = open_store(&path).unwrap();
                assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
                let state = log.get_log_state().await.unwrap();
                assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 10)));
                assert_eq!(state.last_log_id, Some(log_id(1, 1, 49)));
                let entries = log.try_get_log_entries(11..50).await.unwrap();
                let ids: Vec<_> = entries.iter().map(|e| e.log_id.index).collect();
                assert_eq!(ids, (11..50).collect::<Vec<_>>());
                let (applied, _) = sm.applied_state().await.unwrap();
                assert_eq!(applied, Some(log_id(1, 1, 49)));
            });
        }
        // Moved for good: redb no longer has them, and says so.
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_read().unwrap();
        assert!(txn.open_table(LOG).is_err(), "the log table is still there");
        let format = txn.open_table(META).unwrap().get("format").unwrap();
        assert_eq!(format.unwrap().value(), b"keel-raft-2");
    }
}

/// A master whose disk fills up: it refuses writes with the store's error,
/// keeps serving reads, writes again once there is room, and a restart
/// finds everything it acknowledged. On a real tmpfs, through `RaftNode`.
mod full_disk {
    use std::time::{Duration, Instant};

    use keel_master::registry::{Command, Registry};
    use keel_master::replication::raft::{ProposeError, RaftNode, RaftOptions};

    use crate::raft_support::Cluster;
    use keel_hardware_tests::tmpfs::Tmpfs;

    const SETTLE: Duration = Duration::from_secs(10);

    fn options() -> RaftOptions {
        RaftOptions {
            // Small segments: a new one is needed every few entries.
            segment_size: 64 << 10,
            propose_timeout: Duration::from_secs(2),
            ..RaftOptions::default()
        }
    }

    fn framework(n: usize) -> Command {
        Command::AddFramework {
            info: keel_api::mesos::FrameworkInfo {
                user: "disk".into(),
                name: format!("fw-{n}-{}", "x".repeat(2000)),
                id: None,
                failover_timeout: None,
                checkpoint: None,
                role: None,
                roles: Vec::new(),
                hostname: None,
                principal: None,
                webui_url: None,
                capabilities: Vec::new(),
                labels: None,
                offer_filters: None,
            },
            at: 1.0,
        }
    }

    fn bootstrap() -> Command {
        Command::Bootstrap {
            master_id: "m".into(),
        }
    }

    fn names(reg: &Registry) -> Vec<usize> {
        reg.frameworks()
            .map(|f| f.info.name.split('-').nth(1).unwrap().parse().unwrap())
            .collect()
    }

    async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + SETTLE;
        while !f() {
            assert!(Instant::now() < deadline, "not within {SETTLE:?}: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Proposes frameworks from `next` on until the store refuses one;
    /// returns those acknowledged, those whose outcome is unknown (they
    /// timed out), and the refusal.
    async fn propose_until_refused(
        node: &RaftNode,
        next: &mut usize,
    ) -> (Vec<usize>, Vec<usize>, String) {
        let (mut acked, mut unknown) = (Vec::new(), Vec::new());
        loop {
            assert!(*next < 10_000, "the disk never filled");
            let n = *next;
            *next += 1;
            match node.propose(framework(n)).await {
                Ok(verdict) => {
                    verdict.expect("accepted");
                    acked.push(n);
                }
                Err(ProposeError::Timeout(_)) => unknown.push(n),
                Err(ProposeError::Store(reason)) => return (acked, unknown, reason),
                Err(e) => panic!("framework {n}: {e}"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_raft_master_on_a_full_disk_refuses_writes_and_goes_on_once_there_is_room() {
        let Some(fs) = Tmpfs::mount(4 << 20) else {
            return;
        };
        let mut c = Cluster::start_in(fs.path(), 1, options()).await;
        let l = c.leader(SETTLE).await;
        c.propose(l, bootstrap()).await.unwrap();
        let mut next = 0;
        let mut acked = Vec::new();
        for _ in 0..5 {
            c.propose(l, framework(next)).await.unwrap();
            acked.push(next);
            next += 1;
        }
        fs.fill();
        let (more, unknown, reason) = propose_until_refused(c.node(l), &mut next).await;
        acked.extend(more);
        assert!(reason.contains("No space left on device"), "{reason}");
        let problem = c.node(l).problem().expect("the trouble is reported");
        assert!(problem.contains("No space left on device"), "{problem}");
        // Reads go on: everything acknowledged, nothing that was not.
        assert_eq!(names(&c.node(l).registry()), acked);
        // Refused again, at once, while the disk stays full.
        let started = Instant::now();
        assert!(matches!(
            c.node(l).propose(framework(next)).await,
            Err(ProposeError::Store(_))
        ));
        assert!(started.elapsed() < Duration::from_secs(1));
        next += 1;

        // Room again: the same master writes again, no restart needed.
        fs.free();
        eventually("the trouble clears", || c.node(l).problem().is_none()).await;
        let last = next;
        c.propose(l, framework(last)).await.unwrap();
        // What timed out was in the log all along: it commits now.
        let mut all = acked.clone();
        all.extend(&unknown);
        all.push(last);
        assert_eq!(names(&c.node(l).registry()), all);

        c.kill(l).await;
        c.restart(l).await;
        let l = c.leader(SETTLE).await;
        let reg = c.converged(l, SETTLE).await;
        assert_eq!(names(&reg), all);
        drop(c);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_on_a_full_disk_is_stored_once_there_is_room() {
        let Some(fs) = Tmpfs::mount(4 << 20) else {
            return;
        };
        let mut c = Cluster::start_in(fs.path(), 1, options()).await;
        let l = c.leader(SETTLE).await;
        c.propose(l, bootstrap()).await.unwrap();
        let acked: Vec<usize> = (0..100).collect();
        for n in &acked {
            c.propose(l, framework(*n)).await.unwrap();
        }
        fs.fill();
        // The registry (200 KB) does not fit in the store now.
        c.node(l).snapshot().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(c.node(l).status().snapshot_index, None, "the disk had room");
        assert_eq!(names(&c.node(l).registry()), acked);
        fs.free();
        eventually("the snapshot is stored", || {
            c.node(l).status().snapshot_index.is_some()
        })
        .await;
        c.propose(l, framework(100)).await.unwrap();
        c.kill(l).await;
        c.restart(l).await;
        let l = c.leader(SETTLE).await;
        let reg = c.converged(l, SETTLE).await;
        assert_eq!(names(&reg), (0..101).collect::<Vec<_>>());
        drop(c);
    }

    /// Retries `propose` on master `i` while it is just elected.
    async fn commit_on(c: &Cluster, i: usize, cmd: Command) {
        let deadline = Instant::now() + SETTLE;
        loop {
            match c.node(i).propose(cmd.clone()).await {
                Ok(verdict) => return verdict.map(drop).expect("accepted"),
                Err(e) => assert!(Instant::now() < deadline, "{cmd:?} did not commit: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `got` holds every acknowledged command, in order, and otherwise only
    /// commands whose outcome was unknown.
    fn holds(got: &[usize], acked: &[usize], unknown: &[usize]) {
        let known: Vec<usize> = got
            .iter()
            .copied()
            .filter(|n| !unknown.contains(n))
            .collect();
        assert_eq!(known, acked, "got {got:?}, unknown {unknown:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_leader_whose_disk_fills_hands_the_lead_to_one_that_can_write() {
        let base = tempfile::tempdir().unwrap();
        let mut disks = Vec::new();
        for i in 0..3 {
            let Some(fs) = Tmpfs::mount_on(&base.path().join(format!("m{i}")), 16 << 20) else {
                return;
            };
            disks.push(fs);
        }
        let mut c = Cluster::start_in(base.path(), 3, options()).await;
        let l = c.leader(SETTLE).await;
        c.propose(l, bootstrap()).await.unwrap();
        let mut next = 0;
        let mut acked = Vec::new();
        for _ in 0..5 {
            c.propose(l, framework(next)).await.unwrap();
            acked.push(next);
            next += 1;
        }
        c.converged(l, SETTLE).await;
        disks[l].fill();
        let (more, unknown, reason) = propose_until_refused(c.node(l), &mut next).await;
        acked.extend(more);
        assert!(reason.contains("No space left on device"), "{reason}");
        // It steps aside: another master leads, and writes.
        let l2 = c.leader_other_than(l, SETTLE).await;
        commit_on(&c, l2, framework(next)).await;
        acked.push(next);
        holds(&names(&c.node(l2).registry()), &acked, &unknown);

        // Room again: the old leader follows and catches up.
        disks[l].free();
        let l3 = c.leader(SETTLE).await;
        let reg = c.converged(l3, SETTLE).await;
        holds(&names(&reg), &acked, &unknown);
        for i in 0..3 {
            c.kill(i).await;
        }
        for i in 0..3 {
            c.restart(i).await;
        }
        let l = c.leader(SETTLE).await;
        let after = c.converged(l, SETTLE).await;
        assert_eq!(names(&after), names(&reg));
        drop(c);
    }
}
