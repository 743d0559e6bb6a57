//! The runtime with the fake launcher: lifecycle, kills, groups, the link to
//! the master. No process is started.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::Duration;

use keel_api::pb;
use serde_json::json;
use tokio::sync::mpsc;

use super::hooks::{HookError, TaskContext, TaskHook};
use super::launcher::{ExitStatus, LaunchSpec, Signal};
use super::*;

const WAIT: Duration = Duration::from_secs(5);

struct Harness {
    exec: ExecutorHandle,
    fake: FakeLauncher,
    rx: mpsc::UnboundedReceiver<pb::StatusUpdate>,
    buffered: VecDeque<pb::StatusUpdate>,
    dir: tempfile::TempDir,
}

fn harness_with(tweak: impl FnOnce(&mut ExecutorConfig)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ExecutorConfig::new(dir.path());
    config.kill_grace_period = Duration::from_millis(100);
    tweak(&mut config);
    let fake = FakeLauncher::new();
    let exec = ExecutorHandle::start(config, fake.clone());
    let (tx, rx) = mpsc::unbounded_channel();
    exec.attach("a-S0", tx);
    Harness {
        exec,
        fake,
        rx,
        buffered: VecDeque::new(),
        dir,
    }
}

fn harness() -> Harness {
    harness_with(|_| {})
}

fn task(id: &str, command: serde_json::Value) -> String {
    json!({"name": id, "task_id": {"value": id}, "agent_id": {"value": "a-S0"},
           "resources": [], "command": command})
    .to_string()
}

fn launch(fw: &str, tasks: Vec<String>, executor: Option<serde_json::Value>) -> ExecutorCall {
    ExecutorCall::Launch(pb::LaunchTasks {
        framework_id: fw.into(),
        framework_info_json: json!({"user": "u", "name": "n"}).to_string(),
        task_info_json: tasks,
        executor_info_json: executor.map(|e| e.to_string()).unwrap_or_default(),
    })
}

fn kill(fw: &str, task: &str, grace_ms: Option<u64>) -> ExecutorCall {
    ExecutorCall::Kill(pb::KillTask {
        framework_id: fw.into(),
        task_id: task.into(),
        grace_period_ms: grace_ms,
    })
}

fn st(u: &pb::StatusUpdate) -> &pb::TaskStatus {
    u.status.as_ref().unwrap()
}

impl Harness {
    /// The next update for `task` (updates of other tasks are kept).
    async fn next(&mut self, task: &str) -> pb::StatusUpdate {
        if let Some(i) = self.buffered.iter().position(|u| st(u).task_id == task) {
            return self.buffered.remove(i).unwrap();
        }
        loop {
            let u = tokio::time::timeout(WAIT, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no update for {task}"))
                .expect("runtime stopped");
            if st(&u).task_id == task {
                return u;
            }
            self.buffered.push_back(u);
        }
    }

    async fn expect(&mut self, task: &str, state: &str) -> pb::StatusUpdate {
        let u = self.next(task).await;
        assert_eq!(st(&u).state, state, "{u:?}");
        u
    }

    /// Expects `state` for `task` and acknowledges it.
    async fn expect_ack(&mut self, task: &str, state: &str) -> pb::StatusUpdate {
        let u = self.expect(task, state).await;
        self.ack(&u);
        u
    }

    fn ack(&self, u: &pb::StatusUpdate) {
        self.exec.call(ExecutorCall::Acknowledge(pb::Acknowledge {
            framework_id: u.framework_id.clone(),
            task_id: st(u).task_id.clone(),
            uuid: st(u).uuid.clone(),
        }));
    }

    async fn quiet(&mut self) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let r = self.rx.try_recv();
        assert!(r.is_err(), "unexpected update {r:?}");
        assert!(self.buffered.is_empty(), "{:?}", self.buffered);
    }

