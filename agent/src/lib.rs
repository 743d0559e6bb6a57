//! keel-agent as a library: the binary (`main.rs`) parses flags and calls
//! [`run`]; tests run the same code against a real master.
//!
//! - [`discovery`]: hardware inventory from /proc, /sys and netlink.
//! - [`resources`]: Mesos resources offered, with the Mesos defaults.
//! - [`workdir`]: the persisted agent id.
//! - [`masters`]: the `--master` list (`HOST:PORT[,HOST:PORT...]`).
//! - [`session`]: registration, heartbeats and the master's task calls over gRPC.
//! - [`executor`]: the task runtime: sandboxes, processes, status updates,
//!   checkpoints and recovery.
//! - [`isolation`]: the kernel surfaces of task isolation (procfs, ...).
//! - [`http`]: the agent's own HTTP endpoint.
//! - [`api`]: its v1 operator API and Mesos-shaped state.
//! - [`files`]: task sandboxes over HTTP (Mesos' files API).
//! - [`access`]: who may use the agent's port (certificates, sandbox grants).
//! - [`fetcher`]: `CommandInfo.uris` into sandboxes (http, file, archives, cache).
//! - [`sim`]: `keel-agent sim`, many simulated agents on the real session code.

pub mod access;
pub mod api;
pub mod containers;
pub mod discovery;
pub mod executor;
pub mod fetcher;
pub mod files;
pub mod http;
pub mod isolation;
pub mod masters;
pub mod metrics;
pub mod resources;
pub mod session;
pub mod sim;
pub mod trust;
pub mod workdir;

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keel_api::attributes::Attributes;
use keel_api::inventory::Inventory;
use keel_api::resources::Resources;
use keel_api::{convert, pb};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::discovery::{DiscoveryError, DiscoveryOptions};
use crate::executor::{ExecutorConfig, ExecutorHandle, LinuxLauncher};
use crate::session::{SessionConfig, SessionError, SessionStatus};
use crate::workdir::{WorkDir, WorkDirError};

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `HOST:PORT` of the masters.
    pub masters: Vec<String>,
    /// Address advertised to the master (the agent's HTTP endpoint).
    pub ip: IpAddr,
    pub hostname: Option<String>,
    pub work_dir: PathBuf,
    /// `--resources`; what it leaves out gets the Mesos defaults.
    pub resources: Resources,
    pub attributes: Attributes,
    pub registration_backoff_factor: Duration,
    pub discovery: DiscoveryOptions,
    /// Root of /proc and /sys ("/" except in tests).
    pub sys_root: PathBuf,
    pub tasks: TaskOptions,
    /// The HTTP port's connection limits and timeouts.
    pub http: keel_serve::Limits,
    /// `--tls-*`, `--join-token`: TLS to the masters and admission.
    pub trust: Option<trust::Trust>,
}

