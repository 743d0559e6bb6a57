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
