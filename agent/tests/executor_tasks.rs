//! The task runtime with the real launcher on this machine: real processes,
//! real sandboxes, real signals. No master: the test plays its part,
//! acknowledging each update.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keel_agent::executor::{ExecutorCall, ExecutorConfig, ExecutorHandle, LinuxLauncher};
use keel_api::pb;
use serde_json::{Value, json};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

struct Agent {
    exec: ExecutorHandle,
    rx: mpsc::UnboundedReceiver<pb::StatusUpdate>,
    dir: tempfile::TempDir,
}

fn agent(grace: Duration) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ExecutorConfig::new(dir.path());
    config.kill_grace_period = grace;
    let exec = ExecutorHandle::start(config, LinuxLauncher::new(env!("CARGO_BIN_EXE_keel-agent")));
    let (tx, rx) = mpsc::unbounded_channel();
    exec.attach("agent-S1", tx);
    Agent { exec, rx, dir }
}

fn status(u: &pb::StatusUpdate) -> &pb::TaskStatus {
    u.status.as_ref().unwrap()
}

impl Agent {
    fn launch(&self, id: &str, command: Value) {
        let task = json!({"name": id, "task_id": {"value": id},
            "agent_id": {"value": "agent-S1"}, "resources": [], "command": command});
        self.exec.call(ExecutorCall::launch(pb::LaunchTasks {
            framework_id: "fw-1".into(),
            framework_info_json: json!({"user": "root", "name": "test"}).to_string(),
            task_info_json: vec![task.to_string()],
            executor_info_json: String::new(),
        }));
    }

    fn kill(&self, id: &str, grace_ms: Option<u64>) {
        self.exec.call(ExecutorCall::Kill(pb::KillTask {
            framework_id: "fw-1".into(),
            task_id: id.into(),
            grace_period_ms: grace_ms,
        }));
    }

    async fn next(&mut self) -> pb::StatusUpdate {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("no status update")
            .expect("runtime stopped")
    }

    /// Nothing arrives for a while (the manager waits for an ack).
    async fn quiet(&mut self, d: Duration) {
        if let Ok(u) = tokio::time::timeout(d, self.rx.recv()).await {
            panic!("unexpected update {u:?}");
        }
    }

    fn ack(&self, u: &pb::StatusUpdate) {
        self.exec.call(ExecutorCall::Acknowledge(pb::Acknowledge {
            framework_id: u.framework_id.clone(),
            task_id: status(u).task_id.clone(),
            uuid: status(u).uuid.clone(),
        }));
    }

    /// Receives and acknowledges updates until a terminal one; returns them all.
    async fn run_to_end(&mut self) -> Vec<pb::StatusUpdate> {
        let mut all = Vec::new();
        loop {
            let u = self.next().await;
            self.ack(&u);
            let done = matches!(
                status(&u).state.as_str(),
                "TASK_FINISHED" | "TASK_FAILED" | "TASK_KILLED"
            );
            all.push(u);
            if done {
                return all;
            }
        }
    }

    /// The only run directory of executor `id`.
    fn sandbox(&self, id: &str) -> PathBuf {
        let runs = self
            .dir
            .path()
            .join("slaves/agent-S1/frameworks/fw-1/executors")
            .join(id)
            .join("runs");
        let latest = runs.join("latest");
        let target = std::fs::read_link(&latest).expect("runs/latest link");
        runs.join(target)
    }
}