    /// The nth spawn (1-based), waiting for it.
    async fn spawned(&self, n: usize) -> (u32, LaunchSpec) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(s) = self.fake.spawned().get(n - 1) {
                return s.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "spawn {n} never came"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn env(spec: &LaunchSpec) -> BTreeMap<String, String> {
    spec.env.iter().cloned().collect()
}

#[tokio::test]
async fn a_command_task_runs_to_its_acknowledged_end() {
    let mut h = harness();
    h.exec.call(launch(
        "fw",
        vec![task("t1", json!({"value": "echo hello"}))],
        None,
    ));
    let starting = h.expect("t1", "TASK_STARTING").await;
    assert_eq!(st(&starting).source, "SOURCE_EXECUTOR");
    assert_eq!(st(&starting).executor_id, "t1");
    assert_eq!(starting.framework_id, "fw");
    let (pid, spec) = h.spawned(1).await;
    // RUNNING waits for the ack of STARTING.
    h.quiet().await;
    h.ack(&starting);
    let running = h.expect_ack("t1", "TASK_RUNNING").await;

    assert_eq!(spec.argv, ["sh", "-c", "echo hello"]);
    let e = env(&spec);
    let runs = h
        .dir
        .path()
        .join("slaves/a-S0/frameworks/fw/executors/t1/runs");
    assert_eq!(spec.cwd, runs.join(&e["MESOS_CONTAINER_ID"]));
    assert_eq!(e["MESOS_SANDBOX"], spec.cwd.to_str().unwrap());
    assert!(spec.cwd.join("stdout").is_file() && spec.cwd.join("stderr").is_file());
    assert_eq!(spec.stdout, spec.cwd.join("stdout"));

    h.fake.exit(pid, ExitStatus::Exited(0));
    let finished = h.expect("t1", "TASK_FINISHED").await;
    assert_eq!(st(&finished).message, "Command exited with status 0");
    let uuids = [&starting, &running, &finished].map(|u| st(u).uuid.clone());
    assert!(uuids.iter().all(|u| u.len() == 16));
    assert!(uuids[0] != uuids[1] && uuids[1] != uuids[2] && uuids[0] != uuids[2]);

    let reports = h.exec.reports().await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].framework_id, "fw");
    assert_eq!(reports[0].latest.as_ref().unwrap().state, "TASK_FINISHED");
    assert!(reports[0].task_info_json.contains("echo hello"));
    h.ack(&finished);
    h.ack(&finished);
    assert!(
        h.exec.reports().await.is_empty(),
        "forgotten after the terminal ack"
    );
    assert!(spec.cwd.join("stdout").is_file(), "the sandbox stays");
    h.quiet().await;
}

#[tokio::test]
async fn failures_carry_the_exit_and_the_reason() {
    let mut h = harness();
    h.exec.call(launch(
        "fw",
        vec![task("a", json!({"value": "exit 3"}))],
        None,
    ));
    h.expect_ack("a", "TASK_STARTING").await;
    h.expect_ack("a", "TASK_RUNNING").await;
    let (pid, _) = h.spawned(1).await;
    h.fake.exit(pid, ExitStatus::Exited(3));
    let failed = h.expect("a", "TASK_FAILED").await;
    assert_eq!(st(&failed).message, "Command exited with status 3");
    assert_eq!(st(&failed).reason, "REASON_COMMAND_EXECUTOR_FAILED");

    h.exec
        .call(launch("fw", vec![task("b", json!({"value": "x"}))], None));
    h.expect_ack("b", "TASK_STARTING").await;
    h.expect_ack("b", "TASK_RUNNING").await;
    let (pid, _) = h.spawned(2).await;
    h.fake.exit(pid, ExitStatus::Signaled(11));
    let failed = h.expect("b", "TASK_FAILED").await;
    assert_eq!(
        st(&failed).message,
        "Command terminated with signal Segmentation fault"
    );
}

