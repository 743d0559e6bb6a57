//! Operator writes (weights, quota, reservations, TEARDOWN) and the reads
//! the views make.

use keel_api::mesos::FrameworkInfo;
use keel_api::resources::Resources;

use super::{Master, MasterError};
use crate::allocator::RoleSummary;
use crate::engine::{FrameworkView, OfferView, TaskView};
use crate::registry::{QuotaConfig, Registry};

impl Master {
    /// UPDATE_WEIGHTS: all or nothing.
    pub async fn update_weights(&self, weights: Vec<(String, f64)>) -> Result<(), MasterError> {
        let w = self.write().await;
        let planned = self.with(|e, _| e.update_weights(weights))?;
        self.commit(&w, planned.command.clone()).await?;
        self.with(|e, _| e.roles_updated(&planned.command))?;
        Ok(())
    }

    /// UPDATE_QUOTA: all or nothing; empty guarantees and limits remove a quota.
    pub async fn update_quotas(&self, configs: Vec<QuotaConfig>) -> Result<(), MasterError> {
        let w = self.write().await;
        let planned = self.with(|e, _| e.update_quotas(configs))?;
        self.commit(&w, planned.command.clone()).await?;
        self.with(|e, _| e.roles_updated(&planned.command))?;
        Ok(())
    }

    /// Operator RESERVE_RESOURCES / UNRESERVE_RESOURCES on an agent.
    pub async fn reserve_resources(
        &self,
        agent_id: &str,
        resources: Resources,
        reserve: bool,
    ) -> Result<(), MasterError> {
        let w = self.write().await;
        let planned = self.with(|e, _| e.reserve_resources(agent_id, resources, reserve))?;
        self.commit(&w, planned.command).await?;
        self.with(|e, _| e.reservations_updated(agent_id));
        Ok(())
    }

    /// CREATE_VOLUMES, DESTROY_VOLUMES, GROW_VOLUME, SHRINK_VOLUME: checked
    /// and committed, or refused with nothing changed.
    pub async fn change_volumes(
        &self,
        agent_id: &str,
        change: crate::engine::VolumeChange,
    ) -> Result<(), MasterError> {
        let w = self.write().await;
        let planned = self.with(|e, _| e.change_volumes(agent_id, change))?;
        self.commit(&w, planned.command.clone()).await?;
        self.with(|e, _| e.volumes_changed(&planned.command));
        Ok(())
    }

    /// MARK_AGENT_GONE: recorded gone in the registry (a repeat writes
    /// nothing), then its tasks, offers, resources and session go. An
    /// unknown agent is the registry's `UnknownAgent`.
    pub async fn mark_agent_gone(&self, agent_id: &str) -> Result<(), MasterError> {
        let w = self.write().await;
        let Some(planned) = self.with(|e, now| e.mark_agent_gone(agent_id, now))? else {
            tracing::info!(%agent_id, "agent already marked gone");
            return Ok(());
        };
        let applied = self.commit(&w, planned.command).await?;
        self.with(|e, now| e.agent_gone(agent_id, &applied, now))?;
        Ok(())
    }

    /// `IP:PORT` of the agent's own port (its files API), if the master
    /// knows the agent.
    pub fn agent_address(&self, agent_id: &str) -> Option<String> {
        let address = |r: &Registry| {
            r.agent(agent_id)
                .map(|a| format!("{}:{}", a.info.ip, a.info.port))
        };
        if self.serving() {
            address(self.lock().engine.registry())
        } else {
            address(&self.replicator.registry())
        }
    }

    /// When the agent was marked gone, if it was (the leader's copy, or
    /// the committed registry on a follower).
    pub fn gone_agent(&self, agent_id: &str) -> Option<f64> {
        if self.serving() {
            self.lock().engine.registry().gone_agent(agent_id)
        } else {
            self.replicator.registry().gone_agent(agent_id)
        }
    }

    /// Operator TEARDOWN.
    pub async fn teardown(&self, framework_id: &str) -> Result<(), super::CallError> {
        self.remove_framework(framework_id).await
    }

    /// The `FrameworkInfo` of a framework the registry knows (subscribed
    /// or recovered, not removed).
    pub fn framework_info(&self, framework_id: &str) -> Option<FrameworkInfo> {
        let info = |r: &Registry| r.framework(framework_id).map(|f| f.info.clone());
        if self.serving() {
            info(self.lock().engine.registry())
        } else {
            info(&self.replicator.registry())
        }
    }

    pub fn framework_views(&self) -> Vec<FrameworkView> {
        self.snapshot().frameworks
    }

    /// Live and completed tasks, for operator views.
    pub fn tasks(&self) -> (Vec<TaskView>, Vec<TaskView>) {
        let s = self.snapshot();
        (s.live, s.completed)
    }

    pub fn outstanding_offers(&self) -> Vec<OfferView> {
        self.snapshot().offers
    }

    pub fn role_summary(&self) -> Vec<RoleSummary> {
        self.snapshot().roles
    }

    /// Weights as stored (roles without an explicit weight have 1.0).
    pub fn weights(&self) -> Vec<(String, f64)> {
        self.registry()
            .weights()
            .map(|(r, w)| (r.clone(), *w))
            .collect()
    }

    pub fn quotas(&self) -> Vec<QuotaConfig> {
        self.registry().quotas().cloned().collect()
    }

    /// The operations with an id the leader remembers (none on a
    /// follower).
    pub fn operations(&self) -> Vec<crate::engine::OperationView> {
        if !self.serving() {
            return Vec::new();
        }
        self.lock().engine.operation_views()
    }
}
