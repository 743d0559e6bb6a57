//! The maintenance commands: what they change and what they refuse.

use super::super::*;
use super::{DrainState, MAX_MACHINES};

fn registry() -> Registry {
    let mut r = Registry::default();
    r.apply(&Command::Bootstrap {
        master_id: "m".into(),
    })
    .unwrap();
    r
}

fn admit(r: &mut Registry, host: &str) -> String {
    let info = crate::registry::tests::info(host);
    match r.apply(&Command::AdmitAgent { info, at: 1.0 }) {
        Ok(Applied::AgentAdmitted { agent_id }) => agent_id,
        other => panic!("not admitted: {other:?}"),
    }
}

fn host(h: &str) -> Machine {
    Machine::new(Some(h), None)
}

fn window(machines: &[Machine]) -> Window {
    Window {
        machines: machines.to_vec(),
        start_ns: 1_000,
        duration_ns: Some(3_600_000_000_000),
    }
}

fn schedule(windows: Vec<Window>) -> Command {
    Command::Maintenance(MaintenanceCommand::UpdateSchedule { windows })
}

fn start(machines: &[Machine]) -> Command {
    Command::Maintenance(MaintenanceCommand::Start {
        machines: machines.to_vec(),
    })
}

fn stop(machines: &[Machine]) -> Command {
    Command::Maintenance(MaintenanceCommand::Stop {
        machines: machines.to_vec(),
    })
}

/// `cmd` is refused with a reason containing `needle`, and nothing changes.
fn refused(r: &mut Registry, cmd: &Command, needle: &str) {
    let before = r.clone();
    let e = r.validate(cmd).unwrap_err();
    assert!(e.to_string().contains(needle), "{e} lacks {needle:?}");
    assert!(r.apply(cmd).is_err());
    assert_eq!(*r, before);
}

#[test]
fn a_machine_matches_agents_by_the_fields_it_sets() {
    let info = crate::registry::tests::info("Node-1");
    assert!(Machine::new(Some("node-1"), None).matches(&info));
    assert!(Machine::new(Some("NODE-1"), Some("127.0.0.1")).matches(&info));
    assert!(Machine::new(None, Some("127.0.0.1")).matches(&info));
    assert!(!Machine::new(Some("node-1"), Some("10.0.0.9")).matches(&info));
    assert!(!Machine::new(Some("node-2"), None).matches(&info));
    // Hostnames are kept in lower case: one machine, however it is spelled.
    assert_eq!(Machine::new(Some("A"), None), Machine::new(Some("a"), None));
}

#[test]
fn a_schedule_is_replaced_whole_and_survives_its_encoding() {
    let mut r = registry();
    r.apply(&schedule(vec![window(&[host("a"), host("b")])]))
        .unwrap();
    r.apply(&schedule(vec![window(&[host("c")])])).unwrap();
    assert_eq!(r.maintenance().windows, vec![window(&[host("c")])]);
    let text = serde_json::to_string(&r).unwrap();
    let back: Registry = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
    // An empty schedule cancels it.
    r.apply(&schedule(Vec::new())).unwrap();
    assert!(r.maintenance().windows.is_empty());
}

#[test]
fn malformed_schedules_are_refused() {
    let mut r = registry();
    refused(&mut r, &schedule(vec![window(&[])]), "is empty");
    refused(
        &mut r,
        &schedule(vec![window(&[Machine::new(None, None)])]),
        "Both 'hostname' and 'ip'",
    );
    refused(
        &mut r,
        &schedule(vec![window(&[Machine::new(None, Some("10.0.0.300"))])]),
        "Failed to parse IP",
    );
    refused(
        &mut r,
        &schedule(vec![window(&[host("a")]), window(&[host("A")])]),
        "appears more than once",
    );
    refused(
        &mut r,
        &schedule(vec![window(&[host("a"), host("a")])]),
        "appears more than once",
    );
    let mut negative = window(&[host("a")]);
    negative.duration_ns = Some(-1);
    refused(&mut r, &schedule(vec![negative]), "negative");
    let many: Vec<Machine> = (0..=MAX_MACHINES).map(|i| host(&format!("h{i}"))).collect();
    refused(&mut r, &schedule(vec![window(&many)]), "exceeds");
}

#[test]
fn down_machines_lose_their_agents_and_cannot_leave_the_schedule() {
    let mut r = registry();
    let a = admit(&mut r, "a");
    let b = admit(&mut r, "b");
    r.apply(&schedule(vec![window(&[host("a"), host("b")])]))
        .unwrap();
    // Only scheduled, DRAINING machines go down.
    refused(
        &mut r,
        &start(&[host("c")]),
        "not part of a maintenance schedule",
    );
    refused(&mut r, &start(&[]), "List of machines is empty");
    refused(&mut r, &stop(&[host("a")]), "not in DOWN mode");
    assert_eq!(
        r.apply(&start(&[host("a")])),
        Ok(Applied::Maintenance {
            removed_agents: vec![a.clone()]
        })
    );
    assert!(r.agent(&a).is_none());
    assert!(r.agent(&b).is_some());
    refused(&mut r, &start(&[host("a")]), "not in DRAINING mode");
    // The DOWN machine must stay in the schedule.
    refused(
        &mut r,
        &schedule(vec![window(&[host("b")])]),
        "cannot be removed from the schedule",
    );
    // Its agent may not come back, under its id or a new one.
    let info = crate::registry::tests::info("a");
    let back = Command::ReadmitAgent {
        agent_id: a.clone(),
        info: info.clone(),
        at: 2.0,
    };
    assert_eq!(
        r.validate(&back),
        Err(RegistryError::MachineDown("a".into()))
    );
    assert!(r.validate(&Command::AdmitAgent { info, at: 2.0 }).is_err());
    // STOP_MAINTENANCE: up again, out of the schedule; the agent returns.
    r.apply(&stop(&[host("a")])).unwrap();
    assert!(r.maintenance().down.is_empty());
    assert_eq!(r.maintenance().windows, vec![window(&[host("b")])]);
    assert!(matches!(
        r.apply(&back),
        Ok(Applied::AgentReadmitted { .. })
    ));
}

