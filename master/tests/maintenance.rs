//! Maintenance and drain with real processes (`docs/design/0010-maintenance.md`):
//! a framework with a task on an agent whose machine is scheduled gets
//! inverse offers and offers with the unavailability, and its answer
//! shows in GET_MAINTENANCE_STATUS; DRAIN_AGENT kills the task with the
//! drain's grace period (the task ignores SIGTERM), the agent is DRAINED
//! and gets no offers until REACTIVATE_AGENT; START_MAINTENANCE removes
//! the agent and STOP_MAINTENANCE lets it back. The legacy endpoints,
//! keelctl and bad input on one master; the schedule and a drain survive
//! a kill -9 of the leader of three.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use keel_api::keel::AgentState;
use keel_api::mesos::{Id, Nanos, TaskState};
use keel_api::operator::maintenance::{
    DrainState, InverseOfferAnswer, MachineId, Schedule, Unavailability, Window,
};
use keel_api::scheduler::Event;
use keel_client::ClientError;
use keel_client::blocking::Subscription;
use serde_json::json;
use support::scheduler::{command_task, info};
use support::*;

const T: Duration = Duration::from_secs(30);

/// The machine of the (only) agent: its hostname and IP as registered.
fn the_machine(m: &Master) -> (String, MachineId) {
    let a = &m.keel_agents()[0];
    let id = MachineId {
        hostname: Some(a.hostname.clone()),
        ip: Some(a.ip.clone()),
    };
    (a.id.clone(), id)
}

