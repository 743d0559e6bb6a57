//! The agent's side of the `Session` stream: register (presenting the saved
//! agent id and every task the runtime knows), heartbeat, pass the master's
//! task calls to the executor and its status updates to the master, notice a
//! silent master, and reconnect with backoff.
//!
//! ```text
//!  connect --ok--> send register --registered--> attach executor, heartbeating,
//!     ^            (+ Register.tasks)            launch/kill/ack -> executor,
//!     |                                          executor updates -> master
//!     |                                                |  stream ends / master silent
//!     +--- backoff: random in [0, factor*2^n], cap 60s <--- detach executor
//! ```
//!
//! Updates produced while no stream is up stay queued in the executor's
//! update manager; `attach` on the next session sends them all again.

use std::time::{Duration, Instant};

use futures::StreamExt;
use keel_api::pb::{self, agent_message::Msg as AgentMsg, master_message::Msg as MasterMsg};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::executor::{ExecutorCall, ExecutorHandle};
use crate::workdir::WorkDir;

const BACKOFF_CAP: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Until the master says otherwise in `registered`.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

/// What the rest of the agent can observe about the session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionStatus {
    pub agent_id: Option<String>,
    pub master_id: Option<String>,
    /// The master address currently registered with.
    pub master: Option<String>,
    pub registered: bool,
    /// How many times this process registered (1 after the first).
    pub registrations: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot connect to master {master}: {reason}")]
    Connect { master: String, reason: String },
    #[error("master {master} refused the registration: {reason}")]
    Refused { master: String, reason: String },
    #[error("master {master} closed the session")]
    Closed { master: String },
    #[error("master {master} sent nothing for {silence:?}")]
    Silent { master: String, silence: Duration },
    #[error(transparent)]
    WorkDir(#[from] crate::workdir::WorkDirError),
}

/// The next delay: uniformly random in `[0, factor * 2^attempt]`, capped.
pub fn backoff(factor: Duration, attempt: u32) -> Duration {
    let ceiling = factor
        .checked_mul(1u32 << attempt.min(16))
        .unwrap_or(BACKOFF_CAP)
        .min(BACKOFF_CAP);
    ceiling.mul_f64(fastrand::f64())
}

pub struct SessionConfig {
    /// `HOST:PORT` of each master; tried in turn.
    pub masters: Vec<String>,
    pub info: pb::AgentInfo,
    pub backoff_factor: Duration,
    /// The task runtime: gets the master's task calls, produces updates.
    pub executor: ExecutorHandle,
}

