//! The runtime with the fake launcher: lifecycle, kills, groups, the link to
//! the master. No process is started.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use keel_api::pb;
use serde_json::json;
use tokio::sync::mpsc;

use crate::executor::launcher::LaunchSpec;
use crate::executor::{ExecutorCall, ExecutorConfig, ExecutorHandle, FakeLauncher};

mod custom;
mod isolation;
mod kill;
mod lifecycle;
mod recovery;

const WAIT: Duration = Duration::from_secs(5);

struct Harness {
    exec: ExecutorHandle,
    fake: FakeLauncher,
    rx: mpsc::UnboundedReceiver<pb::StatusUpdate>,
    buffered: VecDeque<pb::StatusUpdate>,
    dir: tempfile::TempDir,
}

fn config(dir: &std::path::Path) -> ExecutorConfig {
    let mut config = ExecutorConfig::new(dir);
    config.kill_grace_period = Duration::from_millis(100);
    config
}

fn harness_with(tweak: impl FnOnce(&mut ExecutorConfig)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
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

/// The master's message for [`launch`].
fn launch_msg(
    fw: &str,
    tasks: Vec<String>,
    executor: Option<serde_json::Value>,
) -> pb::LaunchTasks {
    pb::LaunchTasks {
        framework_id: fw.into(),
        framework_info_json: json!({"user": "u", "name": "n"}).to_string(),
        task_info_json: tasks,
        executor_info_json: executor.map(|e| e.to_string()).unwrap_or_default(),
    }
}

fn launch(fw: &str, tasks: Vec<String>, executor: Option<serde_json::Value>) -> ExecutorCall {
    ExecutorCall::launch(launch_msg(fw, tasks, executor))
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
    /// The agent stops (tasks keep running) and a new runtime starts on
    /// the same work dir and processes, not attached to a master yet.
    async fn restart(&mut self) {
        self.exec.clone().shutdown().await;
        self.exec = ExecutorHandle::start(config(self.dir.path()), self.fake.clone());
        let (_, rx) = mpsc::unbounded_channel();
        self.rx = rx;
        self.buffered.clear();
    }

    /// A master stream comes up (again).
    fn attach(&mut self) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.rx = rx;
        self.exec.attach("a-S0", tx);
    }

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
