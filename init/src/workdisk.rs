//! The disk that keeps the work dirs (`/var/lib/keel`: the agent id, the
//! master's registry) across reboots.
//!
//! `keel.workdisk=auto` (the default) mounts a file system labelled
//! [`LABEL`] if one exists and never formats anything. Naming a disk
//! (`keel.workdisk=vdb`, `keel.workdisk=serial:S`) formats it as ext4 with
//! that label when it is blank (its first MiB all zeros), mounts it when it
//! already carries the label, and refuses anything else: a disk with a
//! partition table or another file system is never overwritten. Without a
//! disk the work dirs live in RAM and the agent gets a new id every boot.
//!
//! [`plan`] is the pure decision; [`prepare`] probes, formats and mounts.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::mount::MountFlags;

use crate::cmdline::WorkDisk;
use crate::mounts::{self, MountError};

/// File system label of Keel's data partition.
pub const LABEL: &str = "KEEL-DATA";
/// Where the work dirs live.
pub const MOUNT_POINT: &str = "/var/lib/keel";
/// How much of a disk [`probe`] looks at.
pub const PROBE_BYTES: usize = 1 << 20;
/// The formatter, shipped in the bundle.
pub const MKE2FS: &str = "/usr/sbin/mke2fs";

#[derive(Debug, thiserror::Error)]
pub enum WorkDiskError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("work disk {0} did not appear")]
    NotFound(String),
    #[error("cannot run {MKE2FS} on {path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error(transparent)]
    Mount(#[from] MountError),
}

/// What the start of a block device holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// All zeros: safe to format.
    Blank,
    Ext4 {
        label: String,
    },
    /// A recognised signature that is not Keel's.
    Other(&'static str),
    /// Non-zero data without a signature we know.
    Unknown,
}

/// Recognises what `head` (the first bytes of a device) holds.
pub fn probe(head: &[u8]) -> Probe {
    let at = |off: usize, sig: &[u8]| head.get(off..off + sig.len()) == Some(sig);
    if at(1080, &[0x53, 0xEF]) {
        let label = head.get(1144..1160).unwrap_or_default();
        let end = label.iter().position(|b| *b == 0).unwrap_or(label.len());
        return Probe::Ext4 {
            label: String::from_utf8_lossy(&label[..end]).into_owned(),
        };
    }
    for (off, sig, what) in [
        (512, &b"EFI PART"[..], "a GPT partition table"),
        (0, b"XFSB", "an xfs file system"),
        (0, b"LUKS\xba\xbe", "a LUKS volume"),
        (65600, b"_BHRfS_M", "a btrfs file system"),
        (512, b"LABELONE", "an LVM physical volume"),
        (4086, b"SWAPSPACE2", "swap space"),
        (32769, b"CD001", "an ISO 9660 file system"),
        (3, b"NTFS    ", "an NTFS file system"),
        (54, b"FAT", "a FAT file system"),
        (82, b"FAT32   ", "a FAT file system"),
        (510, b"\x55\xaa", "an MBR partition table"),
    ] {
        if at(off, sig) {
            return Probe::Other(what);
        }
    }
    if head.iter().all(|b| *b == 0) {
        Probe::Blank
    } else {
        Probe::Unknown
    }
}

/// A block device (disk or partition) under /sys/class/block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDev {
    pub name: String,
    pub serial: Option<String>,
    /// A partition rather than a whole disk.
    pub partition: bool,
}

/// What to do for the work dirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Keep them in RAM, and say why.
    Tmpfs {
        reason: String,
    },
    Mount {
        device: String,
    },
    Format {
        device: String,
    },
}

/// Decides from the configuration and what each device holds.
pub fn plan(spec: &WorkDisk, devices: &[(BlockDev, Probe)]) -> Plan {
    let labelled = || {
        devices
            .iter()
            .find(|(_, p)| matches!(p, Probe::Ext4 { label } if label == LABEL))
    };
    let named = match spec {
        WorkDisk::None => {
            return Plan::Tmpfs {
                reason: "keel.workdisk=none".into(),
            };
        }
        WorkDisk::Auto => {
            return match labelled() {
                Some((d, _)) => Plan::Mount {
                    device: d.name.clone(),
                },
                None => Plan::Tmpfs {
                    reason: format!("no file system labelled {LABEL} (keel.workdisk=auto)"),
                },
            };
        }
        WorkDisk::Device(name) => devices.iter().find(|(d, _)| &d.name == name),
        WorkDisk::Serial(serial) => devices
            .iter()
            .find(|(d, _)| !d.partition && d.serial.as_deref() == Some(serial.as_str())),
    };
    let Some((dev, found)) = named else {
        return Plan::Tmpfs {
            reason: format!("work disk {spec:?} not found"),
        };
    };
    let device = dev.name.clone();
    match found {
        Probe::Ext4 { label } if label == LABEL => Plan::Mount { device },
        Probe::Blank => Plan::Format { device },
        Probe::Ext4 { label } => Plan::Tmpfs {
            reason: format!(
                "{device} holds an ext4 file system labelled {label:?}, not {LABEL}; not formatting it"
            ),
        },
        Probe::Other(what) => Plan::Tmpfs {
            reason: format!("{device} holds {what}; not formatting it"),
        },
        Probe::Unknown => Plan::Tmpfs {
            reason: format!("{device} is not blank; not formatting it"),
        },
    }
}

