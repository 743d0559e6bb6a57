//! The agent-facing gRPC service: one long-lived `Session` stream per agent.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use keel_api::convert;
use keel_api::pb::{self, agent_message::Msg as AgentMsg, master_message::Msg as MasterMsg};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::core::{Master, MasterError};
use crate::registry::{AgentInfo, RegistryError};

/// How long a new stream may take to send its `register` message.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

pub struct AgentService {
    master: Arc<Master>,
}

impl AgentService {
    pub fn new(master: Arc<Master>) -> Self {
        AgentService { master }
    }

    pub fn into_server(self) -> pb::agent_service_server::AgentServiceServer<Self> {
        pb::agent_service_server::AgentServiceServer::new(self)
    }
}

/// Decodes and checks what an agent says about itself.
pub fn agent_info_from_pb(info: &pb::AgentInfo) -> Result<AgentInfo, String> {
    if info.hostname.trim().is_empty() {
        return Err("agent info has an empty hostname".into());
    }
    let port = u16::try_from(info.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("agent port {} is not a valid port", info.port))?;
    let resources = convert::resources_from_pb(&info.resources).map_err(|e| e.to_string())?;
    let attributes = convert::attributes_from_pb(&info.attributes).map_err(|e| e.to_string())?;
    let inventory = match &info.inventory {
        Some(inv) => convert::inventory_from_pb(inv).map_err(|e| e.to_string())?,
        None => return Err("agent info carries no inventory".into()),
    };
    Ok(AgentInfo {
        hostname: info.hostname.clone(),
        ip: info.ip.clone(),
        port,
        resources,
        attributes,
        version: info.version.clone(),
        inventory,
    })
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<pb::MasterMessage, Status>> + Send>>;

#[tonic::async_trait]
impl pb::agent_service_server::AgentService for AgentService {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        if !self.master.serving() {
            let leader = crate::http::leader::leader_addr(&self.master.cluster());
            let mut status = Status::unavailable(match &leader {
                Some(l) => format!("not the leading master; leader: {l}"),
                None => "not the leading master; no leader elected".to_string(),
            });
            // Where the agent should go next, machine-readable.
            if let Some(value) = leader.and_then(|l| l.parse().ok()) {
                status.metadata_mut().insert(pb::LEADER_METADATA, value);
            }
            return Err(status);
        }
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(REGISTER_TIMEOUT, inbound.next())
            .await
            .map_err(|_| Status::deadline_exceeded("no register message within 10s"))?;
        let register = match first {
            Some(Ok(pb::AgentMessage {
                msg: Some(AgentMsg::Register(r)),
            })) => r,
            Some(Ok(_)) => {
                return Err(Status::invalid_argument(
                    "the first message of a session must be register",
                ));
            }
            Some(Err(status)) => return Err(status),
            None => return Err(Status::cancelled("stream closed before register")),
        };
        let info = register
            .info
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("register carries no agent info"))
            .and_then(|i| agent_info_from_pb(i).map_err(Status::invalid_argument))?;
        let hostname = info.hostname.clone();
        let claimed_id = Some(register.agent_id.clone()).filter(|id| !id.is_empty());

        let (tx, rx) = mpsc::channel(64);
        let reg = self
            .master
            .register(claimed_id, info, register.tasks, tx.clone())
            .await
            .map_err(|e| match e {
                MasterError::Registry(RegistryError::InvalidAgentId(_)) => {
                    Status::invalid_argument(e.to_string())
                }
                other => Status::internal(other.to_string()),
            })?;
        tracing::info!(agent_id = %reg.agent_id, %hostname,
            reregistered = reg.reregistered, "agent registered");

        let config = self.master.config();
        let registered = pb::MasterMessage {
            msg: Some(MasterMsg::Registered(pb::Registered {
                agent_id: reg.agent_id.clone(),
                master_id: self.master.master_id(),
                heartbeat_interval_ms: config.heartbeat_interval.as_millis() as u64,
                agent_timeout_ms: config.agent_timeout.as_millis() as u64,
                reregistered: reg.reregistered,
            })),
        };
        // The channel is fresh, so this cannot be full.
        let _ = tx.try_send(Ok(registered));
        drop(tx);

        let master = self.master.clone();
        tokio::spawn(async move {
            loop {
                match inbound.next().await {
                    Some(Ok(pb::AgentMessage {
                        msg: Some(AgentMsg::Heartbeat(_)),
                    })) => master.heartbeat(&reg.agent_id, reg.session),
                    Some(Ok(pb::AgentMessage {
                        msg: Some(AgentMsg::StatusUpdate(update)),
                    })) => {
                        master.heartbeat(&reg.agent_id, reg.session);
                        master.status_update(&reg.agent_id, update);
                    }
                    Some(Ok(other)) => {
                        tracing::warn!(agent_id = %reg.agent_id, ?other, "ignoring unexpected message")
                    }
                    Some(Err(status)) => {
                        tracing::info!(agent_id = %reg.agent_id, %status, "agent stream failed");
                        break;
                    }
                    None => break,
                }
            }
            master.session_closed(&reg.agent_id, reg.session).await;
        });

        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
