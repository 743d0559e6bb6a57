//! `CgroupV2` on temp trees shaped like cgroupfs, and on this machine's own
//! v2 hierarchy (membership and `cgroup.kill` work even where the memory
//! and cpu controllers live on v1, as on the dev box).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use super::*;
use crate::isolation::cgroups::{LimitOptions, limits_for};

/// A parent cgroup offering every controller, with the Keel root inside.
fn tree() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let all = "cpuset cpu io memory hugetlb pids rdma misc\n";
    fs::write(dir.path().join("cgroup.controllers"), all).unwrap();
    fs::write(dir.path().join("cgroup.subtree_control"), "").unwrap();
    let root = dir.path().join("keel");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("cgroup.controllers"), "cpu io memory pids\n").unwrap();
    (dir, root)
}

/// The files the kernel creates in a new cgroup that cgroups-rs reads.
fn kernel_files(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("cpu.max"), "max 100000\n").unwrap();
}

#[test]
fn prepare_enables_what_is_offered_and_wanted() {
    let (dir, root) = tree();
    let wanted = BTreeSet::from([Controller::Cpu, Controller::Memory]);
    let cg = CgroupV2::prepare(&root, &wanted).unwrap();
    assert_eq!(cg.controllers(), wanted);
    // The last write of each subtree_control file (cgroupfs takes them one by one).
    assert_eq!(
        fs::read_to_string(dir.path().join("cgroup.subtree_control")).unwrap(),
        "+memory"
    );
    assert!(root.join("supervisors").is_dir());
    assert_eq!(cg.supervisors(), root.join("supervisors"));
    assert!(CgroupV2::prepare(&root, &wanted).is_ok(), "idempotent");
    let not_cgroup = tempfile::tempdir().unwrap();
    assert!(CgroupV2::prepare(&not_cgroup.path().join("keel"), &wanted).is_err());
}

#[test]
fn limits_land_in_the_v2_files() {
    let (_dir, root) = tree();
    let cg = CgroupV2::prepare(&root, &BTreeSet::from(Controller::ALL)).unwrap();
    let paths = cg.paths("c1", "task/1").unwrap();
    assert_eq!(paths.container, root.join("c1"));
    assert_eq!(paths.leaf, root.join("c1").join(leaf_name("task/1")));
    kernel_files(&paths.container);
    let limits = limits_for(Some(0.5), Some(64.0), LimitOptions::default());
    cg.create(&paths, &limits).unwrap();
    let read = |f: &str| fs::read_to_string(paths.container.join(f)).unwrap();
    assert_eq!(read("cpu.max"), "50000 100000");
    assert_eq!(read("cpu.weight"), limits.cpu_weight.unwrap().to_string());
    assert_eq!(read("memory.max"), (64u64 << 20).to_string());
    assert_eq!(read("memory.high"), (63u64 << 20).to_string());
    assert_eq!(read("memory.swap.max"), "0");
    assert_eq!(read("memory.oom.group"), "1");
    assert_eq!(read("pids.max"), "4096");
    assert_eq!(read("io.weight"), "default 50");
    assert!(paths.leaf.is_dir());
    assert!(cg.paths("..", "t").is_err());
}

#[test]
fn an_update_rewrites_a_created_container_only() {
    let (_dir, root) = tree();
    let cg = CgroupV2::prepare(&root, &BTreeSet::from(Controller::ALL)).unwrap();
    let paths = cg.paths("c1", "t").unwrap();
    let grown = limits_for(Some(1.5), Some(128.0), LimitOptions::default());
    cg.update(&paths.container, &grown).unwrap();
    assert!(!paths.container.exists(), "nothing created by an update");
    kernel_files(&paths.container);
    cg.create(
        &paths,
        &limits_for(Some(0.5), Some(64.0), LimitOptions::default()),
    )
    .unwrap();
    cg.update(&paths.container, &grown).unwrap();
    let read = |f: &str| fs::read_to_string(paths.container.join(f)).unwrap();
    assert_eq!(read("cpu.max"), "150000 100000");
    assert_eq!(read("memory.max"), (128u64 << 20).to_string());
    assert_eq!(read("io.weight"), "default 150");
}

