//! Acceptance: an unmodified pymesos framework (PyPI) runs a task on Keel,
//! on an open master and with `principal`/`secret` on one that requires
//! authentication.
//!
//! The environment is [`support::venv::pymesos_python`]'s.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use keel_api::mesos::TaskState;
use support::venv::pymesos_python;
use support::*;

#[test]
fn pymesos_framework_launches_echo_hello() {
    let dir = tempfile::tempdir().unwrap();
    let m = Master::start(dir.path(), free_port(), "5s");
    echo_hello(&m, &m.api, dir.path(), &[]);
}

/// Credentials in Mesos' text form, and ACLs that let `fw` run tasks as
/// root in role `*` and nothing else.
const CREDENTIALS: &str = "fw fw-secret\nops ops-secret\n";
const ACLS: &str = r#"{"permissive": false,
  "register_frameworks": [{"principals": {"values": ["fw"]}, "roles": {"values": ["*"]}}],
  "run_tasks": [{"principals": {"values": ["fw"]}, "users": {"values": ["root"]}}],
  "view_frameworks": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}],
  "view_tasks": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}],
  "view_agents": [{"principals": {"values": ["ops"]}, "agents": {"type": "ANY"}}]}"#;

#[test]
fn pymesos_authenticates_with_principal_and_secret() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    let acls = dir.path().join("acls.json");
    std::fs::write(&creds, CREDENTIALS).unwrap();
    std::fs::write(&acls, ACLS).unwrap();
    let flags = [
        "--credentials",
        creds.to_str().unwrap(),
        "--acls",
        acls.to_str().unwrap(),
    ];
    let m = Master::start_with(dir.path(), free_port(), "5s", &flags);
    let ops = keel_client::Client::builder(&m.addr())
        .discover_leader(false)
        .credentials(Some(keel_client::Credentials::basic("ops", "ops-secret")));
    let ops = keel_client::blocking::Client::from_builder(ops).unwrap();
    echo_hello(&m, &ops, dir.path(), &["fw", "fw-secret"]);
    let framework = &ops.get_frameworks().unwrap().completed_frameworks[0];
    assert_eq!(framework.framework_info.principal.as_deref(), Some("fw"));
}

/// pymesos (with `auth`: principal, secret) runs `echo hello` on `m`;
/// `api` reads the master.
fn echo_hello(m: &Master, api: &keel_client::blocking::Client, dir: &Path, auth: &[&str]) {
    let python = pymesos_python();
    let agent = start_agent(dir, &m.addr(), &[]);
    wait_for(
        Duration::from_secs(20),
        "agent",
        || api.keel_agents().is_ok_and(|a| !a.agents.is_empty()),
        || agent.log_text(),
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pymesos/framework.py");
    let out = run_output(Command::new(python).arg(script).arg(m.addr()).args(auth));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pymesos framework failed\n{stdout}\n{stderr}\n--- master ---\n{}",
        m.proc.log_text()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("REGISTERED ")),
        "{stdout}"
    );
    let updates: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("UPDATE "))
        .collect();
    assert!(updates.contains(&"TASK_RUNNING"), "{stdout}");
    assert_eq!(updates.last(), Some(&"TASK_FINISHED"), "{stdout}");

    // The framework tore down; its task is completed in the master's view.
    let v = api.get_frameworks().unwrap();
    assert!(v.frameworks.is_empty(), "{v:?}");
    assert_eq!(
        v.completed_frameworks[0].framework_info.name,
        "pymesos-echo"
    );
    let state = api.legacy_state().unwrap();
    assert_eq!(
        state.completed_frameworks[0].completed_tasks[0].state,
        TaskState::TASK_FINISHED,
        "{state:?}"
    );
}
