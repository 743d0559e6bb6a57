use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use keel_agent::discovery::DiscoveryOptions;
use keel_agent::{AgentConfig, TaskOptions, session::SessionStatus};
use keel_api::attributes::Attributes;
use keel_api::resources::Resources;
use keel_serve::Limits;

/// Keel agent: discovers this machine and offers it to the Keel masters.
#[derive(Debug, Parser)]
#[command(name = "keel-agent", version, args_conflicts_with_subcommands = true)]
struct Flags {
    #[command(subcommand)]
    command: Option<Command>,
    /// Master(s) to register with: `HOST:PORT[,HOST:PORT...]`.
    #[arg(long, env = "KEEL_MASTER")]
    master: Option<String>,
    /// Address to listen on and advertise to the master.
    #[arg(long, default_value = "127.0.0.1", env = "KEEL_AGENT_IP")]
    ip: IpAddr,
    #[arg(long, default_value_t = 5051, env = "KEEL_AGENT_PORT")]
    port: u16,
    #[arg(
        long,
        default_value = "/var/lib/keel/agent",
        env = "KEEL_AGENT_WORK_DIR"
    )]
    work_dir: PathBuf,
    /// Mesos resource syntax, e.g. `cpus:4;mem:2048;ports:[31000-32000]`,
    /// or a JSON array of Resource objects. Unnamed resources get defaults.
    #[arg(long, value_parser = parse_resources)]
    resources: Option<Resources>,
    /// Mesos attribute syntax, e.g. `rack:r1;zone:a`.
    #[arg(long, value_parser = parse_attributes)]
    attributes: Option<Attributes>,
    /// Host name to register with (default: the kernel's host name).
    #[arg(long)]
    hostname: Option<String>,
    /// Registration retries wait a random time in [0, factor * 2^n], capped at 1 min.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    registration_backoff_factor: Duration,
    /// Also list loop, ram, zram, device-mapper and md block devices.
    #[arg(long)]
    discover_virtual_disks: bool,
    /// Kill grace period (SIGTERM to SIGKILL) for tasks without a kill policy.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    task_kill_grace_period: Duration,
    /// First resend of an unacknowledged status update; doubles up to 10 min.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    status_update_retry_interval: Duration,
    /// How long a custom executor has to SUBSCRIBE after it was started
    /// before it is killed and its tasks fail (Mesos: 1 min).
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    executor_registration_timeout: Duration,
    /// How long a running custom executor has to SUBSCRIBE again after an
    /// agent restart (Mesos: 2 s; pymesos retries after 2 to 4 s, so 15 s).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    executor_reregistration_timeout: Duration,
    /// Between SHUTDOWN and the kill of a custom executor, unless its
    /// ExecutorInfo says otherwise (Mesos: 5 s).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    executor_shutdown_grace_period: Duration,
    /// How long custom executors wait for a restarting agent before they
    /// give up (`MESOS_RECOVERY_TIMEOUT`; Mesos: 15 min).
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    recovery_timeout: Duration,
    /// Executor calls must carry the executor's token
    /// (`MESOS_EXECUTOR_AUTHENTICATION_TOKEN`) as a bearer token.
    #[arg(long)]
    authenticate_http_executors: bool,
    /// Task isolation: `auto` (what this host offers; tasks say what was
    /// not enforced), `strict` (tasks whose limits cannot be enforced fail),
    /// `none`, or a list such as `cgroups/cpu,cgroups/mem,namespaces/pid`.
    #[arg(long, default_value = "auto", env = "KEEL_ISOLATION")]
    isolation: keel_agent::isolation::Isolation,
    /// The cgroup v2 directory containers go under (default: `keel` next to
    /// the agent's own cgroup).
    #[arg(long)]
    cgroups_root: Option<PathBuf>,
    /// Cap each container's CPU at its `cpus` (`cpu.max`); off: only the
    /// proportional `cpu.weight`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    cgroups_enable_cfs: bool,
    /// `pids.max` of every container.
    #[arg(long, default_value_t = 4096)]
    cgroups_pids_max: u64,
    /// The network tasks join by naming it in `ContainerInfo.network_infos`
    /// (each gets its own network namespace on the bridge).
    #[arg(long, default_value = "keel")]
    network_name: String,
    #[arg(long, default_value = "keel0")]
    network_bridge: String,
    /// Addresses of containers on the bridge (the first is the bridge's);
    /// `none`: tasks get host networking only.
    #[arg(long, default_value = "10.211.0.0/16")]
    network_cidr: String,
    /// Run each task as its `CommandInfo.user`, else its framework's user
    /// (a user this machine does not know fails the task).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    switch_user: bool,
    /// Where network namespaces are bind-mounted.
    #[arg(long, default_value = "/run/keel/netns")]
    network_netns_dir: PathBuf,
    /// Host directories (or files) that `file://` URIs and absolute paths
    /// in `CommandInfo.uris` may name, comma-separated; default none: host
    /// files are not fetched.
    #[arg(long, value_delimiter = ',', value_parser = parse_allowed_path)]
    fetcher_allowed_paths: Vec<PathBuf>,
    /// Largest download (or host file) one URI may be: bytes, or with
    /// KiB/MiB/GiB/TiB.
    #[arg(long, default_value = "2GiB", value_parser = parse_size)]
    fetcher_max_download_bytes: u64,
    /// Most bytes one fetched archive may unpack to.
    #[arg(long, default_value = "8GiB", value_parser = parse_size)]
    fetcher_max_extract_bytes: u64,
    /// Open connections on the HTTP port; at the limit a new connection
    /// takes the place of the one idle the longest.
    #[arg(long, default_value_t = Limits::AGENT.max_connections, env = "KEEL_MAX_CONNECTIONS")]
    max_connections: usize,
    /// Connections beyond --max-connections, used when every connection is
    /// busy: they serve /health only.
    #[arg(long, default_value_t = Limits::AGENT.reserved_connections, env = "KEEL_RESERVED_CONNECTIONS")]
    reserved_connections: usize,
    /// A request head must arrive within this once it started.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, env = "KEEL_HTTP_HEADER_TIMEOUT")]
    http_header_timeout: Duration,
    /// A connection with no request in flight is closed after this.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, env = "KEEL_HTTP_IDLE_TIMEOUT")]
    http_idle_timeout: Duration,
    /// A request body must arrive within this.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, env = "KEEL_HTTP_BODY_TIMEOUT")]
    http_body_timeout: Duration,
    #[command(flatten)]
    tls: keel_pki::TlsFlags,
    /// A join token (`keelctl tokens create`): admits this agent where the
    /// masters run `--agent-admission token`. Used once: the masters then
    /// issue the agent a certificate, kept in `<work-dir>/tls/`.
    #[arg(long, env = "KEEL_JOIN_TOKEN", hide_env_values = true)]
    join_token: Option<String>,
    /// The TPM that admits this agent where the masters run
    /// `--agent-admission tpm` (used while the agent has neither a
    /// certificate nor a join token): `auto` (/dev/tpmrm0, else /dev/tpm0,
    /// else none), `none`, or a tpm2-tss TCTI such as
    /// `swtpm:host=127.0.0.1,port=2321`.
    #[arg(long, default_value = "auto", env = "KEEL_TPM")]
    tpm: String,
    /// The cluster CA's fingerprint (`sha256:<hex>`, `keelctl pki
    /// fingerprint`) instead of --tls-ca: the CA is fetched from the
    /// masters, checked against it and kept in `<work-dir>/tls/`.
    #[arg(long, env = "KEEL_TLS_CA_FINGERPRINT", conflicts_with = "tls_ca")]
    tls_ca_fingerprint: Option<String>,
}