/// How the agent runs tasks.
#[derive(Debug, Clone)]
pub struct TaskOptions {
    /// Kill grace period for tasks without a `kill_policy` (Mesos: 3 s).
    pub kill_grace_period: Duration,
    /// First resend of an unacknowledged status update; doubles up to 10 min.
    pub status_update_retry_interval: Duration,
    /// `--isolation`.
    pub isolation: isolation::Isolation,
    /// `--cgroups-root` (found from the agent's own cgroup when `None`).
    pub cgroups_root: Option<PathBuf>,
    /// `--cgroups-enable-cfs`, `--cgroups-pids-max`.
    pub limits: isolation::cgroups::LimitOptions,
    /// The network tasks may join (`--network-*`; `None`: host networking only).
    pub network: Option<isolation::network::NetworkConfig>,
    /// `--switch-user`: run tasks as their user.
    pub switch_user: bool,
    /// `--fetcher-*`: host paths `file://` URIs may name, size limits.
    pub fetcher: fetcher::FetcherConfig,
    /// `--executor-*`, `--recovery-timeout`: custom executors' timeouts
    /// (their endpoint and the agent's host name are filled in by [`run`]).
    pub executors: executor::runtime::custom::CustomConfig,
}

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions {
            kill_grace_period: Duration::from_secs(3),
            status_update_retry_interval: executor::updates::RESEND_BASE,
            isolation: isolation::Isolation::Auto,
            cgroups_root: None,
            limits: isolation::cgroups::LimitOptions::default(),
            network: None,
            switch_user: true,
            fetcher: fetcher::FetcherConfig::default(),
            executors: executor::runtime::custom::CustomConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("hardware discovery failed: {0}")]
    Discovery(#[from] DiscoveryError),
    #[error(transparent)]
    WorkDir(#[from] WorkDirError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("agent http server: {0}")]
    Http(std::io::Error),
    #[error("no master given")]
    NoMaster,
    #[error(transparent)]
    Trust(#[from] trust::TrustError),
}

/// `MESOS_AGENT_ENDPOINT`: the agent's address as its executors reach it
/// (loopback when it listens on every address).
fn executor_endpoint(ip: std::net::IpAddr, port: u16) -> String {
    let ip = if ip.is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        ip
    };
    std::net::SocketAddr::new(ip, port).to_string()
}

/// Discovery plus the resources the agent will offer.
pub struct Prepared {
    pub inventory: Inventory,
    pub resources: Resources,
    pub hostname: String,
}

/// Discovers the machine and computes the offered resources.
pub async fn prepare(config: &AgentConfig) -> Result<Prepared, AgentError> {
    let inventory = discovery::discover(&config.sys_root, &config.discovery).await?;
    let resources = resources::agent_resources(
        &inventory,
        resources::filesystem_size(&config.work_dir),
        &config.resources,
    );
    let hostname = config
        .hostname
        .clone()
        .unwrap_or_else(|| inventory.hostname.clone());
    Ok(Prepared {
        inventory,
        resources,
        hostname,
    })
}

/// TLS on the agent's port and the grant checker, when the agent has the
/// cluster CA; plaintext and open (said in the log) without.
fn port_tls(
    trust: Option<&trust::Trust>,
) -> Result<
    (
        Option<Arc<rustls::ServerConfig>>,
        Option<keel_pki::GrantVerifier>,
    ),
    AgentError,
> {
    let Some(trust) = trust else {
        tracing::warn!(
            "no cluster CA: the agent's port is PLAINTEXT and anyone who reaches it reads \
             every sandbox; for development only"
        );
        return Ok((None, None));
    };
    let material = trust.material()?;
    let key = Arc::new(trust::port::PortKey::new(trust.clone()));
    let server =
        keel_pki::agent_port::server_config(&material, key).map_err(trust::TrustError::from)?;
    Ok((Some(server), Some(keel_pki::GrantVerifier::new(&material))))
}

/// Runs the agent: serves HTTP on `listener` and keeps a session with the
/// masters until `shutdown` resolves. `status` reports the session.
pub async fn run(
    listener: TcpListener,
    config: AgentConfig,
    status: watch::Sender<SessionStatus>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    if config.masters.is_empty() {
        return Err(AgentError::NoMaster);
    }
    let work_dir = WorkDir::open(&config.work_dir)?;
    let prepared = prepare(&config).await?;
    let port = listener.local_addr().map_err(AgentError::Http)?.port();
    tracing::info!(hostname = %prepared.hostname, resources = %prepared.resources,
        cpus = prepared.inventory.cpu.logical, nics = prepared.inventory.nics.len(),
        disks = prepared.inventory.disks.len(), "machine discovered");

    let info = pb::AgentInfo {
        hostname: prepared.hostname.clone(),
        ip: config.ip.to_string(),
        port: u32::from(port),
        resources: convert::resources_to_pb(&prepared.resources),
        attributes: convert::attributes_to_pb(&config.attributes),
        version: keel_api::KEEL_VERSION.to_string(),
        inventory: Some(convert::inventory_to_pb(&prepared.inventory)),
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let (tls, grants) = port_tls(config.trust.as_ref())?;
    let metrics = Arc::new(metrics::AgentMetrics::new(prepared.resources.clone()));
    let runtime_metrics = metrics.runtime();

    let setup = isolation::setup::setup(&isolation::setup::IsolationOptions {
        isolation: config.tasks.isolation.clone(),
        cgroups_root: config.tasks.cgroups_root.clone(),
        proc_root: config.sys_root.join("proc"),
        sys_root: config.sys_root.join("sys"),
        sandboxes: work_dir.root().to_path_buf(),
    });
    let mut executor_config = ExecutorConfig::new(work_dir.root());
    executor_config.metrics = runtime_metrics;
    executor_config.kill_grace_period = config.tasks.kill_grace_period;
    executor_config.resend_base = config.tasks.status_update_retry_interval;
    executor_config.isolation = config.tasks.isolation.clone();
    executor_config.switch_user = config.tasks.switch_user;
    executor_config.limit_options = config.tasks.limits;
    executor_config.fetcher = config.tasks.fetcher.clone();
    executor_config.executors = executor::runtime::custom::CustomConfig {
        agent_endpoint: executor_endpoint(config.ip, port),
        hostname: prepared.hostname.clone(),
        ..config.tasks.executors.clone()
    };
    if let Some(cg) = setup.cgroups {
        executor_config.use_cgroups(cg);
    }
    executor_config.host = setup.host;
    match &config.tasks.network {
        Some(net) if rustix::process::geteuid().is_root() => {
            tracing::info!(network = %net.name, bridge = %net.bridge, subnet = %net.subnet,
                "tasks may join the agent's network");
            let bridge = isolation::network::bridge::BridgeNetwork::new(net.clone());
            executor_config.use_network(&net.name, net.subnet, Arc::new(bridge));
        }
        Some(_) => tracing::warn!("not root: tasks get host networking only"),
        None => {}
    }
    let executor = ExecutorHandle::start(executor_config, LinuxLauncher::current_exe());

    let containers = containers::Containers::new(
        executor.clone(),
        std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into()),
        work_dir.root().to_path_buf(),
    );

    let view = Arc::new(http::AgentView {
        hostname: prepared.hostname.clone(),
        pid: format!("slave(1)@{}:{port}", config.ip),
        inventory: prepared.inventory,
        resources: prepared.resources.clone(),
        attributes: config.attributes.clone(),
        status: status.subscribe(),
        sandboxes: files::Sandboxes::new(work_dir.root()),
        grants,
        metrics,
        containers,
        sys_root: config.sys_root.clone(),
        runtime: executor.clone(),
        flags: api::system::flags_of(&config, port),
        start_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default(),
    });
    let mut http_stop = stop_rx.clone();
    let limits = config.http;
    let app = http::router(view).merge(executor::http::router(executor.clone()));
    let server = tokio::spawn(async move {
        http::serve(listener, app, limits, tls, async move {
            let _ = http_stop.wait_for(|s| *s).await;
        })
        .await
    });
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });

    let session_config = SessionConfig {
        masters: config.masters.clone(),
        info,
        backoff_factor: config.registration_backoff_factor,
        executor,
        trust: config.trust.clone(),
    };
    let result = session::run(session_config, &work_dir, status, stop_rx).await;
    server.abort();
    result?;
    Ok(())
}
