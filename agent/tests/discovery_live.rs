//! Live discovery on whatever machine runs the tests, checked against the
//! system's own tools (`getconf`, `ip -j`, `lsblk -J`) and /proc. Nothing here
//! assumes particular device names. A tool that is not installed skips its
//! check with a note on stderr.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::process::Command;

use keel_agent::discovery::{DiscoveryOptions, capture, discover, discover_fixture, disk};
use keel_api::inventory::Inventory;
use serde_json::Value;

async fn live() -> Inventory {
    discover(Path::new("/"), &DiscoveryOptions::default())
        .await
        .unwrap()
}

/// Runs a command and returns its stdout, or `None` when it is not installed.
fn run(program: &str, args: &[&str]) -> Option<String> {
    match Command::new(program).args(args).output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{program} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(String::from_utf8(out.stdout).unwrap())
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            eprintln!("{program} is not installed; skipping that check");
            None
        }
        Err(e) => panic!("{program}: {e}"),
    }
}

#[tokio::test]
async fn cpus_match_getconf_and_sysfs() {
    let inv = live().await;
    let online = fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    assert_eq!(inv.cpu.online, online.trim());
    if let Some(n) = run("getconf", &["_NPROCESSORS_ONLN"]) {
        assert_eq!(inv.cpu.logical, n.trim().parse::<u32>().unwrap());
    }
    // `nproc` counts the CPUs this process may run on, at most all online ones.
    if let Some(n) = run("nproc", &[]) {
        assert!(n.trim().parse::<u32>().unwrap() <= inv.cpu.logical);
    }
    assert!(inv.cpu.sockets >= 1 && inv.cpu.cores >= inv.cpu.sockets);
    assert!(inv.cpu.cores <= inv.cpu.logical);
    assert!(inv.cpu.numa_nodes >= 1);
}

#[tokio::test]
async fn memory_matches_meminfo() {
    let inv = live().await;
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(inv.memory.total_bytes, kib * 1024);
    assert!(inv.memory.available_bytes <= inv.memory.total_bytes);
    // Installed RAM, where the kernel has memory-block sysfs, is at least
    // what the kernel manages.
    if std::path::Path::new("/sys/devices/system/memory/block_size_bytes").exists() {
        let physical = inv
            .memory
            .physical_bytes
            .expect("memory blocks are readable");
        assert!(
            physical >= inv.memory.total_bytes,
            "{physical} < {}",
            inv.memory.total_bytes
        );
    }
}

#[tokio::test]
async fn nics_match_ip_link() {
    let inv = live().await;
    let Some(out) = run("ip", &["-j", "link", "show"]) else {
        return;
    };
    let links: Vec<Value> = serde_json::from_str(&out).unwrap();
    let expected: BTreeMap<String, Option<String>> = links
        .iter()
        .map(|l| {
            let name = l["ifname"].as_str().unwrap().to_string();
            // Only Ethernet-style addresses are MACs; `ip` prints tunnel
            // endpoints as IP addresses.
            let mac = match l["link_type"].as_str() {
                Some("ether" | "loopback") => l["address"]
                    .as_str()
                    .filter(|a| a.chars().any(|c| c != '0' && c != ':'))
                    .map(str::to_string),
                _ => None,
            };
            (name, mac)
        })
        .collect();
    let ether: Vec<&str> = links
        .iter()
        .filter(|l| matches!(l["link_type"].as_str(), Some("ether" | "loopback")))
        .filter_map(|l| l["ifname"].as_str())
        .collect();
    let got: BTreeMap<String, Option<String>> = inv
        .nics
        .iter()
        .map(|n| {
            let mac = if ether.contains(&n.name.as_str()) {
                n.mac.clone()
            } else {
                None
            };
            (n.name.clone(), mac)
        })
        .collect();
    assert_eq!(got, expected);
    let lo = inv.nics.iter().find(|n| n.name == "lo").expect("no lo");
    assert_eq!(lo.kind.as_deref(), Some("loopback"));
}

