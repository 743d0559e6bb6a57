//! ACCEPT: launches, validation, task groups, offer problems, filters.

use super::*;

#[test]
fn a_valid_launch_goes_to_the_agent_with_its_role_and_framework() {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    let offer = h.offers(&fw).remove(0);
    assert_eq!(offer.agent_id.value, agent);
    h.accept(
        &fw,
        &[&offer],
        vec![launch(vec![task(&offer, "t1", 1.0, 128.0)])],
    );
    let sent = h.sent_to(&agent);
    let [ToAgent::Launch(l)] = sent.as_slice() else {
        panic!("{sent:?}");
    };
    let Launch {
        framework_id,
        framework_info,
        tasks,
        executor,
    } = l.as_ref();
    assert_eq!(framework_id, &fw);
    assert_eq!(framework_info.as_ref().unwrap().name, "f");
    assert!(executor.is_none());
    // The allocation role is injected into every resource.
    assert!(
        tasks[0]
            .resources
            .iter()
            .all(|r| r.allocation_role() == Some("*"))
    );
    assert_eq!(h.task_state(&fw, "t1"), Some(TaskState::TASK_STAGING));
}

#[test]
fn invalid_tasks_get_task_error_and_their_resources_come_back() {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    let offer = h.offers(&fw).remove(0);
    let neg = task(&offer, "neg", -1.0, 32.0);
    let huge = task(&offer, "huge", 400.0, 32.0);
    let mut dup = task(&offer, "ok", 1.0, 32.0);
    dup.task_id.value = "ok".into();
    let ok = task(&offer, "ok", 1.0, 32.0);
    h.accept(&fw, &[&offer], vec![launch(vec![neg, huge, ok, dup])]);
    let mut errors: Vec<(String, String)> = h
        .updates(&fw)
        .into_iter()
        .map(|s| {
            assert_eq!(s.state, TaskState::TASK_ERROR);
            assert_eq!(s.reason.as_deref(), Some("REASON_TASK_INVALID"));
            assert!(s.uuid.is_none());
            (s.task_id.value, s.message.unwrap())
        })
        .collect();
    errors.sort();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].1.contains("more resources"), "{errors:?}");
    assert!(errors[1].1.contains("invalid resources"));
    assert!(errors[2].1.contains("duplicate"));
    // Only the valid task went out; the rest of the offer comes back.
    assert_eq!(h.sent_to(&agent).len(), 1);
    h.advance(Duration::from_secs(6));
    let again = h.offers(&fw);
    assert_eq!(
        Resources::from_v1(&again[0].resources)
            .unwrap()
            .scalar("cpus"),
        3.0
    );
}

#[test]
fn a_task_group_is_all_or_nothing() {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    let offer = h.offers(&fw).remove(0);
    let executor: mesos::ExecutorInfo = mesos::parse(json!({"type": "DEFAULT",
        "executor_id": {"value": "ex"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}]}))
    .unwrap();
    let mut a = task(&offer, "a", 1.0, 64.0);
    a.command = None;
    let mut b = task(&offer, "b", 100.0, 64.0);
    b.command = None;
    let group = |tasks| Operation {
        id: None,
        kind: OperationKind::LaunchGroup {
            executor: Box::new(executor.clone()),
            tasks,
        },
    };
    h.accept(&fw, &[&offer], vec![group(vec![a.clone(), b])]);
    let updates = h.updates(&fw);
    assert_eq!(updates.len(), 2);
    assert!(updates.iter().all(|s| s.state == TaskState::TASK_ERROR));
    assert!(h.sent_to(&agent).is_empty());

    h.advance(Duration::from_secs(6));
    let offer = h.offers(&fw).remove(0);
    let mut c = task(&offer, "c", 1.0, 64.0);
    c.command = None;
    h.accept(&fw, &[&offer], vec![group(vec![a, c])]);
    let sent = h.sent_to(&agent);
    let [ToAgent::Launch(l)] = sent.as_slice() else {
        panic!("{sent:?}");
    };
    let (tasks, ex) = (&l.tasks, l.executor.as_ref().unwrap());
    assert_eq!(tasks.len(), 2);
    assert_eq!(ex.executor_id.value, "ex");
    let (live, _) = h.engine.tasks();
    assert!(live.iter().all(|t| t.executor_id.as_deref() == Some("ex")));
}

