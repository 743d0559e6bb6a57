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
//! Which master next: [`Failover`]. A master that does not lead names the
//! leader; the agent goes there within `factor * 4`.
//!
//! Updates produced while no stream is up stay queued in the executor's
//! update manager; `attach` on the next session sends them all again.

use std::time::{Duration, Instant};

use futures::StreamExt;
use keel_api::pb::{self, agent_message::Msg as AgentMsg, master_message::Msg as MasterMsg};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::executor::{ExecutorCall, ExecutorHandle, TaskExecutor};
use crate::trust::{AdmissionRequest, Trust, tpm};
use crate::workdir::WorkDir;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

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
    #[error("master {master} does not lead ({reason})")]
    NotLeader {
        master: String,
        reason: String,
        /// The leading master, when the refusing one named it.
        leader: Option<String>,
    },
    #[error("master {master} closed the session")]
    Closed { master: String },
    #[error("master {master} sent nothing for {silence:?}")]
    Silent { master: String, silence: Duration },
    #[error(transparent)]
    WorkDir(#[from] crate::workdir::WorkDirError),
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    #[error("the agent's certificate is half through its life: registering again to renew it")]
    Renew,
    #[error("tpm admission: {0}")]
    Tpm(#[from] crate::trust::tpm::AttestorError),
}

/// How long a master the agent could not reach is taken for dead when
/// others still name it as leader: followers name the dead leader until
/// they have elected another (about half a second, see `raft::options`).
const DEAD_LEADER: Duration = Duration::from_secs(2);

/// Where an agent goes after a failed session, and how long it waits.
///
/// A master that does not lead is alive and knows the cluster: the agent
/// goes to the leader it names (or, when it names none or one the agent
/// has just failed to reach, to the next master of the list) after at
/// most `factor * 4`, so that agents find a new leader within moments of
/// its election instead of backing off through it. Any other failure (no
/// connection, a session that ended, a refusal) moves on to the next master
/// of the list with the usual exponential backoff.
#[derive(Debug)]
pub struct Failover {
    masters: Vec<String>,
    current: String,
    /// Round robin position when `current` is not in the list (a leader
    /// named by a master, added at runtime).
    turn: usize,
    /// The last master that could not be reached at all, and when.
    unreachable: Option<(String, Instant)>,
}

/// Why a session ended, as far as choosing the next master goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// No connection could be made.
    Unreachable,
    /// The master does not lead; it named the leader (or not).
    NotLeader { leader: Option<String> },
    /// Anything else (a refusal, a session that ended, a silent master).
    Other,
}

impl From<&SessionError> for Ended {
    fn from(e: &SessionError) -> Self {
        match e {
            SessionError::Connect { .. } => Ended::Unreachable,
            SessionError::NotLeader { leader, .. } => Ended::NotLeader {
                leader: leader.clone(),
            },
            _ => Ended::Other,
        }
    }
}

impl Failover {
    pub fn new(masters: Vec<String>) -> Self {
        let current = masters[0].clone();
        Failover {
            masters,
            current,
            turn: 0,
            unreachable: None,
        }
    }

    /// The master to try now.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// Picks the next master after `ended`; returns the delay before it.
    pub fn next(&mut self, ended: Ended, factor: Duration, attempt: u32, now: Instant) -> Duration {
        if ended == Ended::Unreachable {
            self.unreachable = Some((self.current.clone(), now));
        }
        let unreachable = self.unreachable.clone();
        let dead = |m: &String| {
            unreachable
                .as_ref()
                .is_some_and(|(u, at)| u == m && now.duration_since(*at) < DEAD_LEADER)
        };
        let (hint, delay) = match ended {
            Ended::Unreachable => (None, backoff(factor, attempt)),
            Ended::NotLeader { leader } => {
                (leader.filter(|l| !dead(l)), backoff(factor, attempt.min(2)))
            }
            Ended::Other => (None, backoff(factor, attempt)),
        };
        self.current = match hint {
            Some(leader) => leader,
            None => {
                let at = match self.masters.iter().position(|m| *m == self.current) {
                    Some(i) => i,
                    None => {
                        self.turn += 1;
                        self.turn
                    }
                };
                // In list order, skipping a master just found dead unless
                // there is no other.
                let n = self.masters.len();
                (1..=n)
                    .map(|k| &self.masters[(at + k) % n])
                    .find(|m| !dead(m))
                    .unwrap_or(&self.masters[(at + 1) % n])
                    .clone()
            }
        };
        delay
    }
}

