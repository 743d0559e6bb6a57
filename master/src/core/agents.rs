//! The agent-facing inputs: registration, heartbeats, status updates, the
//! end of a session, and the heartbeat round that finds silent agents.

use keel_api::pb;

use super::links::SessionSender;
use super::{Master, MasterError};
use crate::engine::{AgentUpdate, Registration, ReportedExecutor, ReportedTask};
use crate::registry::{AgentInfo, Applied};

/// What a (re-)registering agent runs.
#[derive(Debug, Default)]
pub struct AgentReport {
    pub tasks: Vec<ReportedTask>,
    pub executors: Vec<ReportedExecutor>,
}

impl Master {
    /// Admits or readmits an agent and makes `tx` its only session; the
    /// first message on it is `Registered`, with the certificate `certify`
    /// makes for the agent id (empty: none). `reported` are the tasks and
    /// executors it runs (re-registration); `ek` the fingerprint of the endorsement key
    /// its certificate or attestation names (its session is closed when
    /// an operator denies that key).
    pub async fn register(
        &self,
        claimed: Option<String>,
        info: AgentInfo,
        reported: AgentReport,
        tx: SessionSender,
        ek: Option<String>,
        certify: impl FnOnce(&str) -> String,
    ) -> Result<Registration, MasterError> {
        let w = self.write().await;
        let planned = self.with(|e, now| e.register_agent(claimed, info, now))?;
        let applied = self.commit(&w, planned.command).await?;
        let config = self.config();
        // Signed outside the lock.
        let certificate_pem = match &applied {
            Applied::AgentAdmitted { agent_id } | Applied::AgentReadmitted { agent_id, .. } => {
                certify(agent_id)
            }
            _ => String::new(),
        };
        self.with_links(|state, now| {
            if let Applied::AgentAdmitted { agent_id } | Applied::AgentReadmitted { agent_id, .. } =
                &applied
            {
                state
                    .engine
                    .executors_reported(agent_id, reported.executors);
            }
            let reg = state
                .engine
                .agent_registered(&applied, reported.tasks, now)?;
            let registered = pb::MasterMessage {
                msg: Some(pb::master_message::Msg::Registered(pb::Registered {
                    agent_id: reg.agent_id.clone(),
                    master_id: state
                        .engine
                        .registry()
                        .master_id()
                        .unwrap_or_default()
                        .into(),
                    heartbeat_interval_ms: config.heartbeat_interval.as_millis() as u64,
                    agent_timeout_ms: config.agent_timeout.as_millis() as u64,
                    reregistered: reg.reregistered,
                    certificate_pem,
                })),
            };
            // The channel is fresh: this is its first message.
            let _ = tx.try_send(Ok(registered));
            state.links.add_agent(&reg.agent_id, reg.session, tx, ek);
            Ok(reg)
        })
    }

    /// Something arrived on the agent's session.
    pub fn heartbeat(&self, agent_id: &str, session: u64) {
        self.with(|e, now| e.agent_heard(agent_id, session, now));
    }

    /// A status update from the agent's session.
    pub fn status_update(&self, agent_id: &str, session: u64, update: AgentUpdate) {
        self.with(|e, now| {
            e.agent_heard(agent_id, session, now);
            e.status_update(agent_id, update, now)
        });
    }

    /// An executor's MESSAGE for its scheduler.
    pub fn executor_message(&self, agent_id: &str, session: u64, m: &pb::ExecutorMessage) {
        self.with(|e, now| {
            e.agent_heard(agent_id, session, now);
            e.executor_message(agent_id, &m.framework_id, &m.executor_id, &m.data)
        });
    }

    /// An executor on the agent ended.
    pub fn executor_exited(&self, agent_id: &str, session: u64, m: &pb::ExecutorExited) {
        self.with(|e, now| {
            e.agent_heard(agent_id, session, now);
            e.executor_exited(agent_id, &m.framework_id, &m.executor_id, m.status, now)
        });
    }

    /// The agent's stream ended. Only the current session counts.
    pub async fn session_closed(&self, agent_id: &str, session: u64) {
        let w = self.write().await;
        let Some(planned) = self.with(|e, now| e.agent_session_closed(agent_id, session, now))
        else {
            return;
        };
        match self.commit(&w, planned.command).await {
            Ok(applied) => self.with(|e, _| e.agent_disconnected(agent_id, &applied)),
            Err(e) => tracing::error!(%agent_id, error = %e, "cannot record disconnect"),
        }
    }

    /// One heartbeat round: pings every session, marks agents unreachable
    /// that were silent for the agent timeout, removes frameworks whose
    /// failover timeout passed, rescinds offers past the offer timeout.
    pub async fn tick(&self) {
        if !self.serving() {
            return;
        }
        let expired = self.with(|e, now| e.agent_heartbeats(now));
        if !expired.is_empty() {
            let w = self.write().await;
            for agent_id in expired {
                // It may have come back while we waited for the write lock.
                let Some(planned) = self.with(|e, now| e.agent_expired(&agent_id, now)) else {
                    continue;
                };
                match self.commit(&w, planned.command).await {
                    Ok(_) => self.with(|e, now| e.agent_unreachable(&agent_id, now)),
                    Err(e) => {
                        tracing::error!(%agent_id, error = %e, "cannot mark agent unreachable")
                    }
                }
            }
        }
        for framework_id in self.with(|e, now| e.expired_frameworks(now)) {
            tracing::info!(%framework_id, "failover timeout expired; removing framework");
            if let Err(e) = self.remove_framework(&framework_id).await {
                tracing::error!(%framework_id, error = %e, "cannot remove framework");
            }
        }
        self.with(|e, now| e.expire_offers(now));
    }

    /// HEARTBEAT to every subscribed framework.
    pub fn send_heartbeats(&self) {
        if self.serving() {
            self.with(|e, _| e.framework_heartbeats());
        }
    }
}
