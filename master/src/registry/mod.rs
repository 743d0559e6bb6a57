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

mod frameworks;
pub mod roles;
pub mod volumes;

use std::collections::BTreeMap;

use keel_api::attributes::Attributes;
use keel_api::inventory::Inventory;
use keel_api::resources::Resources;
use serde::{Deserialize, Serialize};

use crate::serde_mesos;

pub use frameworks::{FrameworkRecord, RemovedFramework};
pub use roles::QuotaConfig;

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
    /// A new framework subscribes; it gets the next `<master-id>-<nnnn>` id.
    AddFramework {
        info: serde_json::Value,
        at: f64,
    },
    /// A framework subscribes again with its id (also one the registry
    /// does not know, e.g. after the master lost its state).
    ReaddFramework {
        framework_id: String,
        info: serde_json::Value,
        at: f64,
    },
    /// UPDATE_FRAMEWORK: new FrameworkInfo for a known framework.
    UpdateFramework {
        framework_id: String,
        info: serde_json::Value,
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

    /// Checks that `cmd` would apply, without changing anything. The shell
    /// persists a command only after this succeeds, so [`Registry::apply`]
    /// of a persisted command never fails.
    pub fn validate(&self, cmd: &Command) -> Result<(), RegistryError> {
        match (cmd, &self.master_id) {
            (Command::Bootstrap { .. }, Some(id)) => {
                Err(RegistryError::AlreadyBootstrapped(id.clone()))
            }
            (Command::Bootstrap { .. }, None) => Ok(()),
            (_, None) => Err(RegistryError::NotBootstrapped),
            (Command::AdmitAgent { .. } | Command::DisconnectAgents { .. }, Some(_)) => Ok(()),
            (Command::ReadmitAgent { agent_id, .. }, Some(_)) => {
                if keel_api::valid_id(agent_id) {
                    Ok(())
                } else {
                    Err(RegistryError::InvalidAgentId(agent_id.clone()))
                }
            }
            (
                Command::DisconnectAgent { agent_id, .. }
                | Command::MarkAgentUnreachable { agent_id, .. },
                Some(_),
            ) => {
                if self.agents.contains_key(agent_id) {
                    Ok(())
                } else {
                    Err(RegistryError::UnknownAgent(agent_id.clone()))
                }
            }
            (
                Command::AddFramework { .. }
                | Command::ReaddFramework { .. }
                | Command::UpdateFramework { .. }
                | Command::RemoveFramework { .. },
                Some(_),
            ) => self.validate_framework(cmd),
            (
                Command::UpdateWeights { .. }
                | Command::UpdateQuotas { .. }
                | Command::ReserveResources { .. }
                | Command::UnreserveResources { .. },
                Some(_),
            ) => self.validate_roles(cmd),
            (Command::CreateVolumes { .. } | Command::DestroyVolumes { .. }, Some(_)) => {
                self.validate_volumes(cmd)
            }
        }
    }

    pub fn apply(&mut self, cmd: &Command) -> Result<Applied, RegistryError> {
        self.validate(cmd)?;
        Ok(match cmd {
            Command::Bootstrap { master_id } => {
                self.master_id = Some(master_id.clone());
                Applied::Bootstrapped
            }
            Command::AdmitAgent { info, at } => {
                let master_id = self.master_id.as_deref().unwrap_or_default();
                let agent_id = format!("{master_id}-S{}", self.next_agent_seq);
                self.next_agent_seq += 1;
                self.agents.insert(
                    agent_id.clone(),
                    AgentRecord {
                        id: agent_id.clone(),
                        info: (**info).clone(),
                        state: AgentState::Active,
                        registered_time: *at,
                        reregistered_time: None,
                        unreachable_time: None,
                        dynamic_reservations: Resources::default(),
                        volumes: Vec::new(),
                    },
                );
                Applied::AgentAdmitted { agent_id }
            }
            Command::ReadmitAgent { agent_id, info, at } => {
                let previous = self.agents.get(agent_id).map(|a| a.state);
                match self.agents.get_mut(agent_id) {
                    Some(rec) => {
                        rec.info = (**info).clone();
                        rec.state = AgentState::Active;
                        rec.reregistered_time = Some(*at);
                        rec.unreachable_time = None;
                    }
                    None => {
                        self.agents.insert(
                            agent_id.clone(),
                            AgentRecord {
                                id: agent_id.clone(),
                                info: (**info).clone(),
                                state: AgentState::Active,
                                registered_time: *at,
                                reregistered_time: Some(*at),
                                unreachable_time: None,
                                dynamic_reservations: Resources::default(),
                                volumes: Vec::new(),
                            },
                        );
                    }
                }
                // Keep ids we hand out unique even when an agent brings an id
                // from our own sequence that we had forgotten.
                if let Some(seq) = self.own_sequence_number(agent_id) {
                    self.next_agent_seq = self.next_agent_seq.max(seq + 1);
                }
                Applied::AgentReadmitted {
                    agent_id: agent_id.clone(),
                    previous,
                }
            }
            Command::DisconnectAgent { agent_id, .. } => {
                let rec = self.agents.get_mut(agent_id).expect("validated");
                if rec.state == AgentState::Active {
                    rec.state = AgentState::Disconnected;
                    Applied::AgentDisconnected {
                        agent_id: agent_id.clone(),
                    }
                } else {
                    Applied::Unchanged
                }
            }
            Command::DisconnectAgents { agent_ids, .. } => {
                let mut count = 0;
                for id in agent_ids {
                    if let Some(rec) = self.agents.get_mut(id)
                        && rec.state == AgentState::Active
                    {
                        rec.state = AgentState::Disconnected;
                        count += 1;
                    }
                }
                if count == 0 {
                    Applied::Unchanged
                } else {
                    Applied::AgentsDisconnected { count }
                }
            }
            Command::MarkAgentUnreachable { agent_id, at } => {
                let rec = self.agents.get_mut(agent_id).expect("validated");
                if rec.state == AgentState::Unreachable {
                    Applied::Unchanged
                } else {
                    rec.state = AgentState::Unreachable;
                    rec.unreachable_time = Some(*at);
                    Applied::AgentUnreachable {
                        agent_id: agent_id.clone(),
                    }
                }
            }
            Command::AddFramework { .. }
            | Command::ReaddFramework { .. }
            | Command::UpdateFramework { .. }
            | Command::RemoveFramework { .. } => self.apply_framework(cmd),
            Command::UpdateWeights { .. }
            | Command::UpdateQuotas { .. }
            | Command::ReserveResources { .. }
            | Command::UnreserveResources { .. } => self.apply_roles(cmd),
            Command::CreateVolumes { .. } | Command::DestroyVolumes { .. } => {
                self.apply_volumes(cmd)
            }
        })
    }

    fn own_sequence_number(&self, agent_id: &str) -> Option<u64> {
        let master_id = self.master_id.as_deref()?;
        agent_id
            .strip_prefix(master_id)?
            .strip_prefix("-S")?
            .parse()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_api::resources::{Resource, Value};

    fn info(host: &str) -> Box<AgentInfo> {
        Box::new(AgentInfo {
            hostname: host.into(),
            ip: "127.0.0.1".into(),
            port: 5051,
            resources: Resources(vec![Resource {
                name: "cpus".into(),
                role: "*".into(),
                value: Value::Scalar(2.0),
            }]),
            attributes: Attributes::default(),
            version: "0.1.0".into(),
            inventory: Inventory::default(),
        })
    }

    fn bootstrapped() -> Registry {
        let mut r = Registry::default();
        r.apply(&Command::Bootstrap {
            master_id: "m1".into(),
        })
        .unwrap();
        r
    }

    #[test]
    fn commands_before_bootstrap_are_refused() {
        let mut r = Registry::default();
        let err = r
            .apply(&Command::AdmitAgent {
                info: info("a"),
                at: 1.0,
            })
            .unwrap_err();
        assert_eq!(err, RegistryError::NotBootstrapped);
        assert_eq!(r, Registry::default());
    }

    #[test]
    fn bootstrap_happens_once() {
        let mut r = bootstrapped();
        assert_eq!(
            r.apply(&Command::Bootstrap {
                master_id: "m2".into()
            }),
            Err(RegistryError::AlreadyBootstrapped("m1".into()))
        );
        assert_eq!(r.master_id(), Some("m1"));
    }

    #[test]
    fn admitted_agents_get_sequential_ids() {
        let mut r = bootstrapped();
        let a = r
            .apply(&Command::AdmitAgent {
                info: info("a"),
                at: 1.0,
            })
            .unwrap();
        let b = r
            .apply(&Command::AdmitAgent {
                info: info("b"),
                at: 2.0,
            })
            .unwrap();
        assert_eq!(
            a,
            Applied::AgentAdmitted {
                agent_id: "m1-S0".into()
            }
        );
        assert_eq!(
            b,
            Applied::AgentAdmitted {
                agent_id: "m1-S1".into()
            }
        );
        assert_eq!(r.agent("m1-S1").unwrap().info.hostname, "b");
        assert_eq!(r.agent("m1-S1").unwrap().state, AgentState::Active);
    }

    #[test]
    fn a_takeover_disconnects_every_active_agent_in_one_command() {
        let mut r = bootstrapped();
        for host in ["a", "b", "c"] {
            r.apply(&Command::AdmitAgent {
                info: info(host),
                at: 1.0,
            })
            .unwrap();
        }
        r.apply(&Command::MarkAgentUnreachable {
            agent_id: "m1-S2".into(),
            at: 2.0,
        })
        .unwrap();
        let ids = ["m1-S0", "m1-S1", "m1-S2", "unknown"].map(String::from);
        let cmd = Command::DisconnectAgents {
            agent_ids: ids.to_vec(),
            at: 3.0,
        };
        assert_eq!(
            r.apply(&cmd).unwrap(),
            Applied::AgentsDisconnected { count: 2 }
        );
        assert_eq!(r.agent("m1-S0").unwrap().state, AgentState::Disconnected);
        assert_eq!(r.agent("m1-S1").unwrap().state, AgentState::Disconnected);
        assert_eq!(r.agent("m1-S2").unwrap().state, AgentState::Unreachable);
        assert_eq!(r.apply(&cmd).unwrap(), Applied::Unchanged);
    }

    #[test]
    fn full_life_cycle() {
        let mut r = bootstrapped();
        r.apply(&Command::AdmitAgent {
            info: info("a"),
            at: 1.0,
        })
        .unwrap();
        let id = "m1-S0".to_string();
        assert_eq!(
            r.apply(&Command::DisconnectAgent {
                agent_id: id.clone(),
                at: 2.0
            })
            .unwrap(),
            Applied::AgentDisconnected {
                agent_id: id.clone()
            }
        );
        assert_eq!(
            r.apply(&Command::MarkAgentUnreachable {
                agent_id: id.clone(),
                at: 3.0
            })
            .unwrap(),
            Applied::AgentUnreachable {
                agent_id: id.clone()
            }
        );
        assert_eq!(r.agent(&id).unwrap().unreachable_time, Some(3.0));
        // Disconnecting an unreachable agent changes nothing.
        assert_eq!(
            r.apply(&Command::DisconnectAgent {
                agent_id: id.clone(),
                at: 3.5
            })
            .unwrap(),
            Applied::Unchanged
        );
        let back = r
            .apply(&Command::ReadmitAgent {
                agent_id: id.clone(),
                info: info("a2"),
                at: 4.0,
            })
            .unwrap();
        assert_eq!(
            back,
            Applied::AgentReadmitted {
                agent_id: id.clone(),
                previous: Some(AgentState::Unreachable)
            }
        );
        let rec = r.agent(&id).unwrap();
        assert_eq!(rec.state, AgentState::Active);
        assert_eq!(rec.registered_time, 1.0);
        assert_eq!(rec.reregistered_time, Some(4.0));
        assert_eq!(rec.unreachable_time, None);
        assert_eq!(rec.info.hostname, "a2");
    }

    #[test]
    fn readmitting_a_forgotten_id_keeps_ids_unique() {
        let mut r = bootstrapped();
        r.apply(&Command::ReadmitAgent {
            agent_id: "m1-S7".into(),
            info: info("old"),
            at: 1.0,
        })
        .unwrap();
        let next = r
            .apply(&Command::AdmitAgent {
                info: info("new"),
                at: 2.0,
            })
            .unwrap();
        assert_eq!(
            next,
            Applied::AgentAdmitted {
                agent_id: "m1-S8".into()
            }
        );
    }

    #[test]
    fn bad_ids_and_unknown_agents_are_refused() {
        let mut r = bootstrapped();
        assert_eq!(
            r.apply(&Command::ReadmitAgent {
                agent_id: "../etc".into(),
                info: info("x"),
                at: 1.0
            }),
            Err(RegistryError::InvalidAgentId("../etc".into()))
        );
        assert_eq!(
            r.apply(&Command::MarkAgentUnreachable {
                agent_id: "m1-S9".into(),
                at: 1.0
            }),
            Err(RegistryError::UnknownAgent("m1-S9".into()))
        );
    }

    #[test]
    fn replaying_the_same_log_gives_the_same_registry() {
        let log = vec![
            Command::Bootstrap {
                master_id: "m1".into(),
            },
            Command::AdmitAgent {
                info: info("a"),
                at: 1.0,
            },
            Command::AdmitAgent {
                info: info("b"),
                at: 1.5,
            },
            Command::DisconnectAgent {
                agent_id: "m1-S0".into(),
                at: 2.0,
            },
        ];
        let replay = |cmds: &[Command]| {
            let mut r = Registry::default();
            for c in cmds {
                r.apply(c).unwrap();
            }
            r
        };
        assert_eq!(replay(&log), replay(&log));
    }
}
