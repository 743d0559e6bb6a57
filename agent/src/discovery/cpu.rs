//! CPU counts and topology.
//!
//! - logical CPUs: the online set, `sys/devices/system/cpu/online` (kernel
//!   cpulist syntax such as `0-3,8-11`); without it, the `processor` entries
//!   of `proc/cpuinfo`.
//! - cores: distinct (`physical_package_id`, `core_id`) pairs of the online
//!   CPUs from `sys/devices/system/cpu/cpuN/topology/`; where those files are
//!   missing, `physical id`/`core id` from `proc/cpuinfo`; failing that, each
//!   CPU counts as its own core on package 0.
//! - sockets: distinct package ids among the online CPUs.
//! - NUMA nodes: the `node<N>` directories in `sys/devices/system/node`
//!   (1 when there are none, as on kernels built without NUMA).
//! - model and vendor: the first `model name` and `vendor_id` in `proc/cpuinfo`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use keel_api::inventory::CpuInfo;

use super::DiscoveryError;
use super::sysfs::{attr, list_dir, read_string};

pub(crate) const CPUINFO: &str = "proc/cpuinfo";
pub(crate) const CPU_DIR: &str = "sys/devices/system/cpu";
pub(crate) const NODE_DIR: &str = "sys/devices/system/node";

/// Reads the CPU summary of the machine under `root`.
pub fn read(root: &Path) -> Result<CpuInfo, DiscoveryError> {
    let cpuinfo_path = root.join(CPUINFO);
    let cpuinfo = parse_cpuinfo(&read_string(&cpuinfo_path)?);

    let online_path = root.join(CPU_DIR).join("online");
    let online: Vec<u32> = match attr(&online_path) {
        Some(text) => parse_cpulist(&text)
            .ok_or_else(|| DiscoveryError::parse(&online_path, format!("bad cpulist {text:?}")))?,
        None => cpuinfo
            .processors
            .keys()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };

    let mut cores = BTreeSet::new();
    let mut sockets = BTreeSet::new();
    for &cpu in &online {
        let topo = root.join(CPU_DIR).join(format!("cpu{cpu}/topology"));
        let from_info = cpuinfo.processors.get(&cpu).copied().unwrap_or_default();
        let package = attr_i64(&topo.join("physical_package_id"))
            .or(from_info.physical_id)
            .unwrap_or(0);
        let core = attr_i64(&topo.join("core_id"))
            .or(from_info.core_id)
            .unwrap_or(i64::from(cpu));
        cores.insert((package, core));
        sockets.insert(package);
    }

    let nodes = list_dir(&root.join(NODE_DIR))?
        .iter()
        .filter(|n| is_numbered(n, "node"))
        .count();

    Ok(CpuInfo {
        logical: count(online.len()),
        cores: count(cores.len()),
        sockets: count(sockets.len()),
        numa_nodes: count(nodes.max(1)),
        model: cpuinfo.model,
        vendor: cpuinfo.vendor,
        online: format_cpulist(&online),
    })
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn attr_i64(path: &Path) -> Option<i64> {
    attr(path)?.parse().ok()
}

/// Whether `name` is `prefix` followed by a decimal number, e.g. `node1`.
pub(crate) fn is_numbered(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
}

/// Parses kernel cpulist syntax (`0-3,8-11`, `0`, or empty) into a sorted,
/// de-duplicated list; `None` when malformed.
pub fn parse_cpulist(text: &str) -> Option<Vec<u32>> {
    let mut cpus = BTreeSet::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi): (u32, u32) = (lo.parse().ok()?, hi.parse().ok()?);
                if lo > hi {
                    return None;
                }
                cpus.extend(lo..=hi);
            }
            None => {
                cpus.insert(part.parse().ok()?);
            }
        }
    }
    Some(cpus.into_iter().collect())
}

