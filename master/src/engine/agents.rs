//! Agents: registration (new or returning, with the tasks they report),
//! sessions, heartbeats, and the liveness timeout that marks them
//! unreachable.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use keel_api::mesos::{TaskInfo, TaskStatus};

use super::{Effect, Engine, EngineError, Now, Planned, ToAgent, loss, offers, tasks, unexpected};
use crate::registry::{AgentInfo, AgentState, Applied, Command, Registry};

/// A task an agent reports when it (re-)registers.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedTask {
    pub framework_id: String,
    pub info: TaskInfo,
    /// The latest status the agent knows for it.
    pub latest: Option<TaskStatus>,
}

/// A status update from an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentUpdate {
    pub framework_id: String,
    pub status: TaskStatus,
    /// The update's 16-byte uuid; empty when it needs no acknowledgement.
    pub uuid: Vec<u8>,
}

/// The result of a (re-)registration.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub agent_id: String,
    /// The session the agent's stream belongs to from now on.
    pub session: u64,
    pub reregistered: bool,
}

/// Sessions and liveness.
#[derive(Default)]
pub(super) struct Agents {
    /// The current session of each connected agent.
    sessions: HashMap<String, u64>,
    /// When each agent was last heard from (or is expected back by).
    last_seen: HashMap<String, Instant>,
    /// Agents known from the registry at the takeover that have not
    /// re-registered since (nor been marked unreachable): the master does
    /// not know their tasks yet.
    recovered: HashSet<String>,
    /// Tasks killed on an agent back from unreachable (their frameworks
    /// were told TASK_LOST), by agent: killed again should the agent
    /// report them at its next registration (the kill may not have
    /// reached it).
    pub(super) doomed: HashMap<String, HashSet<(String, String)>>,
    next_session: u64,
    heartbeat_seq: u64,
}

impl Agents {
    /// After a takeover: every known agent has until `until` to re-register.
    pub(super) fn expect_all(&mut self, registry: &Registry, until: Instant) {
        self.last_seen = registry.agents().map(|a| (a.id.clone(), until)).collect();
        self.recovered = registry
            .agents()
            .filter(|a| a.state != AgentState::Unreachable)
            .map(|a| a.id.clone())
            .collect();
    }

    /// Whether the agent is known from before the takeover and has not
    /// re-registered yet.
    pub(super) fn recovering(&self, agent_id: &str) -> bool {
        self.recovered.contains(agent_id)
    }

    pub(super) fn sessions(&self) -> Vec<(String, u64)> {
        self.sessions.iter().map(|(a, s)| (a.clone(), *s)).collect()
    }

    /// The agent is gone for good: nothing about it is kept; its session,
    /// if it had one.
    pub(super) fn forget(&mut self, agent_id: &str) -> Option<u64> {
        self.last_seen.remove(agent_id);
        self.recovered.remove(agent_id);
        self.sessions.remove(agent_id)
    }

    pub(super) fn session(&self, agent_id: &str) -> Option<u64> {
        self.sessions.get(agent_id).copied()
    }

    /// Whether the agent has a session that was heard from within
    /// `timeout`.
    fn is_live(&self, agent_id: &str, now: Now, timeout: std::time::Duration) -> bool {
        self.sessions.contains_key(agent_id)
            && self
                .last_seen
                .get(agent_id)
                .is_some_and(|seen| now.instant.saturating_duration_since(*seen) < timeout)
    }
}

impl Engine {
    /// An agent registers: `claimed` is the id it persisted (`None` the
    /// first time).
    pub fn register_agent(
        &self,
        claimed: Option<String>,
        info: AgentInfo,
        now: Now,
    ) -> Result<Planned<()>, EngineError> {
        if let Some(id) = &claimed
            && self.agents.is_live(id, now, self.cfg.agent_timeout)
        {
            return Err(EngineError::SessionLive(id.clone()));
        }
        let info = Box::new(info);
        let command = match claimed {
            Some(agent_id) => Command::ReadmitAgent {
                agent_id,
                info,
                at: now.unix,
            },
            None => Command::AdmitAgent { info, at: now.unix },
        };
        self.plan(command, ())
    }

