//! The agent-facing gRPC service: one long-lived `Session` stream per agent.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use keel_api::convert;
use keel_api::mesos::bounded::{self, MESSAGE_LIMITS};
use keel_api::pb::{self, agent_message::Msg as AgentMsg};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::admission::{self, Admission, AdmissionError, Check, EkVerdict};
use crate::attestation::{self, EkPolicy};
use crate::core::{AgentReport, Master, MasterError, SessionSender};
use crate::engine::{AgentUpdate, EngineError, Registration, ReportedExecutor, ReportedTask};
use crate::registry::{AgentInfo, limits};
use crate::registry::{EkState, RegistryError};

/// Tasks one agent may report when it registers.
const MAX_REPORTED_TASKS: usize = 10_000;

/// How long a new stream may take to send its `register` message, by
/// default; the stream is then ended.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct AgentService {
    master: Arc<Master>,
    register_timeout: Duration,
    admission: Arc<Admission>,
    ek_policy: Arc<EkPolicy>,
}

impl AgentService {
    pub fn new(master: Arc<Master>) -> Self {
        AgentService {
            master,
            register_timeout: REGISTER_TIMEOUT,
            admission: Arc::new(Admission::open()),
            ek_policy: Arc::new(EkPolicy::default()),
        }
    }

    /// Which endorsement keys `--agent-admission tpm` takes.
    pub fn with_ek_policy(mut self, policy: Arc<EkPolicy>) -> Self {
        self.ek_policy = policy;
        self
    }

    /// Who may hold a session ([`Admission::open`] by default).
    pub fn with_admission(mut self, admission: Arc<Admission>) -> Self {
        self.admission = admission;
        self
    }

    pub fn with_register_timeout(mut self, timeout: Duration) -> Self {
        self.register_timeout = timeout;
        self
    }

    pub fn into_server(self) -> pb::agent_service_server::AgentServiceServer<Self> {
        pb::agent_service_server::AgentServiceServer::new(self)
    }
}

