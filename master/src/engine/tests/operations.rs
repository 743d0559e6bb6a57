//! RESERVE, CREATE and DESTROY inside an ACCEPT, with operation feedback.

use super::*;
use keel_api::scheduler::OperationStatus;

fn reserved_disk(role: &str, size: f64) -> mesos::Resource {
    mesos::parse(
        json!({"name": "disk", "type": "SCALAR", "scalar": {"value": size},
        "reservations": [{"type": "DYNAMIC", "role": role, "principal": "p"}]}),
    )
    .unwrap()
}

fn volume(role: &str, id: &str, size: f64) -> mesos::Resource {
    mesos::parse(
        json!({"name": "disk", "type": "SCALAR", "scalar": {"value": size},
        "reservations": [{"type": "DYNAMIC", "role": role}],
        "disk": {"persistence": {"id": id}, "volume": {"container_path": "data", "mode": "RW"}}}),
    )
    .unwrap()
}

fn op(id: &str, kind: OperationKind) -> Operation {
    Operation {
        id: Some(id.into()),
        kind,
    }
}

fn statuses(h: &mut Harness, fw: &str) -> Vec<OperationStatus> {
    h.events(fw)
        .into_iter()
        .filter_map(|e| match e {
            Event::UpdateOperationStatus(s) => Some(s),
            _ => None,
        })
        .collect()
}

#[test]
fn reserve_create_launch_and_destroy_with_feedback() {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024;disk:1000");
    let (fw, _) = h.framework(framework_info("f", json!({"role": "eng"})));
    let offer = h.offers(&fw).remove(0);
    let reserve = op(
        "r1",
        OperationKind::Reserve {
            resources: vec![reserved_disk("eng", 100.0)],
        },
    );
    let create = op(
        "c1",
        OperationKind::Create {
            volumes: vec![volume("eng", "v1", 100.0)],
        },
    );
    let mut t = task(&offer, "db", 1.0, 64.0);
    t.resources.push(volume("eng", "v1", 100.0));
    h.accept(&fw, &[&offer], vec![reserve, create, launch(vec![t])]);
    let s = statuses(&mut h, &fw);
    assert_eq!(
        s.iter()
            .map(|s| (s.operation_id.clone().unwrap().value, s.state.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("r1".to_string(), "OPERATION_FINISHED"),
            ("c1".to_string(), "OPERATION_FINISHED")
        ]
    );
    assert!(s.iter().all(|s| s.uuid.is_some()));
    let rec = h.committed.agent(&agent).unwrap();
    assert_eq!(rec.volumes.len(), 1);
    let (live, _) = h.engine.tasks();
    assert_eq!(live[0].volumes, vec![("eng".to_string(), "v1".to_string())]);

    // The task ends; the volume is offered back and can be destroyed.
    h.update(&agent, &fw, "db", TaskState::TASK_FINISHED, 2);
    h.engine.acknowledge(&fw, &agent, "db", vec![2; 16]);
    h.advance(Duration::from_secs(6));
    let offer = h.offers(&fw).remove(0);
    assert!(
        offer
            .resources
            .iter()
            .any(|r| r.persistence_id() == Some("v1"))
    );
    let destroy = op(
        "d1",
        OperationKind::Destroy {
            volumes: vec![volume("eng", "v1", 100.0)],
        },
    );
    h.accept(&fw, &[&offer], vec![destroy]);
    assert_eq!(statuses(&mut h, &fw)[0].state, "OPERATION_FINISHED");
    assert!(h.committed.agent(&agent).unwrap().volumes.is_empty());
    assert!(h.sent_to(&agent).iter().any(|m| matches!(m, ToAgent::DestroyVolumes { volumes } if volumes == &[("eng".to_string(), "v1".to_string())])));
}

#[test]
fn refused_operations_report_an_error_and_reconcile() {
    let mut h = Harness::new();
    h.agent("a1", "cpus:4;mem:1024;disk:1000");
    let (fw, _) = h.framework(framework_info("f", json!({"role": "eng"})));
    let offer = h.offers(&fw).remove(0);
    // More disk than offered.
    let too_much = op(
        "r1",
        OperationKind::Reserve {
            resources: vec![reserved_disk("eng", 5000.0)],
        },
    );
    // No id: no feedback.
    let silent = Operation {
        id: None,
        kind: OperationKind::Reserve {
            resources: vec![reserved_disk("eng", 5000.0)],
        },
    };
    h.accept(&fw, &[&offer], vec![too_much, silent]);
    let s = statuses(&mut h, &fw);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].state, "OPERATION_ERROR");
    assert!(
        s[0].message
            .as_deref()
            .unwrap()
            .contains("not in the offers")
    );

    h.engine
        .reconcile_operations(&fw, &["r1".to_string(), "nope".to_string()]);
    let r = statuses(&mut h, &fw);
    assert_eq!(r[0].state, "OPERATION_ERROR");
    assert_eq!(r[1].state, "OPERATION_UNKNOWN");
    // Implicit: what is still unacknowledged; after the ack, nothing.
    let uuid = mesos::base64_decode(&s[0].uuid.as_ref().unwrap().value).unwrap();
    h.engine.reconcile_operations(&fw, &[]);
    assert_eq!(statuses(&mut h, &fw).len(), 1);
    h.engine.acknowledge_operation(&fw, "r1", &uuid);
    h.engine.reconcile_operations(&fw, &[]);
    assert!(statuses(&mut h, &fw).is_empty());
}

#[test]
fn operations_with_an_id_are_remembered_for_get_operations() {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024;disk:1000");
    let (fw, _) = h.framework(framework_info("f", json!({"role": "eng"})));
    let offer = h.offers(&fw).remove(0);
    let reserve = op(
        "r1",
        OperationKind::Reserve {
            resources: vec![reserved_disk("eng", 100.0)],
        },
    );
    let unnamed = Operation {
        id: None,
        kind: OperationKind::Reserve {
            resources: vec![reserved_disk("eng", 1.0)],
        },
    };
    h.accept(&fw, &[&offer], vec![reserve, unnamed]);
    let ops = h.engine.operation_views();
    assert_eq!(ops.len(), 1, "{ops:?}");
    let o = &ops[0];
    assert_eq!(
        (o.framework_id.as_str(), o.agent_id.as_deref()),
        (fw.as_str(), Some(agent.as_str()))
    );
    assert_eq!(o.latest_status.state, "OPERATION_FINISHED");
    assert_eq!(o.info["type"], "RESERVE");
    assert_eq!(o.info["id"]["value"], "r1");
    assert_eq!(o.info["reserve"]["resources"][0]["name"], "disk");
    assert_eq!(o.uuid.len(), 16);
}
