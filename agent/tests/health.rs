//! Health checks against real tasks: HTTP and TCP from the agent, COMMAND
//! inside the task's namespaces; a task failing its checks is killed.

mod support;

use std::time::Duration;

use keel_agent::executor::{ExecutorCall, ExecutorConfig, ExecutorHandle};
use keel_agent::isolation::Feature;
use keel_api::pb;
use serde_json::{Value, json};
use tokio::sync::mpsc;

struct Agent {
    exec: ExecutorHandle,
    rx: mpsc::UnboundedReceiver<pb::StatusUpdate>,
    _dir: tempfile::TempDir,
    _cleanup: support::Cleanup,
}

fn agent(namespaces: bool) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ExecutorConfig::new(dir.path());
    config.kill_grace_period = Duration::from_secs(2);
    config.helper = env!("CARGO_BIN_EXE_keel-agent").into();
    if namespaces {
        support::only_namespaces(&mut config, &[Feature::PidNs, Feature::MountNs]);
    }
    let (exec, rx) = support::start_runtime(config);
    Agent {
        exec,
        rx,
        _cleanup: support::Cleanup(dir.path().to_path_buf()),
        _dir: dir,
    }
}

impl Agent {
    fn launch(&self, id: &str, cmd: &str, check: Value) {
        let task = json!({"name": id, "task_id": {"value": id},
            "agent_id": {"value": "agent-S1"}, "resources": [],
            "command": {"value": cmd}, "health_check": check});
        support::launch_into(&self.exec, json!({"user": "root", "name": "t"}), &task);
    }

    async fn next(&mut self) -> pb::TaskStatus {
        support::next_acked(&self.exec, &mut self.rx).await
    }

    /// Updates until one with `healthy` set (or a terminal one).
    async fn health(&mut self) -> pb::TaskStatus {
        loop {
            let st = self.next().await;
            if st.healthy.is_some() || st.state.ends_with("FAILED") {
                return st;
            }
        }
    }

    fn kill(&self, id: &str) {
        self.exec.call(ExecutorCall::Kill(pb::KillTask {
            framework_id: "fw".into(),
            task_id: id.into(),
            grace_period_ms: Some(1_000),
        }));
    }
}

const FAST: &str = r#""delay_seconds": 0, "interval_seconds": 0.2, "timeout_seconds": 1, "grace_period_seconds": 0"#;

fn check(kind_and_target: &str, failures: u32) -> Value {
    serde_json::from_str(&format!(
        r#"{{{kind_and_target}, {FAST}, "consecutive_failures": {failures}}}"#
    ))
    .unwrap()
}

#[tokio::test]
async fn an_http_check_reports_a_healthy_task() {
    let mut a = agent(false);
    let port = support::free_port();
    let cmd = format!("echo ok > index.html; exec busybox httpd -f -p 127.0.0.1:{port} -h .");
    let mut hc = check(
        &format!(r#""type": "HTTP", "http": {{"port": {port}, "path": "/index.html"}}"#),
        3,
    );
    // Until the server listens, failures are ignored.
    hc["grace_period_seconds"] = json!(30);
    a.launch("web", &cmd, hc);
    let st = a.health().await;
    assert_eq!(st.state, "TASK_RUNNING", "{st:?}");
    assert_eq!(st.healthy, Some(true));
    assert_eq!(st.reason, "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED");
    a.kill("web");
    loop {
        let st = a.next().await;
        if st.state == "TASK_KILLED" {
            assert_eq!(st.healthy, None, "killed by request, not for its health");
            break;
        }
    }
}

#[tokio::test]
async fn a_task_failing_its_checks_is_killed() {
    let mut a = agent(false);
    let port = support::free_port();
    a.launch(
        "deaf",
        "exec sleep 60",
        check(&format!(r#""type": "TCP", "tcp": {{"port": {port}}}"#), 2),
    );
    let st = a.health().await;
    assert_eq!(
        (st.state.as_str(), st.healthy),
        ("TASK_RUNNING", Some(false))
    );
    let end = loop {
        let st = a.next().await;
        if st.state == "TASK_KILLED" {
            break st;
        }
    };
    assert_eq!(end.healthy, Some(false));
    assert_eq!(end.message, "Command terminated with signal Terminated");
}

#[tokio::test]
async fn a_command_check_runs_inside_the_tasks_namespaces() {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let mut a = agent(true);
    // Only the task's own view has /mnt/mesos/sandbox and a pid 1 init;
    // the file appears after a while, inside the grace period.
    let probe = r#""type": "COMMAND", "command": {"value": "test -f /mnt/mesos/sandbox/ready && grep -q init /proc/1/cmdline"}"#;
    let mut hc = check(probe, 1);
    hc["grace_period_seconds"] = json!(30);
    a.launch("late", "sleep 1; touch ready; exec sleep 60", hc);
    let st = a.health().await;
    assert_eq!(
        (st.state.as_str(), st.healthy),
        ("TASK_RUNNING", Some(true)),
        "{st:?}"
    );
    a.kill("late");
    while a.next().await.state != "TASK_KILLED" {}
}

#[tokio::test]
async fn an_invalid_check_fails_the_task() {
    let mut a = agent(false);
    a.launch("bad", "true", json!({"type": "TCP", "tcp": {"port": 0}}));
    let st = a.next().await;
    assert_eq!(
        (st.state.as_str(), st.reason.as_str()),
        ("TASK_FAILED", "REASON_TASK_INVALID")
    );
    assert!(st.message.starts_with("invalid health check"), "{st:?}");
}
