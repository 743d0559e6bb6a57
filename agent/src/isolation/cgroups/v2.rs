//! The real cgroup v2 implementation, under a root directory given to it
//! (tests use temp trees shaped like cgroupfs, and the live hierarchy).
//!
//! Written with **cgroups-rs** (its v1-shaped controllers map to v2 files):
//! `cpu.max` (`CpuController::set_cfs_quota_and_period`), `cpu.weight`
//! (`set_shares`), `memory.max` + `memory.high` (`MemController::set_mem`),
//! `memory.swap.max` (`set_memswap_limit`), `pids.max`
//! (`PidController::set_pid_max`).
//!
//! Keel's own code, where cgroups-rs does not fit: creating the subtree and
//! enabling controllers (cgroups-rs hard-codes `/sys/fs/cgroup`), `io.weight`
//! (cgroups-rs writes `io.bfq.weight`), `io.max` (the device's whole line,
//! every key, so a resize clears what it no longer limits), `memory.oom.group`, `cgroup.kill`
//! and waiting for `cgroup.events` to say the group is empty, removing
//! cgroups, and OOM notification (`memory.events` + inotify, [`super::events`];
//! cgroups-rs only knows v1's `memory.oom_control`).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cgroups_rs::fs::MaxValue;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::memory::{MemController, SetMemory};
use cgroups_rs::fs::pid::PidController;

use super::events::{self, MemoryEvents};
use super::{
    CgroupError, CgroupPaths, Cgroups, Controller, Limitation, LimitationWatch, Limits,
    REASON_CONTAINER_LIMITATION_MEMORY, leaf_name, parse_controllers,
};

pub const SUPERVISORS: &str = "supervisors";

#[derive(Debug, Clone)]
pub struct CgroupV2 {
    /// The Keel subtree.
    root: PathBuf,
    /// Enabled in the subtree: what containers can use.
    controllers: BTreeSet<Controller>,
}

fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|e| CgroupError::io(path, e))
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|e| CgroupError::io(path, e))
}

/// One path component, usable as a cgroup name.
fn name(s: &str) -> Result<&str, CgroupError> {
    if s.is_empty() || s == "." || s == ".." || s.contains(['/', '\0']) || s.len() > 200 {
        return Err(CgroupError::InvalidName(s.to_string()));
    }
    Ok(s)
}

/// Enables `wanted` controllers (those offered) for the children of `dir`,
/// one at a time so one refusal does not hide the others; returns those
/// the kernel accepted.
fn enable(dir: &Path, wanted: &BTreeSet<Controller>) -> BTreeSet<Controller> {
    let offered = read(&dir.join("cgroup.controllers"))
        .map(|t| parse_controllers(&t))
        .unwrap_or_default();
    let control = dir.join("cgroup.subtree_control");
    wanted
        .intersection(&offered)
        .copied()
        .filter(|c| match write(&control, &format!("+{c}")) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(controller = %c, error = %e, "cannot enable a cgroup controller");
                false
            }
        })
        .collect()
}

fn cg_err(path: &Path) -> impl FnOnce(cgroups_rs::fs::error::Error) -> CgroupError + '_ {
    move |e| CgroupError::io(path, e)
}

