use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use keel_master::auth::{Acls, Credentials, Trust};
use keel_master::http::BodyLimits;
use keel_master::replication::raft::{GRPC_ROUTE, RaftNode, RaftOptions, RaftReplicator};
use keel_master::server::Options;
use keel_master::{Master, MasterConfig};
use keel_serve::Limits;

/// Keel master: agent registry and the Mesos v1 HTTP APIs.
#[derive(Debug, Parser)]
#[command(name = "keel-master", version)]
struct Flags {
    /// Address to listen on (HTTP APIs and the agents' gRPC stream share it).
    #[arg(long, default_value = "127.0.0.1", env = "KEEL_MASTER_IP")]
    ip: IpAddr,
    #[arg(long, default_value_t = 5050, env = "KEEL_MASTER_PORT")]
    port: u16,
    /// Host name advertised to clients (default: the kernel's host name).
    #[arg(long)]
    hostname: Option<String>,
    /// Where the master keeps its registry.
    #[arg(
        long,
        default_value = "/var/lib/keel/master",
        env = "KEEL_MASTER_WORK_DIR"
    )]
    work_dir: PathBuf,
    /// An agent silent for this long is marked unreachable.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    agent_timeout: Duration,
    /// Interval of the heartbeats between master and agents.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,
    /// Interval of HEARTBEAT events to subscribed frameworks.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    framework_heartbeat_interval: Duration,
    /// Batch allocation interval (allocation also runs right after events).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    allocation_interval: Duration,
    /// Rescind offers outstanding for longer than this (default: never).
    #[arg(long, value_parser = humantime::parse_duration)]
    offer_timeout: Option<Duration>,
    /// Allocation policy.
    #[arg(long, default_value = "drf")]
    allocator: String,
    /// Changes queued for one operator event subscriber (SUBSCRIBE on
    /// /api/v1); one that falls this far behind is dropped.
    #[arg(long, default_value_t = keel_master::core::SUBSCRIBER_QUEUE)]
    operator_event_queue: usize,
    /// Replicated masters: `IP:PORT,IP:PORT,...`, this master's own
    /// `--ip:--port` among them. The registry is then kept in Raft
    /// (`<work-dir>/raft/`); without it, one master keeps a local log.
    #[arg(long, env = "KEEL_MASTERS", value_delimiter = ',')]
    masters: Vec<SocketAddr>,
    /// Raft: the leader's heartbeat interval to the other masters, also
    /// the time limit of each replication call.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    raft_heartbeat: Duration,
    /// Raft: a follower that hears no leader for between this and twice
    /// this (plus that again, as openraft 0.9 counts) campaigns. Longer
    /// on slow or overloaded machines: a leader killed is then replaced
    /// later, but a leader merely slow is not deposed.
    #[arg(long, default_value = "150ms", value_parser = humantime::parse_duration)]
    raft_election_timeout: Duration,
    /// After a leader change, how long agents have to re-register before
    /// they and their tasks are marked unreachable.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    agent_reregister_timeout: Duration,
    /// Open connections on the port; at the limit a new connection takes
    /// the place of the one idle the longest. Default: as many as the
    /// open-files limit leaves room for, up to 65,536 (every agent holds
    /// one).
    #[arg(long, env = "KEEL_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Connections beyond --max-connections, used when every connection is
    /// busy: they serve /health, agent sessions and Raft only.
    #[arg(long, default_value_t = Limits::MASTER.reserved_connections, env = "KEEL_RESERVED_CONNECTIONS")]
    reserved_connections: usize,
    /// A request head (HTTP/1.1) must arrive within this once it started.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, env = "KEEL_HTTP_HEADER_TIMEOUT")]
    http_header_timeout: Duration,
    /// A connection with no request in flight is closed after this
    /// (event streams and agent sessions are requests in flight).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, env = "KEEL_HTTP_IDLE_TIMEOUT")]
    http_idle_timeout: Duration,
    /// A request body must arrive within this (408 beyond).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, env = "KEEL_HTTP_BODY_TIMEOUT")]
    http_body_timeout: Duration,
    /// Largest scheduler call body (413 beyond).
    #[arg(long, default_value = "16MiB", value_parser = keel_serve::parse_size, env = "KEEL_MAX_SCHEDULER_CALL_SIZE")]
    max_scheduler_call_size: usize,
    /// Largest operator call body (413 beyond).
    #[arg(long, default_value = "1MiB", value_parser = keel_serve::parse_size, env = "KEEL_MAX_OPERATOR_CALL_SIZE")]
    max_operator_call_size: usize,
    /// Request bodies held at once, all requests together (503 beyond).
    #[arg(long, default_value = "256MiB", value_parser = keel_serve::parse_size, env = "KEEL_REQUEST_BODY_MEMORY")]
    request_body_memory: usize,
    /// An agent session that sends no register message within this is ended.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, env = "KEEL_AGENT_REGISTER_TIMEOUT")]
    agent_register_timeout: Duration,
    #[command(flatten)]
    security: keel_master::tls::SecurityFlags,
    /// Mesos credentials file (JSON `{"credentials": [{"principal": ..,
    /// "secret": ..}]}`, or `principal secret` lines): the scheduler and
    /// operator APIs then require authentication (HTTP basic, bearer
    /// tokens, client certificates).
    #[arg(long, env = "KEEL_CREDENTIALS")]
    credentials: Option<PathBuf>,
    /// Require authentication without --credentials (bearer tokens and
    /// client certificates only).
    #[arg(long, env = "KEEL_AUTHENTICATE")]
    authenticate: bool,
    /// Mesos ACLs (the local authorizer's JSON): what each principal may do.
    #[arg(long, env = "KEEL_ACLS")]
    acls: Option<PathBuf>,
}

