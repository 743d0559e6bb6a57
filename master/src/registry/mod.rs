//! The master's replicated state: a pure state machine over typed commands.
//!
//! Every change to what the master knows goes through [`Command`] and
//! [`Registry::apply`]. Commands carry everything they need (ids to assign
//! are derived from the state, times are inside the command), so applying the
//! same command log always yields the same registry: the command log on disk
//! today and Raft later replicate exactly these commands.
//!
//! Agent life cycle:
//!
//! ```text
//!   AdmitAgent          DisconnectAgent(s)        MarkAgentUnreachable
//! ------------> Active ----------------> Disconnected ----------------> Unreachable
//!                 ^  \______________________________________________________/ |
//!                 |              MarkAgentUnreachable (no heartbeats)          |
//!                 +------------------- ReadmitAgent ---------------------------+
//! ```
//!
//! From any of these states `MarkAgentGone` (an operator) removes the agent
//! for good: its id is kept in the gone list and never admitted again.
//! `Maintenance` commands keep the schedule, the machines DOWN (whose
//! agents leave and may not register until the machine is up) and the
//! agents drained or deactivated ([`maintenance`]).

mod agents;
pub mod eks;
mod frameworks;
pub mod gone;
pub mod limits;
pub mod maintenance;
pub mod roles;
pub mod tokens;
pub mod volumes;

use std::collections::BTreeMap;

use keel_api::attributes::Attributes;
use keel_api::inventory::Inventory;
use keel_api::mesos::FrameworkInfo;
use keel_api::resources::Resources;
use serde::{Deserialize, Serialize};

use crate::serde_mesos;

pub use eks::{EkCommand, EkRecord, EkRefusal, EkState};
pub use frameworks::{FrameworkRecord, RemovedFramework};
pub use maintenance::{Drain, DrainState, Machine, Maintenance, MaintenanceCommand, Window};
pub use roles::QuotaConfig;
pub use tokens::{TokenCommand, TokenKind, TokenRecord, TokenRefusal};

/// What an agent tells the master about itself when it (re-)registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub hostname: String,
    pub ip: String,
    pub port: u16,
    #[serde(with = "serde_mesos::resources")]
    pub resources: Resources,
    #[serde(with = "serde_mesos::attributes")]
    pub attributes: Attributes,
    pub version: String,
    pub inventory: Inventory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Connected and heartbeating.
    Active,
    /// Its session closed; it may still come back before the timeout.
    Disconnected,
    /// No heartbeat within the agent timeout. Comes back by re-registering.
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: String,
    pub info: AgentInfo,
    pub state: AgentState,
    /// Seconds since the Unix epoch.
    pub registered_time: f64,
    pub reregistered_time: Option<f64>,
    pub unreachable_time: Option<f64>,
    /// Dynamic reservations made through RESERVE, kept across re-registrations.
    #[serde(with = "serde_mesos::resources", default)]
    pub dynamic_reservations: Resources,
    /// Persistent volumes, carved out of reserved disk.
    #[serde(default)]
    pub volumes: Vec<volumes::Volume>,
}

impl AgentRecord {
    /// What the agent offers: its static resources with the dynamic
    /// reservations carved out of the unreserved part.
    pub fn total_resources(&self) -> Resources {
        let total = roles::apply_reservations(&self.info.resources, &self.dynamic_reservations)
            .unwrap_or_else(|| self.info.resources.clone());
        self.volumes
            .iter()
            .fold(total, |t, v| t.checked_sub(&v.disk()).unwrap_or(t))
    }
}

