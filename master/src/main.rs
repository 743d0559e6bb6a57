use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use keel_master::replication::raft::{GRPC_ROUTE, RaftNode, RaftReplicator};
use keel_master::{Master, MasterConfig};

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
    /// Replicated masters: `IP:PORT,IP:PORT,...`, this master's own
    /// `--ip:--port` among them. The registry is then kept in Raft
    /// (`<work-dir>/raft/`); without it, one master keeps a local log.
    #[arg(long, env = "KEEL_MASTERS", value_delimiter = ',')]
    masters: Vec<SocketAddr>,
    /// After a leader change, how long agents have to re-register before
    /// they and their tasks are marked unreachable.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    agent_reregister_timeout: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keel_telemetry::init("keel-master");
    let flags = Flags::parse();
    for (name, d) in [
        (
            "--framework-heartbeat-interval",
            flags.framework_heartbeat_interval,
        ),
        ("--allocation-interval", flags.allocation_interval),
    ] {
        anyhow::ensure!(!d.is_zero(), "{name} must be non-zero");
    }
    if flags.heartbeat_interval.is_zero() || flags.heartbeat_interval >= flags.agent_timeout {
        anyhow::bail!(
            "--heartbeat-interval ({:?}) must be non-zero and shorter than --agent-timeout ({:?})",
            flags.heartbeat_interval,
            flags.agent_timeout
        );
    }
    let hostname = flags.hostname.clone().unwrap_or_else(|| {
        rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned()
    });
    let addr = SocketAddr::new(flags.ip, flags.port);
    let listener = listen(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let config = master_config(&flags, hostname, local.port());
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
        let node = RaftNode::open(&flags.work_dir, me, &flags.masters)
            .await
            .context("cannot start raft")?;
        let service = node.grpc_service();
        raft_stopped = Box::pin(node.stopped());
        let node = std::sync::Arc::new(node);
        let replicator = RaftReplicator::new(node);
        let master = Master::open_with(config, Box::new(replicator))
            .await
            .context("cannot open the master registry")?;
        let router = axum::Router::new().route_service(GRPC_ROUTE, service);
        (master, router)
    };
    tracing::info!(api = %format!("http://{local}"), masters = flags.masters.len(), "keel-master listening");
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
    keel_master::server::run_with(listener, master, extra, shutdown).await?;
    if let Some(e) = fatal.get() {
        anyhow::bail!("raft stopped: {e}");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The master's configuration from its flags; `port` is the one it listens
/// on (the kernel's choice for `--port 0`).
fn master_config(flags: &Flags, hostname: String, port: u16) -> MasterConfig {
    let text = |d: Duration| humantime::format_duration(d).to_string();
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
        ],
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
