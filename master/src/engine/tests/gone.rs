//! MARK_AGENT_GONE: tasks, offers, resources, the session, and the agent
//! never coming back.

use super::*;
use crate::registry::RegistryError;

/// Marks `agent` gone as the shell does: plan, commit, finish.
fn mark_gone(h: &mut Harness, agent: &str) -> Applied {
    let p = h.engine.mark_agent_gone(agent, h.now).unwrap().unwrap();
    let applied = h.commit(p.command).unwrap();
    h.engine.agent_gone(agent, &applied, h.now).unwrap();
    h.collect();
    applied
}

#[test]
fn tasks_become_gone_by_operator_and_the_session_is_refused() {
    let mut h = Harness::new();
    let (agent, session) = h.agent("a1", "cpus:4;mem:1024");
    let caps = json!({"capabilities": [{"type": "PARTITION_AWARE"}]});
    let (aware, _) = h.framework(framework_info("aware", caps));
    let offer = h.offers(&aware).remove(0);
    h.accept(
        &aware,
        &[&offer],
        vec![launch(vec![task(&offer, "t1", 1.0, 128.0)])],
    );
    h.update(&agent, &aware, "t1", TaskState::TASK_RUNNING, 1);
    h.engine.acknowledge(&aware, &agent, "t1", vec![1; 16]);
    let (plain, _) = h.framework(framework_info("plain", json!({})));
    h.drain();

    assert_eq!(
        mark_gone(&mut h, &agent),
        Applied::AgentGone {
            agent_id: agent.clone()
        }
    );
    let events = h.events(&aware);
    let Event::Update(s) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(s.state, TaskState::TASK_GONE_BY_OPERATOR);
    assert_eq!(
        s.reason.as_deref(),
        Some("REASON_AGENT_REMOVED_BY_OPERATOR")
    );
    assert_eq!(s.source.as_deref(), Some("SOURCE_MASTER"));
    assert!(matches!(&events[1], Event::Failure(f) if f.agent_id.as_ref().unwrap().value == agent));
    assert!(matches!(h.events(&plain).as_slice(), [Event::Failure(_)]));
    assert_eq!(
        h.task_state(&aware, "t1"),
        Some(TaskState::TASK_GONE_BY_OPERATOR)
    );
    let (live, completed) = h.engine.tasks();
    assert!(live.is_empty());
    assert_eq!(completed.len(), 1);
    // The agent is told to shut the framework down, then refused, then
    // its session closes.
    let sent = h.sent_to(&agent);
    assert!(
        matches!(&sent[0], ToAgent::ShutdownFramework { framework_id } if framework_id == &aware)
    );
    assert!(matches!(&sent[1], ToAgent::Refuse { reason } if reason.contains("marked gone")));
    assert!(
        h.drain().iter().any(|e| matches!(e,
        Effect::CloseAgentSession { agent_id, session: s } if agent_id == &agent && *s == session))
    );
    // The registry forgot it, and the session's end records nothing.
    assert!(h.engine.registry().agent(&agent).is_none());
    assert!(h.engine.registry().gone_agent(&agent).is_some());
    assert!(
        h.engine
            .agent_session_closed(&agent, session, h.now)
            .is_none()
    );
}

#[test]
fn tasks_of_frameworks_without_partition_awareness_are_lost() {
    let (mut h, agent, fw) = running();
    mark_gone(&mut h, &agent);
    let s = &h.updates(&fw)[0];
    assert_eq!(s.state, TaskState::TASK_LOST);
    assert_eq!(
        s.reason.as_deref(),
        Some("REASON_AGENT_REMOVED_BY_OPERATOR")
    );
}

#[test]
fn offers_are_rescinded_and_resources_leave_the_allocator() {
    let mut h = Harness::new();
    let (gone, _) = h.agent("a1", "cpus:4;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    let offers = h.offers(&fw);
    assert_eq!(offers.len(), 1);
    mark_gone(&mut h, &gone);
    let events = h.events(&fw);
    assert!(
        events.iter().any(
            |e| matches!(e, Event::Rescind { offer_id } if offer_id.value == offers[0].id.value)
        ),
        "{events:?}"
    );
    assert!(h.engine.snapshot().offers.is_empty());
    // Nothing of it is offered again; another agent's resources are.
    h.advance(Duration::from_secs(10));
    assert!(h.offers(&fw).is_empty());
    let (other, _) = h.agent("a2", "cpus:2;mem:512");
    let again = h.offers(&fw);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].agent_id.value, other);
}

#[test]
fn a_gone_agent_cannot_register_again_and_a_repeat_writes_nothing() {
    let (mut h, agent, _) = running();
    mark_gone(&mut h, &agent);
    let refused = h
        .engine
        .register_agent(
            Some(agent.clone()),
            agent_info("a1", "cpus:4;mem:1024"),
            h.now,
        )
        .unwrap_err();
    assert_eq!(
        refused,
        EngineError::Registry(RegistryError::AgentGone(agent.clone()))
    );
    // Marking it gone again: nothing to commit.
    assert!(h.engine.mark_agent_gone(&agent, h.now).unwrap().is_none());
    // An unknown agent is the registry's refusal.
    assert_eq!(
        h.engine.mark_agent_gone("m-S99", h.now).unwrap_err(),
        EngineError::Registry(RegistryError::UnknownAgent("m-S99".into()))
    );
    // A new registration gets a new id.
    let (fresh, _) = h.agent("a1", "cpus:4;mem:1024");
    assert_ne!(fresh, agent);
}

#[test]
fn a_disconnected_or_unreachable_agent_can_be_marked_gone() {
    let (mut h, agent, fw) = running();
    h.end_session(&agent);
    h.drain();
    mark_gone(&mut h, &agent);
    assert_eq!(h.updates(&fw)[0].state, TaskState::TASK_LOST);
    // No session: nothing sent to it.
    assert!(h.sent_to(&agent).is_empty());
    // After a failover the agent stays gone.
    h.take_over();
    assert!(h.engine.registry().gone_agent(&agent).is_some());
    assert!(
        h.engine
            .register_agent(Some(agent), agent_info("a1", "cpus:1;mem:64"), h.now)
            .is_err()
    );
}

#[test]
fn sessions_of_a_revoked_credential_are_refused_and_closed() {
    let mut h = Harness::new();
    let (a1, s1) = h.agent("a1", "cpus:1;mem:64");
    let (a2, _) = h.agent("a2", "cpus:1;mem:64");
    h.drain();
    h.engine
        .refuse_agent_sessions(&[a1.clone(), "m-S9".into()], "revoked");
    assert!(
        matches!(h.sent_to(&a1).as_slice(), [ToAgent::Refuse { reason }] if reason == "revoked")
    );
    assert!(h.sent_to(&a2).is_empty());
    let effects = h.drain();
    assert!(effects.iter().any(|e| matches!(e,
        Effect::CloseAgentSession { agent_id, session } if agent_id == &a1 && *session == s1)));
    // Its stream's end records it as disconnected.
    h.end_session(&a1);
    assert_eq!(
        h.engine.registry().agent(&a1).unwrap().state,
        crate::registry::AgentState::Disconnected
    );
}