/// A change to the registry. Serialized as one JSON object per command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// First command of every registry: fixes the master (cluster) id that
    /// prefixes agent ids.
    Bootstrap {
        master_id: String,
    },
    /// A new agent registers; it gets the next `<master-id>-S<n>` id.
    AdmitAgent {
        info: Box<AgentInfo>,
        at: f64,
    },
    /// An agent presents the id it persisted. Unknown ids are admitted under
    /// that id (the agent outlived the master's memory of it).
    ReadmitAgent {
        agent_id: String,
        info: Box<AgentInfo>,
        at: f64,
    },
    /// The agent's session closed.
    DisconnectAgent {
        agent_id: String,
        at: f64,
    },
    /// A new leader takes over: every agent still marked active had its
    /// session with the old leader, so all of them are disconnected until
    /// they re-register. One command, so a takeover is one commit however
    /// many agents there are. Unknown ids are ignored.
    DisconnectAgents {
        agent_ids: Vec<String>,
        at: f64,
    },
    /// No heartbeat from the agent within the agent timeout.
    MarkAgentUnreachable {
        agent_id: String,
        at: f64,
    },
    /// MARK_AGENT_GONE: the agent leaves the registry and its id may never
    /// register again ([`gone`]). A repeat changes nothing.
    MarkAgentGone {
        agent_id: String,
        at: f64,
    },
    /// A new framework subscribes; it gets the next `<master-id>-<nnnn>` id.
    AddFramework {
        info: FrameworkInfo,
        at: f64,
    },
    /// A framework subscribes again with its id (also one the registry
    /// does not know, e.g. after the master lost its state).
    ReaddFramework {
        framework_id: String,
        info: FrameworkInfo,
        at: f64,
    },
    /// UPDATE_FRAMEWORK: new FrameworkInfo for a known framework.
    UpdateFramework {
        framework_id: String,
        info: FrameworkInfo,
    },
    /// TEARDOWN or failover timeout.
    RemoveFramework {
        framework_id: String,
        at: f64,
    },
    UpdateWeights {
        weights: Vec<(String, f64)>,
    },
    UpdateQuotas {
        configs: Vec<QuotaConfig>,
    },
    /// Dynamic reservation: `resources` carry the target role.
    ReserveResources {
        agent_id: String,
        #[serde(with = "serde_mesos::resources")]
        resources: Resources,
    },
    UnreserveResources {
        agent_id: String,
        #[serde(with = "serde_mesos::resources")]
        resources: Resources,
    },
    CreateVolumes {
        agent_id: String,
        volumes: Vec<volumes::Volume>,
    },
    /// Volumes by (role, id).
    DestroyVolumes {
        agent_id: String,
        volumes: Vec<(String, String)>,
    },
    /// GROW_VOLUME / SHRINK_VOLUME: volume (role, id) is `disk_mb` now,
    /// the difference taken from (or given back to) its role's reserved
    /// disk.
    ResizeVolume {
        agent_id: String,
        role: String,
        id: String,
        disk_mb: f64,
    },
    /// Bearer and join tokens ([`tokens`]).
    Token(TokenCommand),
    /// TPM endorsement keys: pending, approved, denied ([`eks`]).
    Ek(EkCommand),
    /// Maintenance schedules, machines down, drains ([`maintenance`]).
    Maintenance(MaintenanceCommand),
}

/// What applying a command did, for the I/O shell to act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Applied {
    Bootstrapped,
    AgentAdmitted {
        agent_id: String,
    },
    AgentReadmitted {
        agent_id: String,
        previous: Option<AgentState>,
    },
    AgentDisconnected {
        agent_id: String,
    },
    /// How many of a [`Command::DisconnectAgents`] were active.
    AgentsDisconnected {
        count: usize,
    },
    AgentUnreachable {
        agent_id: String,
    },
    /// The agent was marked gone (not already gone).
    AgentGone {
        agent_id: String,
    },
    FrameworkAdded {
        framework_id: String,
    },
    FrameworkReadded {
        framework_id: String,
    },
    FrameworkUpdated {
        framework_id: String,
    },
    FrameworkRemoved {
        framework_id: String,
    },
    WeightsUpdated,
    QuotasUpdated,
    /// The agent's total resources changed (reservations).
    AgentResourcesUpdated {
        agent_id: String,
    },
    TokenCreated {
        id: String,
    },
    TokenRevoked {
        id: String,
    },
    /// A join token was used; what it has left.
    JoinTokenConsumed {
        id: String,
        uses_left: Option<u32>,
    },
    /// An endorsement key's state now.
    EndorsementKey {
        fingerprint: String,
        state: EkState,
    },
    /// A pending endorsement key no longer waits.
    EndorsementKeyForgotten {
        fingerprint: String,
    },
    /// A maintenance change; the agents it removed from the registry
    /// (their machines went down).
    Maintenance {
        removed_agents: Vec<String>,
    },
    /// The command changed nothing (e.g. disconnecting an unreachable agent).
    Unchanged,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Serialize, Deserialize)]