#[tokio::test]
async fn a_spawn_failure_fails_the_task() {
    let mut h = harness();
    h.fake.fail_spawns(Some("No such file or directory"));
    let cmd = json!({"shell": false, "value": "/nope", "arguments": ["nope"]});
    h.exec.call(launch("fw", vec![task("t", cmd)], None));
    h.expect_ack("t", "TASK_STARTING").await;
    let failed = h.expect("t", "TASK_FAILED").await;
    assert!(
        st(&failed)
            .message
            .starts_with("Failed to launch command: cannot run /nope"),
        "{failed:?}"
    );
    assert_eq!(st(&failed).reason, "REASON_COMMAND_EXECUTOR_FAILED");
}

#[tokio::test]
async fn invalid_tasks_fail_without_starting() {
    let mut h = harness();
    let no_value = task("nv", json!({"shell": true}));
    let custom = json!({"name": "c", "task_id": {"value": "c"}, "agent_id": {"value": "a"},
        "executor": {"executor_id": {"value": "e"}}})
    .to_string();
    let broken = json!({"task_id": {"value": "br"}}).to_string();
    let escape = task("..", json!({"value": "true"}));
    h.exec
        .call(launch("fw", vec![no_value, custom, broken, escape], None));
    for (id, text) in [
        ("nv", "shell command is not specified"),
        ("c", "custom executors"),
        ("br", "Missing required fields"),
        ("..", "cannot name a sandbox directory"),
    ] {
        let u = h.expect(id, "TASK_FAILED").await;
        assert!(st(&u).message.contains(text), "{u:?}");
        assert_eq!(st(&u).reason, "REASON_TASK_INVALID");
    }
    assert!(h.fake.spawned().is_empty());
}

#[tokio::test]
async fn kill_terms_the_group_and_reports_killed() {
    let mut h = harness();
    h.exec.call(launch(
        "fw",
        vec![task("t", json!({"value": "sleep 60"}))],
        None,
    ));
    h.expect_ack("t", "TASK_STARTING").await;
    h.expect_ack("t", "TASK_RUNNING").await;
    let (pid, _) = h.spawned(1).await;
    h.exec.call(kill("fw", "t", Some(10_000)));
    let killed = h.expect("t", "TASK_KILLED").await;
    assert_eq!(
        st(&killed).message,
        "Command terminated with signal Terminated"
    );
    assert_eq!(h.fake.signals()[0], (pid, Signal::Term));
    // Killing a finished or unknown task does nothing.
    h.exec.call(kill("fw", "t", None));
    h.exec.call(kill("fw", "nobody", None));
    h.quiet().await;
    let terms = h
        .fake
        .signals()
        .iter()
        .filter(|s| s.1 == Signal::Term)
        .count();
    assert_eq!(terms, 1);
}

#[tokio::test]
async fn a_task_ignoring_term_is_killed_after_the_grace_period() {
    let mut h = harness();
    h.fake.ignore_term(true);
    h.exec.call(launch(
        "fw",
        vec![task("t", json!({"value": "trap '' TERM; sleep 60"}))],
        None,
    ));
    h.expect_ack("t", "TASK_STARTING").await;
    h.expect_ack("t", "TASK_RUNNING").await;
    let (pid, _) = h.spawned(1).await;
    let start = tokio::time::Instant::now();
    h.exec.call(kill("fw", "t", None)); // the configured 100 ms
    let killed = h.expect("t", "TASK_KILLED").await;
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert_eq!(st(&killed).message, "Command terminated with signal Killed");
    assert_eq!(
        h.fake.signals()[..2],
        [(pid, Signal::Term), (pid, Signal::Kill)]
    );
}

#[tokio::test]
async fn killing_state_frameworks_see_task_killing() {
    let mut h = harness();
    let mut call = launch("fw", vec![task("t", json!({"value": "sleep 9"}))], None);
    if let ExecutorCall::Launch(l) = &mut call {
        l.framework_info_json = json!({"user": "u", "name": "n",
            "capabilities": [{"type": "TASK_KILLING_STATE"}]})
        .to_string();
    }
    h.exec.call(call);
    h.expect_ack("t", "TASK_STARTING").await;
    h.expect_ack("t", "TASK_RUNNING").await;
    h.exec.call(kill("fw", "t", None));
    h.expect_ack("t", "TASK_KILLING").await;
    h.expect("t", "TASK_KILLED").await;
}

