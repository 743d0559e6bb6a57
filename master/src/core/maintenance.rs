//! Maintenance and drain writes (`crate::engine`'s `maintenance.rs`):
//! each is one registry command, committed before the call answers. A
//! draining agent with no task left is recorded DRAINED by
//! [`Master::settle_drains`] (after each change and on the allocation
//! timer), and marked gone then when its drain asked for it.

use super::{Master, MasterError};
use crate::engine::InverseAnswer;
use crate::registry::{MaintenanceCommand, Registry};

impl Master {
    /// A maintenance change (schedule, machines down or up, drain,
    /// deactivation): refused as a whole or committed and acted on.
    pub async fn maintain(&self, cmd: MaintenanceCommand) -> Result<(), MasterError> {
        {
            let w = self.write().await;
            let planned = self.with(|e, _| e.plan_maintenance(cmd.clone()))?;
            let applied = self.commit(&w, planned.command).await?;
            self.with(|e, now| e.maintenance_committed(&cmd, &applied, now))?;
        }
        self.settle_drains().await;
        Ok(())
    }

    /// Records draining agents without tasks as DRAINED (and gone, when
    /// their drain asked for it).
    pub async fn settle_drains(&self) {
        if !self.serving() || self.with(|e, _| e.settled_drains()).is_empty() {
            return;
        }
        let w = self.write().await;
        for agent_id in self.with(|e, _| e.settled_drains()) {
            let cmd = MaintenanceCommand::Drained {
                agent_id: agent_id.clone(),
            };
            let result = async {
                let planned = self.with(|e, _| e.plan_maintenance(cmd.clone()))?;
                let applied = self.commit(&w, planned.command).await?;
                self.with(|e, now| e.maintenance_committed(&cmd, &applied, now))?;
                if !self.with(|e, _| e.drained_and_going(&agent_id)) {
                    return Ok(());
                }
                let Some(planned) = self.with(|e, now| e.mark_agent_gone(&agent_id, now))? else {
                    return Ok(());
                };
                let applied = self.commit(&w, planned.command).await?;
                self.with(|e, now| e.agent_gone(&agent_id, &applied, now))?;
                Ok::<(), MasterError>(())
            };
            if let Err(e) = result.await {
                tracing::error!(%agent_id, error = %e, "cannot record the agent drained");
            }
        }
    }

    /// The registry (its schedule and machines) and the frameworks'
    /// answers to inverse offers (none on a follower).
    pub fn maintenance_status(&self) -> (Registry, Vec<InverseAnswer>) {
        if self.serving() {
            let state = self.lock();
            return (
                state.engine.registry().clone(),
                state.engine.inverse_answers(),
            );
        }
        (self.replicator.registry(), Vec::new())
    }
}
