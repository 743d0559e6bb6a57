//! `keel-agent sim`: N simulated agents in one process, for scale tests.
//!
//! Each simulated agent is the real agent's session ([`crate::session`]:
//! registration with its id kept in its own work dir, heartbeats, leader
//! following, re-registration with its task reports, TLS and admission by
//! join token through [`crate::trust`]) over its own gRPC connection, with
//! [`executor::SimExecutor`] in place of the task runtime (no processes:
//! a task "runs" for a while, its updates go through the real status
//! update manager) and a synthetic machine ([`inventory::machine`]) in
//! place of discovery. Everything runs on the one tokio runtime.
//!
//! ```text
//!  sim::run --agent i--> WorkDir <dir>/agent-<i>   inventory::machine(i)
//!                        Trust (CA, join token, <dir>/agent-<i>/tls)
//!                        session::run(SessionConfig<SimExecutor>)  == the real agent's
//! ```

pub mod executor;
pub mod inventory;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use keel_api::{convert, pb};
use tokio::sync::watch;

use crate::session::{self, SessionConfig, SessionStatus};
use crate::trust::{Trust, TrustError};
use crate::workdir::{WorkDir, WorkDirError};
use executor::{Behaviour, SimExecutor};

/// How often the simulator says how many agents are registered.
const REPORT_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// `HOST:PORT` of the masters.
    pub masters: Vec<String>,
    pub agents: usize,
    /// The index of the first agent: agents are `first_index..first_index
    /// + agents`.
    pub first_index: usize,
    /// Each agent's work dir is `<work_dir>/agent-<index>`.
    pub work_dir: PathBuf,
    /// The address every agent advertises (they serve no port).
    pub ip: IpAddr,
    pub behaviour: Behaviour,
    pub registration_backoff_factor: Duration,
    /// TLS to the masters: the cluster CA file, and a join token for
    /// admission (each agent keeps its issued certificate in its own
    /// work dir). `None`: plaintext.
    pub tls: Option<SimTls>,
}

#[derive(Debug, Clone)]
pub struct SimTls {
    pub ca: PathBuf,
    pub join_token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("no master given")]
    NoMaster,
    #[error("simulated agent {index}: {source}")]
    WorkDir { index: usize, source: WorkDirError },
    #[error("simulated agent {index}: {source}")]
    Trust { index: usize, source: TrustError },
}

/// The work dir of simulated agent `index`.
pub fn agent_dir(work_dir: &std::path::Path, index: usize) -> PathBuf {
    work_dir.join(format!("agent-{index:05}"))
}

/// The `AgentInfo` agent `index` registers with.
pub fn agent_info(index: usize, ip: IpAddr) -> pb::AgentInfo {
    let m = inventory::machine(index);
    pb::AgentInfo {
        hostname: m.hostname,
        ip: ip.to_string(),
        // Never bound: sim agents serve no HTTP. Unique per agent, as
        // real agents' `ip:port` are.
        port: u32::try_from(10_000 + index % 50_000).unwrap_or(10_000),
        resources: convert::resources_to_pb(&m.resources),
        attributes: convert::attributes_to_pb(&m.attributes),
        version: keel_api::KEEL_VERSION.to_string(),
        inventory: Some(convert::inventory_to_pb(&m.inventory)),
    }
}

/// Runs `config.agents` simulated agents until `shutdown` turns true.
pub async fn run(config: SimConfig, shutdown: watch::Receiver<bool>) -> Result<(), SimError> {
    if config.masters.is_empty() {
        return Err(SimError::NoMaster);
    }
    let mut sessions = tokio::task::JoinSet::new();
    let mut statuses = Vec::with_capacity(config.agents);
    for index in config.first_index..config.first_index + config.agents {
        let dir = agent_dir(&config.work_dir, index);
        let work_dir = WorkDir::open(&dir).map_err(|source| SimError::WorkDir { index, source })?;
        let trust = match &config.tls {
            Some(tls) => Some(
                Trust::new(&tls.ca, None, &dir, tls.join_token.clone())
                    .map_err(|source| SimError::Trust { index, source })?,
            ),
            None => None,
        };
        let session_config = SessionConfig {
            masters: config.masters.clone(),
            info: agent_info(index, config.ip),
            backoff_factor: config.registration_backoff_factor,
            executor: SimExecutor::start(config.behaviour),
            trust,
        };
        let (status, status_rx) = watch::channel(SessionStatus::default());
        statuses.push(status_rx);
        let stop = shutdown.clone();
        sessions.spawn(async move {
            if let Err(e) = session::run(session_config, &work_dir, status, stop).await {
                tracing::error!(agent = index, error = %e, "simulated agent stopped");
            }
        });
    }
    tracing::info!(agents = config.agents, "simulated agents started");
    let mut stop = shutdown.clone();
    let mut last = usize::MAX;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            () = tokio::time::sleep(REPORT_EVERY) => {
                let registered = statuses.iter().filter(|s| s.borrow().registered).count();
                if registered != last {
                    tracing::info!(registered, agents = config.agents, "simulated agents registered");
                    last = registered;
                }
            }
        }
    }
    while sessions.join_next().await.is_some() {}
    tracing::info!("simulated agents stopped");
    Ok(())
}
