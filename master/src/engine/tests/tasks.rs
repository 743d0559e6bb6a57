//! Status updates, acknowledgements, kill, reconciliation.

use super::*;
use keel_api::scheduler::ReconcileTask;

#[test]
fn updates_are_relayed_and_acknowledgements_go_back_to_the_agent() {
    let (mut h, agent, fw) = running();
    h.update(&agent, &fw, "t1", TaskState::TASK_FINISHED, 7);
    let s = h.updates(&fw).remove(0);
    assert_eq!(s.state, TaskState::TASK_FINISHED);
    assert_eq!(s.agent_id.unwrap().value, agent);
    // Terminal but not acknowledged: still live.
    assert_eq!(h.engine.tasks().0.len(), 1);
    h.engine.acknowledge(&fw, &agent, "t1", vec![7; 16]);
    assert!(
        h.sent_to(&agent)
            .iter()
            .any(|m| matches!(m, ToAgent::Acknowledge { uuid, .. } if uuid == &vec![7; 16]))
    );
    let (live, completed) = h.engine.tasks();
    assert!(live.is_empty());
    assert_eq!(completed[0].state, TaskState::TASK_FINISHED);
}

#[test]
fn a_terminal_update_frees_the_resources() {
    let (mut h, agent, fw) = running();
    h.advance(Duration::from_secs(6));
    let before = h.offers(&fw);
    assert_eq!(
        Resources::from_v1(&before[0].resources)
            .unwrap()
            .scalar("cpus"),
        3.0
    );
    h.engine.decline(
        &fw,
        &[before[0].id.value.clone()],
        mesos::Filters {
            refuse_seconds: Some(0.0),
        },
        h.now,
    );
    h.update(&agent, &fw, "t1", TaskState::TASK_FAILED, 2);
    assert!(h.drain().contains(&Effect::AllocateSoon));
    let after = h.offers(&fw);
    assert_eq!(
        Resources::from_v1(&after[0].resources)
            .unwrap()
            .scalar("cpus"),
        4.0
    );
}

#[test]
fn a_resent_update_replaces_the_last_status_instead_of_piling_up() {
    let (mut h, agent, fw) = running();
    h.update(&agent, &fw, "t1", TaskState::TASK_RUNNING, 9);
    h.update(&agent, &fw, "t1", TaskState::TASK_RUNNING, 9);
    let (live, _) = h.engine.tasks();
    let states: Vec<TaskState> = live[0].statuses.iter().map(|s| s.state).collect();
    assert_eq!(states, vec![TaskState::TASK_RUNNING]);
}

#[test]
fn terminal_states_are_final_and_other_agents_cannot_touch_a_task() {
    let (mut h, agent, fw) = running();
    let (intruder, _) = h.agent("a2", "cpus:1;mem:128");
    h.update(&intruder, &fw, "t1", TaskState::TASK_FINISHED, 3);
    assert!(h.updates(&fw).is_empty());
    assert_eq!(h.task_state(&fw, "t1"), Some(TaskState::TASK_RUNNING));
    // The intruder is acknowledged so that it stops resending.
    assert!(matches!(
        h.sent_to(&intruder).as_slice(),
        [ToAgent::Acknowledge { .. }]
    ));

    h.update(&agent, &fw, "t1", TaskState::TASK_FAILED, 4);
    // An earlier update the agent re-sends is forwarded (the framework
    // sees every state its agent reported), but the state stays final and
    // acknowledging it does not complete the task.
    h.update(&agent, &fw, "t1", TaskState::TASK_RUNNING, 5);
    let states: Vec<TaskState> = h.updates(&fw).iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        vec![TaskState::TASK_FAILED, TaskState::TASK_RUNNING]
    );
    assert_eq!(h.task_state(&fw, "t1"), Some(TaskState::TASK_FAILED));
    h.engine.acknowledge(&fw, &agent, "t1", vec![5; 16]);
    assert_eq!(
        h.engine.tasks().0.len(),
        1,
        "acknowledging RUNNING completed it"
    );
    h.update(&agent, &fw, "t1", TaskState::TASK_FAILED, 6);
    h.engine.acknowledge(&fw, &agent, "t1", vec![6; 16]);
    assert!(h.engine.tasks().0.is_empty());
    assert_eq!(h.task_state(&fw, "t1"), Some(TaskState::TASK_FAILED));
    h.drain();
    // An unknown task is dropped too.
    h.update(&agent, &fw, "ghost", TaskState::TASK_RUNNING, 6);
    assert!(h.updates(&fw).is_empty());
}

#[test]
fn kill_goes_to_the_agent_and_unknown_tasks_are_answered() {
    let (mut h, agent, fw) = running();
    let policy: mesos::KillPolicy =
        mesos::parse(json!({"grace_period": {"nanoseconds": 2_000_000_000i64}})).unwrap();
    h.engine.kill(&fw, "t1", Some(policy), h.now);
    assert_eq!(
        h.sent_to(&agent),
        vec![ToAgent::Kill {
            framework_id: fw.clone(),
            task_id: "t1".into(),
            grace_period_ms: Some(2000)
        }]
    );
    h.engine.kill(&fw, "nope", None, h.now);
    let s = h.updates(&fw).remove(0);
    assert_eq!(
        (s.state, s.reason.as_deref()),
        (TaskState::TASK_LOST, Some("REASON_TASK_UNKNOWN"))
    );
}

