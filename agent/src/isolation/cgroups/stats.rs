//! What a container's cgroup (v2) says it used: `cpu.stat`, `cpu.max`,
//! `memory.current`, `memory.max`, `memory.stat`, `memory.swap.current`,
//! `pids.current`. Each file is optional (a controller may not be enabled
//! for the container); a missing cgroup directory is an error. Tested on
//! fixtures under `agent/testdata/cgroups/`.

use std::path::Path;

use super::CgroupError;
use super::events::parse_flat;

/// A cgroup's usage and limits, in the kernel's units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupStats {
    pub cpu_user_usec: Option<u64>,
    pub cpu_system_usec: Option<u64>,
    pub cpu_nr_periods: Option<u64>,
    pub cpu_nr_throttled: Option<u64>,
    pub cpu_throttled_usec: Option<u64>,
    /// `cpu.max`: quota and period in microseconds (`None`: no quota).
    pub cpu_quota: Option<(u64, u64)>,
    pub memory_current: Option<u64>,
    /// `memory.max` (`None`: `max`, unlimited).
    pub memory_max: Option<u64>,
    pub memory_anon: Option<u64>,
    pub memory_file: Option<u64>,
    pub memory_file_mapped: Option<u64>,
    pub memory_swap: Option<u64>,
    pub processes: Option<u64>,
}

impl CgroupStats {
    /// The CPUs the quota allows (`quota / period`).
    pub fn cpus_limit(&self) -> Option<f64> {
        self.cpu_quota
            .filter(|(_, period)| *period > 0)
            .map(|(quota, period)| quota as f64 / period as f64)
    }
}

/// Reads the statistics of the cgroup at `dir`.
pub fn read(dir: &Path) -> Result<CgroupStats, CgroupError> {
    if !dir.is_dir() {
        return Err(CgroupError::io(dir, "no such cgroup"));
    }
    let text = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let single = |name: &str| text(name).and_then(|t| t.trim().parse::<u64>().ok());
    let cpu = text("cpu.stat").map(|t| parse_flat(&t)).unwrap_or_default();
    let mem = text("memory.stat")
        .map(|t| parse_flat(&t))
        .unwrap_or_default();
    Ok(CgroupStats {
        cpu_user_usec: cpu.get("user_usec").copied(),
        cpu_system_usec: cpu.get("system_usec").copied(),
        cpu_nr_periods: cpu.get("nr_periods").copied(),
        cpu_nr_throttled: cpu.get("nr_throttled").copied(),
        cpu_throttled_usec: cpu.get("throttled_usec").copied(),
        cpu_quota: text("cpu.max").and_then(|t| parse_cpu_max(&t)),
        memory_current: single("memory.current"),
        memory_max: single("memory.max"),
        memory_anon: mem.get("anon").copied(),
        memory_file: mem.get("file").copied(),
        memory_file_mapped: mem.get("file_mapped").copied(),
        memory_swap: single("memory.swap.current"),
        processes: single("pids.current"),
    })
}

/// `cpu.max`: `QUOTA PERIOD`, or `max PERIOD` for no quota.
fn parse_cpu_max(text: &str) -> Option<(u64, u64)> {
    let mut parts = text.split_whitespace();
    let quota = parts.next()?.parse().ok()?;
    let period = parts.next()?.parse().ok()?;
    Some((quota, period))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/cgroups")
            .join(name)
    }

    #[test]
    fn a_busy_limited_container() {
        let s = read(&fixture("v2-busy")).unwrap();
        assert_eq!(s.cpu_user_usec, Some(2_012_090));
        assert_eq!(s.cpu_system_usec, Some(401_260));
        assert_eq!(
            (s.cpu_nr_periods, s.cpu_nr_throttled, s.cpu_throttled_usec),
            (Some(240), Some(31), Some(1_830_021))
        );
        assert_eq!(s.cpus_limit(), Some(0.5));
        assert_eq!(s.memory_current, Some(67_371_008));
        assert_eq!(s.memory_max, Some(134_217_728));
        assert_eq!(
            (s.memory_anon, s.memory_file, s.memory_file_mapped),
            (Some(62_914_560), Some(3_145_728), Some(1_048_576))
        );
        assert_eq!((s.memory_swap, s.processes), (Some(0), Some(3)));
    }

    #[test]
    fn unlimited_and_partial_cgroups() {
        let s = read(&fixture("v2-unlimited")).unwrap();
        assert_eq!(s.cpus_limit(), None);
        assert_eq!(s.memory_max, None);
        assert_eq!(s.memory_current, Some(524_288));
        assert_eq!((s.memory_swap, s.processes), (None, None));
        assert!(read(&fixture("no-such-cgroup")).is_err());
    }
}
