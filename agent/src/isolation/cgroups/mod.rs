//! cgroup v2 for containers: a Keel subtree with the delegated controllers
//! enabled, one cgroup per container (its limits) with one leaf per task
//! (its processes), and a `supervisors` leaf for the task shims.
//!
//! ```text
//! <v2 mount>/<agent's cgroup>/keel/          cgroup.subtree_control: +cpu +memory +pids +io
//!     supervisors/                           the shims (no limits)
//!     <container>/                           cpu.max cpu.weight memory.max memory.high
//!         t-<hash of task id>/               memory.swap.max pids.max io.weight io.max memory.oom.group
//! ```
//!
//! The trait [`Cgroups`] is the kernel surface: [`v2::CgroupV2`] is the real
//! one (paths under a root given to it, so it is tested on temp dirs) and
//! [`fake::FakeCgroups`] records calls. Which files are written with
//! cgroups-rs and which with Keel's own code is listed in [`v2`].

pub mod detect;
pub mod events;
pub mod fake;
pub mod io;
pub mod stats;
pub mod v2;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// The controllers Keel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Controller {
    Cpu,
    Memory,
    Pids,
    Io,
}

impl Controller {
    pub const ALL: [Controller; 4] = [
        Controller::Cpu,
        Controller::Memory,
        Controller::Pids,
        Controller::Io,
    ];

    /// The name in `cgroup.controllers`.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Io => "io",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a `cgroup.controllers` / `cgroup.subtree_control` line; names
/// Keel does not use are left out.
pub fn parse_controllers(text: &str) -> BTreeSet<Controller> {
    text.split_whitespace()
        .filter_map(Controller::from_name)
        .collect()
}

/// What is written into a container's cgroup. `None`: left as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `cpu.max`: quota and period in microseconds.
    pub cpu_max: Option<(u64, u64)>,
    pub cpu_weight: Option<u64>,
    pub memory_max: Option<u64>,
    pub memory_high: Option<u64>,
    pub memory_swap_max: Option<u64>,
    pub pids_max: Option<u64>,
    pub io_weight: Option<u64>,
    /// `io.max` of the sandboxes' disk (asked with `keel.io/*` labels).
    #[serde(default)]
    pub io_max: Option<io::IoMax>,
}

impl Limits {
    /// The controllers these limits need.
    pub fn controllers(&self) -> BTreeSet<Controller> {
        let mut set = BTreeSet::new();
        if self.cpu_max.is_some() || self.cpu_weight.is_some() {
            set.insert(Controller::Cpu);
        }
        if self.memory_max.is_some() || self.memory_high.is_some() || self.memory_swap_max.is_some()
        {
            set.insert(Controller::Memory);
        }
        if self.pids_max.is_some() {
            set.insert(Controller::Pids);
        }
        if self.io_weight.is_some() || self.io_max.is_some() {
            set.insert(Controller::Io);
        }
        set
    }

    /// The limits a running container is resized to: these, except that
    /// `memory.max` and `memory.high` never go below what `previous`
    /// allowed. Lowering the hard limit under a running task group could
    /// OOM-kill it (Mesos' memory isolator likewise only ever raises it);
    /// cpu and io follow the tasks both ways (a container whose tasks no
    /// longer ask for bandwidth has its `io.max` cleared).
    pub fn resized_from(&self, previous: &Limits) -> Limits {
        let keep = |next: Option<u64>, prev: Option<u64>| match (next, prev) {
            (Some(n), Some(p)) => Some(n.max(p)),
            (n, p) => n.or(p),
        };
        Limits {
            memory_max: keep(self.memory_max, previous.memory_max),
            memory_high: keep(self.memory_high, previous.memory_high),
            io_max: match (self.io_max, previous.io_max) {
                (None, Some(p)) if !p.limits.is_empty() => Some(io::IoMax {
                    device: p.device,
                    limits: io::Bandwidth::default(),
                }),
                (next, _) => next,
            },
            ..self.clone()
        }
    }

    /// These limits with only what `available` controllers can enforce.
    pub fn restricted_to(&self, available: &BTreeSet<Controller>) -> Limits {
        let has = |c| available.contains(&c);
        Limits {
            cpu_max: self.cpu_max.filter(|_| has(Controller::Cpu)),
            cpu_weight: self.cpu_weight.filter(|_| has(Controller::Cpu)),
            memory_max: self.memory_max.filter(|_| has(Controller::Memory)),
            memory_high: self.memory_high.filter(|_| has(Controller::Memory)),
            memory_swap_max: self.memory_swap_max.filter(|_| has(Controller::Memory)),
            pids_max: self.pids_max.filter(|_| has(Controller::Pids)),
            io_weight: self.io_weight.filter(|_| has(Controller::Io)),
            io_max: self.io_max.filter(|_| has(Controller::Io)),
        }
    }
}

