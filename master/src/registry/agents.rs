//! Agent commands: admit, readmit, disconnect (one or all), unreachable.

use keel_api::resources::Resources;

use super::{AgentInfo, AgentRecord, AgentState, Applied, Registry, RegistryError};

impl Registry {
    pub(super) fn known_agent(&self, agent_id: &str) -> Result<&AgentRecord, RegistryError> {
        self.agents
            .get(agent_id)
            .ok_or_else(|| RegistryError::UnknownAgent(agent_id.to_string()))
    }

    pub(super) fn known_agent_mut(
        &mut self,
        agent_id: &str,
    ) -> Result<&mut AgentRecord, RegistryError> {
        self.agents
            .get_mut(agent_id)
            .ok_or_else(|| RegistryError::UnknownAgent(agent_id.to_string()))
    }

    pub(super) fn apply_admit(&mut self, info: &AgentInfo, at: f64) -> Applied {
        let master_id = self.master_id.as_deref().unwrap_or_default();
        let agent_id = format!("{master_id}-S{}", self.next_agent_seq);
        self.next_agent_seq += 1;
        self.agents.insert(
            agent_id.clone(),
            AgentRecord {
                id: agent_id.clone(),
                info: info.clone(),
                state: AgentState::Active,
                registered_time: at,
                reregistered_time: None,
                unreachable_time: None,
                dynamic_reservations: Resources::default(),
                volumes: Vec::new(),
            },
        );
        Applied::AgentAdmitted { agent_id }
    }

    /// An agent presents its persisted id; an id the registry forgot is
    /// admitted under that id.
    pub(super) fn apply_readmit(&mut self, agent_id: &str, info: &AgentInfo, at: f64) -> Applied {
        let previous = self.agents.get(agent_id).map(|a| a.state);
        match self.agents.get_mut(agent_id) {
            Some(rec) => {
                rec.info = info.clone();
                rec.state = AgentState::Active;
                rec.reregistered_time = Some(at);
                rec.unreachable_time = None;
            }
            None => {
                self.agents.insert(
                    agent_id.to_string(),
                    AgentRecord {
                        id: agent_id.to_string(),
                        info: info.clone(),
                        state: AgentState::Active,
                        registered_time: at,
                        reregistered_time: Some(at),
                        unreachable_time: None,
                        dynamic_reservations: Resources::default(),
                        volumes: Vec::new(),
                    },
                );
            }
        }
        // Keep ids we hand out unique even when an agent brings an id from
        // our own sequence that we had forgotten.
        if let Some(seq) = self.own_sequence_number(agent_id) {
            self.next_agent_seq = self.next_agent_seq.max(seq.saturating_add(1));
        }
        Applied::AgentReadmitted {
            agent_id: agent_id.to_string(),
            previous,
        }
    }

    pub(super) fn apply_disconnect(&mut self, agent_id: &str) -> Result<Applied, RegistryError> {
        let rec = self.known_agent_mut(agent_id)?;
        Ok(if rec.state == AgentState::Active {
            rec.state = AgentState::Disconnected;
            Applied::AgentDisconnected {
                agent_id: agent_id.to_string(),
            }
        } else {
            Applied::Unchanged
        })
    }

    /// A new leader takes over: every listed agent still active is
    /// disconnected; unknown ids are ignored.
    pub(super) fn apply_disconnect_all(&mut self, agent_ids: &[String]) -> Applied {
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

    pub(super) fn apply_unreachable(
        &mut self,
        agent_id: &str,
        at: f64,
    ) -> Result<Applied, RegistryError> {
        let rec = self.known_agent_mut(agent_id)?;
        Ok(if rec.state == AgentState::Unreachable {
            Applied::Unchanged
        } else {
            rec.state = AgentState::Unreachable;
            rec.unreachable_time = Some(at);
            Applied::AgentUnreachable {
                agent_id: agent_id.to_string(),
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