#[tokio::test]
async fn shutdown_framework_kills_only_its_tasks() {
    let mut h = harness();
    h.exec.call(launch(
        "fw",
        vec![
            task("a", json!({"value": "sleep 9"})),
            task("b", json!({"value": "sleep 9"})),
        ],
        None,
    ));
    h.exec.call(launch(
        "other",
        vec![task("c", json!({"value": "sleep 9"}))],
        None,
    ));
    for t in ["a", "b", "c"] {
        h.expect_ack(t, "TASK_STARTING").await;
        h.expect_ack(t, "TASK_RUNNING").await;
    }
    h.exec
        .call(ExecutorCall::ShutdownFramework(pb::ShutdownFramework {
            framework_id: "fw".into(),
        }));
    h.expect("a", "TASK_KILLED").await;
    h.expect("b", "TASK_KILLED").await;
    h.quiet().await;
    assert_eq!(
        h.fake
            .signals()
            .iter()
            .filter(|s| s.1 == Signal::Term)
            .count(),
        2
    );
}

#[tokio::test]
async fn a_task_group_shares_a_container_and_falls_together() {
    let mut h = harness();
    let ex = json!({"type": "DEFAULT", "executor_id": {"value": "ex"}});
    let tasks = vec![
        task("g1", json!({"value": "exit 1"})),
        task("g2", json!({"value": "sleep 60"})),
    ];
    h.exec.call(launch("fw", tasks, Some(ex)));
    for t in ["g1", "g2"] {
        let u = h.expect_ack(t, "TASK_STARTING").await;
        assert_eq!(st(&u).executor_id, "ex");
        h.expect_ack(t, "TASK_RUNNING").await;
    }
    let (p1, s1) = h.spawned(1).await;
    let (_, s2) = h.spawned(2).await;
    let (e1, e2) = (env(&s1), env(&s2));
    assert_eq!(e1["MESOS_CONTAINER_ID"], e2["MESOS_CONTAINER_ID"]);
    assert_eq!(e1["MESOS_EXECUTOR_ID"], "ex");
    let run = h
        .dir
        .path()
        .join("slaves/a-S0/frameworks/fw/executors/ex/runs")
        .join(&e1["MESOS_CONTAINER_ID"]);
    assert_eq!(s1.cwd, run.join("tasks/g1"));
    assert_eq!(s2.cwd, run.join("tasks/g2"));
    assert!(run.join("stdout").is_file() && run.join("tasks/g2/stderr").is_file());

    h.fake.exit(p1, ExitStatus::Exited(1));
    h.expect("g1", "TASK_FAILED").await;
    h.expect("g2", "TASK_KILLED").await;
}

#[tokio::test]
async fn a_duplicate_launch_is_ignored() {
    let mut h = harness();
    let t = task("t", json!({"value": "true"}));
    h.exec.call(launch("fw", vec![t.clone()], None));
    h.expect_ack("t", "TASK_STARTING").await;
    h.expect("t", "TASK_RUNNING").await;
    h.exec.call(launch("fw", vec![t], None));
    h.quiet().await;
    assert_eq!(h.fake.spawned().len(), 1);
}

