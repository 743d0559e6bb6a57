//! Real tasks in PID, mount, UTS and IPC namespaces on this machine (the
//! test runs as root): what the task sees from inside, and that kills and
//! failures still come out right.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use keel_agent::executor::{ExecutorCall, ExecutorConfig, ExecutorHandle};
use keel_agent::isolation::Feature;
use keel_api::pb;
use serde_json::{Value, json};
use support::gone;
use tokio::sync::mpsc;

struct Agent {
    exec: ExecutorHandle,
    rx: mpsc::UnboundedReceiver<pb::StatusUpdate>,
    dir: tempfile::TempDir,
    _cleanup: support::Cleanup,
}

fn agent(features: &[Feature]) -> Option<Agent> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: namespaces cannot be tested here");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = ExecutorConfig::new(dir.path());
    support::only_namespaces(&mut config, features);
    config.kill_grace_period = Duration::from_secs(5);
    let (exec, rx) = support::start_runtime(config);
    Some(Agent {
        exec,
        rx,
        _cleanup: support::Cleanup(dir.path().to_path_buf()),
        dir,
    })
}

const ALL: [Feature; 4] = [
    Feature::PidNs,
    Feature::MountNs,
    Feature::UtsNs,
    Feature::IpcNs,
];

impl Agent {
    fn launch(&self, id: &str, command: Value) {
        let task = json!({"name": id, "task_id": {"value": id},
            "agent_id": {"value": "agent-S1"}, "resources": [], "command": command,
            "container": {"type": "MESOS", "hostname": "box-1"}});
        support::launch_into(&self.exec, json!({"user": "root", "name": "t"}), &task);
    }

    /// Acknowledges updates until a terminal one; returns it.
    async fn end(&mut self) -> pb::TaskStatus {
        support::until_terminal(&self.exec, &mut self.rx).await
    }

    async fn running(&mut self) {
        loop {
            let u = tokio::time::timeout(support::WAIT, self.rx.recv())
                .await
                .expect("no update")
                .unwrap();
            let st = u.status.clone().unwrap();
            self.exec.call(ExecutorCall::Acknowledge(pb::Acknowledge {
                framework_id: u.framework_id.clone(),
                task_id: st.task_id.clone(),
                uuid: st.uuid.clone(),
            }));
            assert!(!st.state.ends_with("FAILED"), "{st:?}");
            if st.state == "TASK_RUNNING" {
                return;
            }
        }
    }

    fn sandbox(&self, task: &str) -> PathBuf {
        self.dir.path().join(format!(
            "slaves/agent-S1/frameworks/fw/executors/{task}/runs/latest"
        ))
    }

    fn stdout(&self, task: &str) -> String {
        std::fs::read_to_string(self.sandbox(task).join("stdout")).unwrap_or_default()
    }
}