fn states(updates: &[pb::StatusUpdate]) -> Vec<&str> {
    updates.iter().map(|u| status(u).state.as_str()).collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn echo_hello_finishes_one_update_at_a_time() {
    let mut a = agent(Duration::from_secs(3));
    a.launch("echo", json!({"value": "echo hello"}));
    let starting = a.next().await;
    assert_eq!(status(&starting).state, "TASK_STARTING");
    // The command finishes at once, but RUNNING only follows the ack.
    a.quiet(Duration::from_millis(300)).await;
    a.ack(&starting);
    let mut rest = a.run_to_end().await;
    rest.insert(0, starting);
    assert_eq!(
        states(&rest),
        ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    );
    assert_eq!(status(&rest[2]).message, "Command exited with status 0");
    let mut uuids: Vec<_> = rest.iter().map(|u| status(u).uuid.clone()).collect();
    assert!(uuids.iter().all(|u| u.len() == 16));
    uuids.dedup();
    assert_eq!(uuids.len(), 3, "distinct uuids");
    for u in &rest {
        let s = status(u);
        assert_eq!(
            (s.source.as_str(), s.executor_id.as_str()),
            ("SOURCE_EXECUTOR", "echo")
        );
        assert!(s.timestamp > 0.0);
    }
    let sandbox = a.sandbox("echo");
    assert_eq!(read(&sandbox.join("stdout")), "hello\n");
    assert_eq!(read(&sandbox.join("stderr")), "");
}

#[tokio::test]
async fn a_failing_command_reports_its_status() {
    let mut a = agent(Duration::from_secs(3));
    a.launch("three", json!({"value": "echo oops >&2; exit 3"}));
    let all = a.run_to_end().await;
    assert_eq!(
        states(&all),
        ["TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"]
    );
    let failed = status(&all[2]);
    assert_eq!(failed.message, "Command exited with status 3");
    assert_eq!(failed.reason, "REASON_COMMAND_EXECUTOR_FAILED");
    assert_eq!(read(&a.sandbox("three").join("stderr")), "oops\n");
}

#[tokio::test]
async fn exec_form_passes_argv_as_given() {
    let mut a = agent(Duration::from_secs(3));
    let script = r#"printf '%s|' "$0" "$@""#;
    a.launch(
        "argv",
        json!({"shell": false, "value": "/bin/sh",
               "arguments": ["my-sh", "-c", script, "zero", "one two", "*"]}),
    );
    let all = a.run_to_end().await;
    assert_eq!(states(&all).last(), Some(&"TASK_FINISHED"));
    assert_eq!(read(&a.sandbox("argv").join("stdout")), "zero|one two|*|");
}

#[tokio::test]
async fn a_missing_executable_fails_the_task() {
    let mut a = agent(Duration::from_secs(3));
    a.launch(
        "missing",
        json!({"shell": false, "value": "/nonexistent/bin/x"}),
    );
    let all = a.run_to_end().await;
    assert_eq!(states(&all), ["TASK_STARTING", "TASK_FAILED"]);
    let msg = &status(&all[1]).message;
    assert!(
        msg.contains("/nonexistent/bin/x") && msg.contains("No such file"),
        "{msg}"
    );
}

#[tokio::test]
async fn the_task_sees_its_environment() {
    let mut a = agent(Duration::from_secs(3));
    a.launch(
        "env",
        json!({"value": "env", "environment": {"variables": [
            {"name": "GREETING", "value": "hi there"},
            {"name": "KIND", "type": "VALUE", "value": "v"}]}}),
    );
    let all = a.run_to_end().await;
    assert_eq!(states(&all).last(), Some(&"TASK_FINISHED"));
    let sandbox = a.sandbox("env");
    let env: BTreeMap<String, String> = read(&sandbox.join("stdout"))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(env["GREETING"], "hi there");
    assert_eq!(env["KIND"], "v");
    assert_eq!(env["MESOS_SANDBOX"], sandbox.to_str().unwrap());
    assert_eq!(env["PWD"], sandbox.to_str().unwrap());
    assert_eq!(env["MESOS_TASK_ID"], "env");
    assert_eq!(env["MESOS_EXECUTOR_ID"], "env");
    assert_eq!(env["MESOS_FRAMEWORK_ID"], "fw-1");
    assert_eq!(env["MESOS_AGENT_ID"], "agent-S1");
    assert_eq!(
        env["MESOS_CONTAINER_ID"],
        sandbox.file_name().unwrap().to_str().unwrap()
    );
    assert!(env["PATH"].contains("/usr/bin"));
    assert!(
        !env.contains_key("CARGO"),
        "the agent's own environment is not passed on"
    );
}

/// Waits for `pid` to be gone; returns whether it went in time.
async fn gone(pid: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test]
async fn kill_stops_a_sleeping_task_within_the_grace_period() {
    let mut a = agent(Duration::from_secs(3));
    // The child `sleep` writes its pid so the test can check the whole group died.
    a.launch(
        "sleeper",
        json!({"value": "sleep 60 & echo $! > child.pid; wait"}),
    );
    let starting = a.next().await;
    a.ack(&starting);
    let running = a.next().await;
    assert_eq!(status(&running).state, "TASK_RUNNING");
    a.ack(&running);
    let pid_file = a.sandbox("sleeper").join("child.pid");
    let deadline = Instant::now() + WAIT;
    while read_opt(&pid_file).is_none() {
        assert!(Instant::now() < deadline, "child pid never written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let child = read(&pid_file).trim().to_string();
    let start = Instant::now();
    a.kill("sleeper", Some(5_000));
    let killed = a.next().await;
    assert_eq!(status(&killed).state, "TASK_KILLED");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "SIGTERM was enough"
    );
    assert_eq!(
        status(&killed).message,
        "Command terminated with signal Terminated"
    );
    assert!(
        gone(&child, Duration::from_secs(2)).await,
        "the group's sleep survived"
    );
    a.ack(&killed);
}

fn read_opt(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .filter(|s| s.ends_with('\n'))
}

#[tokio::test]
async fn a_task_ignoring_sigterm_is_sigkilled_after_the_grace_period() {
    let mut a = agent(Duration::from_millis(700));
    a.launch(
        "stubborn",
        json!({"value": "trap '' TERM; echo ready; sleep 60"}),
    );
    for _ in 0..2 {
        let u = a.next().await;
        a.ack(&u);
    }
    let stdout = a.sandbox("stubborn").join("stdout");
    let deadline = Instant::now() + WAIT;
    while read_opt(&stdout).is_none() {
        assert!(Instant::now() < deadline, "trap never installed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    a.kill("stubborn", None);
    let killed = a.next().await;
    let took = start.elapsed();
    assert_eq!(status(&killed).state, "TASK_KILLED");
    assert_eq!(
        status(&killed).message,
        "Command terminated with signal Killed"
    );
    assert!(
        took >= Duration::from_millis(700),
        "killed before the grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn killing_a_finished_or_unknown_task_does_nothing() {
    let mut a = agent(Duration::from_secs(3));
    a.launch("done", json!({"value": "true"}));
    let all = a.run_to_end().await;
    assert_eq!(states(&all).last(), Some(&"TASK_FINISHED"));
    a.kill("done", None);
    a.kill("never-launched", None);
    a.quiet(Duration::from_millis(300)).await;
    assert!(a.exec.reports().await.is_empty());
}
