//! MARK_AGENT_GONE: an operator removes an agent for good (and the
//! eviction it shares with START_MAINTENANCE, `maintenance.rs`). Its tasks
//! become TASK_GONE_BY_OPERATOR (TASK_LOST for frameworks that are not
//! PARTITION_AWARE), reason `REASON_AGENT_REMOVED_BY_OPERATOR`, as Mesos'
//! `Master::markGone` does; its offers are rescinded, its resources leave
//! the allocator, the agent is told to shut its frameworks' tasks down and
//! its session is refused and closed. The registry keeps its id as gone, so
//! it cannot register again (`crate::registry::gone`).

use std::collections::BTreeSet;

use keel_api::mesos::{Id, TaskState};
use keel_api::scheduler::{Event, Failure};

use super::tasks::master_status;
use super::{Effect, Engine, EngineError, Now, Planned, ToAgent, offers, unexpected};
use crate::registry::{Applied, Command};

/// The reason a gone agent's tasks and session are given.
pub const GONE_REASON: &str = "REASON_AGENT_REMOVED_BY_OPERATOR";

/// What the agent's session is refused with.
pub fn gone_message(agent_id: &str) -> String {
    format!("agent {agent_id} was marked gone by an operator")
}

impl Engine {
    /// Plans marking `agent_id` gone: `None` when it already is (Mesos
    /// answers such a repeat 200 without a write); an unknown agent is
    /// the registry's `UnknownAgent`.
    pub fn mark_agent_gone(
        &self,
        agent_id: &str,
        now: Now,
    ) -> Result<Option<Planned<()>>, EngineError> {
        if self.registry.gone_agent(agent_id).is_some() {
            return Ok(None);
        }
        let command = Command::MarkAgentGone {
            agent_id: agent_id.to_string(),
            at: now.unix,
        };
        self.plan(command, ()).map(Some)
    }

    /// The agent is recorded gone: its tasks, offers, resources and
    /// session go.
    pub fn agent_gone(
        &mut self,
        agent_id: &str,
        applied: &Applied,
        now: Now,
    ) -> Result<(), EngineError> {
        match applied {
            Applied::AgentGone { agent_id: a } if a == agent_id => {}
            Applied::Unchanged => return Ok(()),
            other => return Err(unexpected("marking an agent gone", other)),
        }
        tracing::warn!(%agent_id, "agent marked gone by an operator");
        self.evict_agent(
            agent_id,
            "Agent has been marked gone",
            gone_message(agent_id),
            now,
        );
        Ok(())
    }

    /// The agent left the registry for good or until its machine is up
    /// again (MARK_AGENT_GONE, START_MAINTENANCE): its tasks (with
    /// `task_message`), offers, inverse offers, resources and session go;
    /// the session is refused with `refusal` first.
    pub(super) fn evict_agent(
        &mut self,
        agent_id: &str,
        task_message: &str,
        refusal: String,
        now: Now,
    ) {
        self.metering.counters.slave_removals += 1;
        offers::rescind_agent_offers(self, agent_id);
        super::inverse::rescind_agent(self, agent_id, true);
        self.allocator.remove_agent(agent_id);
        self.forget_agent_executors(agent_id);
        let frameworks = self.tasks_gone(agent_id, task_message, now);
        if let Some(session) = self.agents.forget(agent_id) {
            for framework_id in frameworks {
                self.emit(Effect::ToAgent {
                    agent_id: agent_id.to_string(),
                    session,
                    message: ToAgent::ShutdownFramework { framework_id },
                });
            }
            self.emit(Effect::ToAgent {
                agent_id: agent_id.to_string(),
                session,
                message: ToAgent::Refuse { reason: refusal },
            });
            self.emit(Effect::CloseAgentSession {
                agent_id: agent_id.to_string(),
                session,
            });
        }
        let mut subscribed: Vec<String> = self.frameworks.keys().cloned().collect();
        subscribed.sort();
        for fw in subscribed {
            self.send_framework(
                &fw,
                Event::Failure(Failure {
                    agent_id: Some(Id::new(agent_id)),
                    executor_id: None,
                    status: None,
                }),
            );
        }
        self.observe_agent_removed(agent_id);
        self.allocate_soon();
    }

    /// The sessions of `agent_ids` are refused with `reason` and closed
    /// (their credential was revoked: an endorsement key denied). The
    /// agents stay registered: their streams end, which records them as
    /// disconnected, and they are refused when they register again.
    pub fn refuse_agent_sessions(&mut self, agent_ids: &[String], reason: &str) {
        for agent_id in agent_ids {
            let Some(session) = self.agents.session(agent_id) else {
                continue;
            };
            tracing::warn!(%agent_id, %reason, "closing the agent's session");
            self.emit(Effect::ToAgent {
                agent_id: agent_id.clone(),
                session,
                message: ToAgent::Refuse {
                    reason: reason.to_string(),
                },
            });
            self.emit(Effect::CloseAgentSession {
                agent_id: agent_id.clone(),
                session,
            });
        }
    }

    /// Every task on the agent that is not terminal yet becomes
    /// TASK_GONE_BY_OPERATOR (or TASK_LOST) and completes; returns the
    /// frameworks that had tasks there.
    fn tasks_gone(&mut self, agent_id: &str, message: &str, now: Now) -> BTreeSet<String> {
        let keys = self.tasks.keys_on(agent_id);
        let mut frameworks = BTreeSet::new();
        for k in keys {
            frameworks.insert(k.0.clone());
            let terminal = self.tasks.get(&k).is_some_and(|t| t.state.is_terminal());
            if !terminal {
                let state = match self.partition_aware(&k.0) {
                    true => TaskState::TASK_GONE_BY_OPERATOR,
                    false => TaskState::TASK_LOST,
                };
                let status = master_status(&k.1, Some(agent_id), state, GONE_REASON, message, now);
                // The allocator already dropped the agent: nothing to recover.
                self.transition(&k, status.clone(), false, now);
                self.notify(&k.0, status);
            }
            self.complete(&k);
        }
        frameworks
    }
}
