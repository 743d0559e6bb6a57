//! Roles as operators see them: weights, quota, and operator-made dynamic
//! reservations (`RESERVE_RESOURCES` / `UNRESERVE_RESOURCES`).

use keel_api::resources::Resources;

use super::{Engine, EngineError, Planned, offers};
use crate::allocator::{Quota, RoleSummary};
use crate::registry::{Command, QuotaConfig};

fn quota_of(q: &QuotaConfig) -> Option<Quota> {
    (!(q.guarantees.is_empty() && q.limits.is_empty())).then(|| Quota {
        guarantee: q.guarantees.clone(),
        limit: (!q.limits.is_empty()).then(|| q.limits.clone()),
    })
}

/// After a takeover: the stored weights and quotas go into the allocator.
pub(super) fn load_into_allocator(e: &mut Engine) {
    let weights: Vec<(String, f64)> = e.registry.weights().map(|(r, w)| (r.clone(), *w)).collect();
    let quotas: Vec<QuotaConfig> = e.registry.quotas().cloned().collect();
    for (role, w) in weights {
        if let Err(err) = e.allocator.set_weight(&role, w) {
            tracing::warn!(%role, error = %err, "stored weight refused by the allocator");
        }
    }
    for q in quotas {
        if let Err(err) = e.allocator.set_quota(&q.role, quota_of(&q)) {
            tracing::warn!(role = %q.role, error = %err, "stored quota refused by the allocator");
        }
    }
}

impl Engine {
    /// UPDATE_WEIGHTS: all or nothing.
    pub fn update_weights(&self, weights: Vec<(String, f64)>) -> Result<Planned<()>, EngineError> {
        self.plan(Command::UpdateWeights { weights }, ())
    }

    /// UPDATE_QUOTA: all or nothing; empty guarantees and limits remove a
    /// quota.
    pub fn update_quotas(&self, configs: Vec<QuotaConfig>) -> Result<Planned<()>, EngineError> {
        self.plan(Command::UpdateQuotas { configs }, ())
    }

    /// A committed UPDATE_WEIGHTS or UPDATE_QUOTA reaches the allocator.
    pub fn roles_updated(&mut self, command: &Command) -> Result<(), EngineError> {
        match command {
            Command::UpdateWeights { weights } => {
                for (role, weight) in weights {
                    self.allocator.set_weight(role, *weight)?;
                }
            }
            Command::UpdateQuotas { configs } => {
                for q in configs {
                    self.allocator.set_quota(&q.role, quota_of(q))?;
                }
            }
            _ => {}
        }
        self.allocate_soon();
        Ok(())
    }

    /// Operator RESERVE_RESOURCES (`reserve`) or UNRESERVE_RESOURCES on an
    /// agent. Offers on the agent may hold what is being (un)reserved: they
    /// are rescinded first.
    pub fn reserve_resources(
        &mut self,
        agent_id: &str,
        resources: Resources,
        reserve: bool,
    ) -> Result<Planned<()>, EngineError> {
        if self.registry.agent(agent_id).is_none() {
            return Err(EngineError::UnknownAgent(agent_id.to_string()));
        }
        let agent_id = agent_id.to_string();
        let command = if reserve {
            Command::ReserveResources {
                agent_id,
                resources,
            }
        } else {
            Command::UnreserveResources {
                agent_id,
                resources,
            }
        };
        self.registry.validate(&command)?;
        if let Command::ReserveResources { agent_id, .. }
        | Command::UnreserveResources { agent_id, .. } = &command
        {
            offers::rescind_agent_offers(self, agent_id);
        }
        Ok(Planned { command, then: () })
    }

    /// The reservation is recorded: the agent's total changes.
    pub fn reservations_updated(&mut self, agent_id: &str) {
        let total = self
            .registry
            .agent(agent_id)
            .map(|a| a.total_resources())
            .unwrap_or_default();
        self.allocator.update_agent_total(agent_id, total);
        self.allocate_soon();
    }

    pub fn role_summary(&self) -> Vec<RoleSummary> {
        self.allocator.role_summary()
    }

    /// Weights as stored (roles without an explicit weight have 1.0).
    pub fn weights(&self) -> Vec<(String, f64)> {
        self.registry
            .weights()
            .map(|(r, w)| (r.clone(), *w))
            .collect()
    }

    pub fn quotas(&self) -> Vec<QuotaConfig> {
        self.registry.quotas().cloned().collect()
    }
}
