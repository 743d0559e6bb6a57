//! Real tasks in real cgroups on this machine's v2 hierarchy (a test
//! subtree of its own). On the dev box v2 has no cpu/memory controllers, so
//! what is checked here is membership, `cgroup.kill` and cleanup; limits and
//! OOM are checked in the QEMU guest (hardware-tests).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_agent::executor::{ExecutorCall, ExecutorConfig, ExecutorHandle};
use keel_agent::isolation::Isolation;
use keel_agent::isolation::cgroups::Controller;
use keel_agent::isolation::cgroups::detect::placement;
use keel_agent::isolation::cgroups::v2::CgroupV2;
use keel_api::pb;
use serde_json::json;
use support::{alive, gone};
use tokio::sync::mpsc;

struct Agent {
    exec: ExecutorHandle,
    rx: mpsc::UnboundedReceiver<pb::StatusUpdate>,
    dir: tempfile::TempDir,
    root: PathBuf,
    _cleanup: support::Cleanup,
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Whatever a failed test left: empty the subtree, then remove it.
        let _ = std::fs::write(self.root.join("cgroup.kill"), "1");
        std::thread::sleep(Duration::from_millis(100));
        let mut dirs: Vec<PathBuf> = walk(&self.root);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&e.path()));
        }
    }
    out
}

fn agent() -> Option<Agent> {
    let Ok(place) = placement(Path::new("/proc")) else {
        eprintln!("no cgroup v2 hierarchy here: nothing to test");
        return None;
    };
    let root = place
        .dir()
        .join(format!("keel-test-{}", uuid::Uuid::new_v4().simple()));
    let cg = CgroupV2::prepare(&root, &BTreeSet::from(Controller::ALL)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = ExecutorConfig::new(dir.path());
    config.isolation = Isolation::Auto;
    config.use_cgroups(Arc::new(cg));
    let (exec, rx) = support::start_runtime(config);
    Some(Agent {
        exec,
        rx,
        _cleanup: support::Cleanup(dir.path().to_path_buf()),
        dir,
        root,
    })
}

impl Agent {
    fn launch(&self, id: &str, cmd: &str) {
        let task = json!({"name": id, "task_id": {"value": id},
            "agent_id": {"value": "agent-S1"}, "command": {"value": cmd},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}}]});
        self.exec.call(ExecutorCall::launch(pb::LaunchTasks {
            framework_id: "fw".into(),
            framework_info_json: json!({"user": "root", "name": "t"}).to_string(),
            task_info_json: vec![task.to_string()],
            executor_info_json: String::new(),
        }));
    }

    /// Acknowledges updates until `state`; returns that update.
    async fn until(&mut self, state: &str) -> pb::TaskStatus {
        loop {
            let st = support::next_acked(&self.exec, &mut self.rx).await;
            if st.state == state {
                return st;
            }
            assert!(!support::is_terminal(&st), "{st:?}");
        }
    }

    fn sandbox_file(&self, task: &str, name: &str) -> PathBuf {
        self.dir.path().join(format!(
            "slaves/agent-S1/frameworks/fw/executors/{task}/runs/latest/{name}"
        ))
    }

    async fn read_when_written(&self, task: &str, name: &str) -> String {
        let path = self.sandbox_file(task, name);
        let deadline = Instant::now() + support::WAIT;
        loop {
            if let Ok(text) = std::fs::read_to_string(&path)
                && text.ends_with('\n')
            {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{} never written",
                path.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Container cgroups left under the test root (`supervisors` aside).
    fn containers(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "supervisors")
            .collect()
    }
}

fn v2_cgroup_of(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_task_runs_in_its_leaf_and_its_cgroup_goes_away() {
    let Some(mut a) = agent() else { return };
    a.launch("where", "cat /proc/self/cgroup");
    let starting = a.until("TASK_STARTING").await;
    // The dev box's v2 has no cpu/memory controller: the task says so.
    assert!(
        starting.message.is_empty() || starting.message.starts_with("Isolation not enforced"),
        "{starting:?}"
    );
    a.until("TASK_FINISHED").await;
    let out = std::fs::read_to_string(a.sandbox_file("where", "stdout")).unwrap();
    let own = out.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    let test_root = a.root.file_name().unwrap().to_str().unwrap();
    let parts: Vec<&str> = own.rsplit('/').take(3).collect();
    assert_eq!(parts[2], test_root, "{own}");
    assert!(parts[0].starts_with("t-"), "a task leaf: {own}");
    assert!(a.containers().is_empty(), "{:?}", a.containers());
}

#[tokio::test]
async fn a_kill_reaches_processes_that_left_the_process_group() {
    let Some(mut a) = agent() else { return };
    // The escaped process is in a session of its own and ignores SIGTERM:
    // only the cgroup (or the shim's sweep) can take it.
    let cmd = "trap '' TERM; \
        setsid sh -c 'trap \"\" TERM; echo $$ > escaped.pid; exec sleep 60' & \
        echo $$ > main.pid; exec sleep 60";
    a.launch("stubborn", cmd);
    a.until("TASK_RUNNING").await;
    let escaped = a.read_when_written("stubborn", "escaped.pid").await;
    let main = a.read_when_written("stubborn", "main.pid").await;
    let (escaped, main) = (escaped.trim().to_string(), main.trim().to_string());
    let leaf = v2_cgroup_of(&escaped);
    assert_eq!(leaf, v2_cgroup_of(&main), "both in the task's leaf");
    assert!(leaf.contains(a.root.file_name().unwrap().to_str().unwrap()));
    let started = Instant::now();
    a.exec.call(ExecutorCall::Kill(pb::KillTask {
        framework_id: "fw".into(),
        task_id: "stubborn".into(),
        grace_period_ms: Some(500),
    }));
    let killed = a.until("TASK_KILLED").await;
    assert_eq!(killed.message, "Command terminated with signal Killed");
    assert!(started.elapsed() >= Duration::from_millis(500));
    for pid in [&escaped, &main] {
        assert!(
            gone(pid.parse().unwrap(), Duration::from_secs(2)).await,
            "{pid} survived"
        );
    }
    assert!(!alive(escaped.parse().unwrap()));
    assert!(a.containers().is_empty(), "{:?}", a.containers());
}