#[tokio::test]
async fn updates_wait_for_a_stream_and_are_resent_on_the_next() {
    let mut h = harness();
    h.exec.detach();
    h.exec.call(launch(
        "fw",
        vec![task("t", json!({"value": "true"}))],
        None,
    ));
    let (pid, _) = h.spawned(1).await;
    h.fake.exit(pid, ExitStatus::Exited(0));
    h.quiet().await;
    let reports = h.exec.reports().await;
    assert_eq!(reports[0].latest.as_ref().unwrap().state, "TASK_FINISHED");

    let (tx, rx) = mpsc::unbounded_channel();
    h.rx = rx;
    h.exec.attach("a-S0", tx);
    // Still one at a time, in order.
    h.expect_ack("t", "TASK_STARTING").await;
    let running = h.expect("t", "TASK_RUNNING").await;
    // A new stream re-sends the outstanding update with its uuid.
    let (tx, rx) = mpsc::unbounded_channel();
    h.rx = rx;
    h.exec.attach("a-S0", tx);
    let again = h.expect("t", "TASK_RUNNING").await;
    assert_eq!(st(&again).uuid, st(&running).uuid);
    h.ack(&again);
    h.expect_ack("t", "TASK_FINISHED").await;
    assert!(h.exec.reports().await.is_empty());
}

#[tokio::test]
async fn unacknowledged_updates_are_resent_with_backoff() {
    let mut h = harness_with(|c| c.resend_base = Duration::from_millis(100));
    h.exec.call(launch(
        "fw",
        vec![task("t", json!({"value": "true"}))],
        None,
    ));
    let first = h.expect("t", "TASK_STARTING").await;
    let t0 = tokio::time::Instant::now();
    let second = h.expect("t", "TASK_STARTING").await;
    let t1 = tokio::time::Instant::now();
    let third = h.expect("t", "TASK_STARTING").await;
    let t2 = tokio::time::Instant::now();
    assert_eq!(st(&first).uuid, st(&second).uuid);
    assert_eq!(st(&first).uuid, st(&third).uuid);
    assert!(
        t2 - t1 > t1 - t0,
        "backoff grows: {:?} then {:?}",
        t1 - t0,
        t2 - t1
    );
    h.ack(&third);
    h.expect("t", "TASK_RUNNING").await;
}

/// Blocks prestart until released; fails when told to.
struct GateHook {
    gate: Mutex<Option<std_mpsc::Receiver<bool>>>,
}

impl TaskHook for GateHook {
    fn name(&self) -> &'static str {
        "gate"
    }
    fn prestart(&self, _: &TaskContext, _: &mut LaunchSpec) -> Result<(), HookError> {
        let fail = self
            .gate
            .lock()
            .unwrap()
            .take()
            .map(|rx| rx.recv().unwrap())
            .unwrap_or(false);
        if fail {
            return Err(sandbox::SandboxError::InvalidId {
                kind: "test",
                id: "gate".into(),
            }
            .into());
        }
        Ok(())
    }
}

fn gated() -> (Harness, std_mpsc::Sender<bool>) {
    let (tx, rx) = std_mpsc::channel();
    let hook = Arc::new(GateHook {
        gate: Mutex::new(Some(rx)),
    });
    let h = harness_with(|c| c.hooks.push(hook));
    (h, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_launch_never_starts_the_process() {
    let (mut h, release) = gated();
    h.exec.call(launch(
        "fw",
        vec![task("t", json!({"value": "true"}))],
        None,
    ));
    h.expect_ack("t", "TASK_STARTING").await;
    h.exec.call(kill("fw", "t", None));
    // Let the kill reach the supervisor's channel before the hook returns.
    let _ = h.exec.reports().await;
    release.send(false).unwrap();
    let u = h.expect("t", "TASK_KILLED").await;
    assert_eq!(st(&u).reason, "REASON_TASK_KILLED_DURING_LAUNCH");
    assert!(h.fake.spawned().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hook_fails_the_task() {
    let (mut h, release) = gated();
    h.exec.call(launch(
        "fw",
        vec![task("t", json!({"value": "true"}))],
        None,
    ));
    h.expect_ack("t", "TASK_STARTING").await;
    release.send(true).unwrap();
    let u = h.expect("t", "TASK_FAILED").await;
    assert!(st(&u).message.starts_with("gate hook: test id"), "{u:?}");
    assert!(h.fake.spawned().is_empty());
}
