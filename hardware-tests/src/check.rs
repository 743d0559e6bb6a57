//! Compares what the master says a node has (its inventory) with the
//! node's shape. Pure: the same checks run for QEMU guests and for real
//! machines.
//!
//! - CPUs: `cpu.logical` equals the vCPU count.
//! - Memory: `memory.total_bytes` is the kernel's MemTotal, which leaves out
//!   what the kernel reserves at boot: its page structures (64 bytes per
//!   4 KiB page, 1/64 of RAM) and a fixed part (kernel image, page tables,
//!   firmware areas: 40-70 MiB for Debian's kernels). It must lie between
//!   RAM - (RAM/64 + [`KERNEL_RESERVE_MIB`]) and RAM. (MemTotal cannot come
//!   within 2 % of RAM under these kernels; see hardware-tests/README.md.)
//! - Disks: each shape disk is found by serial (else by kind and size),
//!   with the same transport and exactly the same size; the inventory has
//!   no other disk.
//! - NICs: each shape NIC is found by MAC with its driver, or is absent when
//!   no driver is expected; the inventory has no other PCI NIC.

use std::fmt;

use keel_api::inventory::{Disk, Inventory};

use crate::shape::{MIB, Shape};

/// The fixed part of the kernel's boot-time reservation, in MiB.
pub const KERNEL_RESERVE_MIB: u64 = 96;

/// One difference between shape and inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Cpus {
        expected: u32,
        found: u32,
    },
    Memory {
        ram_mib: u64,
        found_bytes: u64,
        min_bytes: u64,
    },
    DiskMissing {
        what: String,
    },
    DiskTransport {
        name: String,
        expected: String,
        found: String,
    },
    DiskSize {
        name: String,
        expected: u64,
        found: u64,
    },
    DiskExtra {
        name: String,
        transport: String,
        size: u64,
    },
    NicMissing {
        mac: String,
        driver: String,
    },
    NicDriver {
        mac: String,
        expected: String,
        found: String,
    },
    NicNotExpected {
        mac: String,
        name: String,
        driver: String,
    },
    NicExtra {
        name: String,
        mac: String,
    },
    /// The shape has a TPM; the inventory has none, or one it could not read.
    Tpm {
        found: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Cpus { expected, found } => {
                write!(f, "{found} logical CPUs, expected {expected}")
            }
            Mismatch::Memory {
                ram_mib,
                found_bytes,
                min_bytes,
            } => write!(
                f,
                "memory total {:.1} MiB is outside [{:.1}, {ram_mib}] MiB for {ram_mib} MiB of RAM",
                *found_bytes as f64 / MIB as f64,
                *min_bytes as f64 / MIB as f64
            ),
            Mismatch::DiskMissing { what } => write!(f, "no disk {what}"),
            Mismatch::DiskTransport {
                name,
                expected,
                found,
            } => write!(f, "disk {name} is {found}, expected {expected}"),
            Mismatch::DiskSize {
                name,
                expected,
                found,
            } => write!(f, "disk {name} has {found} bytes, expected {expected}"),
            Mismatch::DiskExtra {
                name,
                transport,
                size,
            } => write!(f, "unexpected {transport} disk {name} of {size} bytes"),
            Mismatch::NicMissing { mac, driver } => {
                write!(f, "no NIC {mac} (expected driver {driver})")
            }
            Mismatch::NicDriver {
                mac,
                expected,
                found,
            } => write!(f, "NIC {mac} has driver {found}, expected {expected}"),
            Mismatch::NicNotExpected { mac, name, driver } => write!(
                f,
                "NIC {mac} ({name}) has driver {driver}, but the shape expects no driver for it"
            ),
            Mismatch::NicExtra { name, mac } => write!(f, "unexpected NIC {name} ({mac})"),
            Mismatch::Tpm { found } => write!(f, "expected a readable TPM 2.0, found {found}"),
        }
    }
}

