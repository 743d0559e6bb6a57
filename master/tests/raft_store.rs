//! The redb Raft store: openraft's own storage conformance suite, and a
//! damaged store refusing to open.

use keel_master::raft::{LogStore, StateMachine, StoreError, TypeConfig, open_store};
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
    use redb::TableDefinition;
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
            log.purge(log_id(1, 1, 10)).await.unwrap();
        });
        path
    }

    fn damage(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
        let mut bytes = std::fs::read(path).unwrap();
        f(&mut bytes);
        std::fs::write(path, &bytes).unwrap();
    }

    /// Opening must fail as corrupt, naming the file.
    fn assert_refused(path: &Path) -> String {
        let err = open_store(path)
            .err()
            .expect("a damaged store must not open");
        let text = err.to_string();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        text
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
        damage(&path, |b| {
            let at = b.len() / 3;
            b[at..at + 4096].iter_mut().for_each(|x| *x ^= 0x5a);
        });
        assert_refused(&path);
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

    #[test]
    fn an_entry_that_does_not_decode_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = written_store(&dir);
        poke(&path, |t| {
            t.insert(20, b"{\"log_id\":".as_slice()).unwrap();
        });
        let text = assert_refused(&path);
        assert!(text.contains("log entry 20"), "{text}");
    }

    #[test]
    fn a_hole_in_the_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = written_store(&dir);
        poke(&path, |t| {
            t.remove(30).unwrap();
        });
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
}
