//! `io.max`: disk bandwidth limits a task asks for. Mesos has no resource
//! for bandwidth, so a task asks with **TaskInfo labels**:
//!
//! | label | `io.max` key | unit |
//! |---|---|---|
//! | `keel.io/read-bps` | `rbps` | bytes per second |
//! | `keel.io/write-bps` | `wbps` | bytes per second |
//! | `keel.io/read-iops` | `riops` | reads per second |
//! | `keel.io/write-iops` | `wiops` | writes per second |
//!
//! Values are positive decimal integers; anything else is a TASK_ERROR.
//! The limit applies to the block device under the agent's sandboxes
//! ([`throttle_device`]): the whole disk for a partition (the kernel takes
//! `io.max` for whole disks only), the device itself for device-mapper,
//! md and loop devices (a dm device throttles the I/O sent to it, above
//! its tables). A task group's container gets the sum of its live tasks'
//! limits for a key when every one of them sets it, and no limit for that
//! key otherwise (a task that does not ask is not throttled by another's
//! label).

use std::path::Path;

use keel_api::mesos::Labels;
use serde::{Deserialize, Serialize};

/// The labels, in `io.max` key order.
pub const LABELS: [(&str, &str); 4] = [
    ("keel.io/read-bps", "rbps"),
    ("keel.io/write-bps", "wbps"),
    ("keel.io/read-iops", "riops"),
    ("keel.io/write-iops", "wiops"),
];

/// What a task (or a container) asks for; `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bandwidth {
    pub rbps: Option<u64>,
    pub wbps: Option<u64>,
    pub riops: Option<u64>,
    pub wiops: Option<u64>,
}

impl Bandwidth {
    fn slots(&self) -> [Option<u64>; 4] {
        [self.rbps, self.wbps, self.riops, self.wiops]
    }