    /// The registration is committed: the agent's new session replaces any
    /// older one, its offers are rescinded, the tasks it reports are taken
    /// into the task table (tasks it no longer has are gone), and the
    /// allocator learns its resources.
    pub fn agent_registered(
        &mut self,
        applied: &Applied,
        reported: Vec<ReportedTask>,
        now: Now,
    ) -> Result<Registration, EngineError> {
        let (agent_id, reregistered, was_unreachable) = match applied {
            Applied::AgentAdmitted { agent_id } => (agent_id.clone(), false, false),
            Applied::AgentReadmitted { agent_id, previous } => (
                agent_id.clone(),
                true,
                *previous == Some(AgentState::Unreachable),
            ),
            other => return Err(unexpected("a registration", other)),
        };
        if reregistered {
            self.metering.counters.slave_reregistrations += 1;
        } else {
            self.metering.counters.slave_registrations += 1;
        }
        self.agents.next_session += 1;
        let session = self.agents.next_session;
        if let Some(old) = self.agents.sessions.insert(agent_id.clone(), session) {
            tracing::info!(%agent_id, "replaced an older session of this agent");
            self.emit(Effect::CloseAgentSession {
                agent_id: agent_id.clone(),
                session: old,
            });
        }
        self.agents.last_seen.insert(agent_id.clone(), now.instant);
        self.agents.recovered.remove(&agent_id);
        offers::rescind_agent_offers(self, &agent_id);
        loss::agent_reregistered(self, &agent_id, reported, was_unreachable, now);
        self.resend_kills(&agent_id);
        let total = self
            .registry
            .agent(&agent_id)
            .map(|a| a.total_resources())
            .unwrap_or_default();
        let used = tasks::used_on_agent(self, &agent_id);
        self.allocator.remove_agent(&agent_id);
        self.allocator.add_agent(&agent_id, total, &used);
        self.maintain_registered(&agent_id, now);
        self.allocate_soon();
        self.observe_agent_added(&agent_id);
        Ok(Registration {
            agent_id,
            session,
            reregistered,
        })
    }

    /// Something arrived on the agent's session.
    pub fn agent_heard(&mut self, agent_id: &str, session: u64, now: Now) {
        if self.agents.session(agent_id) == Some(session) {
            self.agents
                .last_seen
                .insert(agent_id.to_string(), now.instant);
        }
    }

    /// The agent's stream ended. Only its current session counts: the
    /// disconnection to commit, if any.
    pub fn agent_session_closed(
        &mut self,
        agent_id: &str,
        session: u64,
        now: Now,
    ) -> Option<Planned<()>> {
        if self.agents.session(agent_id) != Some(session) {
            return None;
        }
        self.agents.sessions.remove(agent_id);
        let command = Command::DisconnectAgent {
            agent_id: agent_id.to_string(),
            at: now.unix,
        };
        self.plan(command, ()).ok()
    }

    /// The disconnection is committed: its offers go back, it gets no more.
    pub fn agent_disconnected(&mut self, agent_id: &str, applied: &Applied) {
        if let Applied::AgentDisconnected { .. } = applied {
            tracing::info!(%agent_id, "agent disconnected");
            self.allocator.deactivate_agent(agent_id);
            offers::rescind_agent_offers(self, agent_id);
        }
    }

