//! The live links the engine's effects go to: one session per connected
//! agent (the gRPC stream's sender) and one connection per framework
//! stream, whatever carries it — an HTTP RecordIO response
//! (`http::scheduler`) or a channel to an in-process framework
//! ([`super::local`]). Both sit behind [`FrameworkConnection`].

use std::collections::HashMap;

use keel_api::pb::{self, master_message::Msg};
use keel_api::scheduler::Event;
use tokio::sync::mpsc;

use super::State;
use crate::engine::{Effect, Now, ToAgent};

/// Outbound half of an agent session.
pub type SessionSender = mpsc::Sender<Result<pb::MasterMessage, tonic::Status>>;

/// Why an event could not be queued on a framework's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the framework's event queue is full")]
    Full,
    #[error("the framework's connection is gone")]
    Closed,
}

/// Where a framework's events go. Dropping it ends the stream; the side
/// that reads the events tells the master when it goes away
/// ([`super::Master::stream_gone`]), so a connection holds nothing that
/// would keep the stream open.
pub trait FrameworkConnection: Send {
    /// Queues `event` without waiting.
    fn send(&self, event: &Event) -> Result<(), SendError>;
    /// Events that can be queued now.
    fn room(&self) -> usize;
}

/// One agent's session: its sender, and the endorsement key its
/// certificate (or its attestation) names, if any.
struct AgentLink {
    session: u64,
    tx: SessionSender,
    ek: Option<String>,
}

#[derive(Default)]
pub(crate) struct Links {
    agents: HashMap<String, AgentLink>,
    streams: HashMap<String, Box<dyn FrameworkConnection>>,
    /// Operator event subscribers.
    pub(crate) subscribers: super::events::Subscribers,
}

impl Links {
    pub(crate) fn add_agent(
        &mut self,
        agent_id: &str,
        session: u64,
        tx: SessionSender,
        ek: Option<String>,
    ) {
        self.agents
            .insert(agent_id.to_string(), AgentLink { session, tx, ek });
    }

    /// The agents whose session was admitted with the endorsement key
    /// `fingerprint`, sorted.
    pub(crate) fn agents_with_ek(&self, fingerprint: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, l)| l.ek.as_deref() == Some(fingerprint))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    pub(crate) fn add_stream(&mut self, stream: &str, conn: Box<dyn FrameworkConnection>) {
        self.streams.insert(stream.to_string(), conn);
    }

    pub(crate) fn remove_stream(&mut self, stream: &str) {
        self.streams.remove(stream);
    }

    /// Events the stream can queue now (`None`: no such stream).
    pub(crate) fn stream_room(&self, stream: &str) -> Option<usize> {
        self.streams.get(stream).map(|c| c.room())
    }

    /// Drops every link: agent streams and framework connections end.
    pub(crate) fn clear(&mut self) {
        self.agents.clear();
        self.streams.clear();
        self.subscribers.clear();
    }
}

/// The Keel protocol message for `message`: task infos and the framework
/// info are serialized here, once, for the agent.
pub fn to_pb(message: &ToAgent) -> pb::MasterMessage {
    let msg = match message {
        ToAgent::Launch(launch) => Msg::LaunchTasks(pb::LaunchTasks {
            framework_id: launch.framework_id.clone(),
            framework_info_json: launch.framework_info.as_ref().map(json).unwrap_or_default(),
            task_info_json: launch.tasks.iter().map(json).collect(),
            executor_info_json: launch.executor.as_ref().map(json).unwrap_or_default(),
        }),
        ToAgent::Kill {
            framework_id,
            task_id,
            grace_period_ms,
        } => Msg::KillTask(pb::KillTask {
            framework_id: framework_id.clone(),
            task_id: task_id.clone(),
            grace_period_ms: *grace_period_ms,
        }),
        ToAgent::Acknowledge {
            framework_id,
            task_id,
            uuid,
        } => Msg::Acknowledge(pb::Acknowledge {
            framework_id: framework_id.clone(),
            task_id: task_id.clone(),
            uuid: uuid.clone(),
        }),
        ToAgent::ShutdownFramework { framework_id } => {
            Msg::ShutdownFramework(pb::ShutdownFramework {
                framework_id: framework_id.clone(),
            })
        }
        ToAgent::DestroyVolumes { volumes } => Msg::DestroyVolumes(pb::DestroyVolumes {
            volumes: volumes
                .iter()
                .map(|(role, id)| pb::VolumeRef {
                    role: role.clone(),
                    id: id.clone(),
                })
                .collect(),
        }),
        ToAgent::FrameworkMessage {
            framework_id,
            executor_id,
            data,
        } => Msg::FrameworkMessage(pb::FrameworkMessage {
            framework_id: framework_id.clone(),
            executor_id: executor_id.clone(),
            data: data.clone(),
        }),
        ToAgent::ShutdownExecutor {
            framework_id,
            executor_id,
        } => Msg::ShutdownExecutor(pb::ShutdownExecutor {
            framework_id: framework_id.clone(),
            executor_id: executor_id.clone(),
        }),
        ToAgent::Refuse { reason } => Msg::Refused(pb::Refused {
            reason: reason.clone(),
        }),
        ToAgent::Heartbeat { seq, sent_unix_ms } => Msg::Heartbeat(pb::Heartbeat {
            seq: *seq,
            sent_unix_ms: *sent_unix_ms,
        }),
    };
    pb::MasterMessage { msg: Some(msg) }
}

/// Plain data as JSON text (serializing it cannot fail).
fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Performs one effect; `true` when an allocation cycle is wanted. A send
/// that fails is reported back to the engine, whose reaction the caller
/// performs next.
pub(crate) fn perform(state: &mut State, effect: Effect, now: Now) -> bool {
    match effect {
        Effect::ToAgent {
            agent_id,
            session,
            message,
        } => {
            let sent = match state.links.agents.get(&agent_id) {
                Some(l) if l.session == session => l.tx.try_send(Ok(to_pb(&message))).is_ok(),
                _ => false,
            };
            if !sent {
                state.engine.agent_send_failed(&agent_id, message, now);
            }
        }
        Effect::CloseAgentSession { agent_id, session } => {
            if state
                .links
                .agents
                .get(&agent_id)
                .is_some_and(|l| l.session == session)
            {
                state.links.agents.remove(&agent_id);
            }
        }
        Effect::ToFramework {
            framework_id,
            stream,
            event,
        } => {
            let result = match state.links.streams.get(&stream) {
                Some(conn) => conn.send(&event).map_err(Some),
                // Dropped already, by an earlier event of the same step.
                None => Err(None),
            };
            if let Err(e) = result {
                if let Some(e) = e {
                    tracing::warn!(%framework_id, error = %e, "dropping the framework's subscription");
                }
                if let Event::Offers(offers) = &event {
                    state.engine.offers_undelivered(offers, now);
                }
                state.links.streams.remove(&stream);
                state.engine.stream_closed(&framework_id, &stream, now);
            }
        }
        Effect::CloseStream { stream, .. } => {
            state.links.streams.remove(&stream);
        }
        Effect::AllocateSoon => return true,
        Effect::Observed(change) => {
            if !state.links.subscribers.publish(change) {
                state.engine.set_observed(false);
            }
        }
    }
    false
}
