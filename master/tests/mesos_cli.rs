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
