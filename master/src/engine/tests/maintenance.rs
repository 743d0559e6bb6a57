//! Maintenance and drain: unavailability on offers, inverse offers and
//! their answers, machines down and up, DRAIN_AGENT, DEACTIVATE_AGENT and
//! REACTIVATE_AGENT.

use keel_api::operator::maintenance::InverseOfferAnswer;

use super::*;
use crate::registry::{DrainState, Machine, MaintenanceCommand, RegistryError, Window};

/// A maintenance change as the shell makes it: plan, commit, finish.
fn maintain(h: &mut Harness, cmd: MaintenanceCommand) -> Result<Applied, EngineError> {
    let p = h.engine.plan_maintenance(cmd.clone())?;
    let applied = h.commit(p.command).unwrap();
    h.engine.maintenance_committed(&cmd, &applied, h.now)?;
    h.collect();
    Ok(applied)
}

fn host(name: &str) -> Machine {
    Machine::new(Some(name), None)
}

fn schedule(h: &mut Harness, machines: &[&str]) {
    let windows = vec![Window {
        machines: machines.iter().map(|m| host(m)).collect(),
        start_ns: 1_000_000_000,
        duration_ns: Some(60_000_000_000),
    }];
    maintain(h, MaintenanceCommand::UpdateSchedule { windows }).unwrap();
}

fn inverse_offers(h: &mut Harness, fw: &str) -> Vec<keel_api::operator::maintenance::InverseOffer> {
    h.events(fw)
        .into_iter()
        .flat_map(|e| match e {
            Event::InverseOffers(list) => list,
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn a_schedule_rescinds_offers_and_resends_them_with_unavailability() {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    let offer = h.offers(&fw).remove(0);
    assert_eq!(offer.unavailability, None);
    schedule(&mut h, &["A1"]);
    let events = h.events(&fw);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Rescind { offer_id } if offer_id == &offer.id)),
        "{events:?}"
    );
    h.engine.allocate(h.now);
    let events = h.events(&fw);
    let Some(Event::Offers(again)) = events.first() else {
        panic!("{events:?}")
    };
    let u = again[0].unavailability.expect("unavailability");
    assert_eq!(u.start.nanoseconds, 1_000_000_000);
    assert_eq!(u.duration.unwrap().nanoseconds, 60_000_000_000);
    // The framework holds an offer there: in the same cycle, it is asked
    // for the agent back.
    let Some(Event::InverseOffers(inverse)) = events.get(1) else {
        panic!("{events:?}")
    };
    assert_eq!(inverse.len(), 1);
    assert_eq!(inverse[0].agent_id.as_ref().unwrap().value, agent);
    assert_eq!(inverse[0].unavailability, u);
    // Cancelling the schedule rescinds both.
    maintain(
        &mut h,
        MaintenanceCommand::UpdateSchedule { windows: vec![] },
    )
    .unwrap();
    let events = h.events(&fw);
    assert!(events.iter().any(|e| matches!(e, Event::Rescind { .. })));
    assert!(events.iter().any(
        |e| matches!(e, Event::RescindInverseOffer { inverse_offer_id } if inverse_offer_id == &inverse[0].id)
    ));
    assert!(h.engine.outstanding_inverse_offers().is_empty());
}

