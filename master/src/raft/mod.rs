//! Replicated registry: Raft between masters (openraft over redb and gRPC).
pub mod db;
pub mod log_store;
pub mod state_machine;
pub mod types;

use std::path::Path;
use std::sync::Arc;

pub use db::StoreError;
pub use log_store::LogStore;
pub use state_machine::{AppliedEntry, StateEvent, StateMachine};
pub use types::{ApplyResponse, MasterNode, NodeId, TypeConfig, node_id_for};

/// Opens (or creates) the Raft store at `path`, checked, as the two halves
/// openraft takes. `RaftNode` does this itself; this is for storage tests.
pub fn open_store(path: &Path) -> Result<(LogStore, StateMachine), StoreError> {
    let (db, _) = db::Db::open(path)?;
    let db = Arc::new(db);
    let (sm, _) = StateMachine::restore(db.clone())?;
    Ok((LogStore::new(db), sm))
}