/// The disks and partitions under `sys/class/block`, without loop, RAM,
/// optical and device-mapper devices.
pub fn block_devices(sys: &Path) -> Vec<BlockDev> {
    let Ok(entries) = fs::read_dir(sys.join("class/block")) else {
        return Vec::new();
    };
    let mut out: Vec<BlockDev> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let skip = ["loop", "ram", "zram", "sr", "dm-", "md", "nbd"]
                .iter()
                .any(|p| name.starts_with(p));
            if skip {
                return None;
            }
            let dir = e.path();
            let read = |f: &str| {
                fs::read_to_string(dir.join(f))
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            };
            Some(BlockDev {
                serial: read("serial").or_else(|| read("device/serial")),
                partition: dir.join("partition").exists(),
                name,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Reads the first [`PROBE_BYTES`] of `dev` (less for smaller devices).
pub fn read_head(dev: &Path) -> Result<Vec<u8>, WorkDiskError> {
    let err = |source| WorkDiskError::Read {
        path: dev.to_path_buf(),
        source,
    };
    let mut head = Vec::with_capacity(PROBE_BYTES);
    File::open(dev)
        .map_err(err)?
        .take(PROBE_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(err)?;
    Ok(head)
}

/// What [`prepare`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Mounted { device: String, formatted: bool },
    Tmpfs { reason: String },
}

/// Probes the block devices, then formats and mounts the work disk at
/// [`MOUNT_POINT`], or mounts a tmpfs there. A named disk is waited for up
/// to `wait` (drivers probe asynchronously).
pub fn prepare(spec: &WorkDisk, sys: &Path, wait: Duration) -> Result<Outcome, WorkDiskError> {
    let start = Instant::now();
    let devices = loop {
        let devs = block_devices(sys);
        let present = match spec {
            WorkDisk::Device(n) => devs.iter().any(|d| &d.name == n),
            WorkDisk::Serial(s) => devs.iter().any(|d| d.serial.as_deref() == Some(s.as_str())),
            WorkDisk::Auto | WorkDisk::None => true,
        };
        if present || start.elapsed() >= wait {
            break devs;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut probed = Vec::new();
    for d in devices {
        let path = Path::new("/dev").join(&d.name);
        // A device that cannot be read (an empty card reader) is skipped.
        if let Ok(head) = read_head(&path) {
            probed.push((d, probe(&head)));
        }
    }
    let target = Path::new(MOUNT_POINT);
    let (device, formatted) = match plan(spec, &probed) {
        Plan::Tmpfs { reason } => {
            mounts::mount(
                "tmpfs",
                target,
                "tmpfs",
                MountFlags::NOSUID,
                Some("mode=0755"),
            )?;
            return Ok(Outcome::Tmpfs { reason });
        }
        Plan::Mount { device } => (device, false),
        Plan::Format { device } => {
            format(&Path::new("/dev").join(&device))?;
            (device, true)
        }
    };
    mounts::mount(
        &format!("/dev/{device}"),
        target,
        "ext4",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOATIME,
        None,
    )?;
    Ok(Outcome::Mounted { device, formatted })
}

/// `mke2fs -t ext4 -L KEEL-DATA` with lazy inode table init, so a large disk
/// formats in seconds.
fn format(dev: &Path) -> Result<(), WorkDiskError> {
    let out = Command::new(MKE2FS)
        .args(["-q", "-F", "-t", "ext4", "-L", LABEL, "-m", "0"])
        .args(["-E", "lazy_itable_init=1,lazy_journal_init=1"])
        .arg(dev)
        .output()
        .map_err(|e| WorkDiskError::Format {
            path: dev.to_path_buf(),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(WorkDiskError::Format {
            path: dev.to_path_buf(),
            reason: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext4(label: &str) -> Vec<u8> {
        let mut h = vec![0u8; 4096];
        h[1080] = 0x53;
        h[1081] = 0xEF;
        h[1144..1144 + label.len()].copy_from_slice(label.as_bytes());
        h
    }

    fn dev(name: &str, serial: Option<&str>) -> BlockDev {
        BlockDev {
            name: name.into(),
            serial: serial.map(str::to_string),
            partition: name.ends_with(char::is_numeric) && name.starts_with("vd"),
        }
    }

    #[test]
    fn probes() {
        assert_eq!(probe(&vec![0u8; PROBE_BYTES]), Probe::Blank);
        assert_eq!(
            probe(&ext4(LABEL)),
            Probe::Ext4 {
                label: LABEL.into()
            }
        );
        let mut gpt = vec![0u8; 4096];
        gpt[510] = 0x55;
        gpt[511] = 0xaa;
        gpt[512..520].copy_from_slice(b"EFI PART");
        assert_eq!(probe(&gpt), Probe::Other("a GPT partition table"));
        gpt[512..520].fill(0);
        assert_eq!(probe(&gpt), Probe::Other("an MBR partition table"));
        let mut junk = vec![0u8; 4096];
        junk[100] = 1;
        assert_eq!(probe(&junk), Probe::Unknown);
        assert_eq!(probe(&[]), Probe::Blank);
    }

    #[test]
    fn auto_mounts_the_label_and_never_formats() {
        let devs = [
            (dev("vda", None), Probe::Blank),
            (
                dev("vdb1", None),
                Probe::Ext4 {
                    label: LABEL.into(),
                },
            ),
        ];
        assert_eq!(
            plan(&WorkDisk::Auto, &devs),
            Plan::Mount {
                device: "vdb1".into()
            }
        );
        assert!(matches!(
            plan(&WorkDisk::Auto, &devs[..1]),
            Plan::Tmpfs { .. }
        ));
    }

    #[test]
    fn a_named_disk_is_formatted_only_when_blank() {
        let devs = [
            (dev("vda", Some("KEEL-WORK")), Probe::Blank),
            (dev("vdb", None), Probe::Other("a GPT partition table")),
            (
                dev("vdc", None),
                Probe::Ext4 {
                    label: "home".into(),
                },
            ),
            (
                dev("nvme0n1", Some("N1")),
                Probe::Ext4 {
                    label: LABEL.into(),
                },
            ),
        ];
        assert_eq!(
            plan(&WorkDisk::Serial("KEEL-WORK".into()), &devs),
            Plan::Format {
                device: "vda".into()
            }
        );
        assert_eq!(
            plan(&WorkDisk::Device("nvme0n1".into()), &devs),
            Plan::Mount {
                device: "nvme0n1".into()
            }
        );
        assert_eq!(
            plan(&WorkDisk::Device("vdb".into()), &devs),
            Plan::Tmpfs {
                reason: "vdb holds a GPT partition table; not formatting it".into()
            }
        );
        assert_eq!(
            plan(&WorkDisk::Device("vdc".into()), &devs),
            Plan::Tmpfs {
                reason: "vdc holds an ext4 file system labelled \"home\", not KEEL-DATA; not formatting it"
                    .into()
            }
        );
        assert!(matches!(
            plan(&WorkDisk::Device("sdz".into()), &devs),
            Plan::Tmpfs { reason } if reason.contains("not found")
        ));
        assert!(matches!(plan(&WorkDisk::None, &devs), Plan::Tmpfs { .. }));
    }

    #[test]
    fn block_devices_skip_virtual_ones_and_read_serials() {
        let sys = tempfile::tempdir().unwrap();
        let mk = |rel: &str, text: Option<&str>| {
            let p = sys.path().join("class/block").join(rel);
            match text {
                Some(t) => {
                    fs::create_dir_all(p.parent().unwrap()).unwrap();
                    fs::write(p, t).unwrap();
                }
                None => fs::create_dir_all(p).unwrap(),
            }
        };
        mk("vda/serial", Some("KEEL-WORK\n"));
        mk("vda1/partition", Some("1\n"));
        mk("nvme0n1/device/serial", Some("  N1  \n"));
        mk("loop0", None);
        mk("sr0", None);
        let devs = block_devices(sys.path());
        assert_eq!(
            devs,
            [
                BlockDev {
                    name: "nvme0n1".into(),
                    serial: Some("N1".into()),
                    partition: false
                },
                BlockDev {
                    name: "vda".into(),
                    serial: Some("KEEL-WORK".into()),
                    partition: false
                },
                BlockDev {
                    name: "vda1".into(),
                    serial: None,
                    partition: true
                },
            ]
        );
    }
}
