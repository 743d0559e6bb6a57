//! Agents: loss, re-registration with reports, sessions, takeover.

use super::*;
use keel_api::scheduler::ReconcileTask;

#[test]
fn a_silent_agent_is_lost_with_its_tasks_and_every_framework_hears_failure() {
    let (mut h, agent, fw) = running();
    let caps = json!({"capabilities": [{"type": "PARTITION_AWARE"}]});
    let (aware, _) = h.framework(framework_info("aware", caps));
    h.drain();
    h.advance(Duration::from_secs(10));
    assert!(h.engine.agent_heartbeats(h.now).is_empty());
    h.advance(Duration::from_secs(6));
    let expired = h.engine.agent_heartbeats(h.now);
    assert_eq!(expired, vec![agent.clone()]);
    let p = h.engine.agent_expired(&agent, h.now).unwrap();
    h.commit(p.command).unwrap();
    h.engine.agent_unreachable(&agent, h.now);
    let events = h.events(&fw);
    let Event::Update(s) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(s.state, TaskState::TASK_LOST);
    assert_eq!(s.reason.as_deref(), Some("REASON_AGENT_REMOVED"));
    assert!(matches!(&events[1], Event::Failure(f) if f.agent_id.as_ref().unwrap().value == agent));
    assert!(matches!(h.events(&aware).as_slice(), [Event::Failure(_)]));
    // Its session was closed.
    assert!(
        h.drain()
            .iter()
            .any(|e| matches!(e, Effect::CloseAgentSession { agent_id, .. } if agent_id == &agent))
    );
}

#[test]
fn partition_aware_frameworks_see_unreachable_then_running_again() {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024");
    let caps = json!({"capabilities": [{"type": "PARTITION_AWARE"}]});
    let (fw, _) = h.framework(framework_info("f", caps));
    let offer = h.offers(&fw).remove(0);
    h.accept(
        &fw,
        &[&offer],
        vec![launch(vec![task(&offer, "t1", 1.0, 128.0)])],
    );
    h.update(&agent, &fw, "t1", TaskState::TASK_RUNNING, 1);
    h.drain();
    h.advance(Duration::from_secs(16));
    h.engine.agent_heartbeats(h.now);
    let p = h.engine.agent_expired(&agent, h.now).unwrap();
    h.commit(p.command).unwrap();
    h.engine.agent_unreachable(&agent, h.now);
    let s = &h.updates(&fw)[0];
    assert_eq!(s.state, TaskState::TASK_UNREACHABLE);
    assert!(s.unreachable_time.is_some());
    // It comes back reporting the task running.
    let report = ReportedTask {
        framework_id: fw.clone(),
        info: h.engine.tasks().0[0].info.clone(),
        latest: Some(TaskStatus::new("t1", TaskState::TASK_RUNNING)),
    };
    let (same, _) = h.reregister(Some(agent.clone()), "a1", "cpus:4;mem:1024", vec![report]);
    assert_eq!(same, agent);
    assert_eq!(h.task_state(&fw, "t1"), Some(TaskState::TASK_RUNNING));
}

#[test]
fn tasks_told_lost_while_their_agent_was_unreachable_are_killed_when_it_returns() {
    let (mut h, agent, fw) = running();
    let info = h.engine.tasks().0[0].info.clone();
    h.advance(Duration::from_secs(16));
    h.engine.agent_heartbeats(h.now);
    let p = h.engine.agent_expired(&agent, h.now).unwrap();
    h.commit(p.command).unwrap();
    h.engine.agent_unreachable(&agent, h.now);
    assert_eq!(h.updates(&fw)[0].state, TaskState::TASK_LOST);
    h.drain();
    // Back, still running it: the framework may have launched it again.
    let report = ReportedTask {
        framework_id: fw.clone(),
        info: info.clone(),
        latest: Some(TaskStatus::new("t1", TaskState::TASK_RUNNING)),
    };
    h.reregister(Some(agent.clone()), "a1", "cpus:4;mem:1024", vec![report]);
    assert_eq!(
        h.task_state(&fw, "t1"),
        Some(TaskState::TASK_LOST),
        "not taken back"
    );
    assert!(h.drain().iter().any(|e| matches!(e,
        Effect::ToAgent { message: ToAgent::Kill { task_id, .. }, .. } if task_id == "t1")));
    // Should the kill not reach it, the next registration kills it again.
    let again = ReportedTask {
        framework_id: fw.clone(),
        info: info.clone(),
        latest: Some(TaskStatus::new("t1", TaskState::TASK_RUNNING)),
    };
    h.end_session(&agent);
    h.reregister(Some(agent.clone()), "a1", "cpus:4;mem:1024", vec![again]);
    assert_eq!(h.task_state(&fw, "t1"), Some(TaskState::TASK_LOST));
    assert!(h.drain().iter().any(|e| matches!(e,
        Effect::ToAgent { message: ToAgent::Kill { task_id, .. }, .. } if task_id == "t1")));
    // Its TASK_KILLED is acknowledged to the agent, never forwarded.
    h.update(&agent, &fw, "t1", TaskState::TASK_KILLED, 2);
    assert!(h.updates(&fw).is_empty());
}

