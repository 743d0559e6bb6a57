//! The file systems early userspace needs, and the cgroup v2 hierarchy the
//! agent's isolation builds on.
//!
//! ```text
//! /proc  proc      /sys  sysfs      /dev  devtmpfs (+ /dev/pts, /dev/shm)
//! /run   tmpfs     /tmp  tmpfs      /sys/fs/cgroup  cgroup2
//! /sys/fs/cgroup/keel/          cpu io memory pids enabled for its children
//! /sys/fs/cgroup/keel/service/  the agent (or master) process
//! ```
//!
//! The service runs in `keel/service`, which it owns the way a systemd unit
//! with `Delegate=yes` owns its cgroup (as in the image): cpu, io, memory and
//! pids are available to it, and since cgroup v2 forbids processes in a
//! group that hands controllers to its children, the agent moves itself into
//! a child of its group before enabling controllers for its task groups.

use std::fs;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

/// Where the cgroup2 hierarchy is mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The subtree Keel owns.
pub const KEEL_CGROUP: &str = "/sys/fs/cgroup/keel";
/// The leaf the service process runs in.
pub const SERVICE_CGROUP: &str = "/sys/fs/cgroup/keel/service";
/// Controllers enabled for Keel's subtree.
pub const CONTROLLERS: &[&str] = &["cpu", "io", "memory", "pids"];

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("cannot mount {fstype} on {target}: {source}")]
    Mount {
        fstype: String,
        target: PathBuf,
        source: rustix::io::Errno,
    },
    #[error("cannot unmount {target}: {source}")]
    Unmount {
        target: PathBuf,
        source: rustix::io::Errno,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cgroup controllers {missing:?} are not available in {path}")]
    Controllers { path: PathBuf, missing: Vec<String> },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MountError + '_ {
    move |source| MountError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Mounts `fstype` on `target` (created if missing) unless something is
/// mounted there already (EBUSY), which makes it safe to run twice.
pub fn mount(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: MountFlags,
    data: Option<&str>,
) -> Result<(), MountError> {
    fs::create_dir_all(target).map_err(io(target))?;
    let data = data.map(|d| std::ffi::CString::new(d).unwrap_or_default());
    match rustix::mount::mount(source, target, fstype, flags, data.as_deref()) {
        Ok(()) | Err(rustix::io::Errno::BUSY) => Ok(()),
        Err(source) => Err(MountError::Mount {
            fstype: fstype.to_string(),
            target: target.to_path_buf(),
            source,
        }),
    }
}

pub fn unmount(target: &Path) -> Result<(), MountError> {
    rustix::mount::unmount(target, UnmountFlags::empty()).map_err(|source| MountError::Unmount {
        target: target.to_path_buf(),
        source,
    })
}

/// The pseudo file systems, in order. devtmpfs may already be mounted by
/// the kernel (CONFIG_DEVTMPFS_MOUNT); proc must come first because the
/// rest is checked against it.
pub fn early() -> Result<(), MountError> {
    let nosuid = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    mount("proc", Path::new("/proc"), "proc", nosuid, None)?;
    mount("sysfs", Path::new("/sys"), "sysfs", nosuid, None)?;
    mount(
        "devtmpfs",
        Path::new("/dev"),
        "devtmpfs",
        MountFlags::NOSUID,
        Some("mode=0755"),
    )?;
    mount(
        "devpts",
        Path::new("/dev/pts"),
        "devpts",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        Some("gid=5,mode=620,ptmxmode=000"),
    )?;
    mount(
        "tmpfs",
        Path::new("/dev/shm"),
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some("mode=1777"),
    )?;
    mount(
        "tmpfs",
        Path::new("/run"),
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some("mode=0755"),
    )?;
    mount(
        "tmpfs",
        Path::new("/tmp"),
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some("mode=1777"),
    )?;
    Ok(())
}

/// Mounts cgroup2 at [`CGROUP_ROOT`] and prepares Keel's subtree under
/// `root` (the mounted hierarchy; a temp dir in tests). Returns the
/// controllers now enabled for `keel/`'s children.
pub fn cgroups() -> Result<Vec<String>, MountError> {
    mount(
        "cgroup2",
        Path::new(CGROUP_ROOT),
        "cgroup2",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        Some("nsdelegate"),
    )?;
    delegate(Path::new(CGROUP_ROOT))
}

/// Enables [`CONTROLLERS`] at `root` and in `root/keel`, and creates the
/// service leaf. Returns `keel/cgroup.subtree_control` as read back.
pub fn delegate(root: &Path) -> Result<Vec<String>, MountError> {
    let available_path = root.join("cgroup.controllers");
    let available = fs::read_to_string(&available_path).map_err(io(&available_path))?;
    let missing: Vec<String> = CONTROLLERS
        .iter()
        .filter(|c| !available.split_whitespace().any(|a| a == **c))
        .map(|c| c.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(MountError::Controllers {
            path: available_path,
            missing,
        });
    }
    let enable: String = CONTROLLERS
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    let keel = root.join("keel");
    let service = keel.join("service");
    fs::create_dir_all(&service).map_err(io(&service))?;
    for dir in [root, keel.as_path()] {
        let control = dir.join("cgroup.subtree_control");
        fs::write(&control, &enable).map_err(io(&control))?;
    }
    let control = keel.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&control).map_err(io(&control))?;
    Ok(enabled.split_whitespace().map(str::to_string).collect())
}

/// Moves process `pid` into the cgroup directory `group`.
pub fn join_cgroup(group: &Path, pid: u32) -> Result<(), MountError> {
    let procs = group.join("cgroup.procs");
    fs::write(&procs, pid.to_string()).map_err(io(&procs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delegation_writes_the_controllers_and_makes_the_leaf() {
        let root = tempfile::tempdir().unwrap();
        fs::write(
            root.path().join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        )
        .unwrap();
        let enabled = delegate(root.path()).unwrap();
        // A plain directory echoes what was written.
        assert_eq!(enabled, ["+cpu", "+io", "+memory", "+pids"]);
        assert!(root.path().join("keel/service").is_dir());
        assert_eq!(
            fs::read_to_string(root.path().join("cgroup.subtree_control")).unwrap(),
            "+cpu +io +memory +pids"
        );
    }

    #[test]
    fn missing_controllers_are_named() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
        let e = delegate(root.path()).unwrap_err();
        assert!(
            e.to_string().ends_with(&format!(
                "cgroup controllers [\"io\", \"pids\"] are not available in {}",
                root.path().join("cgroup.controllers").display()
            )),
            "{e}"
        );
    }
}