impl Flags {
    /// Refuses flag values the master cannot run with.
    fn check(&self) -> anyhow::Result<()> {
        for (name, d) in [
            (
                "--framework-heartbeat-interval",
                self.framework_heartbeat_interval,
            ),
            ("--allocation-interval", self.allocation_interval),
        ] {
            anyhow::ensure!(!d.is_zero(), "{name} must be non-zero");
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.agent_timeout {
            anyhow::bail!(
                "--heartbeat-interval ({:?}) must be non-zero and shorter than --agent-timeout ({:?})",
                self.heartbeat_interval,
                self.agent_timeout
            );
        }
        anyhow::ensure!(
            !self.raft_heartbeat.is_zero() && self.raft_heartbeat < self.raft_election_timeout,
            "--raft-heartbeat ({:?}) must be non-zero and shorter than --raft-election-timeout ({:?})",
            self.raft_heartbeat,
            self.raft_election_timeout
        );
        anyhow::ensure!(
            !self.agent_register_timeout.is_zero(),
            "--agent-register-timeout must be non-zero"
        );
        Ok(())
    }

    /// How the port is served, within `nofile` file descriptors.
    fn serve_options(&self, nofile: u64) -> anyhow::Result<Options> {
        let max_connections = self.max_connections.unwrap_or_else(|| {
            let mut limits = Limits::MASTER;
            limits.fit(nofile);
            limits.max_connections
        });
        let limits = Limits {
            max_connections,
            reserved_connections: self.reserved_connections,
            header_read_timeout: self.http_header_timeout,
            idle_timeout: self.http_idle_timeout,
            body_read_timeout: self.http_body_timeout,
        }
        .from_flags(nofile)?;
        Ok(Options {
            limits,
            bodies: BodyLimits {
                scheduler: self.max_scheduler_call_size,
                operator: self.max_operator_call_size,
                in_flight: self.request_body_memory,
            },
            register_timeout: self.agent_register_timeout,
            tls: None,
            admission: Arc::new(keel_master::admission::Admission::open()),
            ek_policy: Default::default(),
            ca_pem: None,
        })
    }
}

/// Authentication and authorization from `--credentials`, `--acls` and
/// `--authenticate`; a file that cannot be used stops the master, naming
/// the file and the problem.
fn trust(flags: &Flags) -> anyhow::Result<Trust> {
    let credentials = flags
        .credentials
        .as_deref()
        .map(Credentials::load)
        .transpose()?;
    let acls = flags
        .acls
        .as_deref()
        .map(Acls::load)
        .transpose()?
        .unwrap_or_default();
    if !acls.ignored().is_empty() {
        tracing::warn!(acls = ?acls.ignored(), "the ACL file has Mesos ACLs Keel does not enforce");
    }
    let principals = credentials.as_ref().map_or(0, Credentials::len);
    let trust = Trust::new(credentials, acls, flags.authenticate);
    if trust.required() {
        tracing::info!(
            principals,
            acls = flags.acls.is_some(),
            "authentication required on the scheduler and operator APIs"
        );
    } else {
        tracing::warn!(
            acls = flags.acls.is_some(),
            "authentication off (no --credentials): the scheduler and operator APIs are open"
        );
    }
    Ok(trust)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keel_telemetry::init("keel-master");
    let mut flags = Flags::parse();
    flags.check()?;
    // Every connection holds a descriptor; the soft limit is often 1024.
    let nofile = keel_serve::nofile::raise().context("cannot raise the open files limit")?;
    let mut options = flags.serve_options(nofile)?;
    // /master/flags shows the limit in force.
    flags.max_connections = Some(options.limits.max_connections);
    let security = flags.security.setup()?;
    options.tls = security.server.clone();
    options.admission = security.admission.clone();
    options.ek_policy = security.ek_policy.clone();
    options.ca_pem = security.ca_pem.clone();
    let trust = trust(&flags)?;
    let hostname = flags.hostname.clone().unwrap_or_else(|| {
        rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned()
    });
    let addr = SocketAddr::new(flags.ip, flags.port);
    let listener = listen(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let mut config = master_config(&flags, hostname, local.port(), trust);
    config.grants = security.grants.clone();
    config.agent_tls = security.agent_tls.clone();
    // Resolves with the error once Raft stops for good (never for a single
    // master).
    let mut raft_stopped: futures::future::BoxFuture<'static, String> =
        Box::pin(std::future::pending());
    let (master, extra) = if flags.masters.is_empty() {
        let master = Master::open(config)
            .await
            .context("cannot open the master registry")?;
        (master, axum::Router::new())
    } else {
        let me = SocketAddr::new(flags.ip, local.port());
        let raft_options = RaftOptions {
            tls: security.raft_client.clone(),
            heartbeat: flags.raft_heartbeat,
            election_timeout_min: flags.raft_election_timeout,
            election_timeout_max: flags.raft_election_timeout * 2,
            ..RaftOptions::default()
        };
        // Raft runs on threads of its own: its heartbeats and elections
        // must not wait in the API runtime's queues behind an allocation
        // cycle over thousands of agents or a large state rendering (on a
        // loaded machine they did, and followers elected new leaders).
        let lease = raft_options.leader_lease();
        let raft_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("keel-raft")
            .enable_all()
            .build()
            .context("cannot start the raft runtime")?;
        let (work_dir, masters) = (flags.work_dir.clone(), flags.masters.clone());
        let node = raft_runtime
            .spawn(async move { RaftNode::open_with(&work_dir, me, &masters, raft_options).await })
            .await
            .context("the raft runtime stopped")?
            .context("cannot start raft")?;
        // It lives as long as the process (a runtime may not be dropped
        // from async code).
        std::mem::forget(raft_runtime);
        let service = node.grpc_service();
        raft_stopped = Box::pin(node.stopped());
        let node = std::sync::Arc::new(node);
        let replicator = RaftReplicator::with_lease(node, lease);
        let master = Master::open_with(config, Box::new(replicator))
            .await
            .context("cannot open the master registry")?;
        let router = axum::Router::new().route_service(GRPC_ROUTE, service);
        (master, router)
    };
    let scheme = if security.server.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(api = %format!("{scheme}://{local}"), masters = flags.masters.len(), "keel-master listening");
    let fatal = Arc::new(std::sync::OnceLock::new());
    let shutdown = {
        let fatal = fatal.clone();
        async move {
            tokio::select! {
                _ = shutdown_signal() => {}
                e = raft_stopped => {
                    tracing::error!(error = %e, "raft stopped; exiting so that this master is started again from its store");
                    let _ = fatal.set(e);
                }
            }
        }
    };
    keel_master::server::serve(listener, master, extra, options, shutdown).await?;
    if let Some(e) = fatal.get() {
        anyhow::bail!("raft stopped: {e}");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The master's configuration from its flags; `port` is the one it listens
/// on (the kernel's choice for `--port 0`).
fn master_config(flags: &Flags, hostname: String, port: u16, trust: Trust) -> MasterConfig {
    let text = |d: Duration| humantime::format_duration(d).to_string();
    let path = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    MasterConfig {
        ip: flags.ip,
        port,
        hostname,
        work_dir: flags.work_dir.clone(),
        agent_timeout: flags.agent_timeout,
        heartbeat_interval: flags.heartbeat_interval,
        framework_heartbeat_interval: flags.framework_heartbeat_interval,
        allocation_interval: flags.allocation_interval,
        offer_timeout: flags.offer_timeout,
        agent_reregister_timeout: flags.agent_reregister_timeout,
        allocator: flags.allocator.clone(),
        event_queue: flags.operator_event_queue.max(1),
        flags: vec![
            ("ip".into(), flags.ip.to_string()),
            ("port".into(), port.to_string()),
            ("work_dir".into(), flags.work_dir.display().to_string()),
            ("agent_timeout".into(), text(flags.agent_timeout)),
            ("heartbeat_interval".into(), text(flags.heartbeat_interval)),
            (
                "framework_heartbeat_interval".into(),
                text(flags.framework_heartbeat_interval),
            ),
            (
                "allocation_interval".into(),
                text(flags.allocation_interval),
            ),
            ("allocator".into(), flags.allocator.clone()),
            (
                "operator_event_queue".into(),
                flags.operator_event_queue.to_string(),
            ),
            (
                "max_connections".into(),
                flags.max_connections.unwrap_or_default().to_string(),
            ),
            (
                "reserved_connections".into(),
                flags.reserved_connections.to_string(),
            ),
            (
                "http_header_timeout".into(),
                text(flags.http_header_timeout),
            ),
            ("http_idle_timeout".into(), text(flags.http_idle_timeout)),
            ("http_body_timeout".into(), text(flags.http_body_timeout)),
            (
                "max_scheduler_call_size".into(),
                flags.max_scheduler_call_size.to_string(),
            ),
            (
                "max_operator_call_size".into(),
                flags.max_operator_call_size.to_string(),
            ),
            (
                "request_body_memory".into(),
                flags.request_body_memory.to_string(),
            ),
            (
                "agent_register_timeout".into(),
                text(flags.agent_register_timeout),
            ),
            ("credentials".into(), path(&flags.credentials)),
            ("acls".into(), path(&flags.acls)),
            ("authenticate".into(), trust.required().to_string()),
        ],
        trust: Arc::new(trust),
        grants: None,
        agent_tls: None,
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Listens on `addr` with SO_REUSEADDR, so that a restarted process gets
/// its port back at once (connections of the previous one may linger in
/// TIME_WAIT).
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
