//! Block devices from `sys/block/<name>/`.
//!
//! - size: `size`, in 512-byte sectors whatever the logical block size.
//! - rotational: `queue/rotational`; removable: `removable`.
//! - model: `device/model`; vendor: `device/vendor` (as the kernel gives it:
//!   `ATA`, `QEMU`, or the virtio vendor id `0x1af4` for virtio-blk).
//! - serial: `device/serial` (NVMe controller and others), else `serial`
//!   (virtio-blk), else the SCSI unit serial number VPD page
//!   `device/vpd_pg80` (a binary page: 4-byte header, then ASCII); for USB
//!   disks, else the USB device's `serial` four levels above the SCSI device
//!   (`<usb dev>/<interface>/hostN/targetN:0:0/N:0:0:0`).
//! - WWN: `wwid` (NVMe namespaces), else `device/wwid` (SCSI).
//! - transport: from the resolved `sys/block/<name>` path (see [`transport`]).
//! - partitions: sub-directories holding a `partition` file, with `size` and
//!   `start` (both in 512-byte sectors), ordered by partition number.
//!
//! Strings are trimmed; empty ones become `None`.

use std::fs;
use std::path::Path;

use keel_api::inventory::{Disk, Partition};

use super::sysfs::{attr, attr_u64, list_dir, resolve};
use super::{DiscoveryError, DiscoveryOptions};

pub(crate) const BLOCK_DIR: &str = "sys/block";
/// The files this reader uses under `sys/block/<name>/` (also what a capture
/// copies).
pub(crate) const DISK_FILES: &[&str] = &[
    "size",
    "removable",
    "queue/rotational",
    "serial",
    "wwid",
    "device/model",
    "device/vendor",
    "device/serial",
    "device/wwid",
    "device/vpd_pg80",
    USB_SERIAL,
];
/// The USB device's serial string, seen from `sys/block/<name>/`.
const USB_SERIAL: &str = "device/../../../../serial";
/// The files this reader uses under `sys/block/<name>/<partition>/`.
pub(crate) const PARTITION_FILES: &[&str] = &["partition", "size", "start"];

const SECTOR: u64 = 512;

/// Name prefixes of virtual block devices, each followed by a number in
/// kernel names (`loop0`, `dm-3`, `sr0`, ...).
const VIRTUAL_PREFIXES: &[&str] = &["loop", "ram", "zram", "dm-", "md", "nbd", "sr"];

/// Whether a block device is virtual (or optical) and skipped unless
/// [`DiscoveryOptions::include_virtual_disks`] is set.
pub fn is_virtual(name: &str) -> bool {
    VIRTUAL_PREFIXES.iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|n| n.bytes().next().is_some_and(|c| c.is_ascii_digit()))
    })
}

/// Reads every block device under `root/sys/block`, sorted by name.
pub fn read(root: &Path, opts: &DiscoveryOptions) -> Result<Vec<Disk>, DiscoveryError> {
    let mut disks = Vec::new();
    for name in list_dir(&root.join(BLOCK_DIR))? {
        if opts.include_virtual_disks || !is_virtual(&name) {
            disks.push(read_disk(root, &name)?);
        }
    }
    Ok(disks)
}

fn read_disk(root: &Path, name: &str) -> Result<Disk, DiscoveryError> {
    let dir = root.join(BLOCK_DIR).join(name);
    let resolved = resolve(root, &dir);
    let transport = transport(name, resolved.as_deref());
    Ok(Disk {
        name: name.to_string(),
        size_bytes: attr_u64(&dir.join("size")).unwrap_or(0) * SECTOR,
        rotational: attr(&dir.join("queue/rotational")).as_deref() == Some("1"),
        removable: attr(&dir.join("removable")).as_deref() == Some("1"),
        model: attr(&dir.join("device/model")),
        serial: attr(&dir.join("device/serial"))
            .or_else(|| attr(&dir.join("serial")))
            .or_else(|| vpd_serial(&fs::read(dir.join("device/vpd_pg80")).ok()?))
            .or_else(|| match transport {
                "usb" => attr(&dir.join(USB_SERIAL)),
                _ => None,
            }),
        wwn: attr(&dir.join("wwid")).or_else(|| attr(&dir.join("device/wwid"))),
        vendor: attr(&dir.join("device/vendor")),
        transport: transport.to_string(),
        partitions: partitions(&dir)?,
    })
}

