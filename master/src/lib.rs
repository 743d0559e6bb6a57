//! keel-master as a library. The binary (`main.rs`) parses flags and calls
//! [`server::run`]; tests start the same server on `127.0.0.1:0`.
//!
//! - [`registry`]: the pure state machine (commands in, decisions out).
//! - [`replication`]: where commands become durable: the
//!   [`Replicator`](replication::Replicator) trait, the local command log of a single master and Raft between
//!   masters.
//! - [`core`]: the shell that persists, applies, and tracks agent sessions.
//! - [`grpc`]: the agents' `Session` stream.
//! - [`http`]: the Mesos operator API, legacy endpoints, Keel's API.

pub mod allocator;
pub mod core;
pub mod grpc;
pub mod http;
pub mod registry;
pub mod replication;
pub mod scheduler;
mod serde_mesos;
pub mod server;

pub use crate::core::{Master, MasterConfig, MasterError};
pub use crate::server::run;