/// Formats a sorted CPU list in cpulist syntax, collapsing runs: `0-3,8`.
pub fn format_cpulist(cpus: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

#[derive(Debug, Clone, Copy, Default)]
struct ProcessorIds {
    physical_id: Option<i64>,
    core_id: Option<i64>,
}

#[derive(Debug, Default)]
struct Cpuinfo {
    model: String,
    vendor: String,
    processors: HashMap<u32, ProcessorIds>,
}

/// Parses `proc/cpuinfo`: blank-line separated blocks of `key : value`.
fn parse_cpuinfo(text: &str) -> Cpuinfo {
    let mut info = Cpuinfo::default();
    let mut current: Option<u32> = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => {
                current = value.parse().ok();
                if let Some(n) = current {
                    info.processors.entry(n).or_default();
                }
            }
            "model name" if info.model.is_empty() => info.model = value.to_string(),
            "vendor_id" if info.vendor.is_empty() => info.vendor = value.to_string(),
            "physical id" | "core id" => {
                let Some(entry) = current.and_then(|n| info.processors.get_mut(&n)) else {
                    continue;
                };
                let id = value.parse().ok();
                if key == "physical id" {
                    entry.physical_id = id;
                } else {
                    entry.core_id = id;
                }
            }
            _ => {}
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::discovery::sysfs::test_support::write;

    const CPUINFO_4: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon X\n\
        physical id\t: 0\ncore id\t\t: 0\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n\
        model name\t: Xeon X\nphysical id\t: 0\ncore id\t\t: 0\n\nprocessor\t: 2\n\
        physical id\t: 1\ncore id\t\t: 0\n\nprocessor\t: 3\nphysical id\t: 1\ncore id\t\t: 1\n\n";

    #[test]
    fn cpulists() {
        assert_eq!(
            parse_cpulist("0-3,8-11\n").unwrap(),
            [0, 1, 2, 3, 8, 9, 10, 11]
        );
        assert_eq!(parse_cpulist("0").unwrap(), [0]);
        assert_eq!(parse_cpulist("").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_cpulist("3-1"), None);
        assert_eq!(parse_cpulist("a"), None);
        assert_eq!(format_cpulist(&[0, 1, 2, 3, 8, 9, 10, 11]), "0-3,8-11");
        assert_eq!(format_cpulist(&[0, 2, 3]), "0,2-3");
        assert_eq!(format_cpulist(&[]), "");
    }

    #[test]
    fn topology_from_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, CPUINFO, CPUINFO_4);
        // CPU 3 is offline: it must not count.
        write(r, "sys/devices/system/cpu/online", "0-2\n");
        for (cpu, pkg, core) in [(0, 0, 0), (1, 0, 0), (2, 1, 4), (3, 1, 5)] {
            let t = format!("sys/devices/system/cpu/cpu{cpu}/topology");
            write(r, &format!("{t}/physical_package_id"), &format!("{pkg}\n"));
            write(r, &format!("{t}/core_id"), &format!("{core}\n"));
        }
        write(r, "sys/devices/system/node/node0/cpulist", "0-1\n");
        write(r, "sys/devices/system/node/node1/cpulist", "2-3\n");
        write(r, "sys/devices/system/node/online", "0-1\n");
        let cpu = read(r).unwrap();
        assert_eq!(
            cpu,
            CpuInfo {
                logical: 3,
                cores: 2,
                sockets: 2,
                numa_nodes: 2,
                model: "Xeon X".into(),
                vendor: "GenuineIntel".into(),
                online: "0-2".into(),
            }
        );
    }

    #[test]
    fn falls_back_to_cpuinfo() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, CPUINFO, CPUINFO_4);
        let cpu = read(r).unwrap();
        assert_eq!(
            (cpu.logical, cpu.cores, cpu.sockets, cpu.numa_nodes),
            (4, 3, 2, 1)
        );
        assert_eq!(cpu.online, "0-3");
    }

    #[test]
    fn no_topology_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        // An ARM-style cpuinfo: no model name, vendor or ids.
        write(
            r,
            CPUINFO,
            "processor\t: 0\nBogoMIPS\t: 50.00\n\nprocessor\t: 1\n",
        );
        write(r, "sys/devices/system/cpu/online", "0-1");
        let cpu = read(r).unwrap();
        assert_eq!((cpu.logical, cpu.cores, cpu.sockets), (2, 2, 1));
        assert_eq!((cpu.model.as_str(), cpu.vendor.as_str()), ("", ""));
    }

    #[test]
    fn bad_online_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), CPUINFO, CPUINFO_4);
        write(dir.path(), "sys/devices/system/cpu/online", "zero");
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("sys/devices/system/cpu/online"), "{err}");
    }
}
