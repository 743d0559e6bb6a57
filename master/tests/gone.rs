//! MARK_AGENT_GONE with real processes (`docs/design/0006-trust.md`,
//! "Revocation"): on a TLS master with token admission, an agent admitted
//! by a join token and holding its certificate runs a task; the operator
//! marks it gone: its session closes, its task is TASK_GONE_BY_OPERATOR
//! (the framework hears it, GET_TASKS shows it), and it cannot register
//! again, neither on its certificate nor with a new join token. The same
//! on a plaintext, open master.

mod support;

use std::path::Path;
use std::time::Duration;

use keel_api::mesos::TaskState;
use keel_api::scheduler::Event;
use keel_client::ClientError;
use keel_client::blocking::Subscription;
use keel_pki::Ca;
use serde_json::json;
use support::scheduler::{command_task, info};
use support::*;

const T: Duration = Duration::from_secs(30);

/// The agent's first registration, then a PARTITION_AWARE framework with
/// one task running on it: the agent id and the subscription.
fn running_task(m: &Master, agent: &Proc) -> (String, Subscription) {
    wait_for(
        T,
        "the agent registered",
        || m.api.keel_agents().is_ok_and(|a| a.agents.len() == 1),
        || agent.log_text(),
    );
    let agent_id = m.keel_agents()[0].id.clone();
    let framework = info(json!({
        "user": "root",
        "name": "gone",
        "capabilities": [{"type": "PARTITION_AWARE"}],
    }));
    let mut fw = m.api.subscribe_framework(framework).unwrap();
    let Some(Event::Offers(offers)) = fw.next_of("OFFERS", T).unwrap() else {
        panic!("no offer; {}", agent.log_text())
    };
    let task = command_task(&offers[0], "sleeper", "sleep 600", 0.1, 32.0);
    fw.launch(&offers[0], vec![task], None).unwrap();
    loop {
        let Some(Event::Update(st)) = fw.next_of("UPDATE", T).unwrap() else {
            panic!("no update; {}", agent.log_text())
        };
        fw.acknowledge(&st).unwrap();
        assert!(!st.state.is_terminal(), "{st:?}; {}", agent.log_text());
        if st.state == TaskState::TASK_RUNNING {
            break;
        }
    }
    (agent_id, fw)
}

/// Marks the agent gone and checks what follows on the master's side.
fn mark_gone(m: &Master, agent_id: &str, fw: &mut Subscription) {
    m.api.mark_agent_gone(agent_id).unwrap();
    let Some(Event::Update(st)) = fw.next_of("UPDATE", T).unwrap() else {
        panic!("no TASK_GONE_BY_OPERATOR; {}", m.proc.log_text())
    };
    assert_eq!(st.state, TaskState::TASK_GONE_BY_OPERATOR);
    assert_eq!(
        st.reason.as_deref(),
        Some("REASON_AGENT_REMOVED_BY_OPERATOR")
    );
    let tasks = m.api.get_tasks().unwrap();
    assert!(tasks.tasks.is_empty(), "{tasks:?}");
    let gone = tasks
        .completed_tasks
        .iter()
        .find(|t| t.task_id.value == "sleeper")
        .expect("the task among the completed ones");
    assert_eq!(gone.state, TaskState::TASK_GONE_BY_OPERATOR);
    assert!(m.keel_agents().is_empty(), "the agent left the registry");
    // A repeat is answered 200; an unknown agent 404, as Mesos does.
    m.api.mark_agent_gone(agent_id).unwrap();
    match m.api.mark_agent_gone("no-such-agent") {
        Err(ClientError::Status { status, reason, .. }) => {
            assert_eq!(status, 404);
            assert_eq!(reason, "Agent 'no-such-agent' not found");
        }
        other => panic!("{other:?}"),
    }
}

/// The agent is refused, says why, and stays out.
fn stays_out(m: &Master, agent: &Proc, agent_id: &str, attempts: usize) {
    let said = |text: String| text.matches("was marked gone by an operator").count();
    wait_for(
        T,
        "the agent told it was marked gone, more than once",
        || said(agent.log_text()) >= attempts,
        || agent.log_text(),
    );
    assert!(m.keel_agents().is_empty());
    let log = m.proc.log_text();
    assert!(
        log.contains("agent refused") && log.contains(&format!("agent {agent_id} was marked gone")),
        "{log}"
    );
}

#[test]
fn a_gone_agent_loses_its_task_session_and_certificate_on_a_secure_master() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ca = Ca::create("gone test").unwrap();
    let (m, ca_file) = start_secure_master(root, &ca, &[]);
    let ca_file = ca_file.display().to_string();
    let token = |uses| {
        let request = keel_api::keel::CreateToken {
            kind: keel_api::keel::TokenKind::Join,
            principal: None,
            ttl_seconds: Some(3600),
            uses: Some(uses),
        };
        m.api.create_token(&request).unwrap().token
    };
    let dir = root.join("a");
    std::fs::create_dir_all(&dir).unwrap();
    let first = token(1);
    let flags = [
        "--tls-ca",
        &ca_file,
        "--join-token",
        &first,
        "--resources",
        "cpus:2;mem:512",
    ];
    let mut agent = start_agent(&dir, &m.addr(), &flags);
    let (agent_id, mut fw) = running_task(&m, &agent);
    let cert = dir.join("agent").join("tls").join("agent.crt");
    wait_for(
        T,
        "the agent's certificate",
        || cert.exists(),
        || agent.log_text(),
    );

    mark_gone(&m, &agent_id, &mut fw);
    // Its session closed, with the reason; it retries on its certificate
    // and is refused each time.
    stays_out(&m, &agent, &agent_id, 2);

    // Restarted on its certificate, or with a new join token: refused,
    // and the token is not spent.
    agent.kill9();
    let fresh = token(1);
    let flags = ["--tls-ca", &ca_file, "--join-token", &fresh];
    let again = start_agent(&dir, &m.addr(), &flags);
    stays_out(&m, &again, &agent_id, 1);
    let tokens = m.api.tokens().unwrap();
    let unspent = tokens.tokens.iter().any(|t| t.uses_left == Some(1));
    assert!(unspent, "{tokens:?}");
}

#[test]
fn a_gone_agent_cannot_come_back_to_an_open_master() {
    let tmp = tempfile::tempdir().unwrap();
    let root: &Path = tmp.path();
    let m = Master::start(root, free_port(), "3s");
    let agent = start_agent(root, &m.addr(), &["--resources", "cpus:2;mem:512"]);
    let (agent_id, mut fw) = running_task(&m, &agent);
    mark_gone(&m, &agent_id, &mut fw);
    stays_out(&m, &agent, &agent_id, 2);
}
