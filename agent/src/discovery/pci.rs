//! GPUs, display controllers and accelerators on the PCI bus.
//!
//! Reads `sys/bus/pci/devices/<address>/`: `class` (24-bit, `0x030200`),
//! `vendor`, `device`, `numa_node` (`-1` means none) and the `driver`
//! symlink (its basename is the driver). Only devices that [`classify`] keeps
//! are reported.

use std::path::Path;

use keel_api::inventory::{PciDevice, PciKind};

use super::DiscoveryError;
use super::sysfs::{attr, attr_hex, link_basename, list_dir};

pub(crate) const PCI_DIR: &str = "sys/bus/pci/devices";
/// The files (and the `driver` symlink) this reader uses per device.
pub(crate) const PCI_FILES: &[&str] = &["class", "vendor", "device", "numa_node"];

pub const VENDOR_NVIDIA: u16 = 0x10de;
pub const VENDOR_AMD: u16 = 0x1002;
pub const VENDOR_INTEL: u16 = 0x8086;

/// A few vendor names, enough to make an inventory readable without pci.ids.
const VENDORS: &[(u16, &str)] = &[
    (VENDOR_NVIDIA, "NVIDIA"),
    (VENDOR_AMD, "AMD"),
    (VENDOR_INTEL, "Intel"),
    (0x1af4, "Red Hat (virtio)"),
    (0x1b36, "Red Hat (QEMU)"),
    (0x1234, "QEMU"),
    (0x1a03, "ASPEED"),
    (0x102b, "Matrox"),
    (0x15b3, "Mellanox"),
    (0x1d0f, "Amazon"),
    (0x1e52, "Tenstorrent"),
    (0x1ae0, "Google"),
    (0x1d22, "Baidu"),
    (0x1da3, "Habana Labs"),
    (0x1e0f, "Graphcore"),
    (0x1eb1, "Cerebras"),
    (0x15ad, "VMware"),
    (0x1414, "Microsoft"),
    (0x19e5, "Huawei"),
];

/// The vendor name for a PCI vendor id, where the built-in table has one.
pub fn vendor_name(vendor: u16) -> Option<&'static str> {
    VENDORS
        .iter()
        .find(|(id, _)| *id == vendor)
        .map(|(_, name)| *name)
}

/// Decides what a PCI function is for Keel, or `None` to leave it out.
///
/// - class `0x0302` (3D controller), any vendor: [`PciKind::Gpu`];
/// - class `0x0300` (VGA) from NVIDIA or AMD, or from Intel when discrete:
///   [`PciKind::Gpu`]. Intel's integrated graphics always sit at device 2 of
///   bus 0 (`xxxx:00:02.0`), which is how they are told apart;
/// - class `0x0380` (other display) from NVIDIA or AMD: [`PciKind::Gpu`]
///   (AMD Instinct MI100/MI200 identify as such);
/// - any other class `0x03` device (BMC VGA, QEMU stdvga/bochs, virtio-gpu):
///   [`PciKind::Display`];
/// - class `0x12` (processing accelerator) and `0x0b40` (co-processor):
///   [`PciKind::Accelerator`].
pub fn classify(address: &str, class: u32, vendor: u16) -> Option<PciKind> {
    let base = class >> 16;
    let sub = (class >> 8) & 0xff;
    let gpu_vendor = matches!(vendor, VENDOR_NVIDIA | VENDOR_AMD);
    let intel_integrated = vendor == VENDOR_INTEL && is_intel_igpu_slot(address);
    match (base, sub) {
        (0x03, 0x02) => Some(PciKind::Gpu),
        (0x03, 0x00) if gpu_vendor || (vendor == VENDOR_INTEL && !intel_integrated) => {
            Some(PciKind::Gpu)
        }
        (0x03, 0x80) if gpu_vendor => Some(PciKind::Gpu),
        (0x03, _) => Some(PciKind::Display),
        (0x12, _) | (0x0b, 0x40) => Some(PciKind::Accelerator),
        _ => None,
    }
}

/// `xxxx:00:02.0`: the fixed slot of Intel integrated graphics.
fn is_intel_igpu_slot(address: &str) -> bool {
    address
        .split_once(':')
        .is_some_and(|(_, rest)| rest == "00:02.0")
}

