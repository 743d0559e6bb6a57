//! Acceptance: the Mesos CLI from PyPI (`avmesos-cli`, unmodified) lists
//! Keel's agents, frameworks and tasks. Its first request used to fail
//! with "no such endpoint: /slaves".
//!
//! The CLI imports `requests` without declaring it, so the environment is
//! `avmesos-cli` plus `requests`, created once under
//! `target/avmesos-venv` (PyPI must be reachable the first time).

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use keel_api::mesos::TaskState;
use support::scheduler::{Scheduler, command_task, framework, launch};
use support::venv::{self, sh};
use support::*;

const T: Duration = Duration::from_secs(30);

/// The venv's python (`requests` is a dependency the package does not
/// declare).
fn cli_python() -> PathBuf {
    venv::python("avmesos-venv", |python, _| {
        venv::pip(python, &["avmesos-cli==1.0.0", "requests"])
    })
}

/// `mesos-cli ARGS` against the master at `addr`.
fn mesos_cli(dir: &std::path::Path, addr: &str, args: &[&str]) -> String {
    let config = dir.join("mesos-cli.toml");
    std::fs::write(&config, format!("[master]\naddress = \"{addr}\"\n")).unwrap();
    let python = cli_python();
    let venv_bin = python.parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    sh(Command::new(&python)
        .args(["-m", "avmesos.cli.mesos-cli"])
        .args(args)
        .env("MESOS_CLI_CONFIG", &config)
        .env("PATH", path))
}

#[test]
fn the_mesos_cli_lists_agents_frameworks_and_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, _agent) = master_and_agent(tmp.path());
    let agent_id = m.keel_agents()[0].id.clone();
    let mut fw = Scheduler::subscribe(m.port, framework("cli-test"));
    let offer = fw.offer(T);
    let task = command_task(&offer, "cli-sleeper", "sleep 600", 0.1, 32.0);
    assert_eq!(launch(&fw, &offer, vec![task]), 202);
    loop {
        let update = fw.update(T);
        fw.ack(&update);
        assert!(!update.state.is_terminal(), "{update:?}");
        if update.state == TaskState::TASK_RUNNING {
            break;
        }
    }

    let agents = mesos_cli(tmp.path(), &m.addr(), &["agent", "list"]);
    assert!(agents.contains(&agent_id), "{agents}");
    let frameworks = mesos_cli(tmp.path(), &m.addr(), &["framework", "list"]);
    assert!(
        frameworks.contains(&fw.framework_id) && frameworks.contains("cli-test"),
        "{frameworks}"
    );
    let tasks = mesos_cli(tmp.path(), &m.addr(), &["task", "list"]);
    assert!(tasks.contains("cli-sleeper"), "{tasks}");
}

