//! The session carries the master's task calls to the runtime and its status
//! updates back, keeps them across a reconnect and reports known tasks in
//! `Register`. The master is a stand-in gRPC server on loopback.

mod support;

use std::time::Duration;

use keel_agent::executor::{ExecutorConfig, ExecutorHandle, LinuxLauncher};
use keel_agent::session::{self, SessionConfig, SessionStatus};
use keel_agent::workdir::WorkDir;
use keel_api::pb::{self, master_message::Msg as MasterMsg};
use support::{Master, state};
use tokio::sync::watch;

struct Setup {
    master: Master,
    stop: watch::Sender<bool>,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let master = Master::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = ExecutorConfig::new(dir.path());
    config.kill_grace_period = Duration::from_secs(2);
    let executor =
        ExecutorHandle::start(config, LinuxLauncher::new(env!("CARGO_BIN_EXE_keel-agent")));
    let session_config = SessionConfig {
        masters: vec![master.addr.to_string()],
        info: pb::AgentInfo {
            hostname: "test-agent".into(),
            ip: "127.0.0.1".into(),
            port: 5051,
            ..Default::default()
        },
        backoff_factor: Duration::from_millis(20),
        executor,
        trust: None,
    };
    let (stop, stop_rx) = watch::channel(false);
    let work_dir = WorkDir::open(dir.path()).unwrap();
    let (status, _) = watch::channel(SessionStatus::default());
    tokio::spawn(async move { session::run(session_config, &work_dir, status, stop_rx).await });
    Setup { master, stop, dir }
}

impl Setup {
    async fn stream(&mut self) -> support::Stream {
        self.master.stream().await
    }
}

fn launch(task_id: &str, cmd: &str) -> MasterMsg {
    support::launch("m1-S0", task_id, cmd)
}

#[tokio::test]
async fn updates_survive_a_reconnect_and_tasks_are_reported() {
    let mut s = setup().await;
    let mut first = s.stream().await;
    assert!(first.register().await.tasks.is_empty());
    first.registered("m1-S0", false);
    first.send(launch("t1", "echo hi"));
    let starting = first.update().await;
    assert_eq!(
        (state(&starting), starting.framework_id.as_str()),
        ("TASK_STARTING", "fw")
    );
    first.ack(&starting);
    let running = first.update().await;
    assert_eq!(state(&running), "TASK_RUNNING");
    // The master goes away before acknowledging RUNNING.
    drop(first);

    let mut second = s.stream().await;
    let register = second.register().await;
    assert_eq!(register.agent_id, "m1-S0");
    assert_eq!(register.tasks.len(), 1);
    let report = &register.tasks[0];
    assert_eq!(report.framework_id, "fw");
    assert!(report.task_info_json.contains("echo hi"));
    assert_eq!(report.latest.as_ref().unwrap().task_id, "t1");
    second.registered("m1-S0", true);
    // The outstanding update comes again, same uuid, then the rest in order.
    let again = second.update().await;
    assert_eq!(state(&again), "TASK_RUNNING");
    assert_eq!(
        again.status.as_ref().unwrap().uuid,
        running.status.as_ref().unwrap().uuid
    );
    second.ack(&again);
    let finished = second.update().await;
    assert_eq!(state(&finished), "TASK_FINISHED");
    second.ack(&finished);

    let stdout = s
        .dir
        .path()
        .join("slaves/m1-S0/frameworks/fw/executors/t1/runs/latest/stdout");
    assert_eq!(std::fs::read_to_string(stdout).unwrap(), "hi\n");
    drop(second);
    let mut third = s.stream().await;
    assert!(
        third.register().await.tasks.is_empty(),
        "acknowledged tasks are forgotten"
    );
    let _ = s.stop.send(true);
}

#[tokio::test]
async fn kill_and_framework_shutdown_arrive_through_the_session() {
    let mut s = setup().await;
    let mut m = s.stream().await;
    m.register().await;
    m.registered("m1-S0", false);
    m.send(launch("a", "sleep 60"));
    m.send(launch("b", "sleep 60"));
    let mut running = 0;
    while running < 2 {
        let u = m.update().await;
        m.ack(&u);
        running += usize::from(state(&u) == "TASK_RUNNING");
    }
    m.send(MasterMsg::KillTask(pb::KillTask {
        framework_id: "fw".into(),
        task_id: "a".into(),
        grace_period_ms: Some(1_000),
    }));
    let killed = m.update().await;
    assert_eq!(
        (
            state(&killed),
            killed.status.as_ref().unwrap().task_id.as_str()
        ),
        ("TASK_KILLED", "a")
    );
    m.ack(&killed);
    m.send(MasterMsg::ShutdownFramework(pb::ShutdownFramework {
        framework_id: "fw".into(),
    }));
    let killed = m.update().await;
    assert_eq!(
        (
            state(&killed),
            killed.status.as_ref().unwrap().task_id.as_str()
        ),
        ("TASK_KILLED", "b")
    );
    m.ack(&killed);
    let _ = s.stop.send(true);
}