fn schedule_of(machine: &MachineId, start_ns: i64) -> Schedule {
    Schedule {
        windows: vec![Window {
            machine_ids: vec![machine.clone()],
            unavailability: Unavailability {
                start: Nanos {
                    nanoseconds: start_ns,
                },
                duration: Some(Nanos {
                    nanoseconds: 3_600_000_000_000,
                }),
            },
        }],
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// A framework with one task on the agent that ignores SIGTERM and asks
/// for a 60 s grace period: the subscription.
fn stubborn_task(m: &Master, agent: &Proc) -> Subscription {
    let mut fw = m
        .api
        .subscribe_framework(info(json!({"user": "root", "name": "maint"})))
        .unwrap();
    let Some(Event::Offers(offers)) = fw.next_of("OFFERS", T).unwrap() else {
        panic!("no offer; {}", agent.log_text())
    };
    let mut task = command_task(&offers[0], "stubborn", "trap '' TERM; sleep 600", 0.1, 32.0);
    task.kill_policy = Some(keel_api::mesos::KillPolicy {
        grace_period: Some(Nanos {
            nanoseconds: 60_000_000_000,
        }),
    });
    fw.launch(&offers[0], vec![task], Some(0.0)).unwrap();
    loop {
        let Some(Event::Update(st)) = fw.next_of("UPDATE", T).unwrap() else {
            panic!("no update; {}", agent.log_text())
        };
        fw.acknowledge(&st).unwrap();
        assert!(!st.state.is_terminal(), "{st:?}; {}", agent.log_text());
        if st.state == TaskState::TASK_RUNNING {
            return fw;
        }
    }
}

/// Passes over what the framework was sent so far.
fn skip_backlog(fw: &mut Subscription) {
    while let Some(Ok(_)) = fw.next(Duration::from_millis(50)) {}
}

fn drain_state(m: &Master, agent_id: &str) -> Option<DrainState> {
    let agents = m.api.get_agents().unwrap().agents;
    let a = agents.iter().find(|a| a.id() == agent_id)?;
    a.drain_info.as_ref().map(|d| d.state)
}

#[test]
fn inverse_offers_drain_and_machines_down_and_up() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let m = Master::start(root, free_port(), "5s");
    let agent = start_agent(root, &m.addr(), &["--resources", "cpus:2;mem:512"]);
    wait_for(
        T,
        "the agent registered",
        || m.api.keel_agents().is_ok_and(|a| a.agents.len() == 1),
        || agent.log_text(),
    );
    let (agent_id, machine) = the_machine(&m);
    let mut fw = stubborn_task(&m, &agent);

    // The schedule covers the agent's machine: the framework, which runs
    // a task there, is asked for it back.
    let start = now_ns() + 3_600_000_000_000;
    m.api
        .update_maintenance_schedule(schedule_of(&machine, start))
        .unwrap();
    let Some(Event::InverseOffers(inverse)) = fw.next_of("INVERSE_OFFERS", T).unwrap() else {
        panic!("no inverse offer; {}", m.proc.log_text())
    };
    assert_eq!(inverse.len(), 1, "{inverse:?}");
    assert_eq!(inverse[0].agent_id.as_ref().unwrap().value, agent_id);
    assert_eq!(inverse[0].unavailability.start.nanoseconds, start);
    // GET_FRAMEWORKS shows it outstanding.
    let frameworks = m.api.get_frameworks().unwrap().frameworks;
    let outstanding = frameworks[0].inverse_offers.clone().unwrap_or_default();
    assert_eq!(outstanding.len(), 1, "{outstanding:?}");
    assert_eq!(outstanding[0]["id"]["value"], inverse[0].id.value.as_str());
    // Offers of the agent carry the unavailability (offers made before
    // the schedule were rescinded).
    fw.revive(Vec::new()).unwrap();
    let offer = loop {
        let Some(Event::Offers(offers)) = fw.next_of("OFFERS", T).unwrap() else {
            panic!("no offer after REVIVE; {}", m.proc.log_text())
        };
        if let Some(o) = offers.into_iter().find(|o| o.unavailability.is_some()) {
            break o;
        }
    };
    assert_eq!(offer.unavailability.unwrap().start.nanoseconds, start);
    fw.decline(vec![offer.id.clone()], Some(0.0)).unwrap();
    // The framework declines the inverse offer: the status says so.
    fw.answer_inverse_offers(false, vec![inverse[0].id.clone()], Some(3600.0))
        .unwrap();
    let fid = fw.framework_id().value.clone();
    wait_for(
        T,
        "the framework's answer in GET_MAINTENANCE_STATUS",
        || {
            let s = m.api.get_maintenance_status().unwrap();
            s.draining_machines.len() == 1
                && s.draining_machines[0].statuses.iter().any(|st| {
                    st.framework_id.value == fid && st.status == InverseOfferAnswer::DECLINE
                })
        },
        || m.proc.log_text(),
    );

    // DRAIN_AGENT, grace capped at 2 s: the task, which ignores SIGTERM
    // and asked for 60 s, is killed after about 2 s.
    let asked = Instant::now();
    m.api
        .drain_agent(&agent_id, Some(Duration::from_secs(2)), false)
        .unwrap();
    assert_eq!(drain_state(&m, &agent_id), Some(DrainState::DRAINING));
    let killed = loop {
        let Some(Event::Update(st)) = fw.next_of("UPDATE", T).unwrap() else {
            panic!("no update after DRAIN_AGENT; {}", agent.log_text())
        };
        fw.acknowledge(&st).unwrap();
        if st.state.is_terminal() {
            break st;
        }
    };
    let took = asked.elapsed();
    assert_eq!(killed.state, TaskState::TASK_KILLED, "{killed:?}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(20),
        "killed after {took:?}; {}",
        agent.log_text()
    );
    wait_for(
        T,
        "the agent DRAINED",
        || drain_state(&m, &agent_id) == Some(DrainState::DRAINED),
        || m.proc.log_text(),
    );
    let agents = m.api.get_agents().unwrap().agents;
    assert!(agents[0].deactivated, "{agents:?}");
    let slave = &m.api.legacy_state().unwrap().slaves[0];
    assert!(slave.deactivated);
    assert_eq!(
        slave.drain_info.as_ref().map(|d| d.state),
        Some(DrainState::DRAINED)
    );
    // Drained: no offers, even when asked.
    skip_backlog(&mut fw);
    fw.revive(Vec::new()).unwrap();
    assert!(
        fw.next_of("OFFERS", Duration::from_secs(3))
            .unwrap()
            .is_none(),
        "a drained agent was offered"
    );

    // REACTIVATE_AGENT: offers again, the drain is over.
    m.api.reactivate_agent(&agent_id).unwrap();
    let Some(Event::Offers(offers)) = fw.next_of("OFFERS", T).unwrap() else {
        panic!("no offer after REACTIVATE_AGENT; {}", m.proc.log_text())
    };
    assert_eq!(offers[0].agent_id.value, agent_id);
    assert_eq!(drain_state(&m, &agent_id), None);
    assert!(!m.api.get_agents().unwrap().agents[0].deactivated);

    // START_MAINTENANCE: the agent is removed and kept out; STOP lets it
    // back under its id, and the machine leaves the schedule.
    m.api.start_maintenance(vec![machine.clone()]).unwrap();
    assert!(m.keel_agents().is_empty(), "the agent left");
    let status = m.api.get_maintenance_status().unwrap();
    assert_eq!(status.down_machines, vec![machine.clone()]);
    assert!(status.draining_machines.is_empty());
    wait_for(
        T,
        "the agent told its machine is down",
        || agent.log_text().contains("down for maintenance"),
        || agent.log_text(),
    );
    assert!(
        m.keel_agents().is_empty(),
        "no agent while the machine is down"
    );
    m.api.stop_maintenance(vec![machine.clone()]).unwrap();
    wait_for(
        T,
        "the agent back with its id",
        || {
            m.keel_agents()
                .iter()
                .any(|a| a.id == agent_id && a.state == AgentState::Active)
        },
        || agent.log_text(),
    );
    assert!(m.api.get_maintenance_schedule().unwrap().windows.is_empty());
    let status = m.api.get_maintenance_status().unwrap();
    assert!(status.down_machines.is_empty() && status.draining_machines.is_empty());
}

/// The reason of a refused call, with its status.
fn refused(r: Result<(), ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Status { status, reason, .. }) => (status, reason),
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn legacy_endpoints_keelctl_and_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let m = Master::start(root, free_port(), "5s");
    let agent = start_agent(root, &m.addr(), &["--resources", "cpus:1;mem:256"]);
    wait_for(
        T,
        "the agent registered",
        || m.api.keel_agents().is_ok_and(|a| a.agents.len() == 1),
        || agent.log_text(),
    );
    let (agent_id, machine) = the_machine(&m);

    // Legacy: POST and GET the schedule, the status, down and up.
    let s = schedule_of(&machine, 5);
    m.api.legacy_update_maintenance_schedule(&s).unwrap();
    assert_eq!(m.api.legacy_maintenance_schedule().unwrap(), s);
    assert_eq!(m.api.get_maintenance_schedule().unwrap(), s);
    let (code, _, body) = http(
        m.port,
        "GET",
        "/master/maintenance/schedule?jsonp=cb",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(code, 200);
    assert!(body.starts_with("cb({\"windows\""), "{body}");
    let status = m.api.legacy_maintenance_status().unwrap();
    assert_eq!(status.draining_machines[0].id, machine);
    m.api
        .legacy_machines(true, std::slice::from_ref(&machine))
        .unwrap();
    assert_eq!(
        m.api.legacy_maintenance_status().unwrap().down_machines,
        vec![machine.clone()]
    );
    assert!(m.keel_agents().is_empty());
    m.api
        .legacy_machines(false, std::slice::from_ref(&machine))
        .unwrap();
    wait_for(
        T,
        "the agent back",
        || m.keel_agents().len() == 1,
        || agent.log_text(),
    );

    // Bad input: 4xx with a reason, and nothing changes.
    let before = m.api.get_maintenance_schedule().unwrap();
    let twice = Schedule {
        windows: vec![
            schedule_of(&machine, 1).windows[0].clone(),
            schedule_of(&machine, 2).windows[0].clone(),
        ],
    };
    let (code, reason) = refused(m.api.update_maintenance_schedule(twice));
    assert_eq!(code, 400);
    assert!(reason.contains("appears more than once"), "{reason}");
    let nameless = schedule_of(&MachineId::default(), 1);
    let (code, reason) = refused(m.api.update_maintenance_schedule(nameless));
    assert_eq!(code, 400);
    assert!(reason.contains("'hostname' and 'ip'"), "{reason}");
    let (code, reason) = refused(
        m.api
            .start_maintenance(vec![MachineId::hostname("nowhere")]),
    );
    assert_eq!(code, 400);
    assert!(
        reason.contains("not part of a maintenance schedule"),
        "{reason}"
    );
    let (code, reason) = refused(m.api.stop_maintenance(vec![machine.clone()]));
    assert_eq!(code, 400);
    assert!(reason.contains("not in DOWN mode"), "{reason}");
    for r in [
        m.api.drain_agent("no-such-agent", None, false),
        m.api.deactivate_agent("no-such-agent"),
        m.api.reactivate_agent("no-such-agent"),
    ] {
        assert_eq!(
            refused(r),
            (404, "Agent 'no-such-agent' not found".to_string())
        );
    }
    let (code, _, body) = post_json(
        m.port,
        "/api/v1",
        r#"{"type":"UPDATE_MAINTENANCE_SCHEDULE","update_maintenance_schedule":{"schedule":{"windows":[{"machine_ids":[{"hostname":"a"}]}]}}}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("unavailability"), "{body}");
    let (code, _, body) = post_json(m.port, "/master/machine/down", r#"{"hostname":"a"}"#);
    assert_eq!(code, 400, "{body}");
    let (code, _, body) = post_json(
        m.port,
        "/api/v1",
        r#"{"type":"DRAIN_AGENT","drain_agent":{"agent_id":{"value":"x"},"max_grace_period":"soon"}}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(m.api.get_maintenance_schedule().unwrap(), before);
    assert!(m.api.get_agents().unwrap().agents[0].drain_info.is_none());

    // keelctl: a schedule from a file, the status, deactivate and
    // reactivate.
    let keelctl = |args: &[&str]| {
        let out = run_output(
            Command::new(bin("keelctl"))
                .args(["--master", &m.addr()])
                .args(args),
        );
        assert!(
            out.status.success(),
            "keelctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let file = write_file(
        root,
        "schedule.json",
        &json!({"windows": [{"machine_ids": [{"hostname": "elsewhere"}],
            "unavailability": {"start": {"nanoseconds": 0}}}]})
        .to_string(),
    );
    keelctl(&["maintenance", "schedule", "--file", file.to_str().unwrap()]);
    let shown = keelctl(&["maintenance", "schedule"]);
    assert!(shown.contains("elsewhere"), "{shown}");
    let status = keelctl(&["maintenance", "status"]);
    assert!(
        status.contains("elsewhere") && status.contains("DRAINING"),
        "{status}"
    );
    keelctl(&["deactivate", &agent_id]);
    assert!(m.api.get_agents().unwrap().agents[0].deactivated);
    keelctl(&["reactivate", &agent_id]);
    assert!(!m.api.get_agents().unwrap().agents[0].deactivated);
    keelctl(&["drain", &agent_id, "--grace", "1s"]);
    wait_for(
        T,
        "the idle agent DRAINED",
        || drain_state(&m, &agent_id) == Some(DrainState::DRAINED),
        || m.proc.log_text(),
    );
    let drained = m.api.get_agents().unwrap().agents[0]
        .drain_info
        .clone()
        .unwrap();
    assert_eq!(
        drained.config.max_grace_period.map(|d| d.nanos),
        Some(1_000_000_000)
    );
    // Drained again with --mark-gone: the agent is gone for good.
    keelctl(&["drain", &agent_id, "--mark-gone"]);
    wait_for(
        T,
        "the drained agent gone",
        || m.keel_agents().is_empty(),
        || m.proc.log_text(),
    );
    let (code, reason) = refused(m.api.drain_agent(&agent_id, None, false));
    assert_eq!(code, 404);
    assert_eq!(reason, format!("Agent '{agent_id}' not found"));
    wait_for(
        T,
        "the agent refused as gone",
        || agent.log_text().contains("was marked gone by an operator"),
        || agent.log_text(),
    );
}

fn cluster(dir: &Path) -> (Vec<Master>, String) {
    three_masters(dir)
}

fn serving_leader(masters: &[Master], skip: Option<usize>) -> usize {
    let mut found = None;
    wait_for(
        T,
        "a serving leader",
        || {
            found = (0..masters.len())
                .filter(|i| Some(*i) != skip)
                .find(|i| masters[*i].api.get_health().unwrap_or(false));
            found.is_some()
        },
        || {
            masters
                .iter()
                .map(|m| m.proc.log_text())
                .collect::<Vec<_>>()
                .join("\n---\n")
        },
    );
    found.unwrap()
}

#[test]
fn the_schedule_and_a_drain_survive_a_leader_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (mut masters, list) = cluster(root);
    let l = serving_leader(&masters, None);
    let agent = start_agent(root, &list, &["--resources", "cpus:1;mem:256"]);
    wait_for(
        T,
        "the agent registered",
        || {
            masters[l]
                .api
                .keel_agents()
                .is_ok_and(|a| a.agents.len() == 1)
        },
        || agent.log_text(),
    );
    let (agent_id, machine) = the_machine(&masters[l]);
    let s = schedule_of(&machine, 42);
    masters[l]
        .api
        .update_maintenance_schedule(s.clone())
        .unwrap();
    masters[l]
        .api
        .drain_agent(&agent_id, Some(Duration::from_secs(1)), false)
        .unwrap();
    wait_for(
        T,
        "the agent DRAINED",
        || drain_state(&masters[l], &agent_id) == Some(DrainState::DRAINED),
        || masters[l].proc.log_text(),
    );

    masters[l].proc.kill9();
    let n = serving_leader(&masters, Some(l));
    let new = &masters[n];
    assert_eq!(new.api.get_maintenance_schedule().unwrap(), s);
    assert_eq!(drain_state(new, &agent_id), Some(DrainState::DRAINED));
    // The agent comes back to the new leader, still drained: a framework
    // gets no offer of it until it is reactivated there.
    wait_for(
        T,
        "the agent re-registered",
        || {
            new.keel_agents()
                .iter()
                .any(|a| a.id == agent_id && a.state == AgentState::Active)
        },
        || format!("{}\n---\n{}", new.proc.log_text(), agent.log_text()),
    );
    let mut fw = new
        .api
        .subscribe_framework(info(json!({"user": "root", "name": "after"})))
        .unwrap();
    assert!(
        fw.next_of("OFFERS", Duration::from_secs(3))
            .unwrap()
            .is_none(),
        "a drained agent was offered after the failover"
    );
    new.api.reactivate_agent(&agent_id).unwrap();
    let Some(Event::Offers(offers)) = fw.next_of("OFFERS", T).unwrap() else {
        panic!("no offer after REACTIVATE_AGENT; {}", new.proc.log_text())
    };
    assert_eq!(offers[0].agent_id, Id::new(&agent_id));
    // The offer carries the schedule's unavailability.
    assert_eq!(offers[0].unavailability.unwrap().start.nanoseconds, 42);
}