impl CgroupV2 {
    /// Sets up the Keel subtree at `root`: the parent (a cgroup the agent
    /// may write, with no processes of its own unless it is the hierarchy's
    /// root) hands down the `wanted` controllers it has, `root` hands them
    /// on to containers, and `root/supervisors` is created. Idempotent.
    pub fn prepare(root: &Path, wanted: &BTreeSet<Controller>) -> Result<CgroupV2, CgroupError> {
        let parent = root
            .parent()
            .ok_or_else(|| CgroupError::io(root, "no parent cgroup"))?;
        if !parent.join("cgroup.controllers").exists() {
            return Err(CgroupError::io(parent, "not a cgroup v2 directory"));
        }
        enable(parent, wanted);
        fs::create_dir_all(root).map_err(|e| CgroupError::io(root, e))?;
        let controllers = enable(root, wanted);
        let sup = root.join(SUPERVISORS);
        fs::create_dir_all(&sup).map_err(|e| CgroupError::io(&sup, e))?;
        Ok(CgroupV2 {
            root: root.to_path_buf(),
            controllers,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn write_limits(&self, dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
        let has = |c| self.controllers.contains(&c);
        if has(Controller::Cpu) {
            let cpu = CpuController::new(dir.to_path_buf(), self.root.clone(), true);
            if let Some((quota, period)) = limits.cpu_max {
                cpu.set_cfs_quota_and_period(Some(quota as i64), Some(period))
                    .map_err(cg_err(dir))?;
            }
            if let Some(w) = limits.cpu_weight {
                cpu.set_shares(w).map_err(cg_err(dir))?;
            }
        }
        if has(Controller::Memory) {
            let mem = MemController::new(dir.to_path_buf(), self.root.clone(), true);
            let value = |v: Option<u64>| v.map(|b| MaxValue::Value(b as i64));
            mem.set_mem(SetMemory {
                low: None,
                min: None,
                high: value(limits.memory_high),
                max: value(limits.memory_max),
            })
            .map_err(cg_err(dir))?;
            if let Some(swap) = limits.memory_swap_max
                && let Err(e) = mem.set_memswap_limit(swap as i64)
            {
                // Kernels built without swap accounting have no such file.
                tracing::debug!(error = %e, "memory.swap.max not set");
            }
            if limits.memory_max.is_some() {
                // An OOM kill takes the whole container, as Mesos destroys it.
                write(&dir.join("memory.oom.group"), "1")?;
            }
        }
        if has(Controller::Pids)
            && let Some(n) = limits.pids_max
        {
            let pids = PidController::new(dir.to_path_buf(), self.root.clone(), true);
            pids.set_pid_max(MaxValue::Value(n as i64))
                .map_err(cg_err(dir))?;
        }
        if has(Controller::Io)
            && let Some(w) = limits.io_weight
        {
            write(&dir.join("io.weight"), &format!("default {w}"))?;
        }
        if has(Controller::Io)
            && let Some(max) = &limits.io_max
        {
            write(&dir.join("io.max"), &max.line())?;
        }
        Ok(())
    }

    /// Kills the cgroup's processes and waits (up to 2 s) until it is empty.
    fn kill_and_wait(&self, dir: &Path) -> Result<(), CgroupError> {
        self.kill(dir)?;
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let text = read(&dir.join("cgroup.events")).unwrap_or_default();
            if events::populated(&text) != Some(true) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err(CgroupError::io(dir, "processes survived cgroup.kill"))
    }

    fn memory_message(&self, container: &Path) -> String {
        let mb = |file: &str| {
            read(&container.join(file))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .map(|b| format!("{}MB", b >> 20))
        };
        let mut msg = "Memory limit exceeded".to_string();
        if let Some(max) = mb("memory.max") {
            msg.push_str(&format!(": Requested: {max}"));
        }
        if let Some(peak) = mb("memory.peak") {
            msg.push_str(&format!(" Maximum Used: {peak}"));
        }
        msg
    }
}

fn memory_limitation(container: &Path, message: impl Fn() -> String) -> Option<Limitation> {
    let text = fs::read_to_string(container.join("memory.events")).ok()?;
    MemoryEvents::parse(&text).oom_killed().then(|| Limitation {
        reason: REASON_CONTAINER_LIMITATION_MEMORY,
        message: message(),
    })
}

impl Cgroups for CgroupV2 {
    fn controllers(&self) -> BTreeSet<Controller> {
        self.controllers.clone()
    }

    fn paths(&self, container_id: &str, task_id: &str) -> Result<CgroupPaths, CgroupError> {
        let container = self.root.join(name(container_id)?);
        Ok(CgroupPaths {
            leaf: container.join(leaf_name(task_id)),
            container,
        })
    }

    fn supervisors(&self) -> PathBuf {
        self.root.join(SUPERVISORS)
    }

    fn create(&self, paths: &CgroupPaths, limits: &Limits) -> Result<(), CgroupError> {
        fs::create_dir_all(&paths.container).map_err(|e| CgroupError::io(&paths.container, e))?;
        // Written again for each task of a group: the same values.
        self.write_limits(&paths.container, limits)?;
        fs::create_dir_all(&paths.leaf).map_err(|e| CgroupError::io(&paths.leaf, e))
    }

    fn update(&self, container: &Path, limits: &Limits) -> Result<(), CgroupError> {
        if !container.is_dir() {
            return Ok(());
        }
        self.write_limits(container, limits)
    }

    fn kill(&self, path: &Path) -> Result<(), CgroupError> {
        match fs::write(path.join("cgroup.kill"), "1") {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !path.exists() => Ok(()),
            Err(e) => Err(CgroupError::io(path, e)),
        }
    }

    fn remove(&self, paths: &CgroupPaths) -> Result<(), CgroupError> {
        if paths.leaf.exists() {
            self.kill_and_wait(&paths.leaf)?;
            fs::remove_dir(&paths.leaf).map_err(|e| CgroupError::io(&paths.leaf, e))?;
        }
        let leaves_left = fs::read_dir(&paths.container)
            .map(|d| d.flatten().any(|e| e.file_type().is_ok_and(|t| t.is_dir())))
            .unwrap_or(false);
        if paths.container.exists() && !leaves_left {
            self.kill_and_wait(&paths.container)?;
            fs::remove_dir(&paths.container).map_err(|e| CgroupError::io(&paths.container, e))?;
        }
        Ok(())
    }

    fn limitation(&self, paths: &CgroupPaths) -> Option<Limitation> {
        if !self.controllers.contains(&Controller::Memory) {
            return None;
        }
        memory_limitation(&paths.container, || self.memory_message(&paths.container))
    }

    fn watch(&self, paths: &CgroupPaths) -> Option<LimitationWatch> {
        if !self.controllers.contains(&Controller::Memory) {
            return None;
        }
        let me = self.clone();
        let container = paths.container.clone();
        let file = container.join("memory.events");
        let check = move || memory_limitation(&container, || me.memory_message(&container));
        Some(Box::pin(events::when(file, Duration::from_secs(1), check)))
    }
}

#[cfg(test)]
#[path = "v2_tests.rs"]
mod tests;