pub enum RegistryError {
    #[error("registry is already bootstrapped with master id {0}")]
    AlreadyBootstrapped(String),
    #[error("registry is not bootstrapped: the first command must be bootstrap")]
    NotBootstrapped,
    #[error("unknown agent {0}")]
    UnknownAgent(String),
    #[error("agent {0} was marked gone by an operator")]
    AgentGone(String),
    #[error("invalid agent id {0:?}")]
    InvalidAgentId(String),
    #[error("unknown framework {0}")]
    UnknownFramework(String),
    #[error("framework {0} has been removed")]
    FrameworkRemoved(String),
    #[error("invalid framework id {0:?}")]
    InvalidFrameworkId(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("machine {0} is down for maintenance")]
    MachineDown(String),
    #[error(transparent)]
    Token(TokenRefusal),
    #[error(transparent)]
    Ek(EkRefusal),
}

/// Serializable as a whole: it is the Raft state machine's snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    master_id: Option<String>,
    next_agent_seq: u64,
    agents: BTreeMap<String, AgentRecord>,
    next_framework_seq: u64,
    frameworks: BTreeMap<String, FrameworkRecord>,
    removed_frameworks: BTreeMap<String, RemovedFramework>,
    weights: BTreeMap<String, f64>,
    quotas: BTreeMap<String, QuotaConfig>,
    #[serde(default)]
    tokens: BTreeMap<String, TokenRecord>,
    /// By fingerprint.
    #[serde(default)]
    eks: BTreeMap<String, EkRecord>,
    /// Agents marked gone, by id: when.
    #[serde(default)]
    gone: BTreeMap<String, f64>,
    #[serde(default)]
    maintenance: Maintenance,
}

impl Registry {
    pub fn master_id(&self) -> Option<&str> {
        self.master_id.as_deref()
    }

    pub fn agents(&self) -> impl Iterator<Item = &AgentRecord> {
        self.agents.values()
    }

    pub fn agent(&self, id: &str) -> Option<&AgentRecord> {
        self.agents.get(id)
    }

    /// Checks that `cmd` would apply, without changing anything, and that
    /// it reads back from its log encoding exactly as it is (a value JSON
    /// cannot carry, such as a NaN, or resources that do not survive their
    /// v1 form, would otherwise be committed and then refuse to replay).
    /// The shell persists a command only after this succeeds, so
    /// [`Registry::apply`] of a persisted command never fails.
    pub fn validate(&self, cmd: &Command) -> Result<(), RegistryError> {
        self.check(cmd)?;
        let unrecordable = |e: String| {
            RegistryError::InvalidRequest(format!("the command cannot be recorded: {e}"))
        };
        let text = serde_json::to_string(cmd).map_err(|e| unrecordable(e.to_string()))?;
        let back: Command = serde_json::from_str(&text).map_err(|e| unrecordable(e.to_string()))?;
        if &back != cmd {
            return Err(unrecordable("it would not read back as written".into()));
        }
        Ok(())
    }