fn lines(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn the_task_sees_its_own_pids_hostname_and_a_read_only_host() {
    let Some(mut a) = agent(&ALL) else { return };
    let host_tmp = a.dir.path().to_string_lossy().into_owned();
    let probe = format!(
        "echo pid=$$; echo ppid=$PPID; echo host=$(hostname); \
         echo procs=$(ls /proc | grep -c '^[0-9]'); \
         echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' '); \
         (touch /etc/keel-probe 2>/dev/null && echo etc=rw) || echo etc=ro; \
         (touch /tmp/probe && echo tmp=rw) || echo tmp=ro; \
         echo tmp_empty=$(ls -A /tmp | grep -vc probe); \
         (ls {host_tmp} >/dev/null 2>&1 && echo work=seen) || echo work=hidden; \
         echo sandbox=$MESOS_SANDBOX; echo pwd=$(pwd); echo hi > made-inside"
    );
    a.launch("probe", json!({"value": probe}));
    let end = a.end().await;
    assert_eq!(end.state, "TASK_FINISHED", "{end:?}");
    let seen = lines(&a.stdout("probe"));
    assert_eq!(
        seen["pid"], "2",
        "the task is PID 2 under its init: {seen:?}"
    );
    assert_eq!(seen["ppid"], "1");
    assert!(seen["pid1"].starts_with("keel-agent init"), "{seen:?}");
    assert_eq!(seen["host"], "box-1");
    let procs: u32 = seen["procs"].parse().unwrap();
    assert!(procs <= 5, "only its own processes: {procs}");
    assert_eq!(seen["etc"], "ro");
    assert_eq!(seen["tmp"], "rw");
    assert_eq!(seen["tmp_empty"], "0", "a private /tmp");
    assert_eq!(seen["work"], "hidden");
    assert_eq!(seen["sandbox"], "/mnt/mesos/sandbox");
    assert_eq!(seen["pwd"], "/mnt/mesos/sandbox");
    assert!(!std::path::Path::new("/etc/keel-probe").exists());
    let made = std::fs::read_to_string(a.sandbox("probe").join("made-inside")).unwrap();
    assert_eq!(made, "hi\n", "the sandbox is the host's");
}

#[tokio::test]
async fn kill_reaches_the_task_and_the_namespace_dies_with_it() {
    let Some(mut a) = agent(&ALL) else { return };
    // A daemon in its own session: only the end of the PID namespace takes it.
    let cmd = "setsid sh -c 'echo $$ > inner.pid; exec sleep 60' & exec sleep 60";
    a.launch("sleeper", json!({"value": cmd}));
    a.running().await;
    let deadline = Instant::now() + support::WAIT;
    while !a.sandbox("sleeper").join("inner.pid").exists() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Everything in the task's PID namespace, seen from the host: its init
    // (found by its command line, which names the task's state dir), the
    // task and the daemon.
    let dir = a.dir.path().to_string_lossy().into_owned();
    let inits: Vec<u32> = support::pids_with_cmdline(&dir)
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"keel-agent\0init"))
        })
        .collect();
    assert_eq!(inits.len(), 1, "{inits:?}");
    let sleeps = support::pids_in_pid_namespace_of(inits[0]);
    assert_eq!(sleeps.len(), 3, "init, the task, the daemon: {sleeps:?}");
    let started = Instant::now();
    a.exec.call(ExecutorCall::Kill(pb::KillTask {
        framework_id: "fw".into(),
        task_id: "sleeper".into(),
        grace_period_ms: Some(5_000),
    }));
    let end = a.end().await;
    assert_eq!(end.state, "TASK_KILLED");
    assert_eq!(end.message, "Command terminated with signal Terminated");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "SIGTERM reached it"
    );
    for pid in sleeps {
        assert!(gone(pid, Duration::from_secs(2)).await, "{pid} survived");
    }
}

#[tokio::test]
async fn without_a_pid_namespace_init_becomes_the_task() {
    let Some(mut a) = agent(&[Feature::MountNs]) else {
        return;
    };
    a.launch(
        "plain",
        json!({"value": "echo pid=$$; (touch /usr/keel-probe 2>/dev/null && echo usr=rw) || echo usr=ro; exit 3"}),
    );
    let end = a.end().await;
    assert_eq!(
        (end.state.as_str(), end.message.as_str()),
        ("TASK_FAILED", "Command exited with status 3")
    );
    let seen = lines(&a.stdout("plain"));
    assert_ne!(seen["pid"], "2");
    assert_eq!(seen["usr"], "ro");
}

#[tokio::test]
async fn a_missing_program_inside_fails_the_task_with_the_reason() {
    let Some(mut a) = agent(&ALL) else { return };
    a.launch(
        "missing",
        json!({"shell": false, "value": "/nonexistent/x"}),
    );
    let end = a.end().await;
    assert_eq!(end.state, "TASK_FAILED");
    assert!(
        end.message.contains("/nonexistent/x") && end.message.contains("No such file"),
        "{end:?}"
    );
}