#[test]
fn answers_to_inverse_offers_are_recorded_and_filter_the_next() {
    let (mut h, agent, fw) = running();
    let (idle, _) = h.framework(framework_info("idle", json!({})));
    schedule(&mut h, &["a1"]);
    h.engine.allocate(h.now);
    let inverse = inverse_offers(&mut h, &fw);
    assert_eq!(inverse.len(), 1, "one per agent and framework using it");
    // A framework with nothing there is not asked (the agent's free
    // resources went to `fw`'s offer or stayed unoffered).
    let idle_asked = inverse_offers(&mut h, &idle);
    let idle_holds_offer = h
        .engine
        .outstanding_offers()
        .iter()
        .any(|o| o.framework_id == idle);
    assert_eq!(idle_asked.is_empty(), !idle_holds_offer);
    let answers = h.engine.inverse_answers();
    assert!(answers.iter().any(|a| a.framework_id == fw
        && a.agent_id == agent
        && a.answer == InverseOfferAnswer::UNKNOWN));
    // Nothing more while one is outstanding.
    h.engine.allocate(h.now);
    assert!(inverse_offers(&mut h, &fw).is_empty());
    // An id that is not the framework's changes nothing.
    h.engine.answer_inverse_offers(
        &idle,
        &[inverse[0].id.value.clone()],
        true,
        Default::default(),
        h.now,
    );
    assert_eq!(
        h.engine.outstanding_inverse_offers().len(),
        1 + idle_asked.len()
    );
    let filters: mesos::Filters = serde_json::from_value(json!({"refuse_seconds": 30})).unwrap();
    h.engine
        .answer_inverse_offers(&fw, &[inverse[0].id.value.clone()], false, filters, h.now);
    let a = h
        .engine
        .inverse_answers()
        .into_iter()
        .find(|a| a.framework_id == fw)
        .unwrap();
    assert_eq!(a.answer, InverseOfferAnswer::DECLINE);
    // Filtered for 30 s, then asked again.
    h.advance(Duration::from_secs(10));
    h.engine.allocate(h.now);
    assert!(inverse_offers(&mut h, &fw).is_empty());
    h.advance(Duration::from_secs(25));
    h.engine.allocate(h.now);
    assert_eq!(inverse_offers(&mut h, &fw).len(), 1);
}

#[test]
fn machines_down_lose_their_agents_until_they_are_up() {
    let (mut h, agent, fw) = running();
    let (other, _) = h.agent("a2", "cpus:4;mem:1024");
    schedule(&mut h, &["a1", "a2"]);
    h.drain();
    assert_eq!(
        maintain(
            &mut h,
            MaintenanceCommand::Start {
                machines: vec![host("a1")]
            }
        )
        .unwrap(),
        Applied::Maintenance {
            removed_agents: vec![agent.clone()]
        }
    );
    // Its task is lost (not PARTITION_AWARE); the agent is told to shut
    // the framework down and refused.
    let updates = h.updates(&fw);
    assert_eq!(updates[0].state, TaskState::TASK_LOST);
    let sent = h.sent_to(&agent);
    assert!(matches!(&sent[0], ToAgent::ShutdownFramework { .. }));
    assert!(matches!(&sent[1], ToAgent::Refuse { reason } if reason.contains("maintenance")));
    assert!(h.engine.registry().agent(&agent).is_none());
    assert!(h.engine.registry().agent(&other).is_some());
    // It may not register again while the machine is down.
    let refused = h
        .engine
        .register_agent(Some(agent.clone()), agent_info("a1", "cpus:4"), h.now)
        .unwrap_err();
    assert!(matches!(
        refused,
        EngineError::Registry(RegistryError::MachineDown(_))
    ));
    // Not twice; and a machine that is not down cannot come up.
    assert!(
        maintain(
            &mut h,
            MaintenanceCommand::Start {
                machines: vec![host("a1")]
            }
        )
        .is_err()
    );
    assert!(
        maintain(
            &mut h,
            MaintenanceCommand::Stop {
                machines: vec![host("a2")]
            }
        )
        .is_err()
    );
    maintain(
        &mut h,
        MaintenanceCommand::Stop {
            machines: vec![host("a1")],
        },
    )
    .unwrap();
    let (back, _) = h.reregister(Some(agent.clone()), "a1", "cpus:4;mem:1024", Vec::new());
    assert_eq!(back, agent);
    // Out of the schedule: its offers carry no unavailability.
    let offers = h.offers(&fw);
    let mine = offers.iter().find(|o| o.agent_id.value == agent).unwrap();
    assert_eq!(mine.unavailability, None);
}