    /// [`Registry::validate`] without the encoding check (what replaying a
    /// recorded command needs).
    fn check(&self, cmd: &Command) -> Result<(), RegistryError> {
        if let Command::Bootstrap { .. } = cmd {
            return match &self.master_id {
                Some(id) => Err(RegistryError::AlreadyBootstrapped(id.clone())),
                None => Ok(()),
            };
        }
        if self.master_id.is_none() {
            return Err(RegistryError::NotBootstrapped);
        }
        match cmd {
            Command::Bootstrap { .. }
            | Command::DisconnectAgents { .. }
            | Command::AddFramework { .. } => Ok(()),
            Command::AdmitAgent { info, .. } => {
                self.not_down(info)?;
                limits::agent_info(info)
            }
            Command::ReadmitAgent { agent_id, info, .. } => {
                if keel_api::valid_id(agent_id) {
                    self.not_gone(agent_id)?;
                    self.not_down(info)?;
                    limits::agent_info(info)
                } else {
                    Err(RegistryError::InvalidAgentId(agent_id.clone()))
                }
            }
            Command::DisconnectAgent { agent_id, .. }
            | Command::MarkAgentUnreachable { agent_id, .. } => {
                self.known_agent(agent_id).map(|_| ())
            }
            Command::MarkAgentGone { agent_id, .. } => self.validate_gone(agent_id),
            Command::ReaddFramework { framework_id, .. } => self.validate_readd(framework_id),
            Command::UpdateFramework { framework_id, .. }
            | Command::RemoveFramework { framework_id, .. } => self.known_framework(framework_id),
            Command::UpdateWeights { weights } => Registry::validate_weights(weights),
            Command::UpdateQuotas { configs } => Registry::validate_quotas(configs),
            Command::ReserveResources {
                agent_id,
                resources,
            } => self.validate_reserve(agent_id, resources),
            Command::UnreserveResources {
                agent_id,
                resources,
            } => self.validate_unreserve(agent_id, resources),
            Command::CreateVolumes { agent_id, volumes } => self.validate_create(agent_id, volumes),
            Command::DestroyVolumes { agent_id, volumes } => {
                self.validate_destroy(agent_id, volumes)
            }
            Command::ResizeVolume {
                agent_id,
                role,
                id,
                disk_mb,
            } => self.validate_resize(agent_id, role, id, *disk_mb),
            Command::Token(t) => self.validate_token(t),
            Command::Ek(e) => self.validate_ek(e),
            Command::Maintenance(m) => self.validate_maintenance(m),
        }
    }

    /// Applies `cmd` if [`Registry::validate`] accepts it; otherwise
    /// nothing changes.
    pub fn apply(&mut self, cmd: &Command) -> Result<Applied, RegistryError> {
        self.check(cmd)?;
        match cmd {
            Command::Bootstrap { master_id } => {
                self.master_id = Some(master_id.clone());
                Ok(Applied::Bootstrapped)
            }
            Command::AdmitAgent { info, at } => Ok(self.apply_admit(info, *at)),
            Command::ReadmitAgent { agent_id, info, at } => {
                Ok(self.apply_readmit(agent_id, info, *at))
            }
            Command::DisconnectAgent { agent_id, .. } => self.apply_disconnect(agent_id),
            Command::DisconnectAgents { agent_ids, .. } => Ok(self.apply_disconnect_all(agent_ids)),
            Command::MarkAgentUnreachable { agent_id, at } => self.apply_unreachable(agent_id, *at),
            Command::MarkAgentGone { agent_id, at } => Ok(self.apply_gone(agent_id, *at)),
            Command::AddFramework { info, at } => Ok(self.apply_add_framework(info, *at)),
            Command::ReaddFramework {
                framework_id,
                info,
                at,
            } => Ok(self.apply_readd_framework(framework_id, info, *at)),
            Command::UpdateFramework { framework_id, info } => {
                self.apply_update_framework(framework_id, info)
            }
            Command::RemoveFramework { framework_id, at } => {
                self.apply_remove_framework(framework_id, *at)
            }
            Command::UpdateWeights { weights } => Ok(self.apply_weights(weights)),
            Command::UpdateQuotas { configs } => Ok(self.apply_quotas(configs)),
            Command::ReserveResources {
                agent_id,
                resources,
            } => self.apply_reserve(agent_id, resources),
            Command::UnreserveResources {
                agent_id,
                resources,
            } => self.apply_unreserve(agent_id, resources),
            Command::CreateVolumes { agent_id, volumes } => self.apply_create(agent_id, volumes),
            Command::DestroyVolumes { agent_id, volumes } => self.apply_destroy(agent_id, volumes),
            Command::ResizeVolume {
                agent_id,
                role,
                id,
                disk_mb,
            } => self.apply_resize(agent_id, role, id, *disk_mb),
            Command::Token(t) => Ok(self.apply_token(t)),
            Command::Ek(e) => Ok(self.apply_ek(e)),
            Command::Maintenance(m) => Ok(self.apply_maintenance(m)),
        }
    }
}

#[cfg(test)]
mod props;
#[cfg(test)]
pub(crate) mod tests;
