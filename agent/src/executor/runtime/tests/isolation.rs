//! Isolation with the fake cgroups: limits from the task's resources, the
//! note when they cannot be enforced, strict refusals, OOM, cgroup.kill.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::executor::launcher::ExitStatus;
use crate::isolation::Isolation;
use crate::isolation::cgroups::fake::{CgroupCall, FakeCgroups};
use crate::isolation::cgroups::{Cgroups, Controller, LimitOptions, limits_for};

fn with_cgroups(controllers: &[Controller], isolation: Isolation) -> (Harness, FakeCgroups) {
    let cg = FakeCgroups::new(controllers.iter().copied());
    let fake = cg.clone();
    let h = harness_with(move |c| {
        c.isolation = isolation;
        c.use_cgroups(Arc::new(fake));
    });
    (h, cg)
}

fn resourced(id: &str, cpus: f64, mem: f64, cmd: &str) -> String {
    json!({"name": id, "task_id": {"value": id}, "agent_id": {"value": "a-S0"},
           "command": {"value": cmd},
           "resources": [
               {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
               {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}}]})
    .to_string()
}

fn creates(
    cg: &FakeCgroups,
) -> Vec<(
    crate::isolation::cgroups::CgroupPaths,
    crate::isolation::cgroups::Limits,
)> {
    cg.calls()
        .into_iter()
        .filter_map(|c| match c {
            CgroupCall::Create(p, l) => Some((p, l)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn limits_come_from_the_tasks_resources() {
    let (mut h, cg) = with_cgroups(&Controller::ALL, Isolation::Auto);
    h.exec.call(launch(
        "fw",
        vec![resourced("t", 0.5, 64.0, "sleep 60")],
        None,
    ));
    let starting = h.expect_ack("t", "TASK_STARTING").await;
    assert_eq!(st(&starting).message, "", "everything is enforced");
    h.expect_ack("t", "TASK_RUNNING").await;
    let (pid, spec) = h.spawned(1).await;
    let made = creates(&cg);
    assert_eq!(made.len(), 1);
    let (paths, limits) = &made[0];
    assert_eq!(
        *limits,
        limits_for(Some(0.5), Some(64.0), LimitOptions::default())
    );
    assert_eq!(spec.cgroup.as_ref(), Some(&paths.leaf));
    assert_eq!(spec.supervisor_cgroup, Some(cg.supervisors()));
    h.fake.exit(pid, ExitStatus::Exited(0));
    h.expect_ack("t", "TASK_FINISHED").await;
    h.quiet().await;
    assert_eq!(cg.calls().last(), Some(&CgroupCall::Remove(paths.clone())));
}

#[tokio::test]
async fn auto_runs_what_cannot_be_limited_and_says_so() {
    let (mut h, cg) = with_cgroups(&[Controller::Pids], Isolation::Auto);
    h.exec
        .call(launch("fw", vec![resourced("t", 1.0, 64.0, "true")], None));
    let starting = h.expect_ack("t", "TASK_STARTING").await;
    let note = &st(&starting).message;
    assert!(
        note.starts_with("Isolation not enforced on this agent:"),
        "{note}"
    );
    assert!(note.contains("mem=64") && note.contains("cpus=1"), "{note}");
    h.expect("t", "TASK_RUNNING").await;
    let (_, limits) = &creates(&cg)[0];
    assert_eq!((limits.pids_max, limits.memory_max), (Some(4096), None));
}

#[tokio::test]
async fn strict_refuses_a_task_it_cannot_limit() {
    let (mut h, cg) = with_cgroups(&[Controller::Pids, Controller::Cpu], Isolation::Strict);
    h.exec
        .call(launch("fw", vec![resourced("t", 1.0, 64.0, "true")], None));
    let failed = h.expect("t", "TASK_FAILED").await;
    assert_eq!(st(&failed).reason, "REASON_CONTAINER_LAUNCH_FAILED");
    assert!(st(&failed).message.contains("mem=64"), "{failed:?}");
    assert!(h.fake.spawned().is_empty() && cg.calls().is_empty());
}

#[tokio::test]
async fn an_oom_kill_fails_the_task_with_the_memory_reason() {
    let (mut h, cg) = with_cgroups(&Controller::ALL, Isolation::Auto);
    h.exec
        .call(launch("fw", vec![resourced("hog", 0.1, 64.0, "hog")], None));
    h.expect_ack("hog", "TASK_STARTING").await;
    h.expect_ack("hog", "TASK_RUNNING").await;
    let (pid, _) = h.spawned(1).await;
    let (paths, _) = creates(&cg).remove(0);
    cg.oom(&paths.container);
    let failed = h.expect("hog", "TASK_FAILED").await;
    assert_eq!(st(&failed).reason, "REASON_CONTAINER_LIMITATION_MEMORY");
    assert!(
        st(&failed).message.starts_with("Memory limit exceeded"),
        "{failed:?}"
    );
    // The whole tree went: cgroup.kill on the leaf and SIGKILL of the group.
    assert!(cg.calls().contains(&CgroupCall::Kill(paths.leaf.clone())));
    assert!(!h.fake.is_running(pid));
}

#[tokio::test]
async fn the_end_of_the_grace_period_kills_the_cgroup() {
    let (mut h, cg) = with_cgroups(&Controller::ALL, Isolation::Auto);
    h.fake.ignore_term(true);
    h.exec.call(launch(
        "fw",
        vec![resourced("t", 0.1, 32.0, "sleep 60")],
        None,
    ));
    h.expect_ack("t", "TASK_STARTING").await;
    h.expect_ack("t", "TASK_RUNNING").await;
    let (paths, _) = creates(&cg).remove(0);
    h.exec.call(kill("fw", "t", Some(100)));
    let killed = h.expect("t", "TASK_KILLED").await;
    assert_eq!(st(&killed).message, "Command terminated with signal Killed");
    let calls = cg.calls();
    let kill_at = calls
        .iter()
        .position(|c| *c == CgroupCall::Kill(paths.leaf.clone()));
    let remove_at = calls
        .iter()
        .position(|c| *c == CgroupCall::Remove(paths.clone()));
    assert!(kill_at.is_some() && kill_at < remove_at, "{calls:?}");
}

#[tokio::test]
async fn a_task_group_shares_one_limited_container() {
    let (mut h, cg) = with_cgroups(&Controller::ALL, Isolation::Auto);
    let executor = json!({"type": "DEFAULT", "executor_id": {"value": "ex"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 32.0}}]});
    h.exec.call(launch(
        "fw",
        vec![
            resourced("a", 0.5, 64.0, "sleep 60"),
            resourced("b", 0.4, 32.0, "sleep 60"),
        ],
        Some(executor),
    ));
    for t in ["a", "b"] {
        h.expect_ack(t, "TASK_STARTING").await;
        h.expect_ack(t, "TASK_RUNNING").await;
    }
    let made = creates(&cg);
    assert_eq!(made.len(), 2);
    assert_eq!(made[0].0.container, made[1].0.container);
    assert_ne!(made[0].0.leaf, made[1].0.leaf);
    assert_eq!(
        made[0].1,
        limits_for(Some(1.0), Some(128.0), LimitOptions::default())
    );
}