#[test]
fn offer_problems_lose_the_launch_and_change_nothing() {
    let mut h = Harness::new();
    h.agent("a1", "cpus:4;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    let offer = h.offers(&fw).remove(0);
    let mut ghost = offer.clone();
    ghost.id.value = "no-such-offer".into();
    h.accept(
        &fw,
        &[&ghost],
        vec![launch(vec![task(&offer, "g", 0.1, 32.0)])],
    );
    let s = h.updates(&fw).remove(0);
    assert_eq!(s.state, TaskState::TASK_LOST);
    assert_eq!(s.reason.as_deref(), Some("REASON_INVALID_OFFERS"));
    assert!(h.engine.tasks().0.is_empty());
    // The same offer twice, and a used offer.
    h.accept(
        &fw,
        &[&offer, &offer],
        vec![launch(vec![task(&offer, "x", 0.1, 32.0)])],
    );
    assert!(
        h.updates(&fw)[0]
            .message
            .as_deref()
            .unwrap()
            .contains("more than once")
    );
    h.accept(
        &fw,
        &[&offer],
        vec![launch(vec![task(&offer, "once", 0.1, 32.0)])],
    );
    h.accept(
        &fw,
        &[&offer],
        vec![launch(vec![task(&offer, "twice", 0.1, 32.0)])],
    );
    let lost: Vec<_> = h
        .updates(&fw)
        .into_iter()
        .filter(|s| s.state == TaskState::TASK_LOST)
        .collect();
    assert_eq!(lost[0].task_id.value, "twice");
}

#[test]
fn partition_aware_frameworks_get_task_dropped_for_bad_offers() {
    let mut h = Harness::new();
    h.agent("a1", "cpus:4;mem:1024");
    let caps = json!({"capabilities": [{"type": "PARTITION_AWARE"}]});
    let (fw, _) = h.framework(framework_info("f", caps));
    let mut offer = h.offers(&fw).remove(0);
    offer.id.value = "gone".into();
    h.accept(
        &fw,
        &[&offer],
        vec![launch(vec![task(&offer, "g", 0.1, 32.0)])],
    );
    assert_eq!(h.updates(&fw)[0].state, TaskState::TASK_DROPPED);
}

#[test]
fn decline_filters_the_agent_for_refuse_seconds() {
    let mut h = Harness::new();
    h.agent("a1", "cpus:4;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    let offer = h.offers(&fw).remove(0);
    let filters: mesos::Filters = mesos::parse(json!({"refuse_seconds": 30})).unwrap();
    h.engine
        .decline(&fw, std::slice::from_ref(&offer.id.value), filters, h.now);
    h.advance(Duration::from_secs(10));
    assert!(h.offers(&fw).is_empty(), "filtered for 30 s");
    h.advance(Duration::from_secs(21));
    assert_eq!(h.offers(&fw).len(), 1);
}

#[test]
fn a_launch_that_cannot_be_sent_is_dropped_not_left_staging() {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    let offer = h.offers(&fw).remove(0);
    h.accept(
        &fw,
        &[&offer],
        vec![launch(vec![task(&offer, "t1", 1.0, 128.0)])],
    );
    let msg = h.sent_to(&agent).remove(0);
    // The shell reports that the agent's queue was full.
    h.engine.agent_send_failed(&agent, msg, h.now);
    let s = h.updates(&fw).remove(0);
    assert_eq!(s.state, TaskState::TASK_LOST);
    assert_eq!(h.task_state(&fw, "t1"), Some(TaskState::TASK_LOST));
    assert!(h.engine.tasks().0.is_empty());
}
