//! Agent restarts with the fake launcher: the second runtime gets the
//! first one's work dir and processes.

use std::path::PathBuf;

use serde_json::json;

use super::*;
use crate::executor::checkpoint::log::UpdateLog;
use crate::executor::launcher::{ExitStatus, Signal};

fn sleeper(id: &str) -> ExecutorCall {
    launch("fw", vec![task(id, json!({"value": "sleep 60"}))], None)
}

/// Every `task.updates` under the work dir's checkpoints.
fn logs(h: &Harness) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![h.dir.path().join("meta/slaves")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "task.updates") {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn running_tasks_are_adopted_and_unacknowledged_updates_resent() {
    let mut h = harness();
    for id in ["run", "unacked", "done", "ends", "gone", "acked"] {
        h.exec.call(sleeper(id));
        let starting = h.expect_ack(id, "TASK_STARTING").await;
        if id == "run" {
            // Checkpointed before it was sent.
            let log = logs(&h).pop().expect("a log");
            assert_eq!(UpdateLog::read(&log).unwrap().updates[0], starting);
        }
        let running = h.expect(id, "TASK_RUNNING").await;
        if id != "unacked" {
            h.ack(&running);
        }
    }
    let pid = |n: usize| h.fake.spawned()[n - 1].0;
    let (run, unacked, done, ends, gone, acked) = (pid(1), pid(2), pid(3), pid(4), pid(5), pid(6));
    h.fake.exit(done, ExitStatus::Exited(0));
    let finished = h.expect("done", "TASK_FINISHED").await;
    h.fake.exit(acked, ExitStatus::Exited(0));
    h.expect_ack("acked", "TASK_FINISHED").await;
    h.quiet().await;
    let unacked_running = h.exec.reports().await;
    let unacked_running = unacked_running
        .iter()
        .find(|r| r.task_info_json.contains("\"unacked\""))
        .and_then(|r| r.latest.clone())
        .unwrap();

    h.restart().await;
    // While the agent is down: one task ends, one loses its supervisor.
    h.fake.exit(ends, ExitStatus::Exited(3));
    h.fake.lose(gone);

    let mut reported: Vec<String> = h
        .exec
        .reports()
        .await
        .iter()
        .map(|r| r.latest.as_ref().unwrap().task_id.clone())
        .collect();
    reported.sort();
    assert_eq!(reported, ["done", "ends", "gone", "run", "unacked"]);

    h.attach();
    let again = h.expect("unacked", "TASK_RUNNING").await;
    assert_eq!(st(&again).uuid, unacked_running.uuid, "same update, resent");
    h.ack(&again);
    let again = h.expect("done", "TASK_FINISHED").await;
    assert_eq!(again, finished);
    let failed = h.expect("ends", "TASK_FAILED").await;
    assert_eq!(st(&failed).message, "Command exited with status 3");
    let lost = h.expect("gone", "TASK_FAILED").await;
    assert!(
        st(&lost).message.contains("lost its supervisor"),
        "{lost:?}"
    );
    for u in [&again, &failed, &lost] {
        h.ack(u);
    }
    // `run` is watched again: it said RUNNING already and says nothing more.
    h.quiet().await;
    assert!(h.fake.is_running(run) && h.fake.is_running(unacked));
    assert_eq!(h.fake.spawned().len(), 6, "nothing was started again");

    h.fake.exit(run, ExitStatus::Exited(0));
    h.expect_ack("run", "TASK_FINISHED").await;
    h.exec.call(kill("fw", "unacked", None));
    h.expect_ack("unacked", "TASK_KILLED").await;
    h.quiet().await;
    assert!(h.exec.reports().await.is_empty());
    assert!(
        logs(&h).is_empty(),
        "checkpoints of finished tasks are removed"
    );
}

#[tokio::test]
async fn a_kill_goes_on_after_a_restart() {
    let mut h = harness();
    h.fake.ignore_term(true);
    h.exec.call(sleeper("t"));
    h.expect_ack("t", "TASK_STARTING").await;
    h.expect_ack("t", "TASK_RUNNING").await;
    let (pid, _) = h.spawned(1).await;
    h.exec.call(kill("fw", "t", Some(60_000)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.fake.signals(), [(pid, Signal::Term)]);

    h.restart().await;
    h.attach();
    // The new agent sends SIGTERM again and keeps the recorded grace
    // period; the task gives in, and that is a kill.
    let deadline = tokio::time::Instant::now() + WAIT;
    while h.fake.signals().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no second SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.fake.signals()[1], (pid, Signal::Term));
    h.fake.exit(pid, ExitStatus::Signaled(15));
    let killed = h.expect_ack("t", "TASK_KILLED").await;
    assert_eq!(
        st(&killed).message,
        "Command terminated with signal Terminated"
    );
}

#[tokio::test]
async fn a_restart_before_any_master_keeps_everything() {
    let mut h = harness();
    h.exec.detach();
    h.exec.call(sleeper("t"));
    let (pid, _) = h.spawned(1).await;
    h.quiet().await;
    h.restart().await;
    h.restart().await;
    h.attach();
    // Nothing was ever acknowledged: both updates, in order.
    h.expect_ack("t", "TASK_STARTING").await;
    h.expect_ack("t", "TASK_RUNNING").await;
    h.fake.exit(pid, ExitStatus::Exited(0));
    h.expect_ack("t", "TASK_FINISHED").await;
    h.quiet().await;
}

/// A task whose `task.info` an earlier agent wrote (the master's text
/// verbatim: `testdata/checkpoint-v1`) is adopted with everything in it:
/// its health check runs, its kill policy holds, and it is reported as the
/// typed TaskInfo serialized.
#[tokio::test]
async fn a_task_checkpointed_by_an_earlier_agent_keeps_its_task_info() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut h = harness();
    h.fake.ignore_term(true);
    h.exec.call(sleeper("web-1"));
    h.expect_ack("web-1", "TASK_STARTING").await;
    h.expect_ack("web-1", "TASK_RUNNING").await;
    let (pid, _) = h.spawned(1).await;
    let info = logs(&h).pop().unwrap().with_file_name("task.info");
    let v1 = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/checkpoint-v1/task.info"
    );
    let old = std::fs::read_to_string(v1)
        .unwrap()
        .replace("\"31080\"", &format!("\"{port}\""));
    std::fs::write(&info, old).unwrap();

    h.restart().await;
    h.attach();
    // The health check is only in the old file: it runs, and the task's
    // port answers.
    let healthy = h.expect_ack("web-1", "TASK_RUNNING").await;
    assert_eq!(st(&healthy).healthy, Some(true), "{healthy:?}");
    let reports = h.exec.reports().await;
    let text = &reports[0].task_info_json;
    assert!(!text.contains("null") && !text.contains("a_field_from_a_newer_mesos"));
    let reported: keel_api::mesos::TaskInfo = keel_api::mesos::parse_str(text).unwrap();
    let grace = reported.kill_policy.unwrap().grace_period.unwrap();
    assert_eq!(grace.nanoseconds, 300_000_000);
    assert_eq!(reported.labels.unwrap()["labels"][0]["value"], "1048576");
    // Its kill policy's 300 ms, not the agent's 100 ms.
    let start = tokio::time::Instant::now();
    h.exec.call(kill("fw", "web-1", None));
    h.expect_ack("web-1", "TASK_KILLED").await;
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        h.fake.signals()[..2],
        [(pid, Signal::Term), (pid, Signal::Kill)]
    );
    drop(listener);
}
