//! What the agent finds and prepares at startup: the Keel cgroup subtree
//! and which features this host offers. Missing ones are logged once here;
//! tasks then carry the note (or fail, with `strict`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cgroups::detect::{self, Placement};
use super::cgroups::v2::CgroupV2;
use super::cgroups::{CgroupError, Cgroups, Controller};
use super::{Feature, HostSupport, Isolation};

#[derive(Debug, Clone)]
pub struct IsolationOptions {
    pub isolation: Isolation,
    /// `--cgroups-root`: the Keel subtree; found from the agent's own
    /// cgroup when `None`.
    pub cgroups_root: Option<PathBuf>,
    /// `/proc` (tests: a temp tree).
    pub proc_root: PathBuf,
    /// `/sys` (tests: a temp tree).
    pub sys_root: PathBuf,
    /// Where sandboxes live (the agent's work dir): `io.max` limits the
    /// block device under it.
    pub sandboxes: PathBuf,
}

pub struct Setup {
    pub host: HostSupport,
    pub cgroups: Option<Arc<dyn Cgroups>>,
}

/// Where the Keel subtree goes. An agent in the root cgroup (the appliance)
/// uses `<mount>/keel`. Elsewhere (a systemd service with `Delegate=yes`)
/// the agent first moves itself into `<its cgroup>/agent`, because a cgroup
/// that hands controllers down must hold no process, and uses
/// `<its cgroup>/keel`.
pub fn keel_root(place: &Placement) -> Result<PathBuf, CgroupError> {
    if place.cgroup == "/" {
        return Ok(place.mount.join("keel"));
    }
    let dir = place.dir();
    let leaf = dir.join("agent");
    std::fs::create_dir_all(&leaf).map_err(|e| CgroupError::io(&leaf, e))?;
    std::fs::write(leaf.join("cgroup.procs"), "0").map_err(|e| CgroupError::io(&leaf, e))?;
    Ok(dir.join("keel"))
}

fn wanted_controllers(iso: &Isolation) -> BTreeSet<Controller> {
    iso.wanted().iter().filter_map(|f| f.controller()).collect()
}

/// Whether this process may create namespaces (it is root).
fn can_unshare(proc_root: &Path) -> bool {
    rustix::process::geteuid().is_root() && proc_root.join("self/ns/pid").exists()
}

pub fn setup(opts: &IsolationOptions) -> Setup {
    let wanted = opts.isolation.wanted();
    let mut host = HostSupport::default();
    let mut cgroups: Option<Arc<dyn Cgroups>> = None;
    let controllers = wanted_controllers(&opts.isolation);
    if wanted.iter().any(|f| f.controller().is_some()) {
        let root = match &opts.cgroups_root {
            Some(r) => Ok(r.clone()),
            None => detect::placement(&opts.proc_root).and_then(|p| keel_root(&p)),
        };
        match root.and_then(|r| CgroupV2::prepare(&r, &controllers)) {
            Ok(cg) => {
                tracing::info!(root = %cg.root().display(),
                    controllers = ?cg.controllers().iter().map(|c| c.name()).collect::<Vec<_>>(),
                    "containers get cgroups");
                host.cgroups = true;
                host.controllers = cg.controllers();
                cgroups = Some(Arc::new(cg));
            }
            Err(e) => tracing::warn!(error = %e, "no cgroups for containers"),
        }
    }
    if can_unshare(&opts.proc_root) {
        host.namespaces = [
            Feature::PidNs,
            Feature::MountNs,
            Feature::UtsNs,
            Feature::IpcNs,
        ]
        .into();
    }
    if wanted.contains(&Feature::Io) {
        host.io_device = super::cgroups::io::device_under(&opts.sys_root, &opts.sandboxes);
        match host.io_device {
            Some((major, minor)) => tracing::info!(device = %format!("{major}:{minor}"),
                sandboxes = %opts.sandboxes.display(), "bandwidth limits (io.max) go to this disk"),
            None => tracing::info!(sandboxes = %opts.sandboxes.display(),
                "sandboxes are on no block device: tasks cannot get bandwidth limits"),
        }
    }
    let missing = host.missing(&wanted);
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|f| f.name()).collect();
        match opts.isolation {
            Isolation::Auto => tracing::warn!(missing = ?names,
                "isolation this host cannot provide: tasks run without it (their TASK_STARTING says so)"),
            _ => tracing::warn!(missing = ?names,
                "isolation this host cannot provide: tasks that need it will fail"),
        }
    }
    Setup { host, cgroups }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_cgroup_hosts_the_subtree_directly() {
        let p = Placement {
            mount: "/sys/fs/cgroup".into(),
            cgroup: "/".into(),
        };
        assert_eq!(keel_root(&p).unwrap(), Path::new("/sys/fs/cgroup/keel"));
    }

    #[test]
    fn a_service_cgroup_moves_the_agent_into_a_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let svc = dir.path().join("system.slice/keel-agent.service");
        std::fs::create_dir_all(&svc).unwrap();
        let p = Placement {
            mount: dir.path().to_path_buf(),
            cgroup: "/system.slice/keel-agent.service".into(),
        };
        assert_eq!(keel_root(&p).unwrap(), svc.join("keel"));
        assert_eq!(
            std::fs::read_to_string(svc.join("agent/cgroup.procs")).unwrap(),
            "0"
        );
    }

    #[test]
    fn nothing_wanted_nothing_prepared() {
        let dir = tempfile::tempdir().unwrap();
        let s = setup(&IsolationOptions {
            isolation: Isolation::none(),
            cgroups_root: Some(dir.path().join("keel")),
            proc_root: dir.path().to_path_buf(),
            sys_root: dir.path().to_path_buf(),
            sandboxes: dir.path().to_path_buf(),
        });
        assert!(s.cgroups.is_none());
        assert!(!dir.path().join("keel").exists());
        assert!(s.host.namespaces.is_empty(), "no ns files in a temp proc");
    }
}