/// Partitions of the disk whose sysfs directory is `dir`.
fn partitions(dir: &Path) -> Result<Vec<Partition>, DiscoveryError> {
    let mut parts = Vec::new();
    for name in list_dir(dir)? {
        let pdir = dir.join(&name);
        let Some(number) = attr_u64(&pdir.join("partition")) else {
            continue;
        };
        let part = Partition {
            name,
            size_bytes: attr_u64(&pdir.join("size")).unwrap_or(0) * SECTOR,
            start_sector: attr_u64(&pdir.join("start")).unwrap_or(0),
        };
        parts.push((number, part));
    }
    parts.sort_by_key(|(number, _)| *number);
    Ok(parts.into_iter().map(|(_, p)| p).collect())
}

/// The serial number in a SCSI VPD page 0x80 (unit serial number): byte 1 is
/// the page code, bytes 2..4 the big-endian length of the ASCII that follows.
fn vpd_serial(page: &[u8]) -> Option<String> {
    if page.len() < 4 || page[1] != 0x80 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([page[2], page[3]]));
    let body = page.get(4..4 + len).unwrap_or(&page[4..]);
    let text = String::from_utf8_lossy(body);
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!text.is_empty()).then(|| text.to_string())
}

/// The transport of a disk, from its resolved sysfs path (e.g.
/// `sys/devices/pci0000:00/0000:00:05.0/virtio3/host0/target0:0:0/0:0:0:0/block/sda`)
/// or, without one, its name. USB and ATA disks also sit under a SCSI host,
/// and virtio-scsi disks under a `virtioN` device, so the checks go from the
/// most to the least specific.
pub fn transport(name: &str, resolved: Option<&Path>) -> &'static str {
    let comps: Vec<String> = resolved
        .map(|p| p.iter().map(|c| c.to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let has = |pred: &dyn Fn(&str) -> bool| comps.iter().any(|c| pred(c));
    let numbered = |c: &str, prefix: &str| super::cpu::is_numbered(c, prefix);

    if name.starts_with("nvme") || has(&|c| c == "nvme" || numbered(c, "nvme")) {
        "nvme"
    } else if name.starts_with("mmcblk") || has(&|c| numbered(c, "mmc_host") || c == "mmc_host") {
        "mmc"
    } else if has(&|c| numbered(c, "usb")) {
        "usb"
    } else if has(&|c| numbered(c, "ata")) {
        "ata"
    } else if has(&|c| numbered(c, "host")) && has(&|c| c.starts_with("target")) {
        "scsi"
    } else if name.starts_with("vd") || has(&|c| numbered(c, "virtio")) {
        "virtio"
    } else if resolved.is_none() && name.starts_with("sd") {
        "scsi"
    } else {
        "unknown"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    use crate::discovery::sysfs::test_support::write;

    /// Creates `sys/block/<name> -> ../<devpath>` with a size file.
    fn block(root: &Path, name: &str, devpath: &str, sectors: u64) -> PathBuf {
        let dev = root.join("sys").join(devpath);
        fs::create_dir_all(&dev).unwrap();
        fs::write(dev.join("size"), format!("{sectors}\n")).unwrap();
        fs::create_dir_all(root.join(BLOCK_DIR)).unwrap();
        symlink(format!("../{devpath}"), root.join(BLOCK_DIR).join(name)).unwrap();
        dev
    }

    #[test]
    fn virtual_names() {
        for n in ["loop0", "ram15", "zram0", "dm-2", "md127", "nbd3", "sr0"] {
            assert!(is_virtual(n), "{n}");
        }
        for n in ["sda", "vda", "nvme0n1", "mmcblk0", "mdx", "loop", "srv1"] {
            assert!(!is_virtual(n), "{n}");
        }
    }

    #[test]
    fn transports() {
        let t = |name: &str, p: &str| transport(name, Some(Path::new(p)));
        let pci = "sys/devices/pci0000:00/0000:00:05.0";
        assert_eq!(t("vda", &format!("{pci}/virtio2/block/vda")), "virtio");
        assert_eq!(
            t(
                "sda",
                &format!("{pci}/virtio3/host0/target0:0:0/0:0:0:0/block/sda")
            ),
            "scsi"
        );
        assert_eq!(t("nvme0n1", &format!("{pci}/nvme/nvme0/nvme0n1")), "nvme");
        assert_eq!(
            t(
                "sdb",
                &format!("{pci}/ata1/host0/target0:0:0/0:0:0:0/block/sdb")
            ),
            "ata"
        );
        assert_eq!(
            t(
                "sdc",
                &format!("{pci}/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdc")
            ),
            "usb"
        );
        assert_eq!(
            t(
                "mmcblk0",
                "sys/devices/platform/fe340000.mmc/mmc_host/mmc0/mmc0:0001/block/mmcblk0"
            ),
            "mmc"
        );
        assert_eq!(t("xvda", "sys/devices/vbd-51712/block/xvda"), "unknown");
        assert_eq!(transport("sda", None), "scsi");
        assert_eq!(transport("zz0", None), "unknown");
    }

    #[test]
    fn vpd_page_80() {
        let mut page = vec![0x00, 0x80, 0x00, 0x08];
        page.extend_from_slice(b"SCSI0001");
        assert_eq!(vpd_serial(&page).as_deref(), Some("SCSI0001"));
        assert_eq!(vpd_serial(&[0x00, 0x83, 0x00, 0x00]), None);
        assert_eq!(
            vpd_serial(&[0x00, 0x80, 0x00, 0x04, b' ', b' ', 0, 0]),
            None
        );
    }

    #[test]
    fn disks_partitions_and_filtering() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let vda = block(
            r,
            "vda",
            "devices/pci0000:00/0000:00:04.0/virtio2/block/vda",
            2097152,
        );
        write(&vda, "serial", "VBLK-1\n");
        write(&vda, "queue/rotational", "1\n");
        write(&vda, "removable", "0\n");
        write(&vda, "device/vendor", "0x1af4\n");
        write(&vda, "device/model", "\n");
        for (n, start, size) in [(2, 206848, 1048576), (1, 2048, 204800)] {
            write(&vda, &format!("vda{n}/partition"), &format!("{n}\n"));
            write(&vda, &format!("vda{n}/start"), &format!("{start}\n"));
            write(&vda, &format!("vda{n}/size"), &format!("{size}\n"));
        }
        write(&vda, "holders/.keep", "");
        block(r, "loop0", "devices/virtual/block/loop0", 0);

        let disks = read(r, &DiscoveryOptions::default()).unwrap();
        assert_eq!(disks.len(), 1);
        let d = &disks[0];
        assert_eq!(
            (d.name.as_str(), d.size_bytes, d.rotational, d.removable),
            ("vda", 1 << 30, true, false)
        );
        assert_eq!(d.serial.as_deref(), Some("VBLK-1"));
        assert_eq!(d.model, None);
        assert_eq!(d.vendor.as_deref(), Some("0x1af4"));
        assert_eq!(d.transport, "virtio");
        let parts: Vec<_> = d
            .partitions
            .iter()
            .map(|p| (p.name.as_str(), p.start_sector))
            .collect();
        assert_eq!(parts, [("vda1", 2048), ("vda2", 206848)]);
        assert_eq!(d.partitions[1].size_bytes, 1048576 * 512);

        let all = read(
            r,
            &DiscoveryOptions {
                include_virtual_disks: true,
            },
        )
        .unwrap();
        let names: Vec<_> = all.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["loop0", "vda"]);
        assert_eq!(all[0].transport, "unknown");
    }

    #[test]
    fn usb_serial_from_the_usb_device() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let usb = "devices/pci0000:00/0000:00:06.0/usb2/2-1";
        let lun = format!("{usb}/2-1:1.0/host1/target1:0:0/1:0:0:0");
        let sdb = block(r, "sdb", &format!("{lun}/block/sdb"), 64);
        write(&r.join("sys").join(usb), "serial", "USB0001\n");
        write(&r.join("sys").join(&lun), "vendor", "QEMU    \n");
        write(&sdb, "removable", "1\n");
        symlink("../../../1:0:0:0", sdb.join("device")).unwrap();
        let d = &read(r, &DiscoveryOptions::default()).unwrap()[0];
        assert_eq!(d.serial.as_deref(), Some("USB0001"));
        assert_eq!(d.vendor.as_deref(), Some("QEMU"));
        assert_eq!((d.transport.as_str(), d.removable), ("usb", true));
    }

    #[test]
    fn nvme_serial_and_wwid() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let ctrl = "devices/pci0000:00/0000:00:06.0/nvme/nvme0";
        let ns = block(r, "nvme0n1", &format!("{ctrl}/nvme0n1"), 8);
        write(&r.join("sys").join(ctrl), "serial", "NVME0001    \n");
        write(&r.join("sys").join(ctrl), "model", "QEMU NVMe Ctrl\n");
        write(&ns, "wwid", "eui.0011223344556677\n");
        symlink("../../nvme0", ns.join("device")).unwrap();
        let d = &read(r, &DiscoveryOptions::default()).unwrap()[0];
        assert_eq!(d.serial.as_deref(), Some("NVME0001"));
        assert_eq!(d.model.as_deref(), Some("QEMU NVMe Ctrl"));
        assert_eq!(d.wwn.as_deref(), Some("eui.0011223344556677"));
        assert_eq!((d.transport.as_str(), d.size_bytes), ("nvme", 4096));
    }
}
