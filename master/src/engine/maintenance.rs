//! Maintenance and drain in the engine. Every change is one registry
//! [`MaintenanceCommand`], planned here, committed by the shell and then
//! acted on ([`Engine::maintenance_committed`]):
//!
//! - a new schedule (or machines up again): offers whose unavailability
//!   changed are rescinded, to be sent again as they now are; inverse
//!   offers for agents no longer scheduled are rescinded (`inverse.rs`
//!   sends the new ones in the next allocation cycle);
//! - machines DOWN: their agents were removed from the registry; their
//!   tasks become TASK_LOST (TASK_GONE_BY_OPERATOR for PARTITION_AWARE
//!   frameworks), their sessions are told to shut the frameworks down and
//!   refused, as for a gone agent (`gone.rs`);
//! - DRAIN_AGENT: no offers (outstanding ones rescinded), every task
//!   killed with its kill policy's grace period capped by
//!   `max_grace_period`; once no task is left (terminal and acknowledged)
//!   the shell records it DRAINED ([`Engine::settled_drains`]), then gone
//!   with `mark_gone`;
//! - DEACTIVATE_AGENT: no offers, tasks keep running; REACTIVATE_AGENT:
//!   offers again, and any drain ends.
//!
//! A re-registering agent is deactivated again, and a draining one has
//! its tasks killed again ([`Engine::maintain_registered`]): after a
//! leader change the new leader learns its tasks only then.

use std::collections::BTreeSet;
use std::time::Duration;

use keel_api::mesos::{KillPolicy, Nanos};

use super::{Engine, EngineError, Now, Planned, inverse, offers, unexpected};
use crate::registry::{AgentState, Applied, Command, DrainState, MaintenanceCommand};

/// The grace period a task gets when its kill policy names none (the
/// agents' default, as Mesos' executors').
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);

/// What the sessions of a DOWN machine's agents are refused with.
pub fn down_message(agent_id: &str) -> String {
    format!("the machine of agent {agent_id} was brought down for maintenance")
}

/// The grace period of a drain's kill: the task's own (or the default)
/// capped by `max_ns`; without a cap, the task's kill policy as it is.
pub fn drain_grace(task: Option<&KillPolicy>, max_ns: Option<i64>) -> Option<KillPolicy> {
    let max = max_ns?.max(0);
    let own = task
        .and_then(|k| k.grace_period)
        .map_or(DEFAULT_GRACE.as_nanos() as i64, |g| g.nanoseconds.max(0));
    Some(KillPolicy {
        grace_period: Some(Nanos {
            nanoseconds: own.min(max),
        }),
    })
}

impl Engine {
    /// Plans a maintenance change: the registry's validation refuses what
    /// would not apply, with Mesos' reasons.
    pub fn plan_maintenance(&self, cmd: MaintenanceCommand) -> Result<Planned<()>, EngineError> {
        self.plan(Command::Maintenance(cmd), ())
    }

    /// The change is committed: the engine acts on it.
    pub fn maintenance_committed(
        &mut self,
        cmd: &MaintenanceCommand,
        applied: &Applied,
        now: Now,
    ) -> Result<(), EngineError> {
        let removed = match applied {
            Applied::Maintenance { removed_agents } => removed_agents.clone(),
            Applied::Unchanged => return Ok(()),
            other => return Err(unexpected("a maintenance change", other)),
        };
        match cmd {
            MaintenanceCommand::UpdateSchedule { .. } | MaintenanceCommand::Stop { .. } => {
                self.schedule_changed();
            }
            MaintenanceCommand::Start { .. } => {
                for agent_id in removed {
                    tracing::warn!(%agent_id, "agent's machine brought down for maintenance");
                    self.evict_agent(
                        &agent_id,
                        "Agent's machine was brought down for maintenance",
                        down_message(&agent_id),
                        now,
                    );
                }
                self.schedule_changed();
            }
            MaintenanceCommand::Drain { agent_id, .. } => {
                tracing::info!(%agent_id, "draining agent");
                self.deactivate(agent_id);
                self.kill_for_drain(agent_id, now);
            }
            MaintenanceCommand::Drained { agent_id } => {
                tracing::info!(%agent_id, "agent drained");
            }
            MaintenanceCommand::Deactivate { agent_id } => {
                tracing::info!(%agent_id, "agent deactivated");
                self.deactivate(agent_id);
            }
            MaintenanceCommand::Reactivate { agent_id } => {
                tracing::info!(%agent_id, "agent reactivated");
                if self.agents.session(agent_id).is_some() {
                    self.allocator.activate_agent(agent_id);
                }
                self.allocate_soon();
            }
        }
        Ok(())
    }

