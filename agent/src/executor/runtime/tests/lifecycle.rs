//! Launch to acknowledged end, failures, and the link to the master.

use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;

use super::*;
use crate::executor::launcher::ExitStatus;

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
        ("c", "Executor 'e' has no command"),
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