/// The lowest MemTotal accepted for `ram_mib` of RAM.
pub fn min_memtotal(ram_mib: u64) -> u64 {
    let ram = ram_mib * MIB;
    ram.saturating_sub(ram / 64 + KERNEL_RESERVE_MIB * MIB)
}

/// Every difference between `shape` and `inv`; empty when they match.
pub fn compare(shape: &Shape, inv: &Inventory) -> Vec<Mismatch> {
    let mut out = Vec::new();
    if inv.cpu.logical != shape.vcpus {
        out.push(Mismatch::Cpus {
            expected: shape.vcpus,
            found: inv.cpu.logical,
        });
    }
    let ram = shape.memory_mib * MIB;
    let (found, min_bytes, max_bytes) = match inv.memory.physical_bytes {
        // Installed RAM is known: within 2 % of the shape's.
        Some(p) => (p, ram - ram / 50, ram + ram / 50),
        None => (inv.memory.total_bytes, min_memtotal(shape.memory_mib), ram),
    };
    if found < min_bytes || found > max_bytes {
        out.push(Mismatch::Memory {
            ram_mib: shape.memory_mib,
            found_bytes: found,
            min_bytes,
        });
    }
    compare_disks(shape, &inv.disks, &mut out);
    compare_nics(shape, inv, &mut out);
    compare_tpm(shape, inv, &mut out);
    out
}

/// A shape with `tpm` needs a TPM the agent read (properties and EK). A
/// TPM the shape does not mention is no mismatch: real machines' shapes
/// need not list theirs.
fn compare_tpm(shape: &Shape, inv: &Inventory, out: &mut Vec<Mismatch>) {
    if !shape.tpm {
        return;
    }
    let readable = inv
        .tpm
        .as_ref()
        .is_some_and(|t| t.present && t.error.is_none() && t.ek.is_some());
    if !readable {
        out.push(Mismatch::Tpm {
            found: tpm_summary(inv),
        });
    }
}

/// One line about the inventory's TPM, as `keel-hwtest check` prints it.
pub fn tpm_summary(inv: &Inventory) -> String {
    let Some(t) = &inv.tpm else {
        return "unknown (the agent did not report a TPM)".into();
    };
    if !t.present {
        return "no TPM".into();
    }
    let mut line = format!(
        "TPM {} {} firmware {}",
        t.family.as_deref().unwrap_or("?"),
        t.manufacturer.as_deref().unwrap_or("?"),
        t.firmware_version.as_deref().unwrap_or("?")
    );
    if let Some(ek) = &t.ek {
        line += &format!(", EK {} sha256:{}", ek.algorithm, ek.sha256);
    }
    if let Some(e) = &t.error {
        line += &format!(", error: {e}");
    }
    line
}

fn compare_disks(shape: &Shape, disks: &[Disk], out: &mut Vec<Mismatch>) {
    let mut used = vec![false; disks.len()];
    // Disks with serials first, so a serial-less spec cannot take their disk.
    let mut specs: Vec<_> = shape.disks.iter().collect();
    specs.sort_by_key(|d| d.serial.is_none());
    for spec in specs {
        let size = spec.size_mib * MIB;
        let found = match &spec.serial {
            Some(serial) => disks
                .iter()
                .enumerate()
                .find(|(i, d)| !used[*i] && d.serial.as_deref() == Some(serial)),
            None => disks.iter().enumerate().find(|(i, d)| {
                !used[*i] && d.transport == spec.kind.transport() && d.size_bytes == size
            }),
        };
        let Some((i, disk)) = found else {
            out.push(Mismatch::DiskMissing {
                what: match &spec.serial {
                    Some(s) => format!("with serial {s}"),
                    None => format!("{} of {} MiB", spec.kind.transport(), spec.size_mib),
                },
            });
            continue;
        };
        used[i] = true;
        if disk.transport != spec.kind.transport() {
            out.push(Mismatch::DiskTransport {
                name: disk.name.clone(),
                expected: spec.kind.transport().into(),
                found: disk.transport.clone(),
            });
        }
        if disk.size_bytes != size {
            out.push(Mismatch::DiskSize {
                name: disk.name.clone(),
                expected: size,
                found: disk.size_bytes,
            });
        }
    }
    for (i, d) in disks.iter().enumerate() {
        if !used[i] {
            out.push(Mismatch::DiskExtra {
                name: d.name.clone(),
                transport: d.transport.clone(),
                size: d.size_bytes,
            });
        }
    }
}