/// The `cpu.max` period (CFS default).
pub const CPU_PERIOD_US: u64 = 100_000;
/// The smallest quota the kernel accepts.
pub const CPU_MIN_QUOTA_US: u64 = 1_000;

/// cgroup v1 `cpu.shares` (Mesos: 1024 per CPU) to v2 `cpu.weight`, as
/// runc and systemd convert: `[2, 262144]` onto `[1, 10000]`.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// Knobs from the agent's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitOptions {
    /// `--cgroups-enable-cfs`: `cpus` is also a hard cap (`cpu.max`).
    pub cfs: bool,
    /// `--cgroups-pids-max`.
    pub pids_max: u64,
}

impl Default for LimitOptions {
    fn default() -> Self {
        LimitOptions {
            cfs: true,
            pids_max: 4096,
        }
    }
}

/// The limits of a container given `cpus` and `mem` (MB), as Mesos' cgroups
/// isolators set them, in v2 terms:
/// - `cpus` -> `cpu.weight` (from `cpu.shares` = 1024 x cpus) and, with CFS
///   on, `cpu.max` = cpus x 100 ms per 100 ms;
/// - `mem` -> `memory.max`, `memory.high` 1/64 below it (reclaim starts
///   before the OOM killer; further below, the kernel's throttling of a
///   task over `memory.high` delays an OOM kill by minutes), `memory.swap.max` 0;
/// - always `pids.max`; `io.weight` in proportion to `cpus` like
///   `cpu.weight` (100 for one CPU is the kernel's default).
pub fn limits_for(cpus: Option<f64>, mem_mb: Option<f64>, opts: LimitOptions) -> Limits {
    let cpus = cpus.filter(|c| c.is_finite() && *c > 0.0);
    let mem = mem_mb
        .filter(|m| m.is_finite() && *m > 0.0)
        .map(|m| (m * 1024.0 * 1024.0) as u64);
    Limits {
        cpu_max: cpus.filter(|_| opts.cfs).map(|c| {
            let quota = ((c * CPU_PERIOD_US as f64) as u64).max(CPU_MIN_QUOTA_US);
            (quota, CPU_PERIOD_US)
        }),
        cpu_weight: cpus.map(|c| shares_to_weight((c * 1024.0) as u64)),
        memory_max: mem,
        memory_high: mem.map(|m| m - m / 64),
        memory_swap_max: mem.map(|_| 0),
        pids_max: Some(opts.pids_max),
        io_weight: cpus.map(|c| ((c * 100.0) as u64).clamp(1, 10_000)),
        io_max: None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("no cgroup v2 hierarchy is mounted")]
    NoHierarchy,
    #[error("cgroup name {0:?} is not a single path component")]
    InvalidName(String),
}

impl CgroupError {
    pub fn io(path: &Path, e: impl fmt::Display) -> Self {
        CgroupError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    }
}

/// A container's cgroups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPaths {
    /// `<keel>/<container>`: the limits.
    pub container: PathBuf,
    /// `<keel>/<container>/t-<hash>`: the task's processes.
    pub leaf: PathBuf,
}

/// A limit the container ran into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limitation {
    /// A Mesos `TaskStatus.Reason` name.
    pub reason: &'static str,
    pub message: String,
}

pub const REASON_CONTAINER_LIMITATION_MEMORY: &str = "REASON_CONTAINER_LIMITATION_MEMORY";

/// Resolves when a container breaks a limit.
pub type LimitationWatch = Pin<Box<dyn std::future::Future<Output = Limitation> + Send>>;

/// The leaf name of a task: stable across restarts, always one valid
/// cgroup name whatever the task id holds.
pub fn leaf_name(task_id: &str) -> String {
    let h = task_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("t-{h:016x}")
}

