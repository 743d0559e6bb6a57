//! Roles as operators see them: weights, quota, and operator-made dynamic
//! reservations (`RESERVE_RESOURCES` / `UNRESERVE_RESOURCES`).

use keel_api::resources::Resources;

use super::{Inner, Master, MasterError};
use crate::allocator::{Quota, RoleSummary};
use crate::registry::{Command, QuotaConfig};

fn quota_of(q: &QuotaConfig) -> Quota {
    Quota {
        guarantee: q.guarantees.clone(),
        limit: (!q.limits.is_empty()).then(|| q.limits.clone()),
    }
}

/// After a restart: the stored weights and quotas go back into the allocator.
pub(super) fn load_into_allocator(inner: &mut Inner) {
    let weights: Vec<(String, f64)> = inner
        .registry
        .weights()
        .map(|(r, w)| (r.clone(), *w))
        .collect();
    let quotas: Vec<QuotaConfig> = inner.registry.quotas().cloned().collect();
    for (role, w) in weights {
        if let Err(e) = inner.allocator.set_weight(&role, w) {
            tracing::warn!(%role, error = %e, "stored weight refused by the allocator");
        }
    }
    for q in quotas {
        if let Err(e) = inner.allocator.set_quota(&q.role, Some(quota_of(&q))) {
            tracing::warn!(role = %q.role, error = %e, "stored quota refused by the allocator");
        }
    }
}

impl Master {
    /// UPDATE_WEIGHTS: all or nothing.
    pub async fn update_weights(&self, weights: Vec<(String, f64)>) -> Result<(), MasterError> {
        let w = self.write().await;
        let cmd = Command::UpdateWeights {
            weights: weights.clone(),
        };
        self.commit(&w, cmd).await?;
        let mut inner = self.lock();
        for (role, weight) in weights {
            inner.allocator.set_weight(&role, weight)?;
        }
        drop(inner);
        self.want_allocation();
        Ok(())
    }

    /// UPDATE_QUOTA: all or nothing; empty guarantees and limits remove a quota.
    pub async fn update_quotas(&self, configs: Vec<QuotaConfig>) -> Result<(), MasterError> {
        let w = self.write().await;
        let cmd = Command::UpdateQuotas {
            configs: configs.clone(),
        };
        self.commit(&w, cmd).await?;
        let mut inner = self.lock();
        for q in configs {
            let quota = (!(q.guarantees.is_empty() && q.limits.is_empty())).then(|| quota_of(&q));
            inner.allocator.set_quota(&q.role, quota)?;
        }
        drop(inner);
        self.want_allocation();
        Ok(())
    }

    /// Operator RESERVE_RESOURCES / UNRESERVE_RESOURCES on an agent.
    pub async fn reserve_resources(
        &self,
        agent_id: &str,
        resources: Resources,
        reserve: bool,
    ) -> Result<(), String> {
        let w = self.write().await;
        // Offers on the agent may hold what is being (un)reserved.
        super::offers::rescind_agent_offers(&mut self.lock(), agent_id);
        let cmd = if reserve {
            Command::ReserveResources {
                agent_id: agent_id.to_string(),
                resources,
            }
        } else {
            Command::UnreserveResources {
                agent_id: agent_id.to_string(),
                resources,
            }
        };
        self.commit(&w, cmd).await.map_err(|e| e.to_string())?;
        let mut inner = self.lock();
        let total = inner
            .registry
            .agent(agent_id)
            .map(|a| a.total_resources())
            .unwrap_or_default();
        inner.allocator.update_agent_total(agent_id, total);
        drop(inner);
        self.want_allocation();
        Ok(())
    }

    pub fn role_summary(&self) -> Vec<RoleSummary> {
        self.lock().allocator.role_summary()
    }

    /// Weights as stored (roles without an explicit weight have 1.0).
    pub fn weights(&self) -> Vec<(String, f64)> {
        self.lock()
            .registry
            .weights()
            .map(|(r, w)| (r.clone(), *w))
            .collect()
    }

    pub fn quotas(&self) -> Vec<QuotaConfig> {
        self.lock().registry.quotas().cloned().collect()
    }
}
