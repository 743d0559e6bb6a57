//! Acceptance: custom executors (`docs/design/0014-custom-executors.md`).
//! An unmodified pymesos executor (`MesosExecutorDriver`), launched by a
//! pymesos scheduler, runs two tasks with framework messages both ways; it
//! re-subscribes after its agent is killed with SIGKILL and restarted; an
//! executor that never subscribes fails its task with Mesos' reason.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keel_api::mesos::{self, TaskState};
use serde_json::json;
use support::scheduler::{Scheduler, command_task, framework, launch};
use support::venv::pymesos_python;
use support::*;

const T: Duration = Duration::from_secs(60);

/// A pymesos scheduler (`executor_framework.py`) with `tasks` tasks in one
/// executor; its output goes to `out`.
fn framework_script(m: &Master, tasks: usize, go: Option<&Path>, out: &Path) -> Child {
    let python = pymesos_python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pymesos/executor_framework.py");
    let file = std::fs::File::create(out).unwrap();
    let mut cmd = Command::new(&python);
    cmd.arg(script)
        .arg(m.addr())
        .arg(&python)
        .arg(tasks.to_string());
    if let Some(go) = go {
        cmd.arg(go);
    }
    cmd.stdout(file.try_clone().unwrap())
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits for the script to exit; its output, and a panic with the logs if
/// it failed.
fn finished(mut child: Child, out: &Path, logs: &[&Proc]) -> String {
    let deadline = Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(out).unwrap_or_default();
    if !status.success() {
        let logs: Vec<String> = logs.iter().map(|p| p.log_text()).collect();
        panic!(
            "pymesos framework failed ({status})\n{text}\n--- logs ---\n{}",
            logs.join("\n---\n")
        );
    }
    text
}

/// Task ids the script launched.
fn launched(out: &str) -> Vec<String> {
    out.lines()
        .find_map(|l| l.strip_prefix("LAUNCHED "))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

#[test]
fn a_pymesos_executor_runs_two_tasks_with_messages_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let (m, agent) = master_and_agent(dir.path());
    let out = dir.path().join("framework.out");
    let child = framework_script(&m, 2, None, &out);
    let text = finished(child, &out, &[&m.proc, &agent]);
    let tasks = launched(&text);
    assert_eq!(tasks.len(), 2, "{text}");
    for t in &tasks {
        for line in [
            format!("UPDATE {t} TASK_RUNNING"),
            format!("UPDATE {t} TASK_FINISHED"),
            format!("MESSAGE echo-executor hello {t}"),
            format!("MESSAGE echo-executor bye {t}"),
        ] {
            assert!(text.contains(&line), "no {line:?} in\n{text}");
        }
    }
    assert!(text.contains("EXIT 0"), "{text}");
    executor_ended(&agent);
    // One executor ran both (one sandbox run).
    let runs: Vec<PathBuf> = glob_runs(&dir.path().join("agent"));
    assert_eq!(runs.len(), 1, "{runs:?}");
}

/// The executor's run directories under the agent's work dir.
fn glob_runs(work: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![work.join("slaves")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "runs")
                && p.parent().and_then(Path::parent).and_then(Path::file_name)
                    == Some(std::ffi::OsStr::new("echo-executor"))
                && p.file_name().is_some_and(|n| n != "latest")
            {
                found.push(p.clone());
            }
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            }
        }
    }
    found
}

#[test]
fn an_executor_subscribes_again_after_its_agent_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let m = Master::start(dir.path(), free_port(), "30s");
    let port = free_port();
    let mut agent = start_agent_on(dir.path(), &m.addr(), port, &[]);
    wait_for(
        T,
        "the agent registered",
        || m.keel_agents().len() == 1,
        || agent.log_text(),
    );
    let out = dir.path().join("framework.out");
    let go = dir.path().join("go");
    let child = framework_script(&m, 1, Some(&go), &out);
    let read = || std::fs::read_to_string(&out).unwrap_or_default();
    wait_for(
        T,
        "the task running",
        || read().contains("TASK_RUNNING"),
        read,
    );
    wait_for(
        T,
        "hello from the executor",
        || read().contains("hello"),
        read,
    );
    // The agent's Mesos-shaped state shows the executor with its task.
    let (status, body) = http_get(port, "/state").unwrap();
    assert_eq!(status, 200, "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ex = &state["frameworks"][0]["executors"][0];
    assert_eq!(ex["id"], "echo-executor", "{state}");
    assert_eq!(ex["tasks"].as_array().map(Vec::len), Some(1), "{ex}");
    assert!(
        ex["directory"]
            .as_str()
            .is_some_and(|d| d.contains("echo-executor")),
        "{ex}"
    );

    agent.kill9();
    let agent = start_agent_on(dir.path(), &m.addr(), port, &[]);
    wait_for(
        T,
        "the executor subscribed to the restarted agent",
        || agent.log_text().contains("executor subscribed"),
        || agent.log_text(),
    );
    std::fs::write(&go, "").unwrap();
    let text = finished(child, &out, &[&m.proc, &agent]);
    let task = &launched(&text)[0];
    assert!(
        text.contains(&format!("UPDATE {task} TASK_FINISHED")),
        "{text}"
    );
    assert!(
        text.contains(&format!("MESSAGE echo-executor bye {task}")),
        "{text}"
    );
    executor_ended(&agent);
}

