//! Types shared by Keel's master, agent and CLI.
//!
//! - [`inventory`]: the hardware an agent discovered.
//! - [`resources`] and [`attributes`]: the Mesos resource model and its text,
//!   v1 JSON and legacy JSON forms.
//! - [`pb`]: the generated agent<->master gRPC protocol, with
//!   [`convert`] mapping it to and from the domain types.
//! - The master's HTTP answers: [`operator`] (`POST /api/v1`), [`legacy`]
//!   (`/master/state`, ...), [`keel`] (`/api/keel/v1`).

pub mod agent;
pub mod attributes;
pub mod convert;
pub mod executor;
pub mod id;
pub mod inventory;
pub mod keel;
pub mod keyed;
pub mod legacy;
pub mod legacy_summary;
pub mod lenient;
pub mod mesos;
pub mod operator;
pub mod recordio;
pub mod resources;
pub mod scheduler;
pub mod ui;

/// Generated code for `proto/keel/v1/cluster.proto`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("keel.v1");

    /// gRPC metadata key on a master's refusal of an agent session: the
    /// leading master's `host:port`, where the agent should go next.
    pub const LEADER_METADATA: &str = "keel-leader";
}

/// Generated code for `proto/keel/v1/raft.proto`: Raft between masters.
#[allow(clippy::all, missing_docs)]
pub mod raft_pb {
    tonic::include_proto!("keel.raft.v1");
}

/// Keel's own version (the crate version).
pub const KEEL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Mesos API level Keel implements and reports from `/version`. Digits
/// only: pymesos parses each dot-separated part with `int()`.
pub const MESOS_COMPAT_VERSION: &str = "1.11.0";

/// Whether `id` is safe as an agent or framework id: it ends up in paths
/// (the agent's work dir, sandboxes) and URLs. 1-256 characters of ASCII
/// letters, digits, `-`, `_` and `.`, and not `.` or `..`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids() {
        assert!(super::valid_id("5f0c-S12"));
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(257)] {
            assert!(!super::valid_id(bad), "{bad:?}");
        }
    }
}
