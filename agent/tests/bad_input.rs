//! Bad task input with real processes: an unknown user, huge environment
//! variables, a sandbox escape through the task id, a missing binary. Each
//! ends its task with a clear TASK_FAILED and the agent runs the next one.
//! Also: a known user runs the task and owns its sandbox.

mod support;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use keel_agent::executor::{ExecutorConfig, ExecutorHandle};
use keel_api::pb;
use serde_json::{Value, json};
use tokio::sync::mpsc;

struct Agent {
    exec: ExecutorHandle,
    rx: mpsc::UnboundedReceiver<pb::StatusUpdate>,
    dir: tempfile::TempDir,
}

fn agent() -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("root/etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    )
    .unwrap();
    let mut config = ExecutorConfig::new(dir.path().join("work"));
    config.switch_user = true;
    config.passwd_root = dir.path().join("root");
    let (exec, rx) = support::start_runtime(config);
    Agent { exec, rx, dir }
}

impl Agent {
    fn launch(&self, id: &str, command: Value, framework_user: &str) {
        let task = json!({"name": "t", "task_id": {"value": id},
            "agent_id": {"value": "agent-S1"}, "resources": [], "command": command});
        support::launch_into(
            &self.exec,
            json!({"user": framework_user, "name": "t"}),
            &task,
        );
    }

    async fn end(&mut self) -> pb::TaskStatus {
        support::until_terminal(&self.exec, &mut self.rx).await
    }

    /// The agent still runs tasks.
    async fn still_works(&mut self, id: &str) {
        self.launch(id, json!({"value": "true"}), "root");
        let st = tokio::time::timeout(Duration::from_secs(20), self.end())
            .await
            .unwrap();
        assert_eq!(st.state, "TASK_FINISHED", "{st:?}");
    }
}

#[tokio::test]
async fn an_unknown_user_fails_the_task() {
    let mut a = agent();
    a.launch("ghost", json!({"value": "true"}), "ghost");
    let st = a.end().await;
    assert_eq!(
        (st.state.as_str(), st.message.as_str()),
        ("TASK_FAILED", "Failed to get user information for 'ghost'")
    );
    assert_eq!(st.reason, "REASON_CONTAINER_LAUNCH_FAILED");
    // CommandInfo.user wins over the framework's.
    a.launch(
        "cmd-user",
        json!({"value": "true", "user": "ghost"}),
        "root",
    );
    assert_eq!(
        a.end().await.message,
        "Failed to get user information for 'ghost'"
    );
    a.still_works("after-ghost").await;
}

#[tokio::test]
async fn a_known_user_runs_the_task_and_owns_its_sandbox() {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let mut a = agent();
    a.launch("as-nobody", json!({"value": "id -u; id -g"}), "nobody");
    let st = a.end().await;
    assert_eq!(st.state, "TASK_FINISHED", "{st:?}");
    let sandbox = a
        .dir
        .path()
        .join("work/slaves/agent-S1/frameworks/fw/executors/as-nobody/runs/latest");
    let out = std::fs::read_to_string(sandbox.join("stdout")).unwrap();
    assert_eq!(out, "65534\n65534\n");
    let meta = std::fs::metadata(sandbox.canonicalize().unwrap()).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
}

#[tokio::test]
async fn huge_environment_variables_fail_the_task_not_the_agent() {
    let mut a = agent();
    let huge = "x".repeat(4 << 20);
    a.launch(
        "huge",
        json!({"value": "true", "environment": {"variables": [{"name": "HUGE", "value": huge}]}}),
        "root",
    );
    let st = a.end().await;
    assert_eq!(st.state, "TASK_FAILED", "{st:?}");
    assert!(st.message.contains("Argument list too long"), "{st:?}");
    a.still_works("after-huge").await;
}

#[tokio::test]
async fn ids_that_would_leave_the_sandbox_fail_the_task() {
    let mut a = agent();
    for id in ["..", "../../etc", "a/b"] {
        a.launch(id, json!({"value": "true"}), "root");
        let st = a.end().await;
        assert_eq!(st.state, "TASK_FAILED", "{id}: {st:?}");
        assert!(
            st.message.contains("cannot name a sandbox directory"),
            "{st:?}"
        );
    }
    a.launch(
        "missing",
        json!({"shell": false, "value": "/no/such/binary"}),
        "root",
    );
    let st = a.end().await;
    assert!(
        st.message.contains("/no/such/binary") && st.message.contains("No such file"),
        "{st:?}"
    );
    a.still_works("after-bad-ids").await;
}