/// The next delay: uniformly random in `[0, factor * 2^attempt]`, capped.
pub fn backoff(factor: Duration, attempt: u32) -> Duration {
    let ceiling = factor
        .checked_mul(1u32 << attempt.min(16))
        .unwrap_or(BACKOFF_CAP)
        .min(BACKOFF_CAP);
    ceiling.mul_f64(fastrand::f64())
}

/// `E`: the task runtime; the real one unless this is a simulated agent
/// ([`crate::sim`]).
pub struct SessionConfig<E = ExecutorHandle> {
    /// `HOST:PORT` of each master; tried in turn.
    pub masters: Vec<String>,
    pub info: pb::AgentInfo,
    pub backoff_factor: Duration,
    /// The task runtime: gets the master's task calls, produces updates.
    pub executor: E,
    /// TLS to the masters (checked against the cluster CA; this agent's
    /// certificate presented when it has one); plaintext without.
    pub trust: Option<Trust>,
}

/// Runs sessions until `shutdown` resolves.
pub async fn run<E: TaskExecutor>(
    config: SessionConfig<E>,
    work_dir: &WorkDir,
    status: watch::Sender<SessionStatus>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), SessionError> {
    let mut attempt = 0u32;
    let mut failover = Failover::new(config.masters.clone());
    loop {
        let master = failover.current().to_string();
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
        let ended = match result {
            Ok(()) => return Ok(()),
            Err(SessionError::WorkDir(e)) => return Err(SessionError::WorkDir(e)),
            Err(e) => {
                tracing::warn!(error = %e, "session with master ended");
                Ended::from(&e)
            }
        };
        // A master that answers but does not lead is no reason to back off
        // further: the cluster is electing or has a leader to name.
        let grows = !matches!(ended, Ended::NotLeader { .. });
        let delay = failover.next(ended, config.backoff_factor, attempt, Instant::now());
        if grows {
            attempt = attempt.saturating_add(1);
        }
        let master = failover.current();
        tracing::info!(?delay, %master, "reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        }
    }
}

async fn session_once<E: TaskExecutor>(
    master: &str,
    config: &SessionConfig<E>,
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
    let connecting = match &config.trust {
        Some(trust) => {
            let tls = trust.client_config()?;
            endpoint
                .connect_with_connector(keel_pki::TlsConnector::new(tls, CONNECT_TIMEOUT))
                .await
        }
        None => endpoint.connect().await,
    };
    let admission = match &config.trust {
        Some(trust) => trust.admission_request(unix_now())?,
        None => AdmissionRequest::default(),
    };
    let channel = connecting.map_err(|e| connect_err(format!("{e}: {}", source_chain(&e))))?;
    let attestor = config.trust.as_ref().and_then(Trust::attestor);
    let tpm = match (&attestor, admission.tpm) {
        (Some(a), true) => tpm::evidence(a.clone()).await,
        _ => None,
    };
    let mut client = pb::agent_service_client::AgentServiceClient::new(channel);

    let (tx, rx) = mpsc::channel(16);
    let register = pb::AgentMessage {
        msg: Some(AgentMsg::Register(pb::Register {
            agent_id: work_dir.agent_id()?.unwrap_or_default(),
            info: Some(config.info.clone()),
            tasks: config.executor.reports().await,
            executors: config.executor.executors().await,
            join_token: admission.join_token,
            csr_pem: admission.csr_pem,
            tpm,
        })),
    };
    // Fresh channel: cannot be full.
    let _ = tx.try_send(register);
    let response = client
        .session(ReceiverStream::new(rx))
        .await
        .map_err(|s| refused(master, &s))?;
    let mut inbound = response.into_inner();

    let closed = || SessionError::Closed {
        master: master.to_string(),
    };
    let mut challenged = false;
    let registered = loop {
        match inbound.next().await {
            Some(Ok(pb::MasterMessage {
                msg: Some(MasterMsg::Registered(r)),
            })) => break r,
            Some(Ok(pb::MasterMessage {
                msg: Some(MasterMsg::TpmChallenge(c)),
            })) if !challenged => {
                challenged = true;
                let Some(attestor) = attestor.clone() else {
                    return Err(SessionError::Refused {
                        master: master.to_string(),
                        reason: "challenged for a TPM this agent does not use (--tpm)".into(),
                    });
                };
                let response = tpm::answer(attestor, &c).await?;
                let msg = pb::AgentMessage {
                    msg: Some(AgentMsg::TpmResponse(response)),
                };
                if tx.send(msg).await.is_err() {
                    return Err(closed());
                }
            }
            Some(Ok(pb::MasterMessage {
                msg: Some(MasterMsg::Refused(r)),
            })) => {
                return Err(SessionError::Refused {
                    master: master.to_string(),
                    reason: r.reason,
                });
            }
            Some(Err(s)) => return Err(refused(master, &s)),
            _ => return Err(closed()),
        }
    };
    if let Some(trust) = &config.trust
        && !registered.certificate_pem.is_empty()
    {
        // Presented from the next session on; a bad one is said and
        // asked for again next time.
        match trust.store(&registered.certificate_pem) {
            Ok(()) => {
                tracing::info!(agent_id = %registered.agent_id, "certificate from the master kept")
            }
            Err(e) => tracing::warn!(error = %e, "cannot keep the master's certificate"),
        }
    }
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
    // Executors' messages and exits: best effort, as in Mesos.
    let (upstream_tx, mut upstream) = mpsc::unbounded_channel();
    config.executor.attach_upstream(upstream_tx);
    let renew = config
        .trust
        .as_ref()
        .and_then(|t| crate::trust::renewal_in(t, unix_now()));
    let renew_at = tokio::time::Instant::now() + renew.unwrap_or(Duration::ZERO);
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(renew_at), if renew.is_some() => {
                return Err(SessionError::Renew);
            }
            update = updates.recv(), if updates_open => match update {
                Some(update) => {
                    let msg = pb::AgentMessage { msg: Some(AgentMsg::StatusUpdate(update)) };
                    if tx.send(msg).await.is_err() {
                        return Err(closed());
                    }
                }
                None => updates_open = false,
            },
            Some(msg) = upstream.recv() => {
                if tx.send(pb::AgentMessage { msg: Some(msg) }).await.is_err() {
                    return Err(closed());
                }
            }
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

/// A refusal in gRPC status form. `UNAVAILABLE` is a master that does not
/// lead, with the leader it names in the `keel-leader` metadata, if any.
fn refused(master: &str, s: &tonic::Status) -> SessionError {
    if s.code() == tonic::Code::Unavailable {
        let leader = s
            .metadata()
            .get(pb::LEADER_METADATA)
            .and_then(|v| v.to_str().ok())
            .filter(|l| !l.is_empty())
            .map(str::to_string);
        return SessionError::NotLeader {
            master: master.to_string(),
            reason: s.message().to_string(),
            leader,
        };
    }
    SessionError::Refused {
        master: master.to_string(),
        reason: s.message().to_string(),
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

    fn three() -> Failover {
        Failover::new(["a:1", "b:2", "c:3"].map(String::from).to_vec())
    }

    fn names(leader: &str) -> Ended {
        Ended::NotLeader {
            leader: Some(leader.into()),
        }
    }

    #[test]
    fn a_named_leader_is_tried_next_soon() {
        let f = Duration::from_millis(100);
        for _ in 0..100 {
            let mut fo = three();
            let delay = fo.next(names("c:3"), f, 10, Instant::now());
            assert_eq!(fo.current(), "c:3");
            assert!(delay <= f * 4, "{delay:?}");
        }
    }

    #[test]
    fn without_a_leader_the_master_after_the_failed_one_is_tried() {
        let f = Duration::from_millis(100);
        let now = Instant::now();
        let mut fo = three();
        fo.next(names("c:3"), f, 0, now);
        // c:3 is down: next in list order after c:3, not after a:1.
        fo.next(Ended::Unreachable, f, 1, now);
        assert_eq!(fo.current(), "a:1");
        fo.next(Ended::NotLeader { leader: None }, f, 2, now);
        assert_eq!(fo.current(), "b:2");
        // c:3 was just found dead: skipped.
        fo.next(Ended::Other, f, 3, now);
        assert_eq!(fo.current(), "a:1");
        // Only dead masters left: the next one anyway.
        let mut alone = Failover::new(vec!["a:1".into()]);
        alone.next(Ended::Unreachable, f, 0, now);
        assert_eq!(alone.current(), "a:1");
        let grows = (0..200).any(|_| three().next(Ended::Other, f, 5, now) > f * 4);
        assert!(grows, "backoff keeps growing on other failures");
        let bounded = (0..200).all(|_| three().next(names("b:2"), f, 30, now) <= f * 4);
        assert!(bounded, "a live master that does not lead is retried soon");
    }

    #[test]
    fn a_named_leader_just_found_dead_is_skipped_for_a_while() {
        let f = Duration::from_millis(100);
        let t0 = Instant::now();
        let mut fo = three();
        // a:1 (the old leader) is dead; b:2 still names it.
        fo.next(Ended::Unreachable, f, 0, t0);
        assert_eq!(fo.current(), "b:2");
        fo.next(names("a:1"), f, 1, t0);
        assert_eq!(fo.current(), "c:3");
        // c:3 too: the list goes on, past the dead a:1.
        fo.next(names("a:1"), f, 2, t0);
        assert_eq!(fo.current(), "b:2");
        let mut fo = three();
        fo.next(Ended::Unreachable, f, 0, t0);
        // b:2 has been elected.
        fo.next(names("b:2"), f, 2, t0);
        assert_eq!(fo.current(), "b:2");
        // Named later, a:1 is followed: it may have come back.
        fo.next(names("a:1"), f, 3, t0 + DEAD_LEADER);
        assert_eq!(fo.current(), "a:1");
    }

    #[test]
    fn a_leader_outside_the_list_is_followed_and_then_left_in_turn() {
        let f = Duration::from_millis(100);
        let now = Instant::now();
        let mut fo = three();
        fo.next(names("d:4"), f, 0, now);
        assert_eq!(fo.current(), "d:4");
        fo.next(Ended::Unreachable, f, 1, now);
        assert!(["a:1", "b:2", "c:3"].contains(&fo.current()));
    }

    #[test]
    fn a_refusal_carries_the_leader_from_metadata() {
        let mut s = tonic::Status::unavailable("not the leading master; leader: b:2");
        s.metadata_mut()
            .insert(pb::LEADER_METADATA, "127.0.0.1:5051".parse().unwrap());
        let e = refused("127.0.0.1:5050", &s);
        assert_eq!(Ended::from(&e), names("127.0.0.1:5051"));
        let plain = tonic::Status::unavailable("no leader elected");
        assert_eq!(
            Ended::from(&refused("x:1", &plain)),
            Ended::NotLeader { leader: None }
        );
        let invalid = tonic::Status::invalid_argument("register carries no agent info");
        assert_eq!(Ended::from(&refused("x:1", &invalid)), Ended::Other);
    }

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
