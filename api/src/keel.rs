//! Keel's own API (`/api/keel/v1`): the agents with their inventories, the
//! replicated masters, and tokens. Unlike the Mesos APIs, unknown fields in a
//! request are refused, and errors are `{"error": "..."}`.

use serde::{Deserialize, Serialize};

use crate::inventory::Inventory;
use crate::keyed::LegacyMap;

/// Where an agent stands with the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Connected and heartbeating.
    Active,
    /// Its session closed; it may still come back before the timeout.
    Disconnected,
    /// No heartbeat within the agent timeout; comes back by re-registering.
    Unreachable,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Active => "active",
            AgentState::Disconnected => "disconnected",
            AgentState::Unreachable => "unreachable",
        }
    }
}

impl std::fmt::Display for AgentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One agent, `GET /api/keel/v1/agents` (`agents[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSummary {
    pub id: String,
    pub hostname: String,
    pub ip: String,
    pub port: u16,
    pub state: AgentState,
    pub version: String,
    /// Seconds since the epoch.
    pub registered_time: f64,
    pub reregistered_time: Option<f64>,
    pub unreachable_time: Option<f64>,
    /// Totals by name, as in `/master/state`.
    pub resources: LegacyMap,
    /// The same in `--resources` syntax, roles included.
    pub resources_text: String,
    pub attributes: LegacyMap,
}

/// `GET /api/keel/v1/agents`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Agents {
    pub agents: Vec<AgentSummary>,
}

/// `GET /api/keel/v1/agents/{id}`: the summary and the full inventory
/// (`GET /api/keel/v1/agents/{id}/inventory` is the [`Inventory`] alone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDetail {
    #[serde(flatten)]
    pub summary: AgentSummary,
    pub inventory: Inventory,
}

/// A member of the replicated masters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: u64,
    /// `ip:port` of its API (and Raft) port.
    pub address: String,
    pub voter: bool,
    pub leader: bool,
}

/// Where a master's copy of the replicated log stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPosition {
    pub last_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
}

/// `GET /api/keel/v1/masters` (and the answer to adding or removing one):
/// the cluster as the asked master sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// The leader's `ip:port`, when known.
    pub leader: Option<String>,
    pub term: u64,
    /// The asked master's id.
    pub me: u64,
    pub members: Vec<Member>,
    /// Raft only.
    pub log: Option<LogPosition>,
    /// Something an operator must fix, if any.
    pub problem: Option<String>,
}

/// `POST /api/keel/v1/masters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMaster {
    /// `ip:port` of the master to add.
    pub add: String,
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// `Authorization: Bearer` on the scheduler and operator APIs.
    Bearer,
    /// Admits an agent.
    Join,
}

/// `POST /api/keel/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub kind: TokenKind,
    /// Who the token authenticates as (required for bearer tokens; join
    /// tokens default to `keel-agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Lifetime in seconds (default one day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// Join tokens: how many agents it admits (default: any number until
    /// it expires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
}

/// A token, without its secret (`GET /api/keel/v1/tokens`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    pub kind: TokenKind,
    pub principal: String,
    /// Seconds since the epoch.
    pub created_at: f64,
    pub expires_at: Option<f64>,
    /// Join tokens with a use count: what is left.
    pub uses_left: Option<u32>,
}

/// `GET /api/keel/v1/tokens` (and the answer to revoking one).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Tokens {
    pub tokens: Vec<Token>,
}

/// The answer to creating a token: the token text, shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedToken {
    /// `keel1.<id>.<secret>`.
    pub token: String,
    #[serde(flatten)]
    pub info: Token,
}

/// An endorsement key's standing with TPM admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EkState {
    /// Attested, not allowed yet: the agent gets no session.
    Pending,
    Approved,
    Denied,
}

/// An agent's TPM known to the masters (`GET /api/keel/v1/agents/pending`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingAgent {
    /// The first 16 hex digits of `ek_sha256`: what `approve` and `deny`
    /// take.
    pub id: String,
    /// SHA-256 of the endorsement key's DER SubjectPublicKeyInfo.
    pub ek_sha256: String,
    pub state: EkState,
    /// What the agent said of itself when last seen.
    pub hostname: String,
    pub ip: String,
    /// Seconds since the epoch.
    pub first_seen: f64,
    pub last_seen: f64,
    pub decided_at: Option<f64>,
}

/// `GET /api/keel/v1/agents/pending` (`?all=true`: approved and denied
/// too), and the answer to approving or denying one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PendingAgents {
    pub agents: Vec<PendingAgent>,
}

/// Every error of Keel's API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn add_master_refuses_unknown_fields() {
        assert!(serde_json::from_value::<AddMaster>(json!({"add": "1.2.3.4:5"})).is_ok());
        assert!(serde_json::from_value::<AddMaster>(json!({"add": "a", "x": 1})).is_err());
    }

    #[test]
    fn token_requests_are_strict() {
        let ok = serde_json::from_value::<CreateToken>(json!({"kind": "join", "uses": 3})).unwrap();
        assert_eq!(ok.kind, TokenKind::Join);
        assert_eq!(ok.uses, Some(3));
        assert!(serde_json::from_value::<CreateToken>(json!({"kind": "join", "ttl": 3})).is_err());
        assert!(serde_json::from_value::<CreateToken>(json!({"kind": "admin"})).is_err());
    }
}

/// `POST /api/keel/v1/agents/{id}/grant`: a sandbox grant for these
/// frameworks' sandboxes on that agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub frameworks: Vec<String>,
}

/// A sandbox grant: `Authorization: Bearer <token>` on the agent's port
/// reads those sandboxes until `expires_at` (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxGrant {
    pub token: String,
    pub agent_id: String,
    pub frameworks: Vec<String>,
    pub expires_at: i64,
}
