//! Discovery on the captured fixtures in `agent/testdata/` (how each was made:
//! `agent/testdata/README.md`). The expected values were checked against
//! `lscpu`, `lsblk`, `ip -j link`/`ip -j addr` and /proc/meminfo (devbox) and
//! against the QEMU command line in `capture-qemu.sh` (qemu-q35).

use std::fs;
use std::path::{Path, PathBuf};

use keel_agent::discovery::{DiscoveryOptions, capture_tree, discover_fixture};
use keel_api::inventory::{
    CpuInfo, Disk, HugePages, Inventory, IpAddress, MemoryInfo, Nic, Partition, PciDevice, PciKind,
    TpmInfo,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn load(name: &str) -> Inventory {
    discover_fixture(&fixture(name), &DiscoveryOptions::default()).unwrap()
}

fn ips(list: &[(&str, u32)]) -> Vec<IpAddress> {
    list.iter()
        .map(|(a, p)| IpAddress {
            address: a.to_string(),
            prefix_len: *p,
        })
        .collect()
}

fn s(text: &str) -> Option<String> {
    Some(text.to_string())
}

/// Huge page pools of an x86 kernel with nothing reserved but `n` 2 MiB pages.
fn hugepages(n: u64) -> Vec<HugePages> {
    vec![
        HugePages {
            page_size_bytes: 2 << 20,
            total: n,
            free: n,
        },
        HugePages {
            page_size_bytes: 1 << 30,
            total: 0,
            free: 0,
        },
    ]
}

fn lo() -> Nic {
    Nic {
        name: "lo".into(),
        index: 1,
        mac: None,
        mtu: 65536,
        oper_state: "unknown".into(),
        kind: s("loopback"),
        addresses: ips(&[("127.0.0.1", 8), ("::1", 128)]),
        ..Nic::default()
    }
}

#[test]
fn devbox() {
    let inv = load("devbox");
    assert_eq!(inv.hostname, "vm");
    assert_eq!(
        inv.cpu,
        CpuInfo {
            logical: 2,
            cores: 2,
            sockets: 1,
            numa_nodes: 1,
            model: "AMD EPYC".into(),
            vendor: "AuthenticAMD".into(),
            online: "0-1".into(),
        }
    );
    assert_eq!(
        inv.memory,
        MemoryInfo {
            total_bytes: 24684084 * 1024,
            // Captured before the memory-block files were part of fixtures.
            physical_bytes: None,
            available_bytes: 23906368 * 1024,
            swap_total_bytes: 0,
            hugepages: hugepages(0),
        }
    );
    // loop0-7 and zram0 are left out by default.
    assert_eq!(
        inv.disks,
        [Disk {
            name: "vda".into(),
            size_bytes: 274877906944,
            rotational: true,
            removable: false,
            model: None,
            serial: s("overlayblk"),
            wwn: None,
            vendor: s("0x1af4"),
            transport: "virtio".into(),
            partitions: vec![],
        }]
    );
    let ifb = |index: u32, name: &str, mac: &str| Nic {
        name: name.into(),
        index,
        mac: s(mac),
        mtu: 1500,
        oper_state: "down".into(),
        kind: s("ifb"),
        ..Nic::default()
    };
    assert_eq!(
        inv.nics,
        [
            lo(),
            ifb(2, "ifb0", "d6:bb:2a:3e:4f:2d"),
            ifb(3, "ifb1", "ea:a7:bb:3d:60:25"),
            Nic {
                name: "eth0".into(),
                index: 4,
                mac: s("02:fc:00:00:00:01"),
                mtu: 1400,
                oper_state: "up".into(),
                kind: None,
                addresses: ips(&[
                    ("192.0.2.2", 24),
                    ("fd00::2", 64),
                    ("fe80::fc:ff:fe00:1", 64)
                ]),
                driver: s("virtio_net"),
                pci_address: s("0000:00:03.0"),
                // `speed` reads -1 on virtio-net.
                speed_mbps: None,
            },
        ]
    );
    assert!(inv.accelerators.is_empty());
    assert_eq!(inv.gpu_count(), 0);
    assert_eq!(inv.tpm, Some(TpmInfo::absent()));
}

#[test]
fn devbox_with_virtual_disks() {
    let opts = DiscoveryOptions {
        include_virtual_disks: true,
    };
    let inv = discover_fixture(&fixture("devbox"), &opts).unwrap();
    let names: Vec<_> = inv.disks.iter().map(|d| d.name.as_str()).collect();
    let loops: Vec<String> = (0..8).map(|i| format!("loop{i}")).collect();
    let mut expected: Vec<&str> = loops.iter().map(String::as_str).collect();
    expected.extend(["vda", "zram0"]);
    assert_eq!(names, expected);
    assert!(
        inv.disks
            .iter()
            .filter(|d| d.name != "vda")
            .all(|d| d.transport == "unknown")
    );
}

#[test]
fn qemu_q35() {
    let inv = load("qemu-q35");
    assert_eq!(inv.hostname, "keel-q35");
    assert_eq!(
        inv.cpu,
        CpuInfo {
            logical: 4,
            cores: 4,
            sockets: 2,
            numa_nodes: 2,
            model: "QEMU TCG CPU version 2.5+".into(),
            vendor: "AuthenticAMD".into(),
            online: "0-3".into(),
        }
    );
    assert_eq!(inv.memory.total_bytes, 2014472 * 1024);
    assert_eq!(inv.memory.swap_total_bytes, 0);
    assert!(inv.memory.available_bytes > 0 && inv.memory.available_bytes < inv.memory.total_bytes);
    assert_eq!(inv.memory.hugepages, hugepages(16));

    let part = |name: &str, start: u64, sectors: u64| Partition {
        name: name.into(),
        size_bytes: sectors * 512,
        start_sector: start,
    };
    let mib = 1 << 20;
    assert_eq!(
        inv.disks,
        [
            Disk {
                name: "nvme0n1".into(),
                size_bytes: 128 * mib,
                rotational: false,
                removable: false,
                model: s("QEMU NVMe Ctrl"),
                serial: s("KEELNVME0001"),
                wwn: s("nvme.1b36-4b45454c4e564d4530303031-51454d55204e564d65204374726c-00000001"),
                vendor: None,
                transport: "nvme".into(),
                partitions: vec![part("nvme0n1p1", 2048, 131072)],
            },
            Disk {
                name: "sda".into(),
                size_bytes: 96 * mib,
                rotational: true,
                removable: false,
                model: s("KEEL-SCSI-DISK"),
                serial: s("KEELSCSI0001"),
                wwn: s("naa.5000c50015ea71ac"),
                vendor: s("KEELLAB"),
                transport: "scsi".into(),
                partitions: vec![],
            },
            Disk {
                name: "sdb".into(),
                size_bytes: 32 * mib,
                rotational: true,
                removable: true,
                model: s("QEMU HARDDISK"),
                serial: s("KEELUSB0001"),
                wwn: None,
                vendor: s("QEMU"),
                transport: "usb".into(),
                partitions: vec![],
            },
            Disk {
                name: "vda".into(),
                size_bytes: 64 * mib,
                rotational: true,
                removable: false,
                model: None,
                serial: s("KEEL-VBLK-0001"),
                wwn: None,
                vendor: s("0x1af4"),
                transport: "virtio".into(),
                partitions: vec![part("vda1", 2048, 32768), part("vda2", 34816, 94208)],
            },
        ]
    );

    let virtual_nic = |index: u32, name: &str, mac: &str, state: &str, kind: &str| Nic {
        name: name.into(),
        index,
        mac: s(mac),
        mtu: 1500,
        oper_state: state.into(),
        kind: s(kind),
        ..Nic::default()
    };
    assert_eq!(
        inv.nics,
        [
            lo(),
            Nic {
                name: "eth0".into(),
                index: 2,
                mac: s("52:54:00:4b:45:01"),
                mtu: 1500,
                oper_state: "up".into(),
                kind: None,
                addresses: ips(&[
                    ("10.0.2.15", 24),
                    ("fec0::5054:ff:fe4b:4501", 64),
                    ("fe80::5054:ff:fe4b:4501", 64),
                ]),
                driver: s("virtio_net"),
                pci_address: s("0000:00:07.0"),
                speed_mbps: None,
            },
            Nic {
                name: "eth1".into(),
                index: 3,
                mac: s("52:54:00:4b:45:02"),
                mtu: 4000,
                oper_state: "up".into(),
                kind: None,
                addresses: ips(&[
                    ("192.168.77.2", 24),
                    ("fd00:77::2", 64),
                    ("fec0::5054:ff:fe4b:4502", 64),
                    ("fe80::5054:ff:fe4b:4502", 64),
                ]),
                driver: s("e1000"),
                pci_address: s("0000:00:08.0"),
                speed_mbps: Some(1000),
            },
            Nic {
                addresses: ips(&[("10.99.0.1", 24)]),
                ..virtual_nic(4, "br0", "52:54:00:4b:45:10", "down", "bridge")
            },
            virtual_nic(5, "veth1", "52:54:00:4b:45:12", "down", "veth"),
            Nic {
                speed_mbps: Some(10000),
                ..virtual_nic(6, "veth0", "52:54:00:4b:45:11", "lowerlayerdown", "veth")
            },
        ]
    );

    let display = |address: &str, class: u32| PciDevice {
        address: address.into(),
        class,
        vendor_id: 0x1234,
        device_id: 0x1111,
        vendor_name: s("QEMU"),
        driver: s("bochs-drm"),
        numa_node: None,
        kind: PciKind::Display,
    };
    // `-vga std` and `-device bochs-display`; no GPUs.
    assert_eq!(
        inv.accelerators,
        [
            display("0000:00:01.0", 0x030000),
            display("0000:00:02.0", 0x038000)
        ]
    );
    assert_eq!(inv.gpu_count(), 0);
    // Captured before TPM discovery, with no swtpm on the QEMU line.
    assert_eq!(inv.tpm, Some(TpmInfo::absent()));
}

#[test]
fn qemu_q35_with_virtual_disks() {
    let opts = DiscoveryOptions {
        include_virtual_disks: true,
    };
    let inv = discover_fixture(&fixture("qemu-q35"), &opts).unwrap();
    let sr0 = inv.disks.iter().find(|d| d.name == "sr0").unwrap();
    // An empty virtio-scsi CD drive: without a medium the sr driver reports
    // its fallback capacity of 0x1fffff sectors, not 0.
    assert_eq!(
        (sr0.size_bytes, sr0.transport.as_str(), sr0.removable),
        (0x1fffff * 512, "scsi", true)
    );
    assert_eq!(sr0.model.as_deref(), Some("QEMU CD-ROM"));
}

/// A capture of a fixture is the same fixture: the mirror recreates every
/// symlink and file the readers need, including dangling driver links.
#[test]
fn recapturing_a_fixture_changes_nothing() {
    for name in ["devbox", "qemu-q35"] {
        let src = fixture(name);
        let dst = tempfile::tempdir().unwrap();
        capture_tree(&src, dst.path()).unwrap();
        fs::create_dir_all(dst.path().join("netlink")).unwrap();
        for file in ["links.bin", "addrs.bin"] {
            fs::copy(
                src.join("netlink").join(file),
                dst.path().join("netlink").join(file),
            )
            .unwrap();
        }
        let opts = DiscoveryOptions {
            include_virtual_disks: true,
        };
        assert_eq!(
            discover_fixture(dst.path(), &opts).unwrap(),
            discover_fixture(&src, &opts).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn missing_fixture_names_the_path() {
    let err = discover_fixture(&fixture("no-such-fixture"), &DiscoveryOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no-such-fixture/netlink/links.bin"), "{err}");
}
