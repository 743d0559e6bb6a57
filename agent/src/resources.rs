//! The agent's offered resources: what `--resources` says, completed with the
//! Mesos agent defaults for whatever it leaves out (`containerizer.cpp`):
//!
//! - `cpus`: the online logical CPUs (1 if none were found);
//! - `mem` (MB, truncated): total - 1 GiB when total >= 2 GiB, else half
//!   (1 GiB if unknown);
//! - `disk` (MB, truncated): size of the work dir's filesystem - 5 GiB when
//!   it is >= 10 GiB, else half (10 GiB if unknown);
//! - `ports`: `[31000-32000]`;
//! - `gpus`: the GPUs found on the PCI bus, only when there are some.
//!
//! A name that `--resources` mentions under any role is taken as given.

use keel_api::inventory::Inventory;
use keel_api::resources::{Range, Resource, Resources, Value};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// `mem` in MB for a machine with `total_bytes` of RAM.
pub fn default_mem_mb(total_bytes: u64) -> u64 {
    let bytes = match total_bytes {
        0 => GIB,
        t if t >= 2 * GIB => t - GIB,
        t => t / 2,
    };
    bytes / MIB
}

/// `disk` in MB for a work dir on a filesystem of `fs_bytes`.
pub fn default_disk_mb(fs_bytes: Option<u64>) -> u64 {
    let bytes = match fs_bytes {
        None | Some(0) => 10 * GIB,
        Some(t) if t >= 10 * GIB => t - 5 * GIB,
        Some(t) => t / 2,
    };
    bytes / MIB
}

pub fn agent_resources(
    inventory: &Inventory,
    work_dir_fs_bytes: Option<u64>,
    flag: &Resources,
) -> Resources {
    let mut out = flag.clone();
    let mut default = |name: &str, value: Value| {
        if !flag.has(name) {
            out.push(Resource {
                name: name.to_string(),
                role: "*".to_string(),
                value,
            });
        }
    };
    default(
        "cpus",
        Value::Scalar(f64::from(inventory.cpu.logical.max(1))),
    );
    default(
        "mem",
        Value::Scalar(default_mem_mb(inventory.memory.total_bytes) as f64),
    );
    default(
        "disk",
        Value::Scalar(default_disk_mb(work_dir_fs_bytes) as f64),
    );
    default(
        "ports",
        Value::Ranges(vec![Range {
            begin: 31000,
            end: 32000,
        }]),
    );
    let gpus = inventory.gpu_count();
    if gpus > 0 {
        default("gpus", Value::Scalar(gpus as f64));
    }
    out
}

/// Total size of the filesystem holding `path` (`statvfs`), as Mesos' `fs::size`.
pub fn filesystem_size(path: &std::path::Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(st.f_blocks.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_api::inventory::{PciDevice, PciKind};

    fn inventory(cpus: u32, mem: u64) -> Inventory {
        let mut inv = Inventory::default();
        inv.cpu.logical = cpus;
        inv.memory.total_bytes = mem;
        inv
    }

    #[test]
    fn mem_rule() {
        assert_eq!(default_mem_mb(24 * GIB), 23 * 1024);
        assert_eq!(default_mem_mb(2 * GIB), 1024);
        assert_eq!(default_mem_mb(GIB), 512);
        assert_eq!(default_mem_mb(0), 1024);
        // Truncated, not rounded.
        assert_eq!(default_mem_mb(4 * GIB + MIB - 1), 3 * 1024);
    }

    #[test]
    fn disk_rule() {
        assert_eq!(default_disk_mb(Some(100 * GIB)), 95 * 1024);
        assert_eq!(default_disk_mb(Some(10 * GIB)), 5 * 1024);
        assert_eq!(default_disk_mb(Some(8 * GIB)), 4 * 1024);
        assert_eq!(default_disk_mb(None), 10 * 1024);
    }

    #[test]
    fn defaults_fill_what_the_flag_leaves_out() {
        let flag = Resources::parse("cpus(eng):1;mem:2048").unwrap();
        let rs = agent_resources(&inventory(8, 16 * GIB), Some(100 * GIB), &flag);
        assert_eq!(
            rs.scalar("cpus"),
            1.0,
            "cpus named under a role is taken as given"
        );
        assert_eq!(rs.scalar("mem"), 2048.0);
        assert_eq!(rs.scalar("disk"), (95 * 1024) as f64);
        assert!(rs.has("ports"));
        assert!(!rs.has("gpus"));
    }

    #[test]
    fn gpus_only_when_present() {
        let mut inv = inventory(4, 8 * GIB);
        inv.accelerators.push(PciDevice {
            kind: PciKind::Gpu,
            ..PciDevice::default()
        });
        inv.accelerators.push(PciDevice {
            kind: PciKind::Display,
            ..PciDevice::default()
        });
        let rs = agent_resources(&inv, None, &Resources::default());
        assert_eq!(rs.scalar("gpus"), 1.0);
        assert_eq!(rs.scalar("cpus"), 4.0);
    }
}