/// Reads the GPUs, display controllers and accelerators under `root`,
/// sorted by address.
pub fn read(root: &Path) -> Result<Vec<PciDevice>, DiscoveryError> {
    let dir = root.join(PCI_DIR);
    let mut devices = Vec::new();
    for address in list_dir(&dir)? {
        let dev = dir.join(&address);
        let (Some(class), Some(vendor)) =
            (attr_hex(&dev.join("class")), attr_hex(&dev.join("vendor")))
        else {
            continue;
        };
        let vendor = u16::try_from(vendor)
            .map_err(|_| DiscoveryError::parse(&dev.join("vendor"), "vendor id over 16 bits"))?;
        let Some(kind) = classify(&address, class, vendor) else {
            continue;
        };
        let device_id = attr_hex(&dev.join("device"))
            .and_then(|d| u16::try_from(d).ok())
            .unwrap_or(0);
        devices.push(PciDevice {
            address,
            class,
            vendor_id: vendor,
            device_id,
            vendor_name: vendor_name(vendor).map(str::to_string),
            driver: link_basename(&dev.join("driver")),
            numa_node: attr(&dev.join("numa_node"))
                .and_then(|n| n.parse::<i32>().ok())
                .filter(|n| *n >= 0),
            kind,
        });
    }
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn classification() {
        let a = "0000:17:00.0";
        assert_eq!(classify(a, 0x030200, 0x10de), Some(PciKind::Gpu)); // A100/H100
        assert_eq!(classify(a, 0x030200, 0x1234), Some(PciKind::Gpu)); // any 3D controller
        assert_eq!(classify(a, 0x030000, 0x10de), Some(PciKind::Gpu)); // GeForce
        assert_eq!(classify(a, 0x030000, 0x1002), Some(PciKind::Gpu)); // Radeon
        assert_eq!(classify(a, 0x038000, 0x1002), Some(PciKind::Gpu)); // Instinct MI210
        assert_eq!(
            classify("0000:03:00.0", 0x030000, 0x8086),
            Some(PciKind::Gpu)
        ); // Arc
        assert_eq!(
            classify("0000:00:02.0", 0x030000, 0x8086),
            Some(PciKind::Display)
        ); // iGPU
        assert_eq!(classify(a, 0x030000, 0x1a03), Some(PciKind::Display)); // ASPEED BMC
        assert_eq!(classify(a, 0x030000, 0x1234), Some(PciKind::Display)); // QEMU stdvga
        assert_eq!(classify(a, 0x038000, 0x1234), Some(PciKind::Display)); // bochs-display
        assert_eq!(classify(a, 0x030000, 0x1af4), Some(PciKind::Display)); // virtio-gpu
        assert_eq!(classify(a, 0x120000, 0x1da3), Some(PciKind::Accelerator)); // Gaudi
        assert_eq!(classify(a, 0x0b4000, 0x8086), Some(PciKind::Accelerator));
        assert_eq!(classify(a, 0x020000, 0x15b3), None); // NIC
        assert_eq!(classify(a, 0x010802, 0x144d), None); // NVMe
        assert_eq!(classify(a, 0x0b0000, 0x8086), None); // other processor
    }

    fn device(root: &Path, address: &str, files: &[(&str, &str)]) {
        let d = root.join(PCI_DIR).join(address);
        fs::create_dir_all(&d).unwrap();
        for (name, text) in files {
            fs::write(d.join(name), format!("{text}\n")).unwrap();
        }
    }

    #[test]
    fn reads_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let gpu = [
            ("class", "0x030200"),
            ("vendor", "0x10de"),
            ("device", "0x2330"),
            ("numa_node", "1"),
        ];
        device(r, "0000:c1:00.0", &gpu);
        std::os::unix::fs::symlink(
            "../../../bus/pci/drivers/nvidia",
            r.join(PCI_DIR).join("0000:c1:00.0/driver"),
        )
        .unwrap();
        device(
            r,
            "0000:02:00.0",
            &[
                ("class", "0x030000"),
                ("vendor", "0x1a03"),
                ("device", "0x2000"),
                ("numa_node", "-1"),
            ],
        );
        device(
            r,
            "0000:00:03.0",
            &[
                ("class", "0x020000"),
                ("vendor", "0x1af4"),
                ("device", "0x1000"),
            ],
        );
        device(r, "0000:00:09.0", &[("vendor", "0x1af4")]);

        let devs = read(r).unwrap();
        assert_eq!(devs.len(), 2);
        assert_eq!(
            devs[0],
            PciDevice {
                address: "0000:02:00.0".into(),
                class: 0x030000,
                vendor_id: 0x1a03,
                device_id: 0x2000,
                vendor_name: Some("ASPEED".into()),
                driver: None,
                numa_node: None,
                kind: PciKind::Display,
            }
        );
        assert_eq!(devs[1].kind, PciKind::Gpu);
        assert_eq!(devs[1].driver.as_deref(), Some("nvidia"));
        assert_eq!(devs[1].numa_node, Some(1));
        assert_eq!((devs[1].vendor_id, devs[1].device_id), (0x10de, 0x2330));
        assert!(read(&r.join("nothing")).unwrap().is_empty());
    }
}