#[test]
fn stopping_the_last_machine_of_a_window_removes_the_window() {
    let mut r = registry();
    r.apply(&schedule(vec![window(&[host("a")]), window(&[host("b")])]))
        .unwrap();
    r.apply(&start(&[host("a")])).unwrap();
    r.apply(&stop(&[host("a")])).unwrap();
    assert_eq!(r.maintenance().windows, vec![window(&[host("b")])]);
}

fn drain(agent_id: &str, grace: Option<i64>, mark_gone: bool) -> Command {
    Command::Maintenance(MaintenanceCommand::Drain {
        agent_id: agent_id.into(),
        max_grace_period_ns: grace,
        mark_gone,
    })
}

#[test]
fn an_agent_drains_then_is_drained_then_reactivated() {
    let mut r = registry();
    let a = admit(&mut r, "a");
    refused(&mut r, &drain("m-S9", None, false), "unknown agent m-S9");
    refused(&mut r, &drain(&a, Some(-5), false), "negative");
    let drained = Command::Maintenance(MaintenanceCommand::Drained {
        agent_id: a.clone(),
    });
    refused(&mut r, &drained, "is not draining");
    r.apply(&drain(&a, Some(1_000_000_000), true)).unwrap();
    let d = &r.maintenance().drains[&a];
    assert_eq!(d.state, DrainState::Draining);
    assert_eq!(d.max_grace_period_ns, Some(1_000_000_000));
    assert!(d.mark_gone);
    assert!(r.maintenance().deactivated.contains(&a));
    r.apply(&drained).unwrap();
    assert_eq!(r.maintenance().drains[&a].state, DrainState::Drained);
    refused(&mut r, &drained, "is not draining");
    // A repeated drain takes the new configuration and drains again.
    r.apply(&drain(&a, None, false)).unwrap();
    assert_eq!(r.maintenance().drains[&a].state, DrainState::Draining);
    assert!(!r.maintenance().drains[&a].mark_gone);
    let reactivate = Command::Maintenance(MaintenanceCommand::Reactivate {
        agent_id: a.clone(),
    });
    r.apply(&reactivate).unwrap();
    assert!(r.maintenance().drains.is_empty());
    assert!(r.maintenance().deactivated.is_empty());
    assert_eq!(r.apply(&reactivate), Ok(Applied::Unchanged));
}

#[test]
fn deactivation_and_a_gone_agent() {
    let mut r = registry();
    let a = admit(&mut r, "a");
    let deactivate = Command::Maintenance(MaintenanceCommand::Deactivate {
        agent_id: a.clone(),
    });
    refused(
        &mut r,
        &Command::Maintenance(MaintenanceCommand::Deactivate {
            agent_id: "m-S7".into(),
        }),
        "unknown agent",
    );
    r.apply(&deactivate).unwrap();
    assert_eq!(r.apply(&deactivate), Ok(Applied::Unchanged));
    r.apply(&drain(&a, None, false)).unwrap();
    // Gone: nothing about it is kept.
    r.apply(&Command::MarkAgentGone {
        agent_id: a.clone(),
        at: 3.0,
    })
    .unwrap();
    assert!(r.maintenance().drains.is_empty());
    assert!(r.maintenance().deactivated.is_empty());
}

#[test]
fn scheduled_agents_are_found_as_window_of_finds_them() {
    let mut r = registry();
    let a = admit(&mut r, "Node-A");
    let b = admit(&mut r, "node-b");
    let c = admit(&mut r, "node-c");
    let first = Window {
        machines: vec![host("node-a"), Machine::new(None, Some("127.0.0.1"))],
        start_ns: 1,
        duration_ns: None,
    };
    let second = Window {
        machines: vec![host("node-b")],
        start_ns: 2,
        duration_ns: None,
    };
    r.apply(&schedule(vec![first, second])).unwrap();
    let found = r.scheduled_agents();
    // Every agent is on 127.0.0.1: the first window's IP names them all.
    for id in [&a, &b, &c] {
        let info = &r.agent(id).unwrap().info;
        let (w, _) = r.maintenance().window_of(info).unwrap();
        assert_eq!(found[id.as_str()], w, "{id}");
        assert_eq!(w.start_ns, 1);
    }
    r.apply(&schedule(vec![])).unwrap();
    assert!(r.scheduled_agents().is_empty());
}