fn compare_nics(shape: &Shape, inv: &Inventory, out: &mut Vec<Mismatch>) {
    for spec in &shape.nics {
        let found = inv
            .nics
            .iter()
            .find(|n| n.mac.as_deref() == Some(spec.mac.as_str()));
        match (spec.expected_driver(), found) {
            (Some(driver), None) => out.push(Mismatch::NicMissing {
                mac: spec.mac.clone(),
                driver,
            }),
            (Some(driver), Some(nic)) => {
                if nic.driver.as_deref() != Some(driver.as_str()) {
                    out.push(Mismatch::NicDriver {
                        mac: spec.mac.clone(),
                        expected: driver,
                        found: nic.driver.clone().unwrap_or_else(|| "none".into()),
                    });
                }
            }
            (None, Some(nic)) => out.push(Mismatch::NicNotExpected {
                mac: spec.mac.clone(),
                name: nic.name.clone(),
                driver: nic.driver.clone().unwrap_or_else(|| "none".into()),
            }),
            (None, None) => {}
        }
    }
    for nic in &inv.nics {
        let physical = nic.pci_address.is_some();
        let known = shape
            .nics
            .iter()
            .any(|s| nic.mac.as_deref() == Some(s.mac.as_str()));
        if physical && !known {
            out.push(Mismatch::NicExtra {
                name: nic.name.clone(),
                mac: nic.mac.clone().unwrap_or_default(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::{DiskKind, DiskSpec, NicSpec};
    use keel_api::inventory::{CpuInfo, EndorsementKey, MemoryInfo, Nic, TpmInfo};

    fn shape() -> Shape {
        Shape {
            name: "t".into(),
            vcpus: 2,
            memory_mib: 1024,
            disks: vec![
                DiskSpec {
                    kind: DiskKind::Virtio,
                    size_mib: 256,
                    serial: Some("W".into()),
                },
                DiskSpec {
                    kind: DiskKind::Nvme,
                    size_mib: 128,
                    serial: None,
                },
            ],
            nics: vec![
                NicSpec {
                    mac: "52:54:00:00:00:01".into(),
                    model: Some("virtio-net-pci".into()),
                    driver: None,
                },
                NicSpec {
                    mac: "52:54:00:00:00:02".into(),
                    model: Some("rtl8139".into()),
                    driver: None,
                },
            ],
            tpm: false,
        }
    }

    fn disk(name: &str, transport: &str, mib: u64, serial: Option<&str>) -> Disk {
        Disk {
            name: name.into(),
            transport: transport.into(),
            size_bytes: mib * MIB,
            serial: serial.map(str::to_string),
            ..Disk::default()
        }
    }

    fn nic(name: &str, mac: Option<&str>, driver: Option<&str>, pci: bool) -> Nic {
        Nic {
            name: name.into(),
            mac: mac.map(str::to_string),
            driver: driver.map(str::to_string),
            pci_address: pci.then(|| "0000:00:02.0".to_string()),
            ..Nic::default()
        }
    }

    /// What a 1 GiB, 2 vCPU guest of this shape reported (MemTotal 958.5 MiB).
    fn matching() -> Inventory {
        Inventory {
            cpu: CpuInfo {
                logical: 2,
                ..CpuInfo::default()
            },
            memory: MemoryInfo {
                total_bytes: 1_005_019_136,
                ..MemoryInfo::default()
            },
            disks: vec![
                disk("nvme0n1", "nvme", 128, Some("N")),
                disk("vda", "virtio", 256, Some("W")),
            ],
            nics: vec![
                nic("lo", None, None, false),
                nic("eth0", Some("52:54:00:00:00:01"), Some("virtio_net"), true),
                nic("br0", Some("52:54:00:00:00:09"), Some("bridge"), false),
            ],
            ..Inventory::default()
        }
    }

    #[test]
    fn a_matching_inventory_has_no_mismatch() {
        assert_eq!(compare(&shape(), &matching()), vec![]);
    }

    #[test]
    fn every_difference_is_reported() {
        let mut inv = matching();
        inv.cpu.logical = 1;
        inv.memory.total_bytes = 700 * MIB;
        inv.disks[0].size_bytes += 512;
        inv.disks[1].transport = "scsi".into();
        inv.disks.push(disk("sda", "usb", 32, None));
        inv.nics[1].driver = Some("e1000".into());
        inv.nics.push(nic(
            "eth1",
            Some("52:54:00:00:00:02"),
            Some("8139too"),
            true,
        ));
        inv.nics
            .push(nic("eth2", Some("52:54:00:00:00:03"), Some("igb"), true));
        let got: Vec<String> = compare(&shape(), &inv)
            .iter()
            .map(|m| m.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "1 logical CPUs, expected 2",
                "memory total 700.0 MiB is outside [912.0, 1024] MiB for 1024 MiB of RAM",
                "disk vda is scsi, expected virtio",
                "no disk nvme of 128 MiB",
                "unexpected nvme disk nvme0n1 of 134218240 bytes",
                "unexpected usb disk sda of 33554432 bytes",
                "NIC 52:54:00:00:00:01 has driver e1000, expected virtio_net",
                "NIC 52:54:00:00:00:02 (eth1) has driver 8139too, but the shape expects no driver for it",
                "unexpected NIC eth2 (52:54:00:00:00:03)",
            ]
        );
    }

    #[test]
    fn more_memory_than_ram_is_wrong_too() {
        let mut inv = matching();
        inv.memory.total_bytes = 1025 * MIB;
        assert!(matches!(
            compare(&shape(), &inv)[..],
            [Mismatch::Memory { .. }]
        ));
        assert_eq!(min_memtotal(2048), (2048 - 32 - 96) * MIB);
    }

    #[test]
    fn a_tpm_shape_needs_a_readable_tpm() {
        let with_tpm = Shape {
            tpm: true,
            ..shape()
        };
        let read = TpmInfo {
            present: true,
            family: Some("2.0".into()),
            manufacturer: Some("IBM".into()),
            firmware_version: Some("8217.4131.22.13878".into()),
            ek: Some(EndorsementKey {
                algorithm: "rsa2048".into(),
                sha256: "1f5f".into(),
            }),
            ..TpmInfo::default()
        };
        let with = |tpm: Option<TpmInfo>| Inventory { tpm, ..matching() };
        assert_eq!(compare(&with_tpm, &with(Some(read.clone()))), vec![]);
        assert_eq!(
            tpm_summary(&with(Some(read))),
            "TPM 2.0 IBM firmware 8217.4131.22.13878, EK rsa2048 sha256:1f5f"
        );
        let failed = TpmInfo {
            present: true,
            error: Some("cannot open".into()),
            ..TpmInfo::default()
        };
        let got: Vec<String> = [None, Some(TpmInfo::absent()), Some(failed)]
            .into_iter()
            .flat_map(|t| compare(&with_tpm, &with(t)))
            .map(|m| m.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "expected a readable TPM 2.0, found unknown (the agent did not report a TPM)",
                "expected a readable TPM 2.0, found no TPM",
                "expected a readable TPM 2.0, found TPM ? ? firmware ?, error: cannot open",
            ]
        );
        // A TPM the shape does not mention is fine.
        assert_eq!(compare(&shape(), &with(Some(TpmInfo::absent()))), vec![]);
    }
}
