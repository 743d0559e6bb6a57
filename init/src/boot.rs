//! PID 1 in the initramfs: the boot sequence, as ordered steps.
//!
//! ```text
//!  mounts -> cmdline -> modules (boot list, coldplug, settle) -> cgroup2
//!    -> network (lo, DHCP on the NICs, first lease wins) -> host name
//!    -> work disk -> configuration valid? (else log why, back off, re-read)
//!    -> supervise keel-agent / keel-master -> stop, sync, unmount, reboot
//! ```
//!
//! Nothing here ends the process: PID 1 exiting panics the kernel. Every
//! failure is logged on the console and either skipped (a module, the work
//! disk) or retried with backoff (DHCP, the configuration, the service).

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use futures::FutureExt;
use rustix::system::RebootCommand;
use tokio::time::Instant;

use crate::cmdline::{self, Parsed};
use crate::dhcp::{Client, Lease};
use crate::lease::{self, DhcpSocket};
use crate::modules::{self, Loader};
use crate::mounts;
use crate::net::{self, Link, Net};
use crate::service;
use crate::supervise::{self, Shutdown, Signals};
use crate::workdisk::{self, Outcome};

const SYS: &str = "/sys";

/// Why the network could not be brought up (retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error(transparent)]
    Lease(#[from] crate::lease::LeaseError),
    #[error("no network interface with a driver (see the module messages above)")]
    NoNic,
}

pub fn read_cmdline() -> Parsed {
    match fs::read_to_string("/proc/cmdline") {
        Ok(text) => cmdline::parse(&text),
        Err(e) => {
            tracing::error!("cannot read /proc/cmdline: {e}");
            cmdline::parse("")
        }
    }
}

/// Runs the node. Never returns.
pub async fn run() -> ! {
    // Before anything can fail: a signal to init without a handler is lost.
    let mut signals = match Signals::install() {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("keel-init: {e}");
            None
        }
    };
    if let Err(e) = mounts::early() {
        eprintln!("keel-init: {e}");
    }
    let parsed = read_cmdline();
    console_logging(parsed.config.log.as_deref());
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    tracing::info!(
        "keel-init {} on Linux {release}, role {}",
        env!("CARGO_PKG_VERSION"),
        parsed.config.role.as_str(),
    );
    // Ctrl-Alt-Del becomes SIGINT to init: a clean reboot.
    if let Err(e) = rustix::system::reboot(RebootCommand::CadOff) {
        tracing::warn!("cannot turn Ctrl-Alt-Del into a signal: {e}");
    }

    load_modules(&parsed);
    match mounts::cgroups() {
        Ok(enabled) => tracing::info!(
            "cgroup2 mounted on {}; controllers for {}/: {}",
            mounts::CGROUP_ROOT,
            mounts::KEEL_CGROUP,
            enabled.join(" ")
        ),
        Err(e) => tracing::error!("{e}"),
    }
    if Path::new("/sys/class/tpm/tpm0").exists() {
        let major = fs::read_to_string("/sys/class/tpm/tpm0/tpm_version_major").unwrap_or_default();
        tracing::info!("tpm0 present (TPM {}.0)", major.trim());
    }

    let (link, lease, bound_at, sock, client) = network(&parsed).await;
    let hostname = service::hostname(
        &parsed.config,
        lease.hostname.as_deref(),
        link.mac.as_deref(),
    );
    if let Err(e) = rustix::system::sethostname(hostname.as_bytes()) {
        tracing::warn!("cannot set the host name {hostname:?}: {e}");
    }
    write_etc(&lease, &hostname);

    let wait = match parsed.config.work_disk {
        cmdline::WorkDisk::Device(_) | cmdline::WorkDisk::Serial(_) => Duration::from_secs(30),
        _ => Duration::ZERO,
    };
    let spec = parsed.config.work_disk.clone();
    match tokio::task::spawn_blocking(move || workdisk::prepare(&spec, Path::new(SYS), wait)).await
    {
        Ok(Ok(Outcome::Mounted { device, formatted })) => tracing::info!(
            "work dirs on /dev/{device} ({}) at {}",
            if formatted {
                "formatted now"
            } else {
                "existing file system"
            },
            workdisk::MOUNT_POINT
        ),
        Ok(Ok(Outcome::Tmpfs { reason })) => {
            tracing::warn!("work dirs in RAM: {reason}; the node gets a new identity on every boot")
        }
        Ok(Err(e)) => tracing::error!("work disk: {e}"),
        Err(e) => tracing::error!("work disk: {e}"),
    }

    let parsed = valid_config(parsed).await;
    let config = parsed.config;

    // Keep the lease; a new address restarts the service.
    let (addr_tx, mut addr_rx) = tokio::sync::watch::channel(lease.address);
    tokio::spawn(keep_lease(link, sock, client, lease, bound_at, addr_tx));

    let shutdown = match signals.as_mut() {
        Some(signals) => {
            supervise::run(signals, &mut addr_rx, |ip: &Ipv4Addr| {
                service::service(&config, IpAddr::V4(*ip), &hostname)
            })
            .await
        }
        None => {
            tracing::error!("no signal handling; not starting the service");
            std::future::pending().await
        }
    };
    finish(shutdown)
}