/// The cgroup kernel surface.
pub trait Cgroups: Send + Sync + 'static {
    /// Controllers usable in containers (enabled in the Keel subtree).
    fn controllers(&self) -> BTreeSet<Controller>;

    /// Where a container's cgroups are (nothing is created).
    fn paths(&self, container_id: &str, task_id: &str) -> Result<CgroupPaths, CgroupError>;

    /// Where shims wait (created by [`Self::prepare`]).
    fn supervisors(&self) -> PathBuf;

    /// Creates the container's cgroup with `limits` and the task's leaf;
    /// idempotent (a restarted agent may run it again).
    fn create(&self, paths: &CgroupPaths, limits: &Limits) -> Result<(), CgroupError>;

    /// Writes `limits` into the container's cgroup at `container` (a task
    /// group's container resized as tasks join and end). A container not
    /// created yet is left alone: [`Self::create`] writes its limits.
    fn update(&self, container: &Path, limits: &Limits) -> Result<(), CgroupError>;

    /// Kills every process in the cgroup at `path` and below (`cgroup.kill`).
    fn kill(&self, path: &Path) -> Result<(), CgroupError>;

    /// Removes the leaf, and the container's cgroup once it has no leaf
    /// left. Processes still inside are killed first.
    fn remove(&self, paths: &CgroupPaths) -> Result<(), CgroupError>;

    /// The limit the container broke, if it did (checked now).
    fn limitation(&self, paths: &CgroupPaths) -> Option<Limitation>;

    /// Resolves when the container breaks a limit (memory: an OOM kill,
    /// seen through inotify on `memory.events`). `None` when not watchable.
    fn watch(&self, paths: &CgroupPaths) -> Option<LimitationWatch>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_mesos() {
        let l = limits_for(Some(0.5), Some(64.0), LimitOptions::default());
        assert_eq!(l.cpu_max, Some((50_000, 100_000)));
        assert_eq!(l.cpu_weight, Some(shares_to_weight(512)));
        assert_eq!(l.memory_max, Some(64 << 20));
        assert_eq!(l.memory_high, Some((64 << 20) - (1 << 20)));
        assert_eq!(l.memory_swap_max, Some(0));
        assert_eq!(l.pids_max, Some(4096));
        assert_eq!(l.io_weight, Some(50));
        let no_cfs = limits_for(
            Some(2.0),
            None,
            LimitOptions {
                cfs: false,
                pids_max: 10,
            },
        );
        assert_eq!((no_cfs.cpu_max, no_cfs.memory_max), (None, None));
        assert_eq!(no_cfs.pids_max, Some(10));
        assert_eq!(
            limits_for(Some(0.001), None, LimitOptions::default()).cpu_max,
            Some((1_000, 100_000))
        );
        assert_eq!(
            limits_for(None, None, LimitOptions::default()).controllers(),
            BTreeSet::from([Controller::Pids])
        );
    }

    #[test]
    fn a_resized_container_never_loses_memory() {
        let big = limits_for(Some(2.0), Some(256.0), LimitOptions::default());
        let small = limits_for(Some(0.5), Some(64.0), LimitOptions::default());
        let r = small.resized_from(&big);
        assert_eq!(
            (r.memory_max, r.memory_high),
            (big.memory_max, big.memory_high)
        );
        assert_eq!(
            (r.cpu_max, r.cpu_weight, r.io_weight),
            (small.cpu_max, small.cpu_weight, small.io_weight)
        );
        assert_eq!(
            big.resized_from(&small),
            big,
            "growing takes the new limits"
        );
        let no_mem = limits_for(Some(1.0), None, LimitOptions::default());
        assert_eq!(no_mem.resized_from(&big).memory_max, big.memory_max);
    }

    #[test]
    fn weights_match_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 1);
    }

    #[test]
    fn limits_shrink_to_what_is_available() {
        let l = limits_for(Some(1.0), Some(128.0), LimitOptions::default());
        assert_eq!(l.controllers(), BTreeSet::from(Controller::ALL));
        let only = l.restricted_to(&BTreeSet::from([Controller::Pids]));
        assert_eq!(
            only,
            Limits {
                pids_max: Some(4096),
                ..Limits::default()
            }
        );
    }

    #[test]
    fn controller_lists_and_leaf_names() {
        assert_eq!(
            parse_controllers("cpuset cpu io memory hugetlb pids rdma misc\n"),
            BTreeSet::from(Controller::ALL)
        );
        assert!(parse_controllers("hugetlb").is_empty());
        assert_eq!(leaf_name("t1"), leaf_name("t1"));
        assert_ne!(leaf_name("t1"), leaf_name("t2"));
        assert_eq!(leaf_name(&"x".repeat(300)).len(), 18);
    }
}
