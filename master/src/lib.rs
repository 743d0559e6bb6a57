//! keel-master as a library. The binary (`main.rs`) parses flags and calls
//! [`server::run`]; tests start the same server on `127.0.0.1:0`.
//!
//! - [`registry`]: the pure state machine (commands in, decisions out).
//! - [`replication`]: where commands become durable: the
//!   [`Replicator`](replication::Replicator) trait, the local command log
//!   of a single master and Raft between masters.
//! - [`engine`]: the Mesos logic, pure (inputs in, effects out).
//! - [`core`]: the shell that commits, performs the engine's effects and
//!   follows leadership.
//! - [`grpc`]: the agents' `Session` stream.
//! - [`http`]: the Mesos operator API, legacy endpoints, Keel's API.
//! - [`auth`]: authentication and authorization of frameworks and
//!   operators (credentials, ACLs, tokens).

pub mod admission;
pub mod allocator;
pub mod attestation;
pub mod auth;
pub mod core;
pub mod engine;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod registry;
pub mod replication;
mod serde_mesos;
pub mod server;
pub mod tls;

pub use crate::core::{Master, MasterConfig, MasterError};
pub use crate::server::run;