    /// Offers whose unavailability is no longer the agent's are
    /// rescinded; inverse offers for unscheduled agents too.
    fn schedule_changed(&mut self) {
        let scheduled = self.registry.scheduled_agents();
        let now = |agent_id: &str| scheduled.get(agent_id).map(|w| inverse::unavailability(w));
        let stale_offers: BTreeSet<String> = offers::offers_unavailability(self)
            .into_iter()
            .filter(|(agent_id, u)| *u != now(agent_id))
            .map(|(agent_id, _)| agent_id)
            .collect();
        let unscheduled: Vec<String> = inverse::agents_asked(self)
            .into_iter()
            .filter(|a| !scheduled.contains_key(a.as_str()))
            .collect();
        for agent_id in stale_offers {
            offers::rescind_agent_offers(self, &agent_id);
        }
        for agent_id in unscheduled {
            inverse::rescind_agent(self, &agent_id, true);
        }
        self.allocate_soon();
    }

    /// No offers for the agent: its outstanding ones are rescinded.
    fn deactivate(&mut self, agent_id: &str) {
        offers::rescind_agent_offers(self, agent_id);
        self.allocator.deactivate_agent(agent_id);
    }

    /// Kills every task on a draining agent that is not terminal yet.
    fn kill_for_drain(&mut self, agent_id: &str, now: Now) {
        let Some(drain) = self.registry.maintenance().drains.get(agent_id) else {
            return;
        };
        if drain.state != DrainState::Draining {
            return;
        }
        let max = drain.max_grace_period_ns;
        let mut kills: Vec<(String, String, Option<KillPolicy>)> = self
            .tasks
            .on_agent(agent_id)
            .filter(|t| !t.state.is_terminal())
            .map(|t| {
                let policy = drain_grace(t.info.kill_policy.as_ref(), max);
                (t.framework_id.clone(), t.task_id.clone(), policy)
            })
            .collect();
        kills.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        for (framework_id, task_id, policy) in kills {
            self.kill(&framework_id, &task_id, policy, now);
        }
    }

    /// An agent (re-)registered: deactivated again if the registry says
    /// so, and a draining one has its tasks killed again.
    pub(super) fn maintain_registered(&mut self, agent_id: &str, now: Now) {
        if self.registry.maintenance().deactivated.contains(agent_id) {
            self.allocator.deactivate_agent(agent_id);
        }
        self.kill_for_drain(agent_id, now);
    }

    /// Draining agents with no task left (each terminal and acknowledged):
    /// what the shell records as DRAINED next. An agent the master has not
    /// heard from since it took over may still have tasks, and so may an
    /// unreachable one: they wait.
    pub fn settled_drains(&self) -> Vec<String> {
        let draining: Vec<&String> = self
            .registry
            .maintenance()
            .drains
            .iter()
            .filter(|(_, d)| d.state == DrainState::Draining)
            .map(|(id, _)| id)
            .filter(|id| !self.agents.recovering(id))
            .filter(|id| {
                self.registry
                    .agent(id)
                    .is_some_and(|a| a.state != AgentState::Unreachable)
            })
            .collect();
        if draining.is_empty() {
            return Vec::new();
        }
        draining
            .into_iter()
            .filter(|id| self.tasks.on_agent(id).next().is_none())
            .cloned()
            .collect()
    }

    /// Whether the agent is drained and asked to be marked gone then.
    pub fn drained_and_going(&self, agent_id: &str) -> bool {
        self.registry
            .maintenance()
            .drains
            .get(agent_id)
            .is_some_and(|d| d.state == DrainState::Drained && d.mark_gone)
    }
}
