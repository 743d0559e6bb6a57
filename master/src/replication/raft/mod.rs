//! The masters' replicated registry: Raft (openraft 0.9) between masters,
//! stored in log segments and redb, spoken over gRPC on the masters' API
//! port.
//!
//! - [`types`]: the type config: [`Batch`]es of registry
//!   [`Command`](crate::registry::Command)s in, [`ApplyResponse`]s out; node
//!   ids derived from addresses.
//! - [`db`], [`wal`], [`log_store`], [`state_machine`]: the store (the
//!   log's entries in append-only segment files, the rest in one redb file)
//!   behind openraft's storage traits; passes `openraft::testing::Suite`.
//!   [`log_writer`]: the one thread that writes the log, group-committing
//!   and fsyncing in the background, and the rules that let a leader
//!   replicate while its own fsync runs.
//!   Why the store is built so: `docs/design/0003-raft-store.md`.
//! - [`wire`], [`network`], [`service`]: Raft messages over gRPC, client
//!   and server side; the client reaches peers through a [`Connector`]
//!   ([`TcpConnector`], or a test network that cuts links).
//! - [`cluster`]: identities and the checks on incoming calls (wiped
//!   stores, other clusters); [`formation`]: forming the cluster from
//!   `--masters`.
//! - [`node`]: [`RaftNode`], one master's member of the cluster, with its
//!   [`options`], the [`proposer`] (group commit) and a background task
//!   (membership view, formation, incarnations); [`membership`]: adding and
//!   removing masters at runtime.
//! - [`replicator`]: [`RaftReplicator`], the node as the master core's
//!   [`Replicator`](super::Replicator), with the leader lease.
//!
//! ```text
//!  core --propose--> RaftReplicator --> proposer --Batch--> openraft --append--> LogStore (wal + redb)
//!                                                           |--AppendEntries/Vote--> network --gRPC--> peers' service
//!  core <--read-- RaftReplicator <-- StateMachine <--apply--'
//! ```

mod background;
pub mod cluster;
pub mod connector;
pub mod db;
pub mod formation;
pub mod log_store;
pub mod log_writer;
pub mod membership;
pub mod network;
pub mod node;
pub mod options;
pub mod proposer;
pub mod replicator;
pub mod service;
pub mod state_machine;
pub mod types;
pub mod wal;
pub mod wire;

use std::path::Path;
use std::sync::Arc;

pub use connector::{ConnectError, Connector, TcpConnector};
pub use db::StoreError;
pub use log_store::LogStore;
pub use membership::MembershipError;
pub use node::{Member, RaftError, RaftNode, RaftStatus, Subscription};
pub use options::RaftOptions;
pub use proposer::ProposeError;
pub use replicator::{LEADER_LEASE, RaftReplicator};
pub use service::{RaftGrpc, RaftGrpcServer};
pub use state_machine::{AppliedEntry, StateEvent, StateMachine};
pub use types::{ApplyResponse, Batch, MasterNode, NodeId, TypeConfig, node_id_for};

/// Where the master router mounts [`RaftNode::grpc_service`].
pub const GRPC_ROUTE: &str = "/keel.raft.v1.RaftService/{*method}";

/// Opens (or creates) the Raft store at `path`, checked, as the two halves
/// openraft takes. [`RaftNode`] does this itself; this is for storage tests.
pub fn open_store(path: &Path) -> Result<(LogStore, StateMachine), StoreError> {
    let (db, recovered) = db::Db::open(path)?;
    let db = Arc::new(db);
    let log = LogStore::new(db.clone(), recovered)?;
    let (sm, _) = StateMachine::restore(db, log.durability())?;
    Ok((log, sm))
}
