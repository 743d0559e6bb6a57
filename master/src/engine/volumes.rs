//! Persistent volumes by operator (`CREATE_VOLUMES`, `DESTROY_VOLUMES`,
//! `GROW_VOLUME`, `SHRINK_VOLUME`, and the legacy `/master/create-volumes`
//! and `/master/destroy-volumes`): the same registry commands as an
//! ACCEPT's CREATE and DESTROY (`changes.rs`), checked against what the
//! agent has free rather than against offers. Outstanding offers on the
//! agent may hold the disk or the volume: they are rescinded once the
//! change is known to be valid, so a refused call changes nothing.

use keel_api::resources::Resources;

use super::{Engine, EngineError, Planned, ToAgent, offers, tasks};
use crate::registry::Command;
use crate::registry::volumes::Volume;

/// What an operator asks of an agent's volumes.
#[derive(Debug, Clone, PartialEq)]
pub enum VolumeChange {
    Create(Vec<Volume>),
    /// As the request names them (found by role and id).
    Destroy(Vec<Volume>),
    /// Volume (role, id) becomes larger by `by_mb`.
    Grow {
        role: String,
        id: String,
        by_mb: f64,
    },
    /// Volume (role, id) becomes smaller by `by_mb`.
    Shrink {
        role: String,
        id: String,
        by_mb: f64,
    },
}

/// Why a volume change is refused before anything is written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VolumeError {
    /// What the change needs is used by tasks (Mesos answers 409).
    #[error("{0}")]
    InUse(String),
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
}

impl Engine {
    /// Plans an operator volume change on `agent_id`: refused (nothing
    /// changes) or the command to commit, with the agent's offers
    /// rescinded. [`Engine::volumes_changed`] follows the commit.
    pub fn change_volumes(
        &mut self,
        agent_id: &str,
        change: VolumeChange,
    ) -> Result<Planned<()>, EngineError> {
        let Some(agent) = self.registry.agent(agent_id) else {
            return Err(EngineError::UnknownAgent(agent_id.to_string()));
        };
        let in_use = |why: String| EngineError::Volume(VolumeError::InUse(why));
        let invalid = |why: String| EngineError::Volume(VolumeError::Invalid(why));
        let busy = |role: &str, id: &str| {
            if tasks::volume_in_use(self, agent_id, role, id) {
                Err(in_use(format!(
                    "volume {id} of role {role} is in use by a task"
                )))
            } else {
                Ok(())
            }
        };
        let existing = |role: &str, id: &str| {
            agent
                .volumes
                .iter()
                .find(|v| v.role == role && v.id == id)
                .cloned()
                .ok_or_else(|| {
                    invalid(format!(
                        "agent {agent_id} has no volume {id} for role {role}"
                    ))
                })
        };
        let positive = |by_mb: f64| {
            if by_mb.is_finite() && by_mb > 0.0 {
                Ok(())
            } else {
                Err(invalid(format!(
                    "the size change must be a positive scalar, not {by_mb}"
                )))
            }
        };
        // Reserved disk the change takes, which tasks must not be using.
        let mut needed = Resources::default();
        let agent_id_owned = agent_id.to_string();
        let command = match change {
            VolumeChange::Create(volumes) => {
                for v in &volumes {
                    needed.add(&v.disk());
                }
                Command::CreateVolumes {
                    agent_id: agent_id_owned,
                    volumes,
                }
            }
            VolumeChange::Destroy(volumes) => {
                for v in &volumes {
                    busy(&v.role, &v.id)?;
                }
                Command::DestroyVolumes {
                    agent_id: agent_id_owned,
                    volumes: volumes.into_iter().map(|v| (v.role, v.id)).collect(),
                }
            }
            VolumeChange::Grow { role, id, by_mb } => {
                positive(by_mb)?;
                let v = existing(&role, &id)?;
                busy(&role, &id)?;
                needed = Volume {
                    disk_mb: by_mb,
                    ..v.clone()
                }
                .disk();
                Command::ResizeVolume {
                    agent_id: agent_id_owned,
                    role,
                    id,
                    disk_mb: v.disk_mb + by_mb,
                }
            }
            VolumeChange::Shrink { role, id, by_mb } => {
                positive(by_mb)?;
                let v = existing(&role, &id)?;
                if by_mb >= v.disk_mb {
                    return Err(invalid(format!(
                        "volume {id} has {} MB: a shrink must leave some",
                        v.disk_mb
                    )));
                }
                busy(&role, &id)?;
                Command::ResizeVolume {
                    agent_id: agent_id_owned,
                    role,
                    id,
                    disk_mb: v.disk_mb - by_mb,
                }
            }
        };
        self.registry.validate(&command)?;
        if !self.free_on(agent_id).contains(&needed) {
            return Err(in_use(format!(
                "agent {agent_id}'s reserved disk {needed} is in use by tasks"
            )));
        }
        offers::rescind_agent_offers(self, agent_id);
        Ok(Planned { command, then: () })
    }

    /// What the agent has that no live task uses (offers count as free:
    /// they are rescinded before a change).
    fn free_on(&self, agent_id: &str) -> Resources {
        let Some(agent) = self.registry.agent(agent_id) else {
            return Resources::default();
        };
        let mut used = Resources::default();
        for (_, _, r) in tasks::used_on_agent(self, agent_id) {
            used.add(&r);
        }
        let total = agent.total_resources();
        total.checked_sub(&used).unwrap_or_default()
    }

    /// A committed volume change: the agent's total changes; destroyed
    /// volumes' data is deleted on the agent (if it is connected).
    pub fn volumes_changed(&mut self, command: &Command) {
        let (agent_id, destroyed) = match command {
            Command::CreateVolumes { agent_id, .. } | Command::ResizeVolume { agent_id, .. } => {
                (agent_id, None)
            }
            Command::DestroyVolumes { agent_id, volumes } => (agent_id, Some(volumes.clone())),
            _ => return,
        };
        if let Some(volumes) = destroyed
            && !self.send_agent(agent_id, ToAgent::DestroyVolumes { volumes })
        {
            tracing::warn!(%agent_id, "destroyed volumes' data stays: agent not connected");
        }
        self.reservations_updated(agent_id);
    }
}