#[tokio::test]
async fn addresses_match_ip_addr() {
    let inv = live().await;
    let Some(out) = run("ip", &["-j", "addr", "show"]) else {
        return;
    };
    let links: Vec<Value> = serde_json::from_str(&out).unwrap();
    for link in &links {
        let name = link["ifname"].as_str().unwrap();
        let mut expected: Vec<(String, u32)> = link["addr_info"]
            .as_array()
            .map(|infos| {
                infos
                    .iter()
                    .map(|a| {
                        let ip = a["local"].as_str().unwrap().to_string();
                        (ip, u32::try_from(a["prefixlen"].as_u64().unwrap()).unwrap())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let nic = inv.nics.iter().find(|n| n.name == name).unwrap();
        let mut got: Vec<(String, u32)> = nic
            .addresses
            .iter()
            .map(|a| (a.address.clone(), a.prefix_len))
            .collect();
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "{name}");
    }
}

#[tokio::test]
async fn disks_match_lsblk() {
    let inv = live().await;
    let Some(out) = run("lsblk", &["-J", "-d", "-b", "-o", "NAME,SIZE,TYPE"]) else {
        return;
    };
    let json: Value = serde_json::from_str(&out).unwrap();
    let expected: BTreeMap<String, u64> = json["blockdevices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["type"] == "disk")
        .map(|d| {
            let name = d["name"].as_str().unwrap().to_string();
            // Older lsblk prints SIZE as a string even with -J.
            let size = d["size"]
                .as_u64()
                .or_else(|| d["size"].as_str().and_then(|s| s.parse().ok()))
                .unwrap();
            (name, size)
        })
        .filter(|(name, _)| !disk::is_virtual(name))
        .collect();
    let got: BTreeMap<String, u64> = inv
        .disks
        .iter()
        .map(|d| (d.name.clone(), d.size_bytes))
        .collect();
    assert_eq!(got, expected);
}

/// A capture of this machine reads back as what live discovery sees (except
/// the values that move on their own: available memory, free huge pages,
/// and addresses that come and go).
#[tokio::test]
async fn capture_reads_back_as_live() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("fixture");
    capture(&fixture).await.unwrap();
    let opts = DiscoveryOptions {
        include_virtual_disks: true,
    };
    let captured = discover_fixture(&fixture, &opts).unwrap();
    let live = discover(Path::new("/"), &opts).await.unwrap();

    assert_eq!(captured.hostname, live.hostname);
    assert_eq!(captured.cpu, live.cpu);
    assert_eq!(captured.memory.total_bytes, live.memory.total_bytes);
    assert_eq!(
        captured.memory.swap_total_bytes,
        live.memory.swap_total_bytes
    );
    let pools = |inv: &Inventory| -> Vec<(u64, u64)> {
        inv.memory
            .hugepages
            .iter()
            .map(|h| (h.page_size_bytes, h.total))
            .collect()
    };
    assert_eq!(pools(&captured), pools(&live));
    assert_eq!(captured.disks, live.disks);
    assert_eq!(captured.accelerators, live.accelerators);
    let stable = |inv: &Inventory| -> Vec<_> {
        inv.nics
            .iter()
            .map(|n| {
                let n = n.clone();
                (
                    n.name,
                    n.index,
                    n.mac,
                    n.mtu,
                    n.kind,
                    n.driver,
                    n.pci_address,
                    n.speed_mbps,
                )
            })
            .collect()
    };
    assert_eq!(stable(&captured), stable(&live));
    let present = |inv: &Inventory| inv.tpm.as_ref().map(|t| t.present);
    assert_eq!(present(&captured), present(&live));
}

#[tokio::test]
async fn tpm_presence_matches_sysfs() {
    let inv = live().await;
    let tpm = inv
        .tpm
        .expect("live discovery always says whether there is a TPM");
    let sysfs = fs::read_dir("/sys/class/tpm").is_ok_and(|mut d| d.next().is_some());
    assert_eq!(tpm.present, sysfs, "{tpm:?}");
    if !tpm.present {
        assert_eq!(tpm, keel_api::inventory::TpmInfo::absent());
    }
}
