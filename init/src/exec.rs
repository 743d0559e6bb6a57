//! `keel-init exec`: the service's entry point in the systemd image, where
//! systemd mounts, loads modules and runs DHCP (systemd-networkd). It waits
//! for a valid kernel command line and an address, exactly as PID 1 does in
//! the initramfs, and then replaces itself with keel-agent or keel-master;
//! systemd restarts it when that exits.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::boot::{read_cmdline, valid_config};
use crate::net::{self, Net, NetError};
use crate::service;
use crate::supervise::restart_delay;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("cannot exec {program}: {source}")]
    Exec {
        program: String,
        source: std::io::Error,
    },
}

/// Waits for configuration and address, then execs the service. Returns
/// only on failure.
pub async fn run() -> ExecError {
    match root_mount(&std::fs::read_to_string("/proc/self/mounts").unwrap_or_default()) {
        Some(root) if root.read_only => tracing::info!(
            "root file system: {} on {}, read-only",
            root.fstype,
            root.source
        ),
        Some(root) => tracing::warn!(
            "root file system: {} on {}, writable (expected read-only)",
            root.fstype,
            root.source
        ),
        None => tracing::warn!("no root file system in /proc/self/mounts"),
    }
    let parsed = valid_config(read_cmdline()).await;
    let config = parsed.config;
    let mut attempt = 0u32;
    let (ip, mac) = loop {
        match address(config.boot_mac.as_deref()).await {
            Ok(Some(found)) => break found,
            Ok(None) => {}
            Err(e) => return e,
        }
        let delay = restart_delay(attempt).min(Duration::from_secs(5));
        attempt += 1;
        if attempt % 10 == 1 {
            tracing::info!("waiting for an IPv4 address on a NIC (attempt {attempt})");
        }
        tokio::time::sleep(delay).await;
    };
    let kernel_name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let dhcp_name =
        Some(kernel_name.as_str()).filter(|n| !matches!(*n, "localhost" | "(none)" | ""));
    let hostname = service::hostname(&config, dhcp_name, mac.as_deref());
    let svc = service::service(&config, ip.into(), &hostname);
    tracing::info!("exec {}", svc.display());
    let source = Command::new(&svc.program)
        .args(&svc.args)
        .envs(svc.env.iter().map(|(k, v)| (k, v)))
        .exec();
    ExecError::Exec {
        program: svc.program.display().to_string(),
        source,
    }
}

/// The file system mounted on `/` (the last mount there wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootMount {
    pub source: String,
    pub fstype: String,
    pub read_only: bool,
}

/// Finds `/` in the text of /proc/self/mounts.
pub fn root_mount(mounts: &str) -> Option<RootMount> {
    mounts.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 4 && f[1] == "/").then(|| RootMount {
            source: f[0].to_string(),
            fstype: f[2].to_string(),
            read_only: f[3].split(',').any(|o| o == "ro"),
        })
    })
}

/// The first global IPv4 address on a physical NIC (the boot NIC's when
/// named), with that NIC's MAC.
async fn address(
    boot_mac: Option<&str>,
) -> Result<Option<(std::net::Ipv4Addr, Option<String>)>, ExecError> {
    let net = Net::connect()?;
    let links = net.links().await?;
    let candidates = net::dhcp_candidates(Path::new("/sys"), &links, boot_mac);
    let addrs = net.ipv4_addresses().await?;
    Ok(candidates.iter().find_map(|l| {
        addrs
            .iter()
            .find(|(index, _, _)| *index == l.index)
            .map(|(_, ip, _)| (*ip, l.mac.clone()))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_root_mount_wins() {
        let mounts = "rootfs / rootfs rw 0 0\n\
                      /dev/mapper/root / erofs ro,relatime,user_xattr 0 0\n\
                      tmpfs /var tmpfs rw,nosuid 0 0\n";
        assert_eq!(
            root_mount(mounts),
            Some(RootMount {
                source: "/dev/mapper/root".into(),
                fstype: "erofs".into(),
                read_only: true
            })
        );
        assert_eq!(root_mount("tmpfs /run tmpfs rw 0 0\n"), None);
    }
}
