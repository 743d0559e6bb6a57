//! The real `keel-agent` binary is SIGKILLed while its tasks run and
//! started again on the same work dir: its tasks keep running, come back in
//! its re-registration, and end as they should. The master is a stand-in on
//! loopback; the tasks are real processes on this machine.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use keel_api::pb;
use support::{AgentProc, Cleanup, Master, alive, gone, launch, state, task_id};

const AGENT: &str = "m1-S7";

/// The host pid of task `task`'s process group leader: its container init
/// (found by its command line, which names the task's state dir). The
/// agent runs as root here, so `--isolation auto` gives tasks namespaces.
fn leader(work: &Path, task: &str) -> Option<u32> {
    let dir = format!("{}/", work.display());
    let state = format!("/tasks/{task}/process");
    support::pids_with_cmdline(&dir).into_iter().find(|p| {
        let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        cmd.contains(&state) && !cmd.starts_with("keel-agent\0shim")
    })
}

/// The agent's fork servers: its children running `keel-agent forkserver`.
fn fork_servers_of(agent: u32) -> Vec<u32> {
    support::pids_with_cmdline("forkserver")
        .into_iter()
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            keel_agent::isolation::procfs::parse_stat(&stat).is_some_and(|s| s.ppid == agent)
        })
        .collect()
}

