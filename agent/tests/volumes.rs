//! Persistent volumes with real tasks: the volume's directory outlives the
//! task that wrote into it, and the next task given the volume finds the
//! data at its `container_path`. Linked into the sandbox without a mount
//! namespace; bind-mounted (read-only for `RO`) with one (root only).

mod support;

use std::path::{Path, PathBuf};

use keel_agent::executor::{ExecutorConfig, ExecutorHandle};
use keel_agent::isolation::Feature;
use keel_api::pb;
use serde_json::{Value, json};
use tokio::sync::mpsc;

struct Agent {
    exec: ExecutorHandle,
    rx: mpsc::UnboundedReceiver<pb::StatusUpdate>,
    dir: tempfile::TempDir,
    _cleanup: support::Cleanup,
}

fn agent(features: &[Feature]) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ExecutorConfig::new(dir.path());
    support::only_namespaces(&mut config, features);
    let (exec, rx) = support::start_runtime(config);
    Agent {
        exec,
        rx,
        _cleanup: support::Cleanup(dir.path().to_path_buf()),
        dir,
    }
}

fn volume(id: &str, path: &str, mode: &str) -> Value {
    json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 16},
           "reservations": [{"type": "DYNAMIC", "role": "eng"}],
           "allocation_info": {"role": "eng"},
           "disk": {"persistence": {"id": id},
                    "volume": {"container_path": path, "mode": mode}}})
}

impl Agent {
    /// Runs `cmd` with `resources` to its end; returns every status.
    async fn run(&mut self, id: &str, cmd: &str, resources: Value) -> Vec<pb::TaskStatus> {
        let task = json!({"name": id, "task_id": {"value": id},
            "agent_id": {"value": "agent-S1"}, "resources": resources,
            "command": {"value": cmd}});
        support::launch_into(&self.exec, json!({"user": "root", "name": "t"}), &task);
        let mut seen = Vec::new();
        loop {
            let st = support::next_acked(&self.exec, &mut self.rx).await;
            let done = support::is_terminal(&st);
            seen.push(st);
            if done {
                return seen;
            }
        }
    }

    fn sandbox(&self, task: &str) -> PathBuf {
        self.dir.path().join(format!(
            "slaves/agent-S1/frameworks/fw/executors/{task}/runs/latest"
        ))
    }

    fn volume_dir(&self, id: &str) -> PathBuf {
        self.dir.path().join("volumes/roles/eng").join(id)
    }
}

fn last(statuses: &[pb::TaskStatus]) -> &pb::TaskStatus {
    statuses.last().unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The part every mode shares: the first task writes, the second reads.
async fn data_survives_the_task(a: &mut Agent) {
    let vol = json!([volume("db", "data/db", "RW")]);
    let first = a
        .run(
            "writer",
            "echo written by the first > data/db/hello",
            vol.clone(),
        )
        .await;
    assert_eq!(last(&first).state, "TASK_FINISHED", "{first:?}");
    assert_eq!(
        read(&a.volume_dir("db").join("hello")),
        "written by the first\n"
    );
    let second = a.run("reader", "cat data/db/hello > seen", vol).await;
    assert_eq!(last(&second).state, "TASK_FINISHED", "{second:?}");
    assert_eq!(
        read(&a.sandbox("reader").join("seen")),
        "written by the first\n"
    );
}

#[tokio::test]
async fn without_a_mount_namespace_the_volume_is_linked() {
    let mut a = agent(&[]);
    data_survives_the_task(&mut a).await;
    let link = a.sandbox("reader").join("data/db");
    assert_eq!(std::fs::read_link(&link).unwrap(), a.volume_dir("db"));
    // RO cannot be enforced by a link: said, not refused.
    let ro = a
        .run(
            "ro",
            "cat data/db/hello",
            json!([volume("db", "data/db", "RO")]),
        )
        .await;
    assert_eq!(last(&ro).state, "TASK_FINISHED", "{ro:?}");
    assert!(ro[0].message.contains("read-only volume db"), "{:?}", ro[0]);
}

#[tokio::test]
async fn with_a_mount_namespace_the_volume_is_bound_and_ro_is_enforced() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: mount namespaces cannot be tested here");
        return;
    }
    let mut a = agent(&[Feature::MountNs, Feature::PidNs]);
    data_survives_the_task(&mut a).await;
    assert!(
        a.sandbox("reader").join("data/db").is_dir(),
        "a mount point, not a link"
    );
    let ro = a
        .run(
            "ro",
            "cat data/db/hello > seen && ! touch data/db/nope 2> err",
            json!([volume("db", "data/db", "RO")]),
        )
        .await;
    assert_eq!(last(&ro).state, "TASK_FINISHED", "{ro:?}");
    assert_eq!(ro[0].message, "", "everything enforced");
    assert!(read(&a.sandbox("ro").join("err")).contains("Read-only"));
    assert!(!a.volume_dir("db").join("nope").exists());
}

#[tokio::test]
async fn a_container_path_leaving_the_sandbox_is_a_task_error() {
    let mut a = agent(&[]);
    for (id, path) in [("up", "../../escape"), ("abs", "/etc/escape")] {
        let st = a.run(id, "true", json!([volume("db", path, "RW")])).await;
        let st = last(&st);
        assert_eq!(
            (st.state.as_str(), st.reason.as_str()),
            ("TASK_ERROR", "REASON_TASK_INVALID"),
            "{st:?}"
        );
        assert!(st.message.contains("container_path"), "{st:?}");
    }
    assert!(!a.dir.path().join("volumes").exists(), "nothing created");
}

#[tokio::test]
async fn destroy_deletes_the_data_unless_a_task_here_uses_it() {
    use keel_agent::executor::ExecutorCall;
    let mut a = agent(&[]);
    let vol = json!([volume("db", "data/db", "RW")]);
    let task = json!({"name": "holder", "task_id": {"value": "holder"},
        "agent_id": {"value": "agent-S1"}, "resources": vol,
        "command": {"value": "echo kept > data/db/f; exec sleep 30"}});
    support::launch_into(&a.exec, json!({"user": "root", "name": "t"}), &task);
    while support::next_acked(&a.exec, &mut a.rx).await.state != "TASK_RUNNING" {}
    let destroy = || {
        ExecutorCall::DestroyVolumes(pb::DestroyVolumes {
            volumes: vec![pb::VolumeRef {
                role: "eng".into(),
                id: "db".into(),
            }],
        })
    };
    let data = a.volume_dir("db");
    let deadline = std::time::Instant::now() + support::WAIT;
    while !data.join("f").exists() {
        assert!(std::time::Instant::now() < deadline, "the task never wrote");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    a.exec.call(destroy());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(read(&data.join("f")), "kept\n", "in use: never deleted");

    a.exec.call(ExecutorCall::Kill(pb::KillTask {
        framework_id: "fw".into(),
        task_id: "holder".into(),
        grace_period_ms: Some(0),
    }));
    while !support::is_terminal(&support::next_acked(&a.exec, &mut a.rx).await) {}
    a.exec.call(destroy());
    let deadline = std::time::Instant::now() + support::WAIT;
    while data.exists() {
        assert!(std::time::Instant::now() < deadline, "the data stayed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The volumes of other roles and ids are untouched.
    assert!(a.dir.path().join("volumes/roles/eng").is_dir());
}
