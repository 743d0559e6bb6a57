//! Master and agent as real processes on loopback: registration, the agent id
//! kept across restarts, unreachable after the timeout and back, master
//! restart, clean SIGTERM exits, and bad input.

mod support;

use std::process::Command;
use std::time::Duration;

use keel_api::keel::{AgentDetail, AgentState, AgentSummary, Agents};
use support::*;

fn only_agent(m: &Master) -> AgentSummary {
    let agents = m.keel_agents();
    assert_eq!(agents.len(), 1, "{agents:?}");
    agents[0].clone()
}

fn wait_agent_state(
    m: &Master,
    agent: Option<&Proc>,
    state: AgentState,
    within: Duration,
) -> AgentSummary {
    wait_for(
        within,
        &format!("agent {state}"),
        || m.keel_agents().iter().any(|a| a.state == state),
        || {
            format!(
                "{}\n---agent---\n{}",
                m.proc.log_text(),
                agent.map(Proc::log_text).unwrap_or_default()
            )
        },
    );
    only_agent(m)
}

fn nproc() -> f64 {
    let out = run_output(&mut Command::new("nproc"));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn mem_total_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: u64 = text
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    kb * 1024
}

#[test]
fn agent_registers_keeps_its_id_and_goes_unreachable_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let m = Master::start(dir.path(), free_port(), "2s");
    let mut agent = start_agent(dir.path(), &m.addr(), &["--attributes", "rack:r1;zone:a"]);
    let a = wait_agent_state(
        &m,
        Some(&agent),
        AgentState::Active,
        Duration::from_secs(30),
    );

    // Id is <master-id>-S0 and is persisted in the agent's work dir.
    let state = m.api.legacy_state().unwrap();
    let master_id = state.id.clone();
    let id = a.id.clone();
    assert_eq!(id, format!("{master_id}-S0"));
    let saved = std::fs::read_to_string(dir.path().join("agent/meta/agent_id")).unwrap();
    assert_eq!(saved.trim(), id);

    // Mesos default resources from the real machine.
    assert_eq!(a.resources.scalar("cpus"), nproc());
    let total = mem_total_bytes();
    let expected_mem = if total >= 2 << 30 {
        total - (1 << 30)
    } else {
        total / 2
    } >> 20;
    assert_eq!(a.resources.scalar("mem"), expected_mem as f64);
    assert_eq!(a.resources.text("ports").as_deref(), Some("[31000-32000]"));
    assert_eq!(a.attributes.text("rack").as_deref(), Some("r1"));

    // The legacy state shows it as an active slave with its pid.
    let slave = &state.slaves[0];
    assert_eq!(slave.id, id.as_str());
    assert!(slave.active);
    assert!(slave.pid.starts_with("slave(1)@127.0.0.1:"));
    assert_eq!(slave.attributes.text("zone").as_deref(), Some("a"));
    assert_eq!(state.activated_slaves, 1);

    // The inventory is served in full.
    let inv = m.api.inventory(&id).unwrap();
    assert_eq!(f64::from(inv.cpu.logical), nproc());
    assert!(inv.nics.iter().any(|n| n.name == "lo"));

    // Restarting the agent (SIGKILL) keeps the id: re-registration.
    agent.kill9();
    let mut agent = start_agent(dir.path(), &m.addr(), &[]);
    wait_for(
        Duration::from_secs(30),
        "re-registration",
        || only_agent(&m).reregistered_time.is_some() && only_agent(&m).state == AgentState::Active,
        || agent.log_text(),
    );
    assert_eq!(only_agent(&m).id, id.as_str());

    // Silence beyond the 2 s agent timeout: unreachable, gone from `slaves`.
    agent.kill9();
    wait_agent_state(&m, None, AgentState::Unreachable, Duration::from_secs(10));
    let state = m.api.legacy_state().unwrap();
    assert_eq!(state.unreachable_slaves, 1);
    assert_eq!(state.slaves.len(), 0);

    // Re-registration brings it back under the same id.
    let mut agent = start_agent(dir.path(), &m.addr(), &[]);
    let back = wait_agent_state(
        &m,
        Some(&agent),
        AgentState::Active,
        Duration::from_secs(30),
    );
    assert_eq!(back.id, id.as_str());
    assert!(back.unreachable_time.is_none());

    // Both exit 0 on SIGTERM.
    assert!(
        agent.terminate(Duration::from_secs(10)).success(),
        "{}",
        agent.log_text()
    );
    let mut m = m;
    assert!(
        m.proc.terminate(Duration::from_secs(10)).success(),
        "{}",
        m.proc.log_text()
    );
}

