//! The launcher's fork server dying under a live runtime: the next launch
//! starts another, and a task started by the dead one keeps running and
//! is still reported when it ends. (Alone in its binary: it finds the fork
//! server as this test process's only `keel-agent forkserver` child.)

mod support;

use std::time::{Duration, Instant};

use keel_agent::executor::{ExecutorConfig, ExecutorHandle};
use keel_api::pb;
use serde_json::json;
use tokio::sync::mpsc;

/// This process's fork servers.
fn fork_servers() -> Vec<u32> {
    let me = std::process::id();
    support::pids_with_cmdline("forkserver")
        .into_iter()
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            keel_agent::isolation::procfs::parse_stat(&stat)
                .is_some_and(|s| s.ppid == me && s.state != 'Z')
        })
        .collect()
}

fn launch(exec: &ExecutorHandle, id: &str, cmd: &str) {
    let task = json!({"name": id, "task_id": {"value": id},
        "agent_id": {"value": "agent-S1"}, "resources": [], "command": {"value": cmd}});
    support::launch_into(exec, json!({"user": "root", "name": "t"}), &task);
}

async fn until(
    exec: &ExecutorHandle,
    rx: &mut mpsc::UnboundedReceiver<pb::StatusUpdate>,
    id: &str,
    state: &str,
) -> pb::TaskStatus {
    loop {
        let st = support::next_acked(exec, rx).await;
        if st.task_id == id && st.state == state {
            return st;
        }
        assert!(
            !(st.task_id == id && support::is_terminal(&st)),
            "{id} ended as {st:?}"
        );
    }
}

#[tokio::test]
async fn a_dead_fork_server_is_replaced_and_its_tasks_live_on() {
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = support::Cleanup(dir.path().to_path_buf());
    let (exec, mut rx) = support::start_runtime(ExecutorConfig::new(dir.path()));

    launch(&exec, "first", "sleep 1");
    until(&exec, &mut rx, "first", "TASK_RUNNING").await;
    let servers = fork_servers();
    assert_eq!(servers.len(), 1, "{servers:?}");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(servers[0] as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let deadline = Instant::now() + support::WAIT;
    while !fork_servers().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the fork server survived SIGKILL"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    launch(&exec, "second", "exit 4");
    let second = until(&exec, &mut rx, "second", "TASK_FAILED").await;
    assert_eq!(second.message, "Command exited with status 4");
    assert_eq!(fork_servers().len(), 1, "a new fork server");
    let first = until(&exec, &mut rx, "first", "TASK_FINISHED").await;
    assert_eq!(first.message, "Command exited with status 0");
}