    /// One heartbeat round: pings every session and returns the agents
    /// silent for the agent timeout (see [`Engine::agent_expired`]).
    pub fn agent_heartbeats(&mut self, now: Now) -> Vec<String> {
        self.agents.heartbeat_seq += 1;
        let seq = self.agents.heartbeat_seq;
        let mut sessions = self.agents.sessions();
        sessions.sort();
        for (agent_id, session) in sessions {
            self.emit(Effect::ToAgent {
                agent_id,
                session,
                message: ToAgent::Heartbeat {
                    seq,
                    sent_unix_ms: (now.unix * 1000.0) as u64,
                },
            });
        }
        let timeout = self.cfg.agent_timeout;
        let mut expired: Vec<String> = self
            .registry
            .agents()
            .filter(|a| a.state != AgentState::Unreachable)
            .filter(|a| {
                self.agents
                    .last_seen
                    .get(&a.id)
                    .is_none_or(|seen| now.instant.saturating_duration_since(*seen) >= timeout)
            })
            .map(|a| a.id.clone())
            .collect();
        expired.sort();
        expired
    }

    /// The agent stayed silent: its session ends and it is to be marked
    /// unreachable (`None` if it came back meanwhile).
    pub fn agent_expired(&mut self, agent_id: &str, now: Now) -> Option<Planned<()>> {
        let seen = self.agents.last_seen.get(agent_id);
        if seen.is_some_and(|s| now.instant.saturating_duration_since(*s) < self.cfg.agent_timeout)
        {
            return None;
        }
        if let Some(session) = self.agents.sessions.remove(agent_id) {
            self.emit(Effect::CloseAgentSession {
                agent_id: agent_id.to_string(),
                session,
            });
        }
        let command = Command::MarkAgentUnreachable {
            agent_id: agent_id.to_string(),
            at: now.unix,
        };
        self.plan(command, ()).ok()
    }

    /// The agent is recorded unreachable: its offers are rescinded, its
    /// tasks become TASK_UNREACHABLE (TASK_LOST for frameworks that are
    /// not PARTITION_AWARE) and every framework hears FAILURE.
    pub fn agent_unreachable(&mut self, agent_id: &str, now: Now) {
        tracing::warn!(%agent_id, timeout = ?self.cfg.agent_timeout, "agent unreachable: no heartbeat");
        self.agents.recovered.remove(agent_id);
        self.metering.counters.slave_removals += 1;
        offers::rescind_agent_offers(self, agent_id);
        self.allocator.remove_agent(agent_id);
        loss::agent_lost(self, agent_id, now);
        self.observe_agent_removed(agent_id);
    }

    /// Sends `message` to the agent's current session; `false` when it
    /// has none.
    pub(super) fn send_agent(&mut self, agent_id: &str, message: ToAgent) -> bool {
        match self.agents.session(agent_id) {
            Some(session) => {
                self.emit(Effect::ToAgent {
                    agent_id: agent_id.to_string(),
                    session,
                    message,
                });
                true
            }
            None => false,
        }
    }

    /// A message for the agent could not be sent (its queue is full, or
    /// its session is gone). A launch that cannot be sent is not left in
    /// TASK_STAGING: its tasks are dropped.
    pub fn agent_send_failed(&mut self, agent_id: &str, message: ToAgent, now: Now) {
        match message {
            ToAgent::Launch(launch) => {
                let framework_id = &launch.framework_id;
                tracing::warn!(%agent_id, %framework_id, tasks = launch.tasks.len(), "launch could not be sent to the agent; tasks dropped");
                for t in &launch.tasks {
                    tasks::launch_undeliverable(self, framework_id, &t.task_id.value, now);
                }
            }
            ToAgent::Heartbeat { .. } | ToAgent::Refuse { .. } => {}
            other => {
                // A session too slow to take its messages is closed: the
                // agent re-registers and everything is in step again (its
                // unacknowledged updates come again, so do kills, see
                // `resend_kills`). One that never comes back is marked
                // unreachable by the heartbeat timeout.
                tracing::warn!(%agent_id, message = ?other, "message to the agent could not be queued; closing its session so that it re-registers");
                if let Some(session) = self.agents.sessions.remove(agent_id) {
                    self.emit(Effect::CloseAgentSession {
                        agent_id: agent_id.to_string(),
                        session,
                    });
                }
            }
        }
    }
}