#[test]
fn master_restart_keeps_the_registry_and_agents_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut m = Master::start(dir.path(), port, "5s");
    let agent = start_agent(dir.path(), &m.addr(), &[]);
    let a = wait_agent_state(
        &m,
        Some(&agent),
        AgentState::Active,
        Duration::from_secs(30),
    );
    let before = m.api.legacy_state().unwrap();

    m.proc.kill9();
    let m = Master::start(dir.path(), port, "5s");
    let after = m.api.legacy_state().unwrap();
    assert_eq!(after.id, before.id, "master id survives a crash");

    let back = wait_agent_state(
        &m,
        Some(&agent),
        AgentState::Active,
        Duration::from_secs(30),
    );
    assert_eq!(back.id, a.id);
    assert_eq!(back.registered_time, a.registered_time);
    assert_eq!(m.keel_agents().len(), 1);
}

#[test]
fn operator_api_answers_mesos_calls() {
    let dir = tempfile::tempdir().unwrap();
    let m = Master::start(dir.path(), free_port(), "5s");
    let agent = start_agent(
        dir.path(),
        &m.addr(),
        &["--resources", "cpus:1.5;mem:512;disk(eng):100"],
    );
    let a = wait_agent_state(
        &m,
        Some(&agent),
        AgentState::Active,
        Duration::from_secs(30),
    );
    assert_eq!(a.resources.scalar("cpus"), 1.5);
    assert_eq!(a.resources.scalar("mem"), 512.0);

    for path in ["/api/v1", "/api/v1/operator", "/master/api/v1"] {
        let (status, headers, body) = post_json(m.port, path, r#"{"type":"GET_HEALTH"}"#);
        assert_eq!(status, 200, "{path}: {body}");
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "content-type" && v == "application/json")
        );
        assert_eq!(
            body,
            r#"{"get_health":{"healthy":true},"type":"GET_HEALTH"}"#
        );
    }

    let v = m.api.get_agents().unwrap();
    let agent_info = &v.agents[0].agent_info;
    assert_eq!(agent_info.id.as_ref().unwrap().value, a.id);
    let resources = &agent_info.resources;
    assert!(
        resources
            .iter()
            .any(|r| r.name == "disk" && r.role.as_deref() == Some("eng"))
    );
    assert!(
        resources
            .iter()
            .any(|r| r.name == "cpus" && r.scalar_value() == 1.5)
    );

    let v = m.api.get_state().unwrap();
    assert_eq!(v.get_agents.agents.len(), 1);

    let v = m.api.get_master().unwrap();
    assert_eq!(v.master_info.port, m.port);
    // 127.0.0.1 in libprocess' packing.
    assert_eq!(v.master_info.ip, 16777343u32);

    let v = m.api.get_version().unwrap();
    let version = v.version.as_str();
    assert!(
        version.split('.').all(|p| p.parse::<u32>().is_ok()),
        "{version}"
    );
    // When it was built: seconds, and the same as a UTC date.
    let build_time = v.build_time.expect("build_time");
    assert!(build_time > 1.5e9, "{build_time}");
    let build_date = v.build_date.as_deref().expect("build_date");
    assert_eq!(
        build_date.len(),
        "2024-08-23 12:34:56".len(),
        "{build_date}"
    );

    let legacy = m.api.version().unwrap();
    assert_eq!(legacy.version, version);
    assert_eq!(legacy.build_time, Some(build_time));
    assert_eq!(legacy.build_date.as_deref(), Some(build_date));

    let (status, _, body) = http(m.port, "GET", "/master/state?jsonp=cb", &[], b"").unwrap();
    assert_eq!(status, 200);
    assert!(body.starts_with("cb({") && body.ends_with("});"), "{body}");
}

