//! Agent commands and replay.

use super::*;
use keel_api::resources::{Resource, Value};

/// A small agent's info (also for the other registry modules' tests).
pub(crate) fn info(host: &str) -> Box<AgentInfo> {
    Box::new(AgentInfo {
        hostname: host.into(),
        ip: "127.0.0.1".into(),
        port: 5051,
        resources: Resources(vec![Resource {
            name: "cpus".into(),
            role: "*".into(),
            value: Value::Scalar(2.0),
        }]),
        attributes: Attributes::default(),
        version: "0.1.0".into(),
        inventory: Inventory::default(),
    })
}

fn bootstrapped() -> Registry {
    let mut r = Registry::default();
    r.apply(&Command::Bootstrap {
        master_id: "m1".into(),
    })
    .unwrap();
    r
}

#[test]
fn commands_before_bootstrap_are_refused() {
    let mut r = Registry::default();
    let err = r
        .apply(&Command::AdmitAgent {
            info: info("a"),
            at: 1.0,
        })
        .unwrap_err();
    assert_eq!(err, RegistryError::NotBootstrapped);
    assert_eq!(r, Registry::default());
}

#[test]
fn bootstrap_happens_once() {
    let mut r = bootstrapped();
    assert_eq!(
        r.apply(&Command::Bootstrap {
            master_id: "m2".into()
        }),
        Err(RegistryError::AlreadyBootstrapped("m1".into()))
    );
    assert_eq!(r.master_id(), Some("m1"));
}

#[test]
fn admitted_agents_get_sequential_ids() {
    let mut r = bootstrapped();
    let a = r
        .apply(&Command::AdmitAgent {
            info: info("a"),
            at: 1.0,
        })
        .unwrap();
    let b = r
        .apply(&Command::AdmitAgent {
            info: info("b"),
            at: 2.0,
        })
        .unwrap();
    assert_eq!(
        a,
        Applied::AgentAdmitted {
            agent_id: "m1-S0".into()
        }
    );
    assert_eq!(
        b,
        Applied::AgentAdmitted {
            agent_id: "m1-S1".into()
        }
    );
    assert_eq!(r.agent("m1-S1").unwrap().info.hostname, "b");
    assert_eq!(r.agent("m1-S1").unwrap().state, AgentState::Active);
}

#[test]
fn a_takeover_disconnects_every_active_agent_in_one_command() {
    let mut r = bootstrapped();
    for host in ["a", "b", "c"] {
        r.apply(&Command::AdmitAgent {
            info: info(host),
            at: 1.0,
        })
        .unwrap();
    }
    r.apply(&Command::MarkAgentUnreachable {
        agent_id: "m1-S2".into(),
        at: 2.0,
    })
    .unwrap();
    let ids = ["m1-S0", "m1-S1", "m1-S2", "unknown"].map(String::from);
    let cmd = Command::DisconnectAgents {
        agent_ids: ids.to_vec(),
        at: 3.0,
    };
    assert_eq!(
        r.apply(&cmd).unwrap(),
        Applied::AgentsDisconnected { count: 2 }
    );
    assert_eq!(r.agent("m1-S0").unwrap().state, AgentState::Disconnected);
    assert_eq!(r.agent("m1-S1").unwrap().state, AgentState::Disconnected);
    assert_eq!(r.agent("m1-S2").unwrap().state, AgentState::Unreachable);
    assert_eq!(r.apply(&cmd).unwrap(), Applied::Unchanged);
}

#[test]
fn full_life_cycle() {
    let mut r = bootstrapped();
    r.apply(&Command::AdmitAgent {
        info: info("a"),
        at: 1.0,
    })
    .unwrap();
    let id = "m1-S0".to_string();
    assert_eq!(
        r.apply(&Command::DisconnectAgent {
            agent_id: id.clone(),
            at: 2.0
        })
        .unwrap(),
        Applied::AgentDisconnected {
            agent_id: id.clone()
        }
    );
    assert_eq!(
        r.apply(&Command::MarkAgentUnreachable {
            agent_id: id.clone(),
            at: 3.0
        })
        .unwrap(),
        Applied::AgentUnreachable {
            agent_id: id.clone()
        }
    );
    assert_eq!(r.agent(&id).unwrap().unreachable_time, Some(3.0));
    // Disconnecting an unreachable agent changes nothing.
    assert_eq!(
        r.apply(&Command::DisconnectAgent {
            agent_id: id.clone(),
            at: 3.5
        })
        .unwrap(),
        Applied::Unchanged
    );
    let back = r
        .apply(&Command::ReadmitAgent {
            agent_id: id.clone(),
            info: info("a2"),
            at: 4.0,
        })
        .unwrap();
    assert_eq!(
        back,
        Applied::AgentReadmitted {
            agent_id: id.clone(),
            previous: Some(AgentState::Unreachable)
        }
    );
    let rec = r.agent(&id).unwrap();
    assert_eq!(rec.state, AgentState::Active);
    assert_eq!(rec.registered_time, 1.0);
    assert_eq!(rec.reregistered_time, Some(4.0));
    assert_eq!(rec.unreachable_time, None);
    assert_eq!(rec.info.hostname, "a2");
}

#[test]
fn readmitting_a_forgotten_id_keeps_ids_unique() {
    let mut r = bootstrapped();
    r.apply(&Command::ReadmitAgent {
        agent_id: "m1-S7".into(),
        info: info("old"),
        at: 1.0,
    })
    .unwrap();
    let next = r
        .apply(&Command::AdmitAgent {
            info: info("new"),
            at: 2.0,
        })
        .unwrap();
    assert_eq!(
        next,
        Applied::AgentAdmitted {
            agent_id: "m1-S8".into()
        }
    );
}

#[test]
fn bad_ids_and_unknown_agents_are_refused() {
    let mut r = bootstrapped();
    assert_eq!(
        r.apply(&Command::ReadmitAgent {
            agent_id: "../etc".into(),
            info: info("x"),
            at: 1.0
        }),
        Err(RegistryError::InvalidAgentId("../etc".into()))
    );
    assert_eq!(
        r.apply(&Command::MarkAgentUnreachable {
            agent_id: "m1-S9".into(),
            at: 1.0
        }),
        Err(RegistryError::UnknownAgent("m1-S9".into()))
    );
}

#[test]
fn replaying_the_same_log_gives_the_same_registry() {
    let log = vec![
        Command::Bootstrap {
            master_id: "m1".into(),
        },
        Command::AdmitAgent {
            info: info("a"),
            at: 1.0,
        },
        Command::AdmitAgent {
            info: info("b"),
            at: 1.5,
        },
        Command::DisconnectAgent {
            agent_id: "m1-S0".into(),
            at: 2.0,
        },
    ];
    let replay = |cmds: &[Command]| {
        let mut r = Registry::default();
        for c in cmds {
            r.apply(c).unwrap();
        }
        r
    };
    assert_eq!(replay(&log), replay(&log));
}