/// Logs to the console (stderr): plain text for a serial line, stamped with
/// the time since the kernel started, like the kernel's own messages.
/// `keel.log` sets the filter (default `info`).
fn console_logging(filter: Option<&str>) {
    struct SinceBoot;
    impl tracing_subscriber::fmt::time::FormatTime for SinceBoot {
        fn format_time(
            &self,
            w: &mut tracing_subscriber::fmt::format::Writer<'_>,
        ) -> std::fmt::Result {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
            write!(w, "[{:5}.{:03}]", t.tv_sec, t.tv_nsec / 1_000_000)
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_new(filter.unwrap_or("info"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_timer(SinceBoot)
        .try_init();
}

/// The bundle's boot list, `keel.modules`, then the hardware's drivers.
fn load_modules(parsed: &Parsed) {
    let mut loader = match Loader::open(Path::new("/")) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("no kernel modules: {e}");
            return;
        }
    };
    let mut names =
        modules::read_list(&Path::new("/").join(modules::BOOT_LIST)).unwrap_or_else(|e| {
            tracing::warn!("{e}");
            Vec::new()
        });
    names.extend(parsed.config.extra_modules.iter().cloned());
    let mut loaded = Vec::new();
    for name in &names {
        match loader.load(name) {
            Ok(l) => loaded.extend(l),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    let (hw, errors) = loader.coldplug(Path::new(SYS));
    for e in errors {
        tracing::warn!("{e}");
    }
    let settled = modules::settle(
        Path::new(SYS),
        Duration::from_millis(500),
        Duration::from_secs(10),
    );
    tracing::info!(
        "loaded {} modules at boot ({}) and {} for the hardware ({}){}",
        loaded.len(),
        loaded.join(" "),
        hw.len(),
        hw.join(" "),
        if settled {
            ""
        } else {
            "; devices still appearing after 10s"
        },
    );
    let missing =
        fs::read_to_string(Path::new("/").join(modules::MISSING_ALIASES)).unwrap_or_default();
    for nic in modules::undriven_nics(Path::new(SYS), &missing) {
        tracing::error!("{nic}");
    }
}

type Bound = (Link, Lease, Instant, DhcpSocket, Client);

/// Brings up lo and the NICs, and runs DHCP on the candidates until one
/// gets a lease, which it configures.
async fn network(parsed: &Parsed) -> Bound {
    let mut attempt = 0u32;
    loop {
        match try_network(parsed).await {
            Ok(bound) => return bound,
            Err(e) => {
                let delay = supervise::restart_delay(attempt);
                attempt += 1;
                tracing::error!("network: {e}; trying again in {delay:?}");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn try_network(parsed: &Parsed) -> Result<Bound, BootError> {
    let net = Net::connect()?;
    let links = net.links().await?;
    if let Some(lo) = links.iter().find(|l| l.name == "lo") {
        net.set_up(lo).await?;
    }
    let candidates =
        net::dhcp_candidates(Path::new(SYS), &links, parsed.config.boot_mac.as_deref());
    if candidates.is_empty() {
        return Err(BootError::NoNic);
    }
    let mut attempts = Vec::new();
    for link in candidates {
        net.set_up(&link).await?;
        let Some(mac) = link.mac_bytes() else {
            continue;
        };
        let sock = DhcpSocket::bind(&link.name)?;
        let client = Client::new(mac, fastrand::u32(..), parsed.config.hostname.clone());
        tracing::info!(
            "dhcp on {} ({})",
            link.name,
            link.mac.as_deref().unwrap_or("?")
        );
        attempts.push(
            async move {
                let mut client = client;
                let name = link.name.clone();
                let lease = lease::acquire(&sock, &mut client, |n, why| {
                    tracing::info!("dhcp on {name}: {why} (attempt {})", n + 1)
                })
                .await;
                (link, lease, sock, client)
            }
            .boxed(),
        );
    }
    let ((link, lease, sock, client), _, _) = futures::future::select_all(attempts).await;
    let lease = lease?;
    let bound_at = Instant::now();
    configure(&net, &link, &lease).await?;
    tracing::info!(
        "{} is {}/{} (router {}, dns {}) from dhcp server {}",
        link.name,
        lease.address,
        lease.prefix_len,
        lease
            .router
            .map_or_else(|| "none".to_string(), |r| r.to_string()),
        lease
            .dns
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(","),
        lease.server,
    );
    Ok((link, lease, bound_at, sock, client))
}

async fn configure(net: &Net, link: &Link, lease: &Lease) -> Result<(), BootError> {
    if let Some(mtu) = lease.mtu.filter(|m| *m >= 576) {
        net.set_mtu(link, mtu.into()).await?;
    }
    net.add_address(link, IpAddr::V4(lease.address), lease.prefix_len)
        .await?;
    if let Some(router) = lease.router {
        net.add_default_route(link, router).await?;
    }
    Ok(())
}

/// /etc/resolv.conf and /etc/hosts from the lease.
fn write_etc(lease: &Lease, hostname: &str) {
    let mut resolv = String::new();
    if let Some(d) = &lease.domain {
        resolv.push_str(&format!("search {d}\n"));
    }
    for ns in &lease.dns {
        resolv.push_str(&format!("nameserver {ns}\n"));
    }
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost\n{}\t{hostname}\n",
        lease.address
    );
    for (path, text) in [("/etc/resolv.conf", resolv), ("/etc/hosts", hosts)] {
        if let Err(e) = fs::write(path, text) {
            tracing::warn!("cannot write {path}: {e}");
        }
    }
}

/// Waits until the command line is valid for the role, logging why not and
/// re-reading it with backoff (the service must not start half-configured).
pub async fn valid_config(mut parsed: Parsed) -> Parsed {
    let mut attempt = 0u32;
    while !parsed.is_ok() {
        let delay = supervise::restart_delay(attempt);
        attempt += 1;
        for e in &parsed.errors {
            tracing::error!(
                "{e}; keel-{} not started, checking the kernel command line again in {delay:?} (attempt {attempt})",
                parsed.config.role.as_str()
            );
        }
        tokio::time::sleep(delay).await;
        parsed = read_cmdline();
    }
    parsed
}

/// Renews the lease for as long as the node runs; when it is lost, takes
/// the address away and gets a new lease, which restarts the service.
async fn keep_lease(
    link: Link,
    sock: DhcpSocket,
    mut client: Client,
    mut lease: Lease,
    mut bound_at: Instant,
    address: tokio::sync::watch::Sender<Ipv4Addr>,
) {
    let Ok(net) = Net::connect() else {
        tracing::error!("cannot open netlink to keep the lease on {}", link.name);
        return;
    };
    loop {
        match lease::maintain(&sock, &mut client, &lease, bound_at).await {
            Ok(renewed) => {
                tracing::info!("{}: lease of {} renewed", link.name, renewed.address);
                lease = renewed;
                bound_at = Instant::now();
            }
            Err(e) => {
                tracing::error!("{e}");
                let _ = net
                    .del_address(&link, IpAddr::V4(lease.address), lease.prefix_len)
                    .await;
                let name = link.name.clone();
                let Ok(new) = lease::acquire(&sock, &mut client, |n, why| {
                    tracing::info!("dhcp on {name}: {why} (attempt {})", n + 1)
                })
                .await
                else {
                    continue;
                };
                if let Err(e) = configure(&net, &link, &new).await {
                    tracing::error!("{e}");
                }
                lease = new;
                bound_at = Instant::now();
                let _ = address.send(lease.address);
            }
        }
    }
}

/// Syncs, unmounts the work dirs and reboots or powers off.
fn finish(shutdown: Shutdown) -> ! {
    rustix::fs::sync();
    if let Err(e) = mounts::unmount(Path::new(workdisk::MOUNT_POINT)) {
        tracing::warn!("{e}");
    }
    rustix::fs::sync();
    let cmd = match shutdown {
        Shutdown::Reboot => RebootCommand::Restart,
        Shutdown::PowerOff => RebootCommand::PowerOff,
    };
    tracing::info!("{shutdown:?} now");
    loop {
        if let Err(e) = rustix::system::reboot(cmd) {
            tracing::error!("reboot({shutdown:?}) failed: {e}");
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}