#[test]
fn bad_input_gets_a_reason_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = Master::start(dir.path(), free_port(), "5s");

    // (method, headers, body, expected status, text the reason must contain)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, u16, &'a str);
    let cases: &[Case] = &[
        (
            "POST",
            &[("Content-Type", "application/json")],
            "{not json",
            400,
            "Failed to parse body into JSON",
        ),
        (
            "POST",
            &[("Content-Type", "application/json")],
            r#"{"type":"FROB"}"#,
            400,
            "unknown call type 'FROB'",
        ),
        (
            "POST",
            &[("Content-Type", "application/json")],
            r#"{"get_health":{}}"#,
            400,
            "Missing required fields: type",
        ),
        (
            "POST",
            &[("Content-Type", "application/json")],
            r#"{"type":"UNKNOWN"}"#,
            501,
            "Unknown call type",
        ),
        (
            "POST",
            &[],
            r#"{"type":"GET_HEALTH"}"#,
            400,
            "Expecting 'Content-Type' to be present",
        ),
        (
            "POST",
            &[("Content-Type", "text/xml")],
            "<x/>",
            415,
            "application/json",
        ),
        ("GET", &[], "", 405, "Expecting POST"),
    ];
    for (method, headers, body, want, needle) in cases {
        let (status, hdrs, text) =
            http(m.port, method, "/api/v1", headers, body.as_bytes()).unwrap();
        assert_eq!(status, *want, "{method} {body}: {text}");
        assert!(
            text.contains(needle),
            "{method} {body}: {text:?} lacks {needle:?}"
        );
        if *want == 405 {
            assert!(hdrs.iter().any(|(k, v)| k == "allow" && v == "POST"));
        }
    }
    let (status, body) = http_get(m.port, "/api/keel/v1/agents/nope/inventory").unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("unknown agent nope"));
    let (status, _) = http_get(m.port, "/master/state?jsonp=alert(1)").unwrap();
    assert_eq!(status, 400);

    // The master is still serving.
    assert_eq!(http_get(m.port, "/health").unwrap().0, 200);

    // A malformed --resources is a clear startup error of the agent.
    let out = run_output(
        Command::new(bin("keel-agent"))
            .args(["--master", &m.addr(), "--work-dir"])
            .arg(dir.path().join("bad-agent"))
            .args(["--resources", "cpus:four;mem:1024"]),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--resources") && err.contains("cpus:four"),
        "{err}"
    );

    let out = run_output(Command::new(bin("keel-agent")).args([
        "--master",
        &m.addr(),
        "--attributes",
        "rack:{a,b}",
    ]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--attributes"));

    // Nothing registered, master healthy.
    assert!(m.keel_agents().is_empty());
}

#[test]
fn a_corrupt_registry_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("master");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("registry.log"),
        "{\"command\":\"bootstrap\",\"master_id\":\"m\"}\ngarbage\n{\"command\":\"bootstrap\",\"master_id\":\"n\"}\n",
    )
    .unwrap();
    let out = run_output(
        Command::new(bin("keel-master"))
            .args(["--port", &free_port().to_string(), "--work-dir"])
            .arg(&work),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2 is corrupt"), "{err}");
}

#[test]
fn keelctl_lists_agents_and_shows_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let m = Master::start(dir.path(), free_port(), "5s");
    let agent = start_agent(dir.path(), &m.addr(), &[]);
    let a = wait_agent_state(
        &m,
        Some(&agent),
        AgentState::Active,
        Duration::from_secs(30),
    );
    let id = a.id.as_str();

    let out = run_output(Command::new(bin("keelctl")).args([
        "--master",
        &m.addr(),
        "agents",
        "-o",
        "json",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Agents = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.agents[0].id, id);

    let out = run_output(Command::new(bin("keelctl")).args(["--master", &m.addr(), "agents"]));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with("ID") && table.contains(id) && table.contains("active"),
        "{table}"
    );

    let out = run_output(Command::new(bin("keelctl")).args(["--master", &m.addr(), "agent", id]));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NICs:") && text.contains("Disks:"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("lo ")), "{text}");

    let out = run_output(Command::new(bin("keelctl")).args([
        "--master",
        &m.addr(),
        "agent",
        id,
        "-o",
        "json",
    ]));
    let v: AgentDetail = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.inventory.cpu.logical >= 1);

    let out =
        run_output(Command::new(bin("keelctl")).args(["--master", &m.addr(), "agent", "nope"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown agent nope"));

    // The first master of the list is down: keelctl finds the live one,
    // for reads and for `run` alike.
    let masters = format!("127.0.0.1:{},{}", free_port(), m.addr());
    let out = run_output(Command::new(bin("keelctl")).args(["--master", &masters, "agents"]));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(id),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_output(Command::new(bin("keelctl")).args([
        "--master", &masters, "run", "--cpus", "0.1", "--mem", "32", "--", "true",
    ]));
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("TASK_FINISHED"));
}
