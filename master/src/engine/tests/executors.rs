//! Custom executors: their resources are held from their first task to
//! their end, framework messages go both ways, an executor's end is a
//! FAILURE to its framework.

use super::*;

/// A task of `offer` run by custom executor `ex` (0.5 cpus, 64 MB of its own).
fn custom_task(offer: &Offer, id: &str, ex: &str) -> TaskInfo {
    let mut t = task(offer, id, 1.0, 128.0);
    t.command = None;
    t.executor = Some(
        mesos::parse(json!({
            "executor_id": {"value": ex}, "type": "CUSTOM", "command": {"value": "./ex"},
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}}
            ]
        }))
        .unwrap(),
    );
    t
}

fn cpus(offers: &[Offer]) -> f64 {
    offers
        .iter()
        .map(|o| Resources::from_v1(&o.resources).unwrap().scalar("cpus"))
        .sum()
}

/// Declines every offer the framework has, without a filter.
fn decline_all(h: &mut Harness, fw: &str, offers: &[Offer]) {
    let ids: Vec<String> = offers.iter().map(|o| o.id.value.clone()).collect();
    let filters = mesos::Filters {
        refuse_seconds: Some(0.0),
    };
    h.engine.decline(fw, &ids, filters, h.now);
}

#[test]
fn an_executor_holds_its_resources_once_until_it_ends() {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    let offer = h.offers(&fw).remove(0);
    h.accept(
        &fw,
        &[&offer],
        vec![launch(vec![custom_task(&offer, "t1", "ex")])],
    );
    let Some(ToAgent::Launch(l)) = h.sent_to(&agent).into_iter().next() else {
        panic!("no launch");
    };
    let exec = l.tasks[0].executor.as_ref().unwrap();
    assert_eq!(
        exec.resources[0]
            .allocation_info
            .as_ref()
            .unwrap()
            .role
            .as_deref(),
        Some("*"),
        "the executor's resources carry the allocation role"
    );
    // 4 - 1 (task) - 0.5 (executor) are offered again.
    h.advance(Duration::from_secs(6));
    let offers = h.offers(&fw);
    assert_eq!(cpus(&offers), 2.5);
    assert_eq!(offers[0].executor_ids[0].value, "ex");
    // A second task in the same executor costs only its own resources.
    h.accept(
        &fw,
        &[&offers[0]],
        vec![launch(vec![custom_task(&offers[0], "t2", "ex")])],
    );
    h.advance(Duration::from_secs(6));
    let offers = h.offers(&fw);
    assert_eq!(cpus(&offers), 1.5);
    decline_all(&mut h, &fw, &offers);
    // Both tasks end: the executor still holds its share.
    for (t, n) in [("t1", 1), ("t2", 2)] {
        h.update(&agent, &fw, t, TaskState::TASK_FINISHED, n);
        h.engine.acknowledge(&fw, &agent, t, vec![n; 16]);
    }
    h.advance(Duration::from_secs(6));
    let offers = h.offers(&fw);
    assert_eq!(cpus(&offers), 3.5);
    decline_all(&mut h, &fw, &offers);
    h.events(&fw);
    // It ends: its resources come back, the framework hears FAILURE.
    h.engine
        .executor_exited(&agent, &fw, "ex", Some(256), h.now);
    let failure = h.events(&fw).into_iter().find_map(|e| match e {
        Event::Failure(f) => Some(f),
        _ => None,
    });
    let f = failure.expect("no FAILURE");
    assert_eq!(f.executor_id.unwrap().value, "ex");
    assert_eq!(f.status, Some(256));
    h.advance(Duration::from_secs(6));
    assert_eq!(cpus(&h.offers(&fw)), 4.0);
}

#[test]
fn an_executor_without_room_in_the_offers_fails_its_task() {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:1.2;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    let offer = h.offers(&fw).remove(0);
    h.accept(
        &fw,
        &[&offer],
        vec![launch(vec![custom_task(&offer, "t1", "ex")])],
    );
    let update = h.updates(&fw).remove(0);
    assert_eq!(update.state, TaskState::TASK_ERROR);
    assert!(
        update
            .message
            .as_deref()
            .unwrap()
            .starts_with("Executor uses more resources"),
        "{update:?}"
    );
    assert!(h.sent_to(&agent).is_empty());
}

#[test]
fn framework_messages_go_both_ways_and_shutdown_reaches_the_agent() {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    let offer = h.offers(&fw).remove(0);
    h.accept(
        &fw,
        &[&offer],
        vec![launch(vec![custom_task(&offer, "t1", "ex")])],
    );
    h.sent_to(&agent);
    h.engine
        .framework_message(&fw, &agent, "ex", b"ping".to_vec());
    assert_eq!(
        h.sent_to(&agent),
        vec![ToAgent::FrameworkMessage {
            framework_id: fw.clone(),
            executor_id: "ex".into(),
            data: b"ping".to_vec(),
        }]
    );
    h.events(&fw);
    h.engine.executor_message(&agent, &fw, "ex", b"pong");
    let Some(Event::Message(m)) = h.events(&fw).into_iter().next() else {
        panic!("no MESSAGE");
    };
    assert_eq!(
        (m.executor_id.value.as_str(), m.data.as_str()),
        ("ex", "cG9uZw==")
    );
    h.engine.shutdown_executor(&fw, "ex", h.now);
    assert_eq!(
        h.sent_to(&agent),
        vec![ToAgent::ShutdownExecutor {
            framework_id: fw.clone(),
            executor_id: "ex".into(),
        }]
    );
}

#[test]
fn a_new_leader_counts_the_executors_agents_report() {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    let info: mesos::ExecutorInfo = mesos::parse(json!({
        "executor_id": {"value": "ex"}, "command": {"value": "./ex"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.5},
                       "allocation_info": {"role": "*"}}]
    }))
    .unwrap();
    h.end_session(&agent);
    h.engine.executors_reported(
        &agent,
        vec![ReportedExecutor {
            framework_id: fw.clone(),
            info,
        }],
    );
    h.reregister(Some(agent.clone()), "a1", "cpus:4;mem:1024", vec![]);
    h.advance(Duration::from_secs(6));
    assert_eq!(cpus(&h.offers(&fw)), 2.5);
}