#[test]
fn a_reregistering_agent_that_lost_a_task_reports_it_gone() {
    let (mut h, agent, fw) = running();
    h.end_session(&agent);
    h.reregister(Some(agent.clone()), "a1", "cpus:4;mem:1024", Vec::new());
    let s = h.updates(&fw).remove(0);
    assert_eq!(s.state, TaskState::TASK_LOST);
    assert_eq!(h.task_state(&fw, "t1"), Some(TaskState::TASK_LOST));
}

#[test]
fn reports_of_unknown_frameworks_are_not_recorded() {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024");
    let info: TaskInfo = mesos::parse(json!({"name": "x", "task_id": {"value": "x"},
        "agent_id": {"value": agent}, "command": {"value": "true"}}))
    .unwrap();
    let report = ReportedTask {
        framework_id: "m-9999".into(),
        info,
        latest: Some(TaskStatus::new("x", TaskState::TASK_RUNNING)),
    };
    h.end_session(&agent);
    h.reregister(Some(agent), "a1", "cpus:4;mem:1024", vec![report]);
    assert!(h.engine.tasks().0.is_empty());
}

#[test]
fn a_live_session_is_not_taken_over_by_another_registration() {
    let mut h = Harness::new();
    let (agent, first) = h.agent("a1", "cpus:4;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    h.offers(&fw);
    // Anyone presenting a live agent's id is refused (it could otherwise
    // keep the real agent flapping).
    let taken = h
        .engine
        .register_agent(Some(agent.clone()), agent_info("a1", "cpus:4"), h.now);
    assert_eq!(taken, Err(EngineError::SessionLive(agent.clone())));
    // A session silent past the agent timeout is dead: a new one replaces
    // it, the old one is closed, and its offers are rescinded.
    h.advance(Duration::from_secs(16));
    let (_, second) = h.reregister(Some(agent.clone()), "a1", "cpus:4;mem:1024", Vec::new());
    assert_ne!(first, second);
    let effects = h.drain();
    assert!(effects.contains(&Effect::CloseAgentSession {
        agent_id: agent.clone(),
        session: first
    }));
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::ToFramework {
            event: Event::Rescind { .. },
            ..
        }
    )));
    // Heartbeats on the old session no longer count.
    h.advance(Duration::from_secs(14));
    h.engine.agent_heard(&agent, first, h.now);
    h.advance(Duration::from_secs(2));
    assert_eq!(h.engine.agent_heartbeats(h.now), vec![agent.clone()]);
    // After its session ends, the agent comes back at once.
    h.end_session(&agent);
    h.reregister(Some(agent), "a1", "cpus:4;mem:1024", Vec::new());
}

