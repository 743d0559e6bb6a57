//! Isolation with the fake cgroups: limits from the task's resources, the
//! note when they cannot be enforced, strict refusals, OOM, cgroup.kill.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::executor::launcher::ExitStatus;
use crate::isolation::cgroups::fake::{CgroupCall, FakeCgroups};
use crate::isolation::cgroups::{Cgroups, Controller, LimitOptions, limits_for};
use crate::isolation::{Feature, Isolation};

fn with_cgroups(controllers: &[Controller], isolation: Isolation) -> (Harness, FakeCgroups) {
    let cg = FakeCgroups::new(controllers.iter().copied());
    let fake = cg.clone();
    let h = harness_with(move |c| {
        c.isolation = isolation;
        c.use_cgroups(Arc::new(fake));
    });
    (h, cg)
}

/// A host with namespaces (so `strict` only misses what a test leaves
/// out) and the sandboxes on block device `io_device`.
fn with_cgroups_on(
    controllers: &[Controller],
    isolation: Isolation,
    io_device: Option<(u32, u32)>,
) -> (Harness, FakeCgroups) {
    let cg = FakeCgroups::new(controllers.iter().copied());
    let fake = cg.clone();
    let h = harness_with(move |c| {
        c.isolation = isolation;
        c.use_cgroups(Arc::new(fake));
        c.host.namespaces = Feature::ALL
            .into_iter()
            .filter(|f| f.controller().is_none())
            .collect();
        c.host.io_device = io_device;
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

/// The DEFAULT executor of task group `ex`, with its own cpus and mem.
fn group_executor(cpus: f64, mem: f64) -> serde_json::Value {
    json!({"type": "DEFAULT", "executor_id": {"value": "ex"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}}]})
}

/// Acknowledges TASK_STARTING then TASK_RUNNING of each task, in order.
async fn started(h: &mut Harness, tasks: &[&str]) {
    for t in tasks {
        h.expect_ack(t, "TASK_STARTING").await;
        h.expect_ack(t, "TASK_RUNNING").await;
    }
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
    let executor = group_executor(0.1, 32.0);
    h.exec.call(launch(
        "fw",
        vec![
            resourced("a", 0.5, 64.0, "sleep 60"),
            resourced("b", 0.4, 32.0, "sleep 60"),
        ],
        Some(executor),
    ));
    started(&mut h, &["a", "b"]).await;
    let made = creates(&cg);
    assert_eq!(made.len(), 2);
    assert_eq!(made[0].0.container, made[1].0.container);
    assert_ne!(made[0].0.leaf, made[1].0.leaf);
    assert_eq!(
        made[0].1,
        limits_for(Some(1.0), Some(128.0), LimitOptions::default())
    );
}

#[tokio::test]
async fn a_later_launch_group_grows_the_container_and_an_end_shrinks_its_cpu() {
    let (mut h, cg) = with_cgroups(&Controller::ALL, Isolation::Auto);
    let executor = group_executor(0.1, 32.0);
    let opts = LimitOptions::default();
    h.exec.call(launch(
        "fw",
        vec![resourced("a", 0.5, 64.0, "sleep 60")],
        Some(executor.clone()),
    ));
    h.expect_ack("a", "TASK_STARTING").await;
    h.expect_ack("a", "TASK_RUNNING").await;
    let (pid_a, _) = h.spawned(1).await;
    let container = creates(&cg)[0].0.container.clone();
    assert_eq!(
        cg.limits_of(&container),
        Some(limits_for(Some(0.6), Some(96.0), opts))
    );

    // The second launch joins the same container: the group's sum.
    h.exec.call(launch(
        "fw",
        vec![resourced("b", 1.0, 128.0, "sleep 60")],
        Some(executor.clone()),
    ));
    h.expect_ack("b", "TASK_STARTING").await;
    h.expect_ack("b", "TASK_RUNNING").await;
    let (pid_b, _) = h.spawned(2).await;
    let made = creates(&cg);
    assert_eq!(made.len(), 2);
    assert_eq!(made[1].0.container, container, "one container per group");
    let grown = limits_for(Some(1.6), Some(224.0), opts);
    assert_eq!(cg.limits_of(&container), Some(grown.clone()));
    assert_eq!(
        made[1].1, grown,
        "the joining task's create has the sum too"
    );

    // `a` finishes: cpu follows the tasks left, memory stays (lowering it
    // under a running group could OOM-kill it).
    h.fake.exit(pid_a, ExitStatus::Exited(0));
    h.expect_ack("a", "TASK_FINISHED").await;
    let shrunk = cg.limits_of(&container).unwrap();
    let expect = limits_for(Some(1.1), Some(160.0), opts);
    assert_eq!(
        (shrunk.cpu_max, shrunk.cpu_weight, shrunk.io_weight),
        (expect.cpu_max, expect.cpu_weight, expect.io_weight)
    );
    assert_eq!(
        (shrunk.memory_max, shrunk.memory_high),
        (grown.memory_max, grown.memory_high)
    );
    assert!(
        cg.calls()
            .contains(&CgroupCall::Update(container.clone(), shrunk))
    );

    // The group's last task gone: the next group is sized from scratch.
    h.fake.exit(pid_b, ExitStatus::Exited(0));
    h.expect_ack("b", "TASK_FINISHED").await;
    h.exec.call(launch(
        "fw",
        vec![resourced("c", 0.5, 64.0, "sleep 60")],
        Some(executor),
    ));
    h.expect_ack("c", "TASK_STARTING").await;
    h.expect_ack("c", "TASK_RUNNING").await;
    let (paths, limits) = creates(&cg).remove(2);
    assert_ne!(paths.container, container, "a new container");
    assert_eq!(limits, limits_for(Some(0.6), Some(96.0), opts));
}

/// A task asking for bandwidth with `keel.io/*` labels.
fn throttled(id: &str, labels: &[(&str, &str)]) -> String {
    let mut t: serde_json::Value =
        serde_json::from_str(&resourced(id, 0.5, 64.0, "sleep 60")).unwrap();
    let list: Vec<serde_json::Value> = labels
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    t["labels"] = json!({ "labels": list });
    t.to_string()
}

#[tokio::test]
async fn bandwidth_labels_become_io_max_on_the_sandboxes_disk() {
    let (mut h, cg) = with_cgroups_on(&Controller::ALL, Isolation::Strict, Some((259, 0)));
    let labels = [
        ("keel.io/read-bps", "1048576"),
        ("keel.io/write-iops", "200"),
    ];
    h.exec
        .call(launch("fw", vec![throttled("t", &labels)], None));
    let starting = h.expect_ack("t", "TASK_STARTING").await;
    assert_eq!(st(&starting).message, "", "everything is enforced");
    h.expect_ack("t", "TASK_RUNNING").await;
    let (_, limits) = creates(&cg).remove(0);
    let io_max = limits.io_max.unwrap();
    assert_eq!(
        io_max.line(),
        "259:0 rbps=1048576 wbps=max riops=max wiops=200"
    );
}

#[tokio::test]
async fn bad_bandwidth_labels_are_a_task_error() {
    let (mut h, cg) = with_cgroups_on(&Controller::ALL, Isolation::Auto, Some((8, 0)));
    h.exec.call(launch(
        "fw",
        vec![throttled("t", &[("keel.io/write-bps", "lots")])],
        None,
    ));
    let err = h.expect("t", "TASK_ERROR").await;
    assert_eq!(st(&err).reason, "REASON_TASK_INVALID");
    assert_eq!(
        st(&err).message,
        "invalid label keel.io/write-bps=\"lots\": must be a positive whole number of bytes per second"
    );
    assert!(h.fake.spawned().is_empty() && cg.calls().is_empty());
}

#[tokio::test]
async fn bandwidth_that_cannot_be_limited_fails_strict_and_is_noted_by_auto() {
    let labels = [("keel.io/read-bps", "1000")];
    // No io controller.
    let no_io = [Controller::Cpu, Controller::Memory, Controller::Pids];
    let (mut h, _) = with_cgroups_on(&no_io, Isolation::Strict, Some((8, 0)));
    h.exec
        .call(launch("fw", vec![throttled("t", &labels)], None));
    let failed = h.expect("t", "TASK_FAILED").await;
    assert_eq!(st(&failed).reason, "REASON_CONTAINER_LAUNCH_FAILED");
    assert!(
        st(&failed)
            .message
            .contains("keel.io/read-bps=1000 (cgroups/io: no io controller)"),
        "{failed:?}"
    );
    let (mut h, _) = with_cgroups_on(&no_io, Isolation::Auto, Some((8, 0)));
    h.exec
        .call(launch("fw", vec![throttled("t", &labels)], None));
    let starting = h.expect_ack("t", "TASK_STARTING").await;
    assert!(
        st(&starting)
            .message
            .contains("keel.io/read-bps=1000 (cgroups/io: no io controller)"),
        "{starting:?}"
    );
    // An io controller, but the sandboxes are on tmpfs.
    let (mut h, cg) = with_cgroups_on(&Controller::ALL, Isolation::Auto, None);
    h.exec
        .call(launch("fw", vec![throttled("t", &labels)], None));
    let starting = h.expect_ack("t", "TASK_STARTING").await;
    assert!(
        st(&starting)
            .message
            .contains("keel.io/read-bps=1000 (cgroups/io: the sandboxes are on no block device)"),
        "{starting:?}"
    );
    h.expect_ack("t", "TASK_RUNNING").await;
    assert_eq!(creates(&cg)[0].1.io_max, None);
}

#[tokio::test]
async fn a_task_group_is_throttled_only_on_what_every_task_limits() {
    let (mut h, cg) = with_cgroups_on(&Controller::ALL, Isolation::Auto, Some((8, 0)));
    let executor = json!({"type": "DEFAULT", "executor_id": {"value": "ex"}, "resources": []});
    h.exec.call(launch(
        "fw",
        vec![throttled(
            "a",
            &[("keel.io/read-bps", "100"), ("keel.io/write-bps", "10")],
        )],
        Some(executor.clone()),
    ));
    h.expect_ack("a", "TASK_STARTING").await;
    h.expect_ack("a", "TASK_RUNNING").await;
    let (pid_a, _) = h.spawned(1).await;
    let container = creates(&cg)[0].0.container.clone();
    let line = |cg: &FakeCgroups| cg.limits_of(&container).unwrap().io_max.map(|m| m.line());
    assert_eq!(
        line(&cg).as_deref(),
        Some("8:0 rbps=100 wbps=10 riops=max wiops=max")
    );
    h.exec.call(launch(
        "fw",
        vec![throttled("b", &[("keel.io/read-bps", "50")])],
        Some(executor),
    ));
    h.expect_ack("b", "TASK_STARTING").await;
    h.expect_ack("b", "TASK_RUNNING").await;
    assert_eq!(
        line(&cg).as_deref(),
        Some("8:0 rbps=150 wbps=max riops=max wiops=max")
    );
    h.fake.exit(pid_a, ExitStatus::Exited(0));
    h.expect_ack("a", "TASK_FINISHED").await;
    assert_eq!(
        line(&cg).as_deref(),
        Some("8:0 rbps=50 wbps=max riops=max wiops=max")
    );
}

#[tokio::test]
async fn an_adopted_task_group_is_resized_with_its_checkpointed_executor() {
    let (mut h, cg) = with_cgroups(&Controller::ALL, Isolation::Auto);
    let executor = group_executor(0.25, 32.0);
    h.exec.call(launch(
        "fw",
        vec![
            resourced("a", 0.5, 64.0, "sleep 60"),
            resourced("b", 1.0, 128.0, "sleep 60"),
        ],
        Some(executor),
    ));
    started(&mut h, &["a", "b"]).await;
    let (pid_a, _) = h.spawned(1).await;
    let container = creates(&cg)[0].0.container.clone();

    // A new agent on the same work dir, cgroups and processes.
    h.exec.clone().shutdown().await;
    let mut config = super::config(h.dir.path());
    config.isolation = Isolation::Auto;
    config.use_cgroups(Arc::new(cg.clone()));
    h.exec = ExecutorHandle::start(config, h.fake.clone());
    h.buffered.clear();
    h.attach();
    let before = cg.calls().len();
    h.fake.exit(pid_a, ExitStatus::Exited(0));
    h.expect_ack("a", "TASK_FINISHED").await;
    // b and the executor are left: the executor's share came back from
    // the checkpoint; memory stays at what the group had.
    let opts = LimitOptions::default();
    let left = limits_for(Some(1.25), Some(160.0), opts);
    let had = limits_for(Some(1.75), Some(224.0), opts);
    let updates: Vec<_> = cg.calls()[before..]
        .iter()
        .filter_map(|c| match c {
            CgroupCall::Update(p, l) if *p == container => Some(l.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(
        (updates[0].cpu_max, updates[0].memory_max),
        (left.cpu_max, had.memory_max)
    );
}