fn drain(h: &mut Harness, agent: &str, max_ns: Option<i64>, mark_gone: bool) {
    maintain(
        h,
        MaintenanceCommand::Drain {
            agent_id: agent.into(),
            max_grace_period_ns: max_ns,
            mark_gone,
        },
    )
    .unwrap();
}

fn kills(h: &mut Harness, agent: &str) -> Vec<(String, Option<u64>)> {
    h.sent_to(agent)
        .into_iter()
        .filter_map(|m| match m {
            ToAgent::Kill {
                task_id,
                grace_period_ms,
                ..
            } => Some((task_id, grace_period_ms)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_drain_grace_caps_the_kill_policy() {
    let policy = |seconds: i64| mesos::KillPolicy {
        grace_period: Some(mesos::Nanos {
            nanoseconds: seconds * 1_000_000_000,
        }),
    };
    assert_eq!(drain_grace(None, None), None);
    assert_eq!(
        ns(drain_grace(Some(&policy(10)), Some(2_000_000_000))),
        2_000_000_000
    );
    assert_eq!(
        ns(drain_grace(Some(&policy(1)), Some(2_000_000_000))),
        1_000_000_000
    );
    assert_eq!(ns(drain_grace(None, Some(10_000_000_000))), 3_000_000_000);
    assert_eq!(ns(drain_grace(None, Some(0))), 0);
}

fn ns(p: Option<mesos::KillPolicy>) -> i64 {
    p.unwrap().grace_period.unwrap().nanoseconds
}

#[test]
fn a_drained_agent_gets_no_offers_and_is_drained_once_its_tasks_end() {
    let (mut h, agent, fw) = running();
    // Past the refusal of what the launch left.
    h.advance(Duration::from_secs(6));
    let offer = h.offers(&fw).remove(0);
    drain(&mut h, &agent, Some(1_500_000_000), false);
    // Its offer is rescinded, its task killed with the capped grace.
    assert!(
        h.events(&fw)
            .iter()
            .any(|e| matches!(e, Event::Rescind { offer_id } if offer_id == &offer.id))
    );
    assert_eq!(kills(&mut h, &agent), vec![("t1".to_string(), Some(1_500))]);
    assert!(h.offers(&fw).is_empty());
    assert!(h.engine.settled_drains().is_empty(), "a task is left");
    h.update(&agent, &fw, "t1", TaskState::TASK_KILLED, 2);
    assert!(h.engine.settled_drains().is_empty(), "not acknowledged yet");
    h.engine.acknowledge(&fw, &agent, "t1", vec![2; 16]);
    assert_eq!(h.engine.settled_drains(), vec![agent.clone()]);
    maintain(
        &mut h,
        MaintenanceCommand::Drained {
            agent_id: agent.clone(),
        },
    )
    .unwrap();
    assert!(h.engine.settled_drains().is_empty());
    assert_eq!(
        h.engine.registry().maintenance().drains[&agent].state,
        DrainState::Drained
    );
    assert!(!h.engine.drained_and_going(&agent));
    assert!(h.offers(&fw).is_empty(), "drained: still no offers");
    // REACTIVATE_AGENT ends the drain: offers again.
    maintain(
        &mut h,
        MaintenanceCommand::Reactivate {
            agent_id: agent.clone(),
        },
    )
    .unwrap();
    assert_eq!(h.offers(&fw).len(), 1);
}

#[test]
fn an_agent_without_tasks_drains_at_once_and_may_go() {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024");
    drain(&mut h, &agent, None, true);
    assert_eq!(h.engine.settled_drains(), vec![agent.clone()]);
    maintain(
        &mut h,
        MaintenanceCommand::Drained {
            agent_id: agent.clone(),
        },
    )
    .unwrap();
    assert!(h.engine.drained_and_going(&agent));
}

#[test]
fn a_draining_agent_is_killed_again_after_a_failover() {
    let (mut h, agent, fw) = running();
    drain(&mut h, &agent, None, false);
    assert_eq!(kills(&mut h, &agent), vec![("t1".to_string(), None)]);
    // A new leader: it does not know the agent's tasks until it comes back.
    let info = h.committed_task_info();
    h.take_over();
    assert!(h.engine.settled_drains().is_empty());
    let reported = vec![ReportedTask {
        framework_id: fw.clone(),
        info,
        latest: Some(TaskStatus::new("t1", TaskState::TASK_RUNNING)),
    }];
    h.reregister(Some(agent.clone()), "a1", "cpus:4;mem:1024", reported);
    assert_eq!(kills(&mut h, &agent), vec![("t1".to_string(), None)]);
    let (fw2, _) = h.framework(framework_info("g", json!({})));
    assert!(h.offers(&fw2).is_empty(), "still deactivated");
}

#[test]
fn deactivation_stops_offers_but_not_tasks() {
    let (mut h, agent, fw) = running();
    h.advance(Duration::from_secs(6));
    maintain(
        &mut h,
        MaintenanceCommand::Deactivate {
            agent_id: agent.clone(),
        },
    )
    .unwrap();
    assert!(kills(&mut h, &agent).is_empty());
    assert!(h.offers(&fw).is_empty());
    assert_eq!(h.task_state(&fw, "t1"), Some(TaskState::TASK_RUNNING));
    assert!(
        maintain(
            &mut h,
            MaintenanceCommand::Deactivate {
                agent_id: "m-S9".into()
            }
        )
        .is_err()
    );
    maintain(
        &mut h,
        MaintenanceCommand::Reactivate {
            agent_id: agent.clone(),
        },
    )
    .unwrap();
    assert_eq!(h.offers(&fw).len(), 1);
}

impl Harness {
    /// The TaskInfo of `t1` as `running()` launched it.
    fn committed_task_info(&self) -> TaskInfo {
        let (live, completed) = self.engine.tasks();
        live.iter()
            .chain(completed.iter())
            .find(|t| t.task_id == "t1")
            .map(|t| t.info.clone())
            .expect("t1")
    }
}

#[test]
fn the_event_stream_sees_a_machine_brought_down_but_not_a_drain() {
    use crate::engine::Observed;
    let (mut h, agent, _fw) = running();
    schedule(&mut h, &["a1"]);
    h.engine.set_observed(true);
    h.drain();
    let observed = |h: &mut Harness| -> Vec<Observed> {
        h.drain()
            .into_iter()
            .filter_map(|e| match e {
                Effect::Observed(o) => Some(o),
                _ => None,
            })
            .collect()
    };
    maintain(
        &mut h,
        MaintenanceCommand::Deactivate {
            agent_id: agent.clone(),
        },
    )
    .unwrap();
    assert!(observed(&mut h).is_empty(), "Mesos has no event for it");
    maintain(
        &mut h,
        MaintenanceCommand::Start {
            machines: vec![host("a1")],
        },
    )
    .unwrap();
    let seen = observed(&mut h);
    assert!(
        matches!(seen.as_slice(), [Observed::TaskUpdated { status, .. }, Observed::AgentRemoved { agent_id }]
            if status.state == TaskState::TASK_LOST && agent_id == &agent),
        "{seen:?}"
    );
}

#[test]
fn an_unreachable_draining_agent_is_not_drained_by_a_new_leader() {
    let (mut h, agent, _fw) = running();
    drain(&mut h, &agent, None, false);
    // The agent goes silent and is marked unreachable.
    h.advance(Duration::from_secs(16));
    assert_eq!(h.engine.agent_heartbeats(h.now), vec![agent.clone()]);
    let p = h.engine.agent_expired(&agent, h.now).unwrap();
    h.commit(p.command).unwrap();
    h.engine.agent_unreachable(&agent, h.now);
    assert!(
        h.engine.settled_drains().is_empty(),
        "its task is unreachable"
    );
    // A new leader does not know its task: it still waits for the agent.
    h.take_over();
    assert!(h.engine.settled_drains().is_empty());
}