async fn wait_leader(work: &Path, task: &str) -> u32 {
    let deadline = Instant::now() + support::WAIT;
    loop {
        if let Some(pid) = leader(work, task) {
            return pid;
        }
        assert!(Instant::now() < deadline, "{task} has no process");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn tasks_survive_a_sigkilled_agent_and_end_correctly() {
    let tmp = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(tmp.path().to_path_buf());
    let work = tmp.path().join("agent");
    let mut master = Master::start().await;
    let mut agent = AgentProc::start(master.addr, &work, &["--task-kill-grace-period", "2s"]);
    let mut m = master.stream().await;
    let reg = m.register().await;
    assert!(reg.agent_id.is_empty() && reg.tasks.is_empty());
    m.registered(AGENT, false);

    m.send(launch(AGENT, "long", "exec sleep 60"));
    m.send(launch(AGENT, "fails", "sleep 1; exit 3"));
    m.send(launch(AGENT, "quick", "sleep 1"));
    let mut running = 0;
    while running < 3 {
        let u = m.update().await;
        m.ack(&u);
        running += usize::from(state(&u) == "TASK_RUNNING");
    }
    let long = wait_leader(&work, "long").await;
    let quick = wait_leader(&work, "quick").await;
    let servers = fork_servers_of(agent.pid());
    assert_eq!(servers.len(), 1, "one fork server per agent: {servers:?}");

    agent.kill9();
    drop(m);
    assert!(alive(long), "a task dies with its agent");
    assert!(
        gone(servers[0], Duration::from_secs(2)).await,
        "the fork server ends with its agent"
    );
    // Two tasks end while no agent watches.
    assert!(gone(quick, Duration::from_secs(5)).await);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let _agent = AgentProc::start(master.addr, &work, &["--task-kill-grace-period", "2s"]);
    let mut m = master.stream().await;
    let reg = m.register().await;
    assert_eq!(reg.agent_id, AGENT, "the same agent id comes back");
    let ids: BTreeSet<String> = reg
        .tasks
        .iter()
        .map(|t| t.latest.as_ref().unwrap().task_id.clone())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from(["long".into(), "fails".into(), "quick".into()])
    );
    m.registered(AGENT, true);

    // An ack still in flight when the agent died makes its update come
    // again (same uuid); anything else is the end of a task.
    let mut ended = BTreeMap::new();
    while ended.len() < 2 {
        let u = m.update().await;
        m.ack(&u);
        if state(&u) != "TASK_RUNNING" {
            ended.insert(task_id(&u).to_string(), u);
        }
    }
    let fails = ended["fails"].status.as_ref().unwrap();
    assert_eq!(
        (fails.state.as_str(), fails.message.as_str()),
        ("TASK_FAILED", "Command exited with status 3")
    );
    assert_eq!(state(&ended["quick"]), "TASK_FINISHED");
    assert!(alive(long));

    m.kill("long", None);
    let killed = m.update().await;
    assert_eq!((task_id(&killed), state(&killed)), ("long", "TASK_KILLED"));
    m.ack(&killed);
    assert!(gone(long, Duration::from_secs(2)).await);
    assert!(
        m.recv_within(Duration::from_millis(500)).await.is_none(),
        "nothing more to say"
    );
}

/// The restart test: 50 running tasks, half of their RUNNING
/// updates unacknowledged, SIGKILL, restart. All 50 come back in the
/// registration, the unacknowledged updates come again with their uuids,
/// no task gets a second update of the same state, none is lost. Prints
/// the recovery time (kill -> re-registered -> every resend received).
#[tokio::test]
async fn fifty_tasks_survive_a_sigkill_none_lost_none_twice() {
    const N: usize = 50;
    let tmp = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(tmp.path().to_path_buf());
    let work = tmp.path().join("agent");
    let mut master = Master::start().await;
    let mut agent = AgentProc::start(master.addr, &work, &["--task-kill-grace-period", "2s"]);
    let mut m = master.stream().await;
    m.register().await;
    m.registered(AGENT, false);

    let ids: Vec<String> = (0..N).map(|i| format!("t{i:02}")).collect();
    let burst = Instant::now();
    for id in &ids {
        m.send(launch(AGENT, id, "exec sleep 120"));
    }
    // (task, state) -> uuids seen, over both agents.
    let mut seen: BTreeMap<(String, String), BTreeSet<Vec<u8>>> = BTreeMap::new();
    let mut note = |u: &pb::StatusUpdate| {
        let st = u.status.as_ref().unwrap();
        seen.entry((st.task_id.clone(), st.state.clone()))
            .or_default()
            .insert(st.uuid.clone());
    };
    let mut running = BTreeSet::new();
    while running.len() < N {
        let u = m.update().await;
        note(&u);
        let id = task_id(&u).to_string();
        let odd = id.ends_with(['1', '3', '5', '7', '9']);
        if state(&u) == "TASK_RUNNING" {
            running.insert(id);
            if odd {
                continue; // left unacknowledged
            }
        }
        m.ack(&u);
    }
    println!(
        "{N} launches sent at once: all TASK_RUNNING after {:?}",
        burst.elapsed()
    );

    let killed_at = Instant::now();
    agent.kill9();
    drop(m);
    let _agent = AgentProc::start(master.addr, &work, &["--task-kill-grace-period", "2s"]);
    let mut m = master.stream().await;
    let reg = m.register().await;
    let registered_after = killed_at.elapsed();
    let reported: BTreeSet<String> = reg
        .tasks
        .iter()
        .map(|t| t.latest.as_ref().unwrap().task_id.clone())
        .collect();
    assert_eq!(reported.len(), N, "every task is reported");
    assert!(
        reg.tasks
            .iter()
            .all(|t| t.latest.as_ref().unwrap().state == "TASK_RUNNING")
    );
    m.registered(AGENT, true);
    // Every unacknowledged RUNNING comes again; so may one whose ack was
    // still in flight when the agent died. Nothing new is said.
    let unacked: BTreeSet<String> = ids
        .iter()
        .filter(|id| id.ends_with(['1', '3', '5', '7', '9']))
        .cloned()
        .collect();
    let mut resent = BTreeSet::new();
    let mut resent_after = Duration::ZERO;
    while let Some(msg) = m.recv_within(Duration::from_secs(2)).await {
        let keel_api::pb::agent_message::Msg::StatusUpdate(u) = msg else {
            panic!("unexpected {msg:?}");
        };
        assert_eq!(state(&u), "TASK_RUNNING", "{u:?}");
        note(&u);
        resent.insert(task_id(&u).to_string());
        m.ack(&u);
        if unacked.is_subset(&resent) && resent_after.is_zero() {
            resent_after = killed_at.elapsed();
        }
    }
    assert!(
        unacked.is_subset(&resent),
        "missing resends: {unacked:?} vs {resent:?}"
    );
    for ((task, state), uuids) in &seen {
        assert_eq!(uuids.len(), 1, "{task} got {state} twice: {uuids:?}");
    }
    println!(
        "recovery of {N} running tasks after SIGKILL: re-registered after {registered_after:?}, \
         {} unacknowledged updates resent after {resent_after:?}",
        unacked.len()
    );

    for id in &ids {
        m.kill(id, None);
    }
    let mut killed = BTreeSet::new();
    while killed.len() < N {
        let u = m.update().await;
        assert_eq!(state(&u), "TASK_KILLED", "{u:?}");
        killed.insert(task_id(&u).to_string());
        m.ack(&u);
    }
}