/// The framework's teardown shut the executor down (no process is left
/// behind the test).
fn executor_ended(agent: &Proc) {
    wait_for(
        T,
        "the executor shut down",
        || agent.log_text().contains("executor ended"),
        || agent.log_text(),
    );
}

#[test]
fn an_executor_that_never_subscribes_fails_its_task() {
    let dir = tempfile::tempdir().unwrap();
    let m = Master::start(dir.path(), free_port(), "30s");
    let agent = start_agent(
        dir.path(),
        &m.addr(),
        &["--executor-registration-timeout", "2s"],
    );
    wait_for(
        T,
        "the agent registered",
        || m.keel_agents().len() == 1,
        || agent.log_text(),
    );
    let mut fw = Scheduler::subscribe(m.port, framework("silent-executor"));
    let offer = fw.offer(T);
    let mut task = command_task(&offer, "silent", "true", 0.1, 32.0);
    task.command = None;
    task.executor = Some(
        mesos::parse(json!({
            "executor_id": {"value": "silent-executor"}, "type": "CUSTOM",
            "command": {"value": "sleep 600"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1},
                           "allocation_info": {"role": offer.role()}}]
        }))
        .unwrap(),
    );
    assert_eq!(launch(&fw, &offer, vec![task]), 202);
    let update = fw.update(T);
    assert_eq!(update.state, TaskState::TASK_FAILED, "{update:?}");
    assert_eq!(
        update.reason.as_deref(),
        Some("REASON_EXECUTOR_REGISTRATION_TIMEOUT")
    );
    assert_eq!(
        update.message.as_deref(),
        Some("Executor did not register within 2secs")
    );
    fw.ack(&update);
    // The executor's end frees its resources and is said to the framework.
    let failure = fw.expect("FAILURE", T);
    let keel_api::scheduler::Event::Failure(f) = failure else {
        panic!("{failure:?}");
    };
    assert_eq!(f.executor_id.unwrap().value, "silent-executor");
    assert!(f.status.is_some());
    executor_ended(&agent);
}

#[test]
fn bad_executor_calls_get_mesos_answers_and_leave_the_task_alone() {
    let dir = tempfile::tempdir().unwrap();
    let m = Master::start(dir.path(), free_port(), "30s");
    let port = free_port();
    let agent = start_agent_on(dir.path(), &m.addr(), port, &[]);
    wait_for(
        T,
        "the agent registered",
        || m.keel_agents().len() == 1,
        || agent.log_text(),
    );
    let call = |body: serde_json::Value| post_json(port, "/api/v1/executor", &body.to_string());
    let subscribe = |fw: &str, ex: &str| {
        json!({"type": "SUBSCRIBE", "framework_id": {"value": fw},
               "executor_id": {"value": ex}, "subscribe": {}})
    };
    let (status, _, body) = call(subscribe("no-such-framework", "ex"));
    assert_eq!((status, body.as_str()), (400, "Framework cannot be found"));
    let (status, _, body) = call(json!({"type": "SUBSCRIBE", "executor_id": {"value": "e"}}));
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            "Failed to validate Executor::Call: Expecting 'framework_id' to be present"
        )
    );
    let (status, _, body) = http(port, "POST", "/api/v1/executor", &[], b"{}").unwrap();
    assert_eq!(
        (status, body.as_str()),
        (400, "Expecting 'Content-Type' to be present")
    );
    let (status, _, body) = post_json(port, "/api/v1/executor", "{not json");
    assert_eq!(status, 400);
    assert!(body.starts_with("Failed to parse body into JSON"), "{body}");

    // A task in an executor that has not subscribed yet (it never will).
    let mut fw = Scheduler::subscribe(m.port, framework("waiting-executor"));
    let offer = fw.offer(T);
    let mut task = command_task(&offer, "waiting", "true", 0.1, 32.0);
    task.command = None;
    task.executor = Some(
        mesos::parse(json!({"executor_id": {"value": "quiet"}, "command": {"value": "sleep 600"}}))
            .unwrap(),
    );
    assert_eq!(launch(&fw, &offer, vec![task]), 202);
    let fid = fw.framework_id.clone();
    wait_for(
        T,
        "the executor started",
        || agent.log_text().contains("executor running"),
        || agent.log_text(),
    );
    let (status, _, body) = call(subscribe(&fid, "other-executor"));
    assert_eq!((status, body.as_str()), (400, "Executor cannot be found"));
    let update = json!({"type": "UPDATE", "framework_id": {"value": fid},
        "executor_id": {"value": "quiet"},
        "update": {"status": {"task_id": {"value": "waiting"}, "state": "TASK_RUNNING",
                              "source": "SOURCE_EXECUTOR", "uuid": "AAECAwQFBgcICQoLDA0ODw=="}}});
    let (status, _, body) = call(update);
    assert_eq!((status, body.as_str()), (403, "Executor is not subscribed"));
    let forged = http(
        port,
        "POST",
        "/api/v1/executor",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer forged"),
        ],
        subscribe(&fid, "quiet").to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(forged.0, 403, "{forged:?}");
    // None of it reached the task: no update was sent.
    assert!(
        fw.next(Duration::from_secs(1))
            .is_none_or(|e| e.kind() != "UPDATE")
    );
    fw.call(keel_client::scheduler::Call::Teardown);
    executor_ended(&agent);
}