/// Runs sessions until `shutdown` resolves.
pub async fn run(
    config: SessionConfig,
    work_dir: &WorkDir,
    status: watch::Sender<SessionStatus>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), SessionError> {
    let mut attempt = 0u32;
    let mut next_master = 0usize;
    loop {
        let master = config.masters[next_master % config.masters.len()].clone();
        let result = tokio::select! {
            r = session_once(&master, &config, work_dir, &status, &mut attempt) => r,
            _ = shutdown.wait_for(|s| *s) => {
                config.executor.detach();
                return Ok(());
            }
        };
        config.executor.detach();
        status.send_modify(|s| {
            s.registered = false;
            s.master = None;
        });
        match result {
            Ok(()) => return Ok(()),
            Err(SessionError::WorkDir(e)) => return Err(SessionError::WorkDir(e)),
            Err(e) => tracing::warn!(error = %e, "session with master ended"),
        }
        next_master += 1;
        let delay = backoff(config.backoff_factor, attempt);
        attempt = attempt.saturating_add(1);
        tracing::info!(?delay, "reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        }
    }
}

async fn session_once(
    master: &str,
    config: &SessionConfig,
    work_dir: &WorkDir,
    status: &watch::Sender<SessionStatus>,
    attempt: &mut u32,
) -> Result<(), SessionError> {
    let connect_err = |reason: String| SessionError::Connect {
        master: master.to_string(),
        reason,
    };
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{master}"))
        .map_err(|e| connect_err(e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| connect_err(format!("{e}: {}", source_chain(&e))))?;
    let mut client = pb::agent_service_client::AgentServiceClient::new(channel);

    let (tx, rx) = mpsc::channel(16);
    let register = pb::AgentMessage {
        msg: Some(AgentMsg::Register(pb::Register {
            agent_id: work_dir.agent_id()?.unwrap_or_default(),
            info: Some(config.info.clone()),
            tasks: config.executor.reports().await,
        })),
    };
    // Fresh channel: cannot be full.
    let _ = tx.try_send(register);
    let response =
        client
            .session(ReceiverStream::new(rx))
            .await
            .map_err(|s| SessionError::Refused {
                master: master.to_string(),
                reason: s.message().to_string(),
            })?;
    let mut inbound = response.into_inner();

    let closed = || SessionError::Closed {
        master: master.to_string(),
    };
    let registered = match inbound.next().await {
        Some(Ok(pb::MasterMessage {
            msg: Some(MasterMsg::Registered(r)),
        })) => r,
        Some(Ok(pb::MasterMessage {
            msg: Some(MasterMsg::Refused(r)),
        })) => {
            return Err(SessionError::Refused {
                master: master.to_string(),
                reason: r.reason,
            });
        }
        Some(Err(s)) => {
            return Err(SessionError::Refused {
                master: master.to_string(),
                reason: s.message().to_string(),
            });
        }
        _ => return Err(closed()),
    };
    if work_dir.agent_id()?.as_deref() != Some(registered.agent_id.as_str()) {
        work_dir.set_agent_id(&registered.agent_id)?;
    }
    *attempt = 0;
    tracing::info!(agent_id = %registered.agent_id, %master,
        reregistered = registered.reregistered, "registered with master");
    status.send_modify(|s| {
        s.agent_id = Some(registered.agent_id.clone());
        s.master_id = Some(registered.master_id.clone());
        s.master = Some(master.to_string());
        s.registered = true;
        s.registrations += 1;
    });

    let interval = Some(Duration::from_millis(registered.heartbeat_interval_ms))
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_HEARTBEAT);
    // A master that says nothing for its own agent timeout is gone.
    let silence_limit = Duration::from_millis(registered.agent_timeout_ms).max(interval * 3);
    let mut ticker = tokio::time::interval(interval);
    let mut seq = 0u64;
    let mut last_heard = Instant::now();
    // A fresh channel per session: nothing stale from an earlier stream.
    let (updates_tx, mut updates) = mpsc::unbounded_channel();
    config.executor.attach(&registered.agent_id, updates_tx);
    let mut updates_open = true;
    loop {
        tokio::select! {
            update = updates.recv(), if updates_open => match update {
                Some(update) => {
                    let msg = pb::AgentMessage { msg: Some(AgentMsg::StatusUpdate(update)) };
                    if tx.send(msg).await.is_err() {
                        return Err(closed());
                    }
                }
                None => updates_open = false,
            },
            _ = ticker.tick() => {
                if last_heard.elapsed() > silence_limit {
                    return Err(SessionError::Silent { master: master.to_string(), silence: silence_limit });
                }
                seq += 1;
                let hb = pb::AgentMessage {
                    msg: Some(AgentMsg::Heartbeat(pb::Heartbeat {
                        seq,
                        sent_unix_ms: unix_ms(),
                    })),
                };
                if tx.send(hb).await.is_err() {
                    return Err(closed());
                }
            }
            msg = inbound.next() => match msg {
                Some(Ok(pb::MasterMessage { msg: Some(MasterMsg::Heartbeat(_)) })) => {
                    last_heard = Instant::now();
                }
                Some(Ok(pb::MasterMessage { msg: Some(MasterMsg::Refused(r)) })) => {
                    return Err(SessionError::Refused { master: master.to_string(), reason: r.reason });
                }
                Some(Ok(pb::MasterMessage { msg: Some(msg) })) => {
                    last_heard = Instant::now();
                    match ExecutorCall::from_master(msg) {
                        Ok(call) => config.executor.call(call),
                        Err(other) => tracing::debug!(?other, "ignoring message"),
                    }
                }
                Some(Ok(pb::MasterMessage { msg: None })) => last_heard = Instant::now(),
                Some(Err(s)) => {
                    tracing::info!(status = %s, "session stream failed");
                    return Err(closed());
                }
                None => return Err(closed()),
            }
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let f = Duration::from_secs(1);
        for _ in 0..100 {
            assert!(backoff(f, 0) <= Duration::from_secs(1));
            assert!(backoff(f, 3) <= Duration::from_secs(8));
            assert!(backoff(f, 30) <= BACKOFF_CAP);
        }
    }
}