#[test]
fn only_enabled_controllers_are_written() {
    let (_dir, root) = tree();
    let cg = CgroupV2::prepare(&root, &BTreeSet::from([Controller::Pids])).unwrap();
    let paths = cg.paths("c1", "t").unwrap();
    kernel_files(&paths.container);
    cg.create(
        &paths,
        &limits_for(Some(1.0), Some(32.0), LimitOptions::default()),
    )
    .unwrap();
    assert!(paths.container.join("pids.max").exists());
    for f in ["memory.max", "cpu.weight", "io.weight", "memory.oom.group"] {
        assert!(!paths.container.join(f).exists(), "{f}");
    }
    assert_eq!(cg.limitation(&paths), None);
    assert!(cg.watch(&paths).is_none());
}

#[test]
fn an_oom_kill_is_a_memory_limitation() {
    let (_dir, root) = tree();
    let cg = CgroupV2::prepare(&root, &BTreeSet::from(Controller::ALL)).unwrap();
    let paths = cg.paths("c1", "t").unwrap();
    kernel_files(&paths.container);
    cg.create(
        &paths,
        &limits_for(None, Some(64.0), LimitOptions::default()),
    )
    .unwrap();
    fs::write(paths.container.join("memory.events"), "oom 0\noom_kill 0\n").unwrap();
    assert_eq!(cg.limitation(&paths), None);
    fs::write(
        paths.container.join("memory.peak"),
        (64u64 << 20).to_string(),
    )
    .unwrap();
    fs::write(paths.container.join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
    let l = cg.limitation(&paths).unwrap();
    assert_eq!(l.reason, "REASON_CONTAINER_LIMITATION_MEMORY");
    assert_eq!(
        l.message,
        "Memory limit exceeded: Requested: 64MB Maximum Used: 64MB"
    );
}

#[tokio::test]
async fn the_watch_fires_on_an_oom_kill() {
    let (_dir, root) = tree();
    let cg = CgroupV2::prepare(&root, &BTreeSet::from(Controller::ALL)).unwrap();
    let paths = cg.paths("c1", "t").unwrap();
    kernel_files(&paths.container);
    cg.create(&paths, &Limits::default()).unwrap();
    fs::write(paths.container.join("memory.events"), "oom_kill 0\n").unwrap();
    let watch = tokio::spawn(cg.watch(&paths).unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!watch.is_finished());
    fs::write(paths.container.join("memory.events"), "oom_kill 2\n").unwrap();
    let l = tokio::time::timeout(std::time::Duration::from_secs(5), watch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(l.reason, "REASON_CONTAINER_LIMITATION_MEMORY");
}

/// This machine's v2 hierarchy: a real process in a real leaf, killed with
/// `cgroup.kill`, then the cgroups removed.
#[test]
fn on_this_machine_cgroup_kill_empties_a_container() {
    let Ok(place) = super::super::detect::placement(Path::new("/proc")) else {
        eprintln!("no cgroup v2 hierarchy here: nothing to test");
        return;
    };
    let root = place
        .dir()
        .join(format!("keel-test-{}", uuid::Uuid::new_v4().simple()));
    let cg = CgroupV2::prepare(&root, &BTreeSet::from(Controller::ALL)).unwrap();
    let paths = cg.paths("c1", "t1").unwrap();
    cg.create(
        &paths,
        &limits_for(Some(1.0), Some(64.0), LimitOptions::default()),
    )
    .unwrap();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    fs::write(paths.leaf.join("cgroup.procs"), child.id().to_string()).unwrap();
    let procs = fs::read_to_string(paths.leaf.join("cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), child.id().to_string());
    cg.remove(&paths).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(!paths.container.exists());
    fs::remove_dir(root.join("supervisors")).unwrap();
    fs::remove_dir(&root).unwrap();
}