/// A task's statuses carry its container (`container_status`) from the
/// agent through the master: in UPDATE events, GET_TASKS, `/master/state`
/// and `/tasks`, which the CLI's `task inspect` prints and where its
/// `task exec` / `attach` find the container (`statuses[0]`). The agent
/// the task runs on lists its sandbox (its `/slave(1)/state` names the
/// executor's directory) and reads its stdout, as Mesos' CLIs and web UI
/// do. (avmesos-cli 1.0.0 has no file subcommands: the agent's half is
/// read with its calls directly.)
#[test]
fn task_statuses_carry_the_container_and_the_agent_serves_the_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, _agent) = master_and_agent(tmp.path());
    let agent = m.keel_agents()[0].clone();
    let mut fw = Scheduler::subscribe(m.port, framework("cli-sandbox"));
    let offer = fw.offer(T);
    let task = command_task(
        &offer,
        "cli-out",
        "echo out-of-the-box; sleep 600",
        0.1,
        32.0,
    );
    assert_eq!(launch(&fw, &offer, vec![task]), 202);
    let mut updates = Vec::new();
    loop {
        let update = fw.update(T);
        fw.ack(&update);
        updates.push(update.clone());
        if update.state == TaskState::TASK_RUNNING {
            break;
        }
    }
    let container = updates[0]
        .container_status
        .as_ref()
        .and_then(|c| c.container_id.as_ref())
        .expect("TASK_STARTING names the container")
        .value
        .clone();
    let running = updates.last().unwrap().container_status.clone().unwrap();
    assert_eq!(running.container_id.as_ref().unwrap().value, container);
    assert!(running.executor_pid.is_some(), "{running:?}");

    let inspect = mesos_cli(tmp.path(), &m.addr(), &["task", "inspect", "cli-out"]);
    let task: serde_json::Value = serde_json::from_str(&inspect).expect("task inspect prints JSON");
    assert_eq!(
        task["statuses"][0]["container_status"]["container_id"]["value"],
        container.as_str(),
        "{inspect}"
    );
    let (_, _, body) = post_json(m.port, "/api/v1", r#"{"type":"GET_TASKS"}"#);
    let tasks: serde_json::Value = serde_json::from_str(&body).unwrap();
    let statuses = &tasks["get_tasks"]["tasks"][0]["statuses"];
    let last = statuses.as_array().unwrap().last().unwrap();
    assert_eq!(
        last["container_status"]["container_id"]["value"],
        container.as_str()
    );
    assert!(last["container_status"]["executor_pid"].is_u64(), "{last}");
    let (_, state) = http_get(m.port, "/master/state").unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    let status = &state["frameworks"][0]["tasks"][0]["statuses"][0];
    assert_eq!(
        status["container_status"]["container_id"]["value"],
        container.as_str()
    );

    // The agent: its state names the sandbox, its API lists and reads it.
    let (code, agent_state) = http_get(agent.port, "/slave(1)/state").unwrap();
    assert_eq!(code, 200, "{agent_state}");
    let agent_state: serde_json::Value = serde_json::from_str(&agent_state).unwrap();
    let executor = &agent_state["frameworks"][0]["executors"][0];
    assert_eq!(executor["tasks"][0]["id"], "cli-out");
    assert_eq!(executor["container"], container.as_str());
    let dir = executor["directory"].as_str().unwrap().to_string();
    let list = format!(r#"{{"type":"LIST_FILES","list_files":{{"path":"{dir}"}}}}"#);
    let (code, _, listing) = post_json(agent.port, "/api/v1", &list);
    assert_eq!(code, 200, "{listing}");
    assert!(listing.contains(&format!("{dir}/stdout")), "{listing}");
    let read =
        format!(r#"{{"type":"READ_FILE","read_file":{{"path":"{dir}/stdout","offset":0}}}}"#);
    let (code, _, body) = post_json(agent.port, "/api/v1", &read);
    assert_eq!(code, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let data = keel_api::mesos::base64_decode(answer["read_file"]["data"].as_str().unwrap());
    let stdout = String::from_utf8(data.unwrap()).unwrap();
    assert!(stdout.contains("out-of-the-box"), "{stdout}");

    // The real agent's flags, under Mesos' names, and its statistics.
    let (_, flags) = http_get(agent.port, "/slave(1)/flags").unwrap();
    let flags: serde_json::Value = serde_json::from_str(&flags).unwrap();
    assert_eq!(flags["flags"]["master"], m.addr().as_str(), "{flags}");
    assert_eq!(flags["flags"]["port"], agent.port.to_string().as_str());
    assert!(
        flags["flags"]["work_dir"]
            .as_str()
            .unwrap()
            .ends_with("agent")
    );
    let (_, monitor) = http_get(agent.port, "/monitor/statistics").unwrap();
    let monitor: serde_json::Value = serde_json::from_str(&monitor).unwrap();
    assert_eq!(monitor[0]["executor_id"], "cli-out", "{monitor}");
    assert!(
        monitor[0]["statistics"]["mem_limit_bytes"]
            .as_u64()
            .is_some(),
        "{monitor}"
    );
}
