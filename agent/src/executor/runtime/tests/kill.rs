//! Kills, framework shutdown, task groups and hooks that hold up a launch.

use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::Duration;

use keel_api::pb;
use serde_json::json;

use super::*;
use crate::executor::hooks::{HookError, TaskContext, TaskHook};
use crate::executor::launcher::{ExitStatus, LaunchSpec, Signal};
use crate::executor::sandbox;

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
    let mut msg = launch_msg("fw", vec![task("t", json!({"value": "sleep 9"}))], None);
    msg.framework_info_json = json!({"user": "u", "name": "n",
        "capabilities": [{"type": "TASK_KILLING_STATE"}]})
    .to_string();
    h.exec.call(ExecutorCall::launch(msg));
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
