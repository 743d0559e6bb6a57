//! Agents an operator marked gone (`MARK_AGENT_GONE`): the agent leaves
//! the registry and its id is kept, with the time, so that it can never
//! come back under it, whatever credential it shows. Bounded like Mesos'
//! gone list (`--registry_max_agent_count`): past [`MAX_GONE`] ids the
//! oldest is forgotten.

use super::{Applied, Registry, RegistryError};

/// How many gone agent ids the registry keeps.
pub const MAX_GONE: usize = 100_000;

impl Registry {
    /// When the agent was marked gone (seconds since the epoch), if it was.
    pub fn gone_agent(&self, agent_id: &str) -> Option<f64> {
        self.gone.get(agent_id).copied()
    }

    /// Every gone agent id and when it was marked gone.
    pub fn gone_agents(&self) -> impl Iterator<Item = (&String, f64)> {
        self.gone.iter().map(|(id, at)| (id, *at))
    }

    /// Refuses what an agent marked gone may no longer do.
    pub(super) fn not_gone(&self, agent_id: &str) -> Result<(), RegistryError> {
        match self.gone.contains_key(agent_id) {
            true => Err(RegistryError::AgentGone(agent_id.to_string())),
            false => Ok(()),
        }
    }

    /// An agent the registry knows, or one already gone (a repeat changes
    /// nothing).
    pub(super) fn validate_gone(&self, agent_id: &str) -> Result<(), RegistryError> {
        if self.gone.contains_key(agent_id) {
            return Ok(());
        }
        self.known_agent(agent_id).map(|_| ())
    }

    pub(super) fn apply_gone(&mut self, agent_id: &str, at: f64) -> Applied {
        if self.gone.contains_key(agent_id) {
            return Applied::Unchanged;
        }
        self.forget_agent(agent_id);
        self.gone.insert(agent_id.to_string(), at);
        while self.gone.len() > MAX_GONE {
            let oldest = self
                .gone
                .iter()
                .min_by(|a, b| a.1.total_cmp(b.1).then_with(|| a.0.cmp(b.0)))
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => self.gone.remove(&id),
                None => break,
            };
        }
        Applied::AgentGone {
            agent_id: agent_id.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::MAX_GONE;

    fn registry_with_agent() -> (Registry, String) {
        let mut r = Registry::default();
        r.apply(&Command::Bootstrap {
            master_id: "m".into(),
        })
        .unwrap();
        let info = crate::registry::tests::info("h");
        let Ok(Applied::AgentAdmitted { agent_id }) =
            r.apply(&Command::AdmitAgent { info, at: 1.0 })
        else {
            panic!("not admitted")
        };
        (r, agent_id)
    }

    fn gone(agent_id: &str, at: f64) -> Command {
        Command::MarkAgentGone {
            agent_id: agent_id.into(),
            at,
        }
    }

    #[test]
    fn a_gone_agent_leaves_and_its_id_is_kept() {
        let (mut r, id) = registry_with_agent();
        assert_eq!(
            r.apply(&gone(&id, 5.0)),
            Ok(Applied::AgentGone {
                agent_id: id.clone()
            })
        );
        assert!(r.agent(&id).is_none());
        assert_eq!(r.gone_agent(&id), Some(5.0));
        // Idempotent: a repeat is accepted and changes nothing.
        assert_eq!(r.validate(&gone(&id, 6.0)), Ok(()));
        assert_eq!(r.apply(&gone(&id, 6.0)), Ok(Applied::Unchanged));
        assert_eq!(r.gone_agent(&id), Some(5.0));
    }

    #[test]
    fn unknown_agents_cannot_be_marked_gone() {
        let (mut r, _) = registry_with_agent();
        let before = r.clone();
        assert_eq!(
            r.validate(&gone("m-S9", 1.0)),
            Err(RegistryError::UnknownAgent("m-S9".into()))
        );
        assert!(r.apply(&gone("m-S9", 1.0)).is_err());
        assert_eq!(r, before);
    }

    #[test]
    fn a_gone_agent_cannot_come_back_or_be_changed() {
        let (mut r, id) = registry_with_agent();
        let info = r.agent(&id).unwrap().info.clone();
        r.apply(&gone(&id, 5.0)).unwrap();
        let back = Command::ReadmitAgent {
            agent_id: id.clone(),
            info: Box::new(info),
            at: 7.0,
        };
        assert_eq!(r.validate(&back), Err(RegistryError::AgentGone(id.clone())));
        assert_eq!(
            r.validate(&Command::DisconnectAgent {
                agent_id: id.clone(),
                at: 7.0
            }),
            Err(RegistryError::UnknownAgent(id.clone()))
        );
        // A new agent never gets the gone id.
        let Ok(Applied::AgentAdmitted { agent_id }) = r.apply(&Command::AdmitAgent {
            info: crate::registry::tests::info("h2"),
            at: 8.0,
        }) else {
            panic!("not admitted")
        };
        assert_ne!(agent_id, id);
        // It survives the snapshot encoding (Raft snapshots, replay).
        let text = serde_json::to_string(&r).unwrap();
        let read: Registry = serde_json::from_str(&text).unwrap();
        assert_eq!(read.gone_agent(&id), Some(5.0));
    }

    #[test]
    fn the_gone_list_is_bounded_oldest_first() {
        let (mut r, id) = registry_with_agent();
        for i in 0..MAX_GONE {
            r.gone.insert(format!("x-S{i}"), 100.0 + i as f64);
        }
        r.apply(&gone(&id, 1e9)).unwrap();
        assert_eq!(r.gone.len(), MAX_GONE);
        assert_eq!(r.gone_agent("x-S0"), None);
        assert_eq!(r.gone_agent("x-S1"), Some(101.0));
        assert_eq!(r.gone_agent(&id), Some(1e9));
    }
}