#[test]
fn explicit_and_implicit_reconciliation() {
    let (mut h, agent, fw) = running();
    h.engine.reconcile(&fw, &[], h.now);
    let implicit = h.updates(&fw);
    assert_eq!(implicit.len(), 1);
    assert_eq!(implicit[0].state, TaskState::TASK_RUNNING);
    assert_eq!(implicit[0].reason.as_deref(), Some("REASON_RECONCILIATION"));
    assert!(implicit[0].uuid.is_none());
    let ask = |id: &str| ReconcileTask {
        task_id: mesos::Id::new(id),
        agent_id: Some(mesos::Id::new(&agent)),
    };
    h.engine.reconcile(&fw, &[ask("t1"), ask("unknown")], h.now);
    let explicit = h.updates(&fw);
    assert_eq!(explicit[0].state, TaskState::TASK_RUNNING);
    assert_eq!(explicit[1].state, TaskState::TASK_LOST);
    assert_eq!(explicit[1].agent_id.as_ref().unwrap().value, agent);
    // A completed task is still known.
    h.update(&agent, &fw, "t1", TaskState::TASK_FINISHED, 8);
    h.engine.acknowledge(&fw, &agent, "t1", vec![8; 16]);
    h.drain();
    h.engine.reconcile(&fw, &[ask("t1")], h.now);
    assert_eq!(h.updates(&fw)[0].state, TaskState::TASK_FINISHED);
}

#[test]
fn a_kill_or_acknowledgement_the_session_cannot_take_is_not_lost() {
    let (mut h, agent, fw) = running();
    // The session's queue is full: the kill does not get through, and the
    // session is closed so that the agent re-registers.
    h.engine.kill(&fw, "t1", None, h.now);
    let kill = h.sent_to(&agent).remove(0);
    h.engine.agent_send_failed(&agent, kill.clone(), h.now);
    let closed = h.drain();
    assert!(
        closed
            .iter()
            .any(|e| matches!(e, Effect::CloseAgentSession { agent_id, .. } if agent_id == &agent)),
        "{closed:?}"
    );
    // Its re-registration brings the kill again.
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
    h.reregister(
        Some(agent.clone()),
        "a1",
        "cpus:4;mem:1024",
        vec![report.clone()],
    );
    assert_eq!(h.sent_to(&agent), vec![kill.clone()]);
    // So does a kill asked while the agent was away.
    h.end_session(&agent);
    h.engine.kill(&fw, "t1", None, h.now);
    assert!(h.sent_to(&agent).is_empty());
    h.reregister(Some(agent.clone()), "a1", "cpus:4;mem:1024", vec![report]);
    assert_eq!(h.sent_to(&agent), vec![kill]);
    // Once the task ended, nothing is sent again.
    h.update(&agent, &fw, "t1", TaskState::TASK_KILLED, 30);
    h.end_session(&agent);
    h.reregister(Some(agent.clone()), "a1", "cpus:4;mem:1024", Vec::new());
    assert!(
        !h.sent_to(&agent)
            .iter()
            .any(|m| matches!(m, ToAgent::Kill { .. }))
    );
}

#[test]
fn large_reconciliations_are_answered_at_the_pace_of_the_stream() {
    use crate::engine::reconcile::RECONCILE_BURST;
    let (mut h, agent, fw) = running();
    h.drain();
    let asked: Vec<ReconcileTask> = (0..RECONCILE_BURST + 10)
        .map(|i| ReconcileTask {
            task_id: keel_api::mesos::Id::new(format!("x{i}")),
            agent_id: Some(keel_api::mesos::Id::new(&agent)),
        })
        .collect();
    h.engine.reconcile(&fw, &asked, h.now);
    assert_eq!(h.updates(&fw).len(), RECONCILE_BURST);
    assert_eq!(h.engine.reconciling(), vec![fw.clone()]);
    assert_eq!(h.engine.reconcile_more(&fw, 4, h.now), 6);
    assert_eq!(h.updates(&fw).len(), 4);
    assert_eq!(h.engine.reconcile_more(&fw, 100, h.now), 0);
    let last = h.updates(&fw);
    assert_eq!(last.len(), 6);
    assert_eq!(last[5].task_id.value, format!("x{}", RECONCILE_BURST + 9));
    assert!(h.engine.reconciling().is_empty());
    // Implicit: the running task's latest state.
    h.engine.reconcile(&fw, &[], h.now);
    let implicit = h.updates(&fw);
    assert_eq!(implicit.len(), 1);
    assert_eq!(implicit[0].state, TaskState::TASK_RUNNING);
    // Waiting answers go with the stream.
    h.engine.reconcile(&fw, &asked, h.now);
    h.drain();
    let stream = h.engine.stream_of(&fw).unwrap();
    h.engine.stream_closed(&fw, &stream, h.now);
    assert!(h.engine.reconciling().is_empty());
}