impl Flags {
    /// The HTTP port's limits, within `nofile` file descriptors.
    fn http_limits(&self, nofile: u64) -> anyhow::Result<Limits> {
        let limits = Limits {
            max_connections: self.max_connections,
            reserved_connections: self.reserved_connections,
            header_read_timeout: self.http_header_timeout,
            idle_timeout: self.http_idle_timeout,
            body_read_timeout: self.http_body_timeout,
        };
        Ok(limits.from_flags(nofile)?)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print this machine's inventory and the resources it would offer, as JSON.
    Discover {
        #[arg(long, default_value = "/var/lib/keel/agent")]
        work_dir: PathBuf,
        #[arg(long, value_parser = parse_resources)]
        resources: Option<Resources>,
        #[arg(long)]
        discover_virtual_disks: bool,
    },
    /// Capture the /proc, /sys and netlink data discovery reads into DIR (test fixtures).
    CaptureFixture { dir: PathBuf },
    /// Run N simulated agents in this process until SIGTERM (scale tests):
    /// the real session code, synthetic machines, tasks that only "run".
    Sim(SimFlags),
}

#[derive(Debug, clap::Args)]
struct SimFlags {
    /// Master(s) to register with: `HOST:PORT[,HOST:PORT...]`.
    #[arg(long)]
    master: String,
    /// How many agents.
    #[arg(long)]
    agents: usize,
    /// The index of the first agent (its host name, machine shape and work
    /// dir follow from its index), so that several simulators make one
    /// fleet: `--first-index 9000 --agents 1000` next to `--agents 9000`.
    #[arg(long, default_value_t = 0)]
    first_index: usize,
    /// Each agent's work dir is `DIR/agent-<index>`.
    #[arg(long)]
    work_dir: PathBuf,
    /// How long a task runs (a task's `keel.sim/duration` label overrides it).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    task_duration: Duration,
    /// The exit code tasks end with: 0 is TASK_FINISHED, others
    /// TASK_FAILED (a task's `keel.sim/exit` label overrides it).
    #[arg(long, default_value_t = 0)]
    task_exit_code: i32,
    /// The address agents advertise.
    #[arg(long, default_value = "127.0.0.1")]
    ip: IpAddr,
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    registration_backoff_factor: Duration,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    status_update_retry_interval: Duration,
    /// The cluster CA (TLS to the masters); plaintext without it or
    /// --tls-ca-fingerprint.
    #[arg(long, env = "KEEL_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// The cluster CA's fingerprint: fetched once from the masters into
    /// `DIR/tls/ca.crt`.
    #[arg(long, env = "KEEL_TLS_CA_FINGERPRINT", conflicts_with = "tls_ca")]
    tls_ca_fingerprint: Option<String>,
    /// A join token every agent presents (one with enough uses, or unlimited).
    #[arg(long, env = "KEEL_JOIN_TOKEN", hide_env_values = true)]
    join_token: Option<String>,
}

fn parse_resources(s: &str) -> Result<Resources, String> {
    Resources::parse(s).map_err(|e| e.to_string())
}

fn parse_attributes(s: &str) -> Result<Attributes, String> {
    Attributes::parse(s).map_err(|e| e.to_string())
}

fn parse_allowed_path(s: &str) -> Result<PathBuf, String> {
    keel_agent::fetcher::config::parse_allowed_path(s).map_err(|e| e.to_string())
}

fn parse_size(s: &str) -> Result<u64, String> {
    keel_agent::fetcher::config::parse_size(s).map_err(|e| e.to_string())
}

fn main() -> anyhow::Result<()> {
    // `keel-agent forkserver`: forks the task supervisors, started by the
    // agent itself. It must stay single-threaded (its children run Rust
    // code after a fork), so it runs before clap, logging and the async
    // runtime. `keel-agent enter ...` (COMMAND health checks): same rules.
    let args: Vec<std::ffi::OsString> = std::env::args_os().take(2).collect();
    if args.len() == 2 && args[1] == "forkserver" {
        // (followed by padding for the shims' command lines)
        std::process::exit(keel_agent::executor::launcher::forkserver::main());
    }
    if args.len() >= 2 && args[1] == "enter" {
        let rest: Vec<std::ffi::OsString> = std::env::args_os().skip(2).collect();
        std::process::exit(keel_agent::executor::launcher::enter::main(&rest));
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(agent_main())
}

async fn agent_main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    match flags.command {
        Some(Command::Discover {
            work_dir,
            resources,
            discover_virtual_disks,
        }) => {
            let config = AgentConfig {
                masters: vec![],
                ip: flags.ip,
                hostname: flags.hostname,
                work_dir,
                resources: resources.unwrap_or_default(),
                attributes: Attributes::default(),
                registration_backoff_factor: flags.registration_backoff_factor,
                discovery: DiscoveryOptions {
                    include_virtual_disks: discover_virtual_disks,
                },
                sys_root: PathBuf::from("/"),
                tasks: TaskOptions::default(),
                http: Limits::AGENT,
                trust: None,
            };
            let p = keel_agent::prepare(&config).await?;
            let out = serde_json::json!({
                "hostname": p.hostname,
                "resources": p.resources.to_legacy_json(),
                "resources_text": p.resources.to_string(),
                "inventory": p.inventory,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(());
        }
        Some(Command::CaptureFixture { dir }) => {
            keel_agent::discovery::capture(&dir).await?;
            eprintln!("captured fixture into {}", dir.display());
            return Ok(());
        }
        Some(Command::Sim(sim)) => return sim_main(sim).await,
        None => {}
    }

    keel_telemetry::init("keel-agent");
    let given = flags
        .master
        .as_deref()
        .with_context(|| format!("--master is required: {}", keel_agent::masters::FORM))?;
    let masters = keel_agent::masters::parse(given)?;
    // Every connection holds a descriptor; the soft limit is often 1024.
    // Tasks inherit the raised limit (through the fork server).
    let nofile = keel_serve::nofile::raise().context("cannot raise the open files limit")?;
    let http = flags.http_limits(nofile)?;
    let ca = match (&flags.tls.tls_ca, &flags.tls_ca_fingerprint) {
        (Some(ca), _) => Some(ca.clone()),
        (None, Some(pinned)) => {
            Some(keel_agent::trust::pinned_ca(&masters, pinned, &flags.work_dir).await?)
        }
        (None, None) => None,
    };
    let trust = match &ca {
        Some(ca) => {
            let trust = keel_agent::trust::Trust::new(
                ca,
                flags.tls.tls_cert.clone().zip(flags.tls.tls_key.clone()),
                &flags.work_dir,
                flags.join_token.clone(),
            )?;
            match keel_agent::trust::tpm::resolve(&flags.tpm, Path::new("/")) {
                Some(tcti) => {
                    tracing::info!(%tcti, "tpm admission available");
                    let attestor = keel_agent::trust::EsapiAttestor::new(&tcti, trust.dir());
                    Some(trust.with_attestor(std::sync::Arc::new(attestor)))
                }
                None => Some(trust),
            }
        }
        None => {
            tracing::warn!(
                "no --tls-ca: talking to the masters in PLAINTEXT; for development only"
            );
            None
        }
    };
    let addr = SocketAddr::new(flags.ip, flags.port);
    let listener = listen(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let config = AgentConfig {
        masters,
        ip: flags.ip,
        hostname: flags.hostname,
        work_dir: flags.work_dir,
        resources: flags.resources.unwrap_or_default(),
        attributes: flags.attributes.unwrap_or_default(),
        registration_backoff_factor: flags.registration_backoff_factor,
        discovery: DiscoveryOptions {
            include_virtual_disks: flags.discover_virtual_disks,
        },
        sys_root: PathBuf::from("/"),
        tasks: TaskOptions {
            kill_grace_period: flags.task_kill_grace_period,
            status_update_retry_interval: flags.status_update_retry_interval,
            isolation: flags.isolation,
            cgroups_root: flags.cgroups_root,
            limits: keel_agent::isolation::cgroups::LimitOptions {
                cfs: flags.cgroups_enable_cfs,
                pids_max: flags.cgroups_pids_max,
            },
            switch_user: flags.switch_user,
            fetcher: keel_agent::fetcher::FetcherConfig {
                allowed_paths: flags.fetcher_allowed_paths,
                max_download_bytes: flags.fetcher_max_download_bytes,
                max_extract_bytes: flags.fetcher_max_extract_bytes,
            },
            executors: keel_agent::executor::runtime::custom::CustomConfig {
                registration_timeout: flags.executor_registration_timeout,
                reregistration_timeout: flags.executor_reregistration_timeout,
                shutdown_grace_period: flags.executor_shutdown_grace_period,
                recovery_timeout: flags.recovery_timeout,
                require_token: flags.authenticate_http_executors,
                ..Default::default()
            },
            network: match flags.network_cidr.as_str() {
                "none" => None,
                cidr => Some(keel_agent::isolation::network::NetworkConfig {
                    name: flags.network_name,
                    bridge: flags.network_bridge,
                    subnet: cidr.parse().context("--network-cidr")?,
                    netns_dir: flags.network_netns_dir,
                }),
            },
        },
        http,
        trust,
    };
    let (status, _) = tokio::sync::watch::channel(SessionStatus::default());
    keel_agent::run(listener, config, status, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn sim_main(flags: SimFlags) -> anyhow::Result<()> {
    keel_telemetry::init("keel-agent-sim");
    let masters = keel_agent::masters::parse(&flags.master)?;
    // One connection per agent.
    keel_serve::nofile::raise().context("cannot raise the open files limit")?;
    let ca = match (flags.tls_ca, &flags.tls_ca_fingerprint) {
        (Some(ca), _) => Some(ca),
        (None, Some(pinned)) => {
            Some(keel_agent::trust::pinned_ca(&masters, pinned, &flags.work_dir).await?)
        }
        (None, None) => None,
    };
    let config = keel_agent::sim::SimConfig {
        masters,
        agents: flags.agents,
        first_index: flags.first_index,
        work_dir: flags.work_dir,
        ip: flags.ip,
        behaviour: keel_agent::sim::executor::Behaviour {
            duration: flags.task_duration,
            exit_code: flags.task_exit_code,
            resend_base: flags.status_update_retry_interval,
        },
        registration_backoff_factor: flags.registration_backoff_factor,
        tls: ca.map(|ca| keel_agent::sim::SimTls {
            ca,
            join_token: flags.join_token,
        }),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    keel_agent::sim::run(config, stop_rx).await?;
    Ok(())
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