#[test]
fn a_takeover_disconnects_active_agents_and_gives_them_time() {
    let (mut h, agent, fw) = running();
    // The new leader starts from the committed registry only.
    h.take_over();
    assert_eq!(
        h.committed.agent(&agent).unwrap().state,
        crate::registry::AgentState::Disconnected
    );
    assert!(h.engine.tasks().0.is_empty());
    assert!(h.engine.elected_time().is_some());
    // Silent for 30 s: still within the re-register timeout.
    h.advance(Duration::from_secs(30));
    assert!(h.engine.agent_heartbeats(h.now).is_empty());
    // Re-registering brings the task back; the framework resubscribes.
    let info: TaskInfo = mesos::parse(json!({"name": "t1", "task_id": {"value": "t1"},
        "agent_id": {"value": agent}, "command": {"value": "true"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
            "allocation_info": {"role": "*"}}]}))
    .unwrap();
    let report = ReportedTask {
        framework_id: fw.clone(),
        info,
        latest: Some(TaskStatus::new("t1", TaskState::TASK_RUNNING)),
    };
    h.reregister(Some(agent), "a1", "cpus:4;mem:1024", vec![report]);
    let mut info = framework_info("f", json!({}));
    info.id = Some(mesos::Id::new(&fw));
    let (again, _) = h.framework(info);
    assert_eq!(again, fw);
    h.engine.reconcile(&fw, &[], h.now);
    assert_eq!(
        h.updates(&fw).last().unwrap().state,
        TaskState::TASK_RUNNING
    );
    // The allocator knows the task's use.
    h.advance(Duration::from_secs(1));
    let offer = h.offers(&fw).remove(0);
    assert_eq!(
        Resources::from_v1(&offer.resources).unwrap().scalar("cpus"),
        3.0
    );
}

#[test]
fn reconciliation_waits_for_agents_that_have_not_reregistered_after_a_takeover() {
    let (mut h, agent, fw) = running();
    h.take_over();
    let mut info = framework_info("f", json!({}));
    info.id = Some(mesos::Id::new(&fw));
    h.framework(info);
    h.drain();
    let ask = |task: &str, agent: Option<&str>| ReconcileTask {
        task_id: mesos::Id::new(task),
        agent_id: agent.map(mesos::Id::new),
    };
    // The task's agent is still to come back: no answer (not TASK_LOST).
    h.engine.reconcile(
        &fw,
        &[ask("t1", Some(&agent)), ask("t2", Some("nobody"))],
        h.now,
    );
    let answers = h.updates(&fw);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].task_id.value, "t2");
    assert_eq!(answers[0].state, TaskState::TASK_LOST);
    // Back with the task finished while its RUNNING is still unacknowledged.
    let info: TaskInfo = mesos::parse(json!({"name": "t1", "task_id": {"value": "t1"},
        "agent_id": {"value": agent}, "command": {"value": "true"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
            "allocation_info": {"role": "*"}}]}))
    .unwrap();
    let report = ReportedTask {
        framework_id: fw.clone(),
        info,
        latest: Some(TaskStatus {
            source: Some("SOURCE_EXECUTOR".into()),
            ..TaskStatus::new("t1", TaskState::TASK_FINISHED)
        }),
    };
    h.reregister(Some(agent.clone()), "a1", "cpus:4;mem:1024", vec![report]);
    h.engine.reconcile(&fw, &[ask("t1", Some(&agent))], h.now);
    assert_eq!(h.updates(&fw)[0].state, TaskState::TASK_FINISHED);
    // The agent re-sends its queue in order: RUNNING, then FINISHED.
    h.update(&agent, &fw, "t1", TaskState::TASK_RUNNING, 20);
    h.engine.acknowledge(&fw, &agent, "t1", vec![20; 16]);
    h.update(&agent, &fw, "t1", TaskState::TASK_FINISHED, 21);
    h.engine.acknowledge(&fw, &agent, "t1", vec![21; 16]);
    let states: Vec<TaskState> = h.updates(&fw).iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        vec![TaskState::TASK_RUNNING, TaskState::TASK_FINISHED]
    );
    assert!(h.engine.tasks().0.is_empty());
}

#[test]
fn partition_aware_frameworks_hear_why_a_task_is_unknown() {
    let (mut h, agent, _) = running();
    let caps = json!({"capabilities": [{"type": "PARTITION_AWARE"}]});
    let (aware, _) = h.framework(framework_info("aware", caps));
    h.drain();
    let ask = |agent: Option<&str>| ReconcileTask {
        task_id: mesos::Id::new("x"),
        agent_id: agent.map(mesos::Id::new),
    };
    h.engine.reconcile(
        &aware,
        &[ask(Some(&agent)), ask(Some("nobody")), ask(None)],
        h.now,
    );
    let states: Vec<TaskState> = h.updates(&aware).iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        vec![
            TaskState::TASK_GONE,
            TaskState::TASK_UNKNOWN,
            TaskState::TASK_UNKNOWN
        ]
    );
}