/// What is wrong with what an agent says about itself.
#[derive(Debug, thiserror::Error)]
pub enum AgentInfoError {
    #[error("agent info has an empty hostname")]
    EmptyHostname,
    #[error("agent port {0} is not a valid port")]
    Port(u32),
    #[error("agent info carries no inventory")]
    NoInventory,
    #[error(transparent)]
    Convert(#[from] convert::ConvertError),
}

/// Decodes and checks what an agent says about itself.
pub fn agent_info_from_pb(info: &pb::AgentInfo) -> Result<AgentInfo, AgentInfoError> {
    if info.hostname.trim().is_empty() {
        return Err(AgentInfoError::EmptyHostname);
    }
    let port = u16::try_from(info.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or(AgentInfoError::Port(info.port))?;
    let resources = convert::resources_from_pb(&info.resources)?;
    let attributes = convert::attributes_from_pb(&info.attributes)?;
    let inventory = match &info.inventory {
        Some(inv) => convert::inventory_from_pb(inv)?,
        None => return Err(AgentInfoError::NoInventory),
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

/// The tasks an agent reports, parsed once. A report that does not parse
/// is left out (and said so): the agent's other tasks still count.
pub fn reported_tasks(agent_id: &str, reports: Vec<pb::TaskReport>) -> Vec<ReportedTask> {
    reports
        .into_iter()
        .filter_map(|r| {
            let parsed = bounded::parse_slice(r.task_info_json.as_bytes(), &MESSAGE_LIMITS);
            let info = match parsed {
                Ok(info) => info,
                Err(e) => {
                    tracing::warn!(%agent_id, framework_id = %r.framework_id, error = %e, "unreadable task report");
                    return None;
                }
            };
            let latest = r
                .latest
                .as_ref()
                .and_then(|s| convert::task_status_to_mesos(s, agent_id).ok());
            Some(ReportedTask {
                framework_id: r.framework_id,
                info,
                latest,
            })
        })
        .collect()
}

/// The executors an agent reports, parsed once (unreadable ones left out).
pub fn reported_executors(
    agent_id: &str,
    reports: Vec<pb::ExecutorReport>,
) -> Vec<ReportedExecutor> {
    reports
        .into_iter()
        .filter_map(|r| {
            match bounded::parse_slice(r.executor_info_json.as_bytes(), &MESSAGE_LIMITS) {
                Ok(info) => Some(ReportedExecutor {
                    framework_id: r.framework_id,
                    info,
                }),
                Err(e) => {
                    tracing::warn!(%agent_id, framework_id = %r.framework_id, error = %e, "unreadable executor report");
                    None
                }
            }
        })
        .collect()
}

/// A status update, parsed once; `None` (and said so) when malformed.
pub fn agent_update(agent_id: &str, update: pb::StatusUpdate) -> Option<AgentUpdate> {
    let st = update.status?;
    match convert::task_status_to_mesos(&st, agent_id) {
        Ok(status) => Some(AgentUpdate {
            framework_id: update.framework_id,
            status,
            uuid: st.uuid,
        }),
        Err(e) => {
            tracing::warn!(%agent_id, error = %e, "dropping a malformed status update");
            None
        }
    }
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
        let peer = request
            .extensions()
            .get::<keel_pki::PeerIdentity>()
            .cloned();
        let mut inbound = request.into_inner();
        let timeout = self.register_timeout;
        let first = tokio::time::timeout(timeout, inbound.next())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!("no register message within {timeout:?}"))
            })?;
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
            .and_then(|i| {
                agent_info_from_pb(i).map_err(|e| Status::invalid_argument(e.to_string()))
            })?;
        let hostname = info.hostname.clone();
        let claimed_id = Some(register.agent_id.clone()).filter(|id| !id.is_empty());
        if register.tasks.len() > MAX_REPORTED_TASKS {
            return Err(Status::invalid_argument(format!(
                "the agent reports {} tasks (at most {MAX_REPORTED_TASKS})",
                register.tasks.len()
            )));
        }
        limits::agent_info(&info).map_err(|e| Status::invalid_argument(e.to_string()))?;
        // Revoked identities first: no join token is spent, no TPM
        // challenged, for an agent that may not come back.
        let master = &self.master;
        admission::revoked(
            peer.as_ref(),
            claimed_id.as_deref(),
            |id| master.gone_agent(id).is_some(),
            |ek| master.endorsement_key(ek).map(|r| r.state) == Some(EkState::Denied),
        )
        .map_err(|e| {
            let reason = e.to_string();
            tracing::warn!(%hostname, ?peer, %reason, "agent refused");
            Status::permission_denied(reason)
        })?;
        let check = self.admission.check(
            peer.as_ref(),
            claimed_id.as_deref(),
            &register.join_token,
            register.tpm.is_some(),
        );
        let (tx, rx) = mpsc::channel(64);
        let joining = Joining {
            claimed_id,
            info,
            register,
            tx,
        };
        match check {
            // The challenge goes on the session's own stream: the stream
            // is answered now, the registration goes on in its task.
            Ok(Check::Attest) => {
                let service = self.clone();
                tokio::spawn(async move {
                    let tx = joining.tx.clone();
                    let started = std::time::Instant::now();
                    match service.attested(&joining, &mut inbound).await {
                        Ok(ek) => match service.join(joining, Some(&ek), Some(&ek)).await {
                            Ok(reg) => {
                                tracing::info!(agent_id = %reg.agent_id, took = ?started.elapsed(),
                                    "agent admitted by its TPM");
                                follow(service.master.clone(), reg, inbound).await;
                            }
                            Err(status) => {
                                let _ = tx.send(Err(status)).await;
                            }
                        },
                        Err(status) => {
                            let _ = tx.send(Err(status)).await;
                        }
                    }
                });
            }
            check => {
                self.admit(peer.as_ref(), check, &hostname).await?;
                let ek = peer.as_ref().and_then(admission::ek_of).map(str::to_string);
                let reg = self.join(joining, ek.as_deref(), None).await?;
                tokio::spawn(follow(self.master.clone(), reg, inbound));
            }
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// A registration admission let through, on its way to the engine.
struct Joining {
    claimed_id: Option<String>,
    info: AgentInfo,
    register: pb::Register,
    tx: SessionSender,
}

impl AgentService {
    /// Refuses a registration that [`Admission`] does not let in (with a
    /// log line naming it); consumes a join token when that admits it.
    async fn admit(
        &self,
        peer: Option<&keel_pki::PeerIdentity>,
        check: Result<Check, AdmissionError>,
        hostname: &str,
    ) -> Result<(), Status> {
        let refuse = |reason: String| {
            tracing::warn!(%hostname, ?peer, %reason, "agent refused");
            Status::permission_denied(reason)
        };
        match check {
            Ok(Check::Admitted(how)) => {
                tracing::debug!(%hostname, ?how, "agent admitted");
                Ok(())
            }
            Ok(Check::ConsumeToken(text)) => match self.master.consume_join_token(&text).await {
                Ok(token) => {
                    tracing::info!(%hostname, token = %token.id, "agent admitted by join token");
                    Ok(())
                }
                Err(e) if e.is_unavailable() => Err(Status::unavailable(e.to_string())),
                Err(e) => Err(refuse(AdmissionError::Token(e.to_string()).to_string())),
            },
            Ok(Check::Attest) => Err(refuse(AdmissionError::NoTpm.to_string())),
            Err(e) => Err(refuse(e.to_string())),
        }
    }

    /// Attests the agent's TPM within this session, then judges its EK:
    /// its fingerprint when admitted; a pending EK is recorded, and the
    /// session refused saying how an operator lets it in.
    async fn attested(
        &self,
        joining: &Joining,
        inbound: &mut Streaming<pb::AgentMessage>,
    ) -> Result<String, Status> {
        let hostname = &joining.info.hostname;
        let refuse = |reason: String| {
            tracing::warn!(%hostname, %reason, "agent refused");
            Status::permission_denied(reason)
        };
        let Some(evidence) = &joining.register.tpm else {
            return Err(refuse(AdmissionError::NoTpm.to_string()));
        };
        let (attested, ek) = attestation::attest(evidence, &joining.tx, inbound)
            .await
            .map_err(|e| refuse(AdmissionError::Attestation(e.to_string()).to_string()))?;
        let fingerprint = attested.ek_fingerprint.clone();
        let recorded = self.master.endorsement_key(&fingerprint).map(|r| r.state);
        let verdict = self
            .ek_policy
            .judge(&attested, &ek, &evidence.ek_certificate, recorded);
        let short = fingerprint[..crate::registry::eks::SHORT_ID].to_string();
        match verdict {
            EkVerdict::Allowed(grounds) => {
                tracing::info!(%hostname, ek = %fingerprint, ?grounds,
                    pcr_digest = %keel_attest::wire::hex(&attested.quote.quote.pcr_digest),
                    "TPM attested, endorsement key allowed");
                if recorded == Some(EkState::Pending) {
                    self.master.ek_allowed(&fingerprint).await;
                }
                Ok(fingerprint)
            }
            EkVerdict::Denied => Err(refuse(AdmissionError::Denied(short).to_string())),
            EkVerdict::Pending => {
                self.master
                    .ek_pending(&fingerprint, hostname, &joining.info.ip)
                    .await
                    .map_err(|e| match e.is_unavailable() {
                        true => Status::unavailable(e.to_string()),
                        false => refuse(e.to_string()),
                    })?;
                Err(refuse(
                    AdmissionError::Pending(fingerprint, short).to_string(),
                ))
            }
        }
    }

    /// Registers an admitted agent with the engine; its certificate
    /// request is signed (naming `attested`, the fingerprint of the EK its
    /// TPM was just attested with, if any). `ek` is the EK the session
    /// holds by (the attested one, or the one its certificate names).
    async fn join(
        &self,
        joining: Joining,
        ek: Option<&str>,
        attested: Option<&str>,
    ) -> Result<Registration, Status> {
        let Joining {
            claimed_id,
            info,
            register,
            tx,
        } = joining;
        let hostname = info.hostname.clone();
        let claimed = claimed_id.as_deref().unwrap_or("-");
        let reported = reported_tasks(claimed, register.tasks);
        let executors = reported_executors(claimed, register.executors);
        let admission = self.admission.clone();
        let csr = register.csr_pem;
        let reg = self
            .master
            .register(
                claimed_id,
                info,
                AgentReport {
                    tasks: reported,
                    executors,
                },
                tx,
                ek.map(str::to_string),
                |id| admission.certify_with_ek(id, &csr, attested),
            )
            .await
            .map_err(|e| match e {
                MasterError::Engine(EngineError::Registry(RegistryError::AgentGone(_))) => {
                    tracing::warn!(%hostname, reason = %e, "agent refused");
                    Status::permission_denied(e.to_string())
                }
                MasterError::Engine(EngineError::Registry(_)) => {
                    Status::invalid_argument(e.to_string())
                }
                MasterError::Engine(EngineError::SessionLive(_)) => {
                    Status::failed_precondition(e.to_string())
                }
                other if other.is_unavailable() => Status::unavailable(other.to_string()),
                other => Status::internal(other.to_string()),
            })?;
        tracing::info!(agent_id = %reg.agent_id, %hostname,
            reregistered = reg.reregistered, "agent registered");
        Ok(reg)
    }
}

/// Reads the agent's session until it ends, then records that it did.
async fn follow(master: Arc<Master>, reg: Registration, mut inbound: Streaming<pb::AgentMessage>) {
    loop {
        match inbound.next().await {
            Some(Ok(pb::AgentMessage {
                msg: Some(AgentMsg::Heartbeat(_)),
            })) => master.heartbeat(&reg.agent_id, reg.session),
            Some(Ok(pb::AgentMessage {
                msg: Some(AgentMsg::StatusUpdate(update)),
            })) => match agent_update(&reg.agent_id, update) {
                Some(update) => master.status_update(&reg.agent_id, reg.session, update),
                None => master.heartbeat(&reg.agent_id, reg.session),
            },
            Some(Ok(pb::AgentMessage {
                msg: Some(AgentMsg::ExecutorMessage(m)),
            })) => master.executor_message(&reg.agent_id, reg.session, &m),
            Some(Ok(pb::AgentMessage {
                msg: Some(AgentMsg::ExecutorExited(m)),
            })) => master.executor_exited(&reg.agent_id, reg.session, &m),
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
}
