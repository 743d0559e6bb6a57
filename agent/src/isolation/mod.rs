//! The kernel surfaces of task isolation, each behind a small trait with a
//! real implementation and a recording fake, and the pure decision of what
//! a task gets ([`plan`]). Readers of kernel file systems take their root
//! as a path and are tested on temp trees.
//!
//! - [`procfs`]: `/proc/<pid>/stat` (process identity after a restart).
//! - [`cgroups`]: cgroup v2 limits, `cgroup.kill`, OOM events.
//! - [`namespaces`]: entering PID, mount, UTS, IPC and network namespaces.
//! - [`network`]: per-task network namespaces on a Keel bridge.
//! - [`mounts`]: the container's file system view (read-only host, private
//!   `/tmp`, the sandbox at `/mnt/mesos/sandbox`).
//! - [`setup`]: what the agent prepares and finds at startup.
//!
//! `--isolation` says what is on:
//!
//! | value | effect |
//! |---|---|
//! | `auto` (default) | every feature this host offers; a task whose limits cannot all be enforced still runs, its TASK_STARTING says which were not |
//! | `strict` | every feature; a task asking for a limit this host cannot enforce fails (TASK_FAILED, REASON_CONTAINER_LAUNCH_FAILED) |
//! | `none` | nothing (plain processes in the sandbox) |
//! | a list, e.g. `cgroups/cpu,cgroups/mem,namespaces/pid` | exactly those, each required as with `strict` |

pub mod cgroups;
pub mod mounts;
pub mod namespaces;
pub mod network;
mod plan;
pub mod procfs;
pub mod setup;

pub use plan::{Plan, plan};

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use self::cgroups::Controller;

/// One isolation feature, named as in Mesos' `--isolation` where one exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Feature {
    Cpu,
    Mem,
    Pids,
    Io,
    PidNs,
    MountNs,
    UtsNs,
    IpcNs,
}

impl Feature {
    pub const ALL: [Feature; 8] = [
        Feature::Cpu,
        Feature::Mem,
        Feature::Pids,
        Feature::Io,
        Feature::PidNs,
        Feature::MountNs,
        Feature::UtsNs,
        Feature::IpcNs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Feature::Cpu => "cgroups/cpu",
            Feature::Mem => "cgroups/mem",
            Feature::Pids => "cgroups/pids",
            Feature::Io => "cgroups/io",
            Feature::PidNs => "namespaces/pid",
            Feature::MountNs => "namespaces/mount",
            Feature::UtsNs => "namespaces/uts",
            Feature::IpcNs => "namespaces/ipc",
        }
    }

    /// The cgroup controller a cgroups feature needs.
    pub fn controller(self) -> Option<Controller> {
        match self {
            Feature::Cpu => Some(Controller::Cpu),
            Feature::Mem => Some(Controller::Memory),
            Feature::Pids => Some(Controller::Pids),
            Feature::Io => Some(Controller::Io),
            _ => None,
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `--isolation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    Auto,
    Strict,
    /// Exactly these, each required (`none` is the empty list).
    Only(BTreeSet<Feature>),
}

impl Isolation {
    pub fn none() -> Self {
        Isolation::Only(BTreeSet::new())
    }

    pub fn wanted(&self) -> BTreeSet<Feature> {
        match self {
            Isolation::Auto | Isolation::Strict => Feature::ALL.into_iter().collect(),
            Isolation::Only(set) => set.clone(),
        }
    }

    fn required(&self, f: Feature) -> bool {
        match self {
            Isolation::Auto => false,
            Isolation::Strict => true,
            Isolation::Only(set) => set.contains(&f),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown isolation {0:?} (auto, strict, none, or a list of {list})", list = Feature::ALL.map(Feature::name).join(", "))]
pub struct IsolationParseError(String);

impl FromStr for Isolation {
    type Err = IsolationParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Isolation::Auto),
            "strict" => Ok(Isolation::Strict),
            "none" | "" => Ok(Isolation::none()),
            list => list
                .split(',')
                .map(str::trim)
                .map(|n| {
                    Feature::ALL
                        .into_iter()
                        .find(|f| f.name() == n)
                        .ok_or_else(|| IsolationParseError(n.to_string()))
                })
                .collect::<Result<_, _>>()
                .map(Isolation::Only),
        }
    }
}

/// What this host can do, found once at startup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSupport {
    /// A Keel cgroup v2 subtree exists: containers get a cgroup (process
    /// tracking and `cgroup.kill`) even with no controller.
    pub cgroups: bool,
    /// cgroup v2 controllers usable in containers.
    pub controllers: BTreeSet<Controller>,
    /// Namespace features the agent can create (it runs as root).
    pub namespaces: BTreeSet<Feature>,
    /// The block device `io.max` limits for the sandboxes (major, minor);
    /// `None` when they are on no block device.
    pub io_device: Option<(u32, u32)>,
}

impl HostSupport {
    pub fn supports(&self, f: Feature) -> bool {
        match f.controller() {
            Some(c) => self.controllers.contains(&c),
            None => self.namespaces.contains(&f),
        }
    }

    /// The wanted features this host lacks (logged at startup).
    pub fn missing(&self, wanted: &BTreeSet<Feature>) -> Vec<Feature> {
        wanted
            .iter()
            .copied()
            .filter(|f| !self.supports(*f))
            .collect()
    }
}

/// Which namespaces a task gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    pub pid: bool,
    pub mount: bool,
    pub uts: bool,
    pub ipc: bool,
}

impl Namespaces {
    pub fn any(&self) -> bool {
        self.pid || self.mount || self.uts || self.ipc
    }
}