    fn from_slots(s: [Option<u64>; 4]) -> Self {
        Bandwidth {
            rbps: s[0],
            wbps: s[1],
            riops: s[2],
            wiops: s[3],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.slots().iter().all(Option::is_none)
    }

    /// The labels asked, for messages (`keel.io/read-bps=1048576, ...`).
    pub fn describe(&self) -> String {
        LABELS
            .iter()
            .zip(self.slots())
            .filter_map(|((label, _), v)| v.map(|v| format!("{label}={v}")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A task group's bandwidth: per key, the sum when every task sets
    /// it, else no limit.
    pub fn combine<'a>(tasks: impl IntoIterator<Item = &'a Bandwidth>) -> Bandwidth {
        let mut acc: Option<[Option<u64>; 4]> = None;
        for t in tasks {
            let s = t.slots();
            acc = Some(match acc {
                None => s,
                Some(a) => std::array::from_fn(|i| match (a[i], s[i]) {
                    (Some(x), Some(y)) => Some(x.saturating_add(y)),
                    _ => None,
                }),
            });
        }
        Bandwidth::from_slots(acc.unwrap_or_default())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label {key}={value:?}: {reason}")]
pub struct LabelError {
    pub key: String,
    pub value: String,
    pub reason: String,
}

/// Reads the `keel.io/*` bandwidth labels of a task's `labels`; other
/// labels are ignored.
pub fn from_labels(labels: Option<&Labels>) -> Result<Bandwidth, LabelError> {
    let mut slots = [None; 4];
    for label in labels.iter().flat_map(|l| &l.labels) {
        let key = label.key.as_str();
        let Some(i) = LABELS.iter().position(|(l, _)| *l == key) else {
            continue;
        };
        let raw = label.value.as_deref().unwrap_or("");
        let err = |reason: &str| LabelError {
            key: key.to_string(),
            value: raw.to_string(),
            reason: reason.to_string(),
        };
        if slots[i].is_some() {
            return Err(err("set twice"));
        }
        let unit = if LABELS[i].1.ends_with("bps") {
            "bytes per second"
        } else {
            "operations per second"
        };
        let value = raw
            .parse::<u64>()
            .ok()
            .filter(|v| *v > 0 && raw.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| err(&format!("must be a positive whole number of {unit}")))?;
        slots[i] = Some(value);
    }
    Ok(Bandwidth::from_slots(slots))
}

/// `io.max` of one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoMax {
    /// major, minor.
    pub device: (u32, u32),
    pub limits: Bandwidth,
}

impl IoMax {
    /// The line written to `io.max`; keys without a limit are `max`, so a
    /// container resized to no limit loses the old one.
    pub fn line(&self) -> String {
        let (major, minor) = self.device;
        let mut line = format!("{major}:{minor}");
        for ((_, key), v) in LABELS.iter().zip(self.limits.slots()) {
            match v {
                Some(v) => line.push_str(&format!(" {key}={v}")),
                None => line.push_str(&format!(" {key}=max")),
            }
        }
        line
    }
}

/// The device whose `io.max` throttles a file system on device `dev`
/// (`st_dev`), read from `<sys>/dev/block/MAJ:MIN`: the disk of a
/// partition, the device itself otherwise. `None` when `dev` is no block
/// device (tmpfs, overlayfs, NFS, btrfs' anonymous devices).
pub fn throttle_device(sys: &Path, dev: (u32, u32)) -> Option<(u32, u32)> {
    let dir = sys.join(format!("dev/block/{}:{}", dev.0, dev.1));
    if !dir.exists() {
        return None;
    }
    if !dir.join("partition").exists() {
        return Some(dev);
    }
    // `dev/block/8:1` -> `.../block/sda/sda1`: the disk is its parent.
    let text = std::fs::read_to_string(dir.join("../dev")).ok()?;
    parse_dev(&text)
}

/// `MAJ:MIN` as in sysfs `dev` files.
pub fn parse_dev(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The throttling device for files under `path` (the agent's sandboxes).
pub fn device_under(sys: &Path, path: &Path) -> Option<(u32, u32)> {
    let st = rustix::fs::stat(path).ok()?;
    let dev = (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev));
    throttle_device(sys, dev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        let list: Vec<serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        keel_api::mesos::parse(json!({ "labels": list })).unwrap()
    }

    #[test]
    fn labels_ask_for_bandwidth() {
        let l = labels(&[
            ("keel.io/read-bps", "1048576"),
            ("keel.io/write-iops", "100"),
            ("team", "storage"),
        ]);
        let bw = from_labels(Some(&l)).unwrap();
        assert_eq!(
            bw,
            Bandwidth {
                rbps: Some(1 << 20),
                wiops: Some(100),
                ..Bandwidth::default()
            }
        );
        assert_eq!(
            bw.describe(),
            "keel.io/read-bps=1048576, keel.io/write-iops=100"
        );
        assert!(from_labels(None).unwrap().is_empty());
        let none: Labels = keel_api::mesos::parse(json!({})).unwrap();
        assert!(from_labels(Some(&none)).unwrap().is_empty());
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        for (k, v) in [
            ("keel.io/read-bps", "0"),
            ("keel.io/read-bps", "-5"),
            ("keel.io/write-bps", "10M"),
            ("keel.io/read-iops", ""),
            ("keel.io/write-iops", "+3"),
            ("keel.io/write-bps", "99999999999999999999999"),
        ] {
            let err = from_labels(Some(&labels(&[(k, v)]))).unwrap_err();
            assert_eq!((err.key.as_str(), err.value.as_str()), (k, v));
            assert!(err.to_string().contains("positive whole number"), "{err}");
        }
        let twice = labels(&[("keel.io/read-bps", "1"), ("keel.io/read-bps", "2")]);
        assert!(from_labels(Some(&twice)).is_err());
    }

    #[test]
    fn a_group_sums_what_every_task_sets() {
        let a = Bandwidth {
            rbps: Some(100),
            wbps: Some(10),
            ..Bandwidth::default()
        };
        let b = Bandwidth {
            rbps: Some(50),
            ..Bandwidth::default()
        };
        assert_eq!(
            Bandwidth::combine([&a, &b]),
            Bandwidth {
                rbps: Some(150),
                ..Bandwidth::default()
            }
        );
        assert_eq!(Bandwidth::combine([&a]), a);
        assert!(Bandwidth::combine([]).is_empty());
    }

    #[test]
    fn io_max_lines_name_every_key() {
        let m = IoMax {
            device: (8, 0),
            limits: Bandwidth {
                rbps: Some(1 << 20),
                wiops: Some(120),
                ..Bandwidth::default()
            },
        };
        assert_eq!(m.line(), "8:0 rbps=1048576 wbps=max riops=max wiops=120");
    }

    /// A sysfs shaped like a laptop's: an NVMe disk with partitions, a
    /// device-mapper volume on one of them, and a loop device.
    fn sysfs() -> tempfile::TempDir {
        let sys = tempfile::tempdir().unwrap();
        let dev = |rel: &str, text: &str, partition: bool| {
            let d = sys.path().join(rel);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("dev"), format!("{text}\n")).unwrap();
            if partition {
                fs::write(d.join("partition"), "2\n").unwrap();
            }
        };
        let nvme = "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1";
        dev(nvme, "259:0", false);
        dev(&format!("{nvme}/nvme0n1p2"), "259:2", true);
        dev("devices/virtual/block/dm-0", "253:0", false);
        dev("devices/virtual/block/loop0", "7:0", false);
        let links = sys.path().join("dev/block");
        fs::create_dir_all(&links).unwrap();
        for (name, to) in [
            ("259:0", format!("../../{nvme}")),
            ("259:2", format!("../../{nvme}/nvme0n1p2")),
            ("253:0", "../../devices/virtual/block/dm-0".into()),
            ("7:0", "../../devices/virtual/block/loop0".into()),
        ] {
            symlink(to, links.join(name)).unwrap();
        }
        sys
    }

    #[test]
    fn partitions_are_throttled_on_their_disk() {
        let sys = sysfs();
        assert_eq!(throttle_device(sys.path(), (259, 2)), Some((259, 0)));
        assert_eq!(throttle_device(sys.path(), (259, 0)), Some((259, 0)));
        assert_eq!(throttle_device(sys.path(), (253, 0)), Some((253, 0)));
        assert_eq!(throttle_device(sys.path(), (7, 0)), Some((7, 0)));
        // tmpfs, overlayfs: anonymous devices have no sysfs entry.
        assert_eq!(throttle_device(sys.path(), (0, 42)), None);
        assert_eq!(parse_dev("8:16\n"), Some((8, 16)));
        assert_eq!(parse_dev("8"), None);
    }

    #[test]
    fn this_machine_has_a_device_under_a_disk_file_system() {
        // Whatever this host's root is on, the answer is a sysfs block
        // device or nothing; /proc is never on one.
        assert_eq!(device_under(Path::new("/sys"), Path::new("/proc")), None);
        if let Some((major, minor)) = device_under(Path::new("/sys"), Path::new("/")) {
            let dir = format!("/sys/dev/block/{major}:{minor}");
            assert!(Path::new(&dir).exists(), "{dir}");
            assert!(!Path::new(&dir).join("partition").exists(), "{dir}");
        }
    }
}
