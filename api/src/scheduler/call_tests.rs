use super::*;
use crate::scheduler::OperationKind;
use serde_json::json;

fn parse(v: Json) -> Result<CallKind, CallError> {
    Call::from_json(v).map(|c| c.kind)
}

fn is_400(e: &CallError) -> bool {
    matches!(e, CallError::Malformed(_) | CallError::Invalid(_))
}

#[test]
fn subscribe_with_nulls_like_mesos_framework_sends() {
    let c = Call::from_json(json!({
        "type": "SUBSCRIBE", "framework_id": null,
        "subscribe": {"framework_info": {"user": "u", "name": "n", "capabilities": null,
            "failover_timeout": "30", "id": null}}
    }))
    .unwrap();
    assert_eq!(c.framework_id, None);
    match c.kind {
        CallKind::Subscribe(s) => assert_eq!(s.framework_info.failover_timeout, Some(30.0)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn resubscribe_ids_must_agree() {
    let err = parse(json!({
        "type": "SUBSCRIBE", "framework_id": {"value": "a"},
        "subscribe": {"framework_info": {"user": "u", "name": "n", "id": {"value": "b"}}}
    }))
    .unwrap_err();
    assert!(is_400(&err));
    assert!(err.to_string().contains("differs"));
}

#[test]
fn accept_with_typed_operations() {
    let c = parse(json!({
        "type": "ACCEPT", "framework_id": {"value": "f"},
        "accept": {"offer_ids": [{"value": "o1"}], "filters": {"refuse_seconds": 10},
            "operations": [
                {"type": "LAUNCH", "id": {"value": "op1"}, "launch": {"task_infos": [
                    {"name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
                     "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}],
                     "command": {"value": "true"}}]}},
                {"type": "RESERVE", "reserve": {"resources": []}},
                {"type": "GROW_VOLUME", "grow_volume": {}}
            ]}
    }))
    .unwrap();
    let CallKind::Accept {
        offer_ids,
        operations,
        filters,
    } = c
    else {
        panic!("{c:?}");
    };
    assert_eq!(offer_ids, vec!["o1"]);
    assert_eq!(filters.refuse_seconds(), 10.0);
    assert_eq!(operations[0].id.as_deref(), Some("op1"));
    let OperationKind::Launch { task_infos } = &operations[0].kind else {
        panic!("{operations:?}");
    };
    assert_eq!(task_infos[0].resources[0].name, "cpus");
    assert!(matches!(operations[1].kind, OperationKind::Reserve { .. }));
    assert_eq!(operations[2].kind.name(), "GROW_VOLUME");
}

#[test]
fn a_malformed_task_refuses_the_call() {
    // As Mesos: the body does not convert into a Call protobuf.
    let err = parse(json!({
        "type": "ACCEPT", "framework_id": {"value": "f"},
        "accept": {"offer_ids": [], "operations": [
            {"type": "LAUNCH", "launch": {"task_infos": [{"name": "t"}]}}]}
    }))
    .unwrap_err();
    assert!(matches!(err, CallError::Malformed(_)));
    assert!(err.to_string().contains("Missing required fields"), "{err}");
}

#[test]
fn body_fields_are_required() {
    for (kind, body) in [
        ("ACCEPT", "accept"),
        ("DECLINE", "decline"),
        ("KILL", "kill"),
        ("ACKNOWLEDGE", "acknowledge"),
        ("RECONCILE", "reconcile"),
        ("MESSAGE", "message"),
        ("SUBSCRIBE", "subscribe"),
        ("UPDATE_FRAMEWORK", "update_framework"),
    ] {
        let err = parse(json!({"type": kind, "framework_id": {"value": "f"}})).unwrap_err();
        assert!(is_400(&err));
        assert!(
            err.to_string()
                .contains(&format!("Expecting '{body}' to be present")),
            "{err}"
        );
    }
    // REVIVE, SUPPRESS, TEARDOWN and RECONCILE_OPERATIONS need no body.
    for kind in ["REVIVE", "SUPPRESS", "TEARDOWN", "RECONCILE_OPERATIONS"] {
        parse(json!({"type": kind, "framework_id": {"value": "f"}})).unwrap();
    }
}

#[test]
fn acknowledge_uuid_must_be_16_bytes() {
    let ack = |uuid: &str| {
        parse(
            json!({"type": "ACKNOWLEDGE", "framework_id": {"value": "f"},
            "acknowledge": {"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": uuid}}),
        )
    };
    let ok = ack("AAECAwQFBgcICQoLDA0ODw==").unwrap();
    assert!(matches!(ok, CallKind::Acknowledge { uuid, .. } if uuid.len() == 16));
    assert!(is_400(&ack("AAEC").unwrap_err()));
    assert!(is_400(&ack("not base64!").unwrap_err()));
}

#[test]
fn operation_feedback_calls() {
    let c = parse(
        json!({"type": "ACKNOWLEDGE_OPERATION_STATUS", "framework_id": {"value": "f"},
        "acknowledge_operation_status": {"agent_id": {"value": "a"},
            "uuid": "AAECAwQFBgcICQoLDA0ODw==", "operation_id": {"value": "op"}}}),
    )
    .unwrap();
    assert!(
        matches!(c, CallKind::AcknowledgeOperationStatus { operation_id, .. } if operation_id == "op")
    );
    let c = parse(
        json!({"type": "RECONCILE_OPERATIONS", "framework_id": {"value": "f"},
        "reconcile_operations": {"operations": [{"operation_id": {"value": "op"}}]}}),
    )
    .unwrap();
    assert_eq!(
        c,
        CallKind::ReconcileOperations {
            operation_ids: vec!["op".into()]
        }
    );
}

#[test]
fn type_and_framework_id_rules() {
    assert_eq!(
        parse(json!({"type": "UNKNOWN", "framework_id": {"value": "f"}})).unwrap_err(),
        CallError::Unknown
    );
    assert!(is_400(&parse(json!({"type": "FLY"})).unwrap_err()));
    assert!(is_400(&parse(json!({})).unwrap_err()));
    assert!(is_400(&parse(json!([1])).unwrap_err()));
    assert!(
        parse(json!({"type": 7}))
            .unwrap_err()
            .to_string()
            .contains("must be a string")
    );
    let err = parse(json!({"type": "REVIVE"})).unwrap_err();
    assert!(err.to_string().contains("framework_id"));
    let roles = parse(json!({"type": "SUPPRESS", "framework_id": {"value": "f"},
        "suppress": {"roles": ["a", "b"]}}))
    .unwrap();
    assert_eq!(
        roles,
        CallKind::Suppress {
            roles: vec!["a".into(), "b".into()]
        }
    );
    let one = parse(json!({"type": "REVIVE", "framework_id": {"value": "f"},
        "revive": {"role": "a"}}))
    .unwrap();
    assert_eq!(
        one,
        CallKind::Revive {
            roles: vec!["a".into()]
        }
    );
}

fn ids(n: usize) -> Vec<Json> {
    (0..n).map(|i| json!({"value": format!("o{i}")})).collect()
}

fn task(name: &str, resources: usize) -> Json {
    let r: Vec<Json> = (0..resources)
        .map(|_| json!({"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}))
        .collect();
    json!({"name": name, "task_id": {"value": name}, "agent_id": {"value": "a"}, "resources": r})
}

fn limit_reason(v: Json) -> String {
    match Call::from_json(v) {
        Err(CallError::Invalid(reason)) => reason,
        other => panic!("expected a refusal: {other:?}"),
    }
}

#[test]
fn item_counts_are_limited_before_typing() {
    use crate::scheduler::limits::*;
    let decline = |n| json!({"type": "DECLINE", "framework_id": {"value": "f"}, "decline": {"offer_ids": ids(n)}});
    assert!(Call::from_json(decline(MAX_OFFER_IDS)).is_ok());
    assert_eq!(
        limit_reason(decline(MAX_OFFER_IDS + 1)),
        "Call exceeds a limit: 'decline.offer_ids' has more than 10000 items (the limit of offer ids per DECLINE)"
    );
    let accept = |ops: Vec<Json>| {
        json!({"type": "ACCEPT", "framework_id": {"value": "f"},
        "accept": {"offer_ids": ids(1), "operations": ops}})
    };
    let launch = |tasks: Vec<Json>| json!({"type": "LAUNCH", "launch": {"task_infos": tasks}});
    let many_ops =
        vec![json!({"type": "RESERVE", "reserve": {"resources": []}}); MAX_OPERATIONS + 1];
    assert!(limit_reason(accept(many_ops)).contains("operations per ACCEPT"));
    let many_tasks = (0..=MAX_TASKS).map(|i| task(&format!("t{i}"), 1)).collect();
    assert!(limit_reason(accept(vec![launch(many_tasks)])).contains("tasks per LAUNCH"));
    let big_task = task("t", MAX_RESOURCES + 1);
    let reason = limit_reason(accept(vec![launch(vec![big_task])]));
    assert!(
        reason.contains("'accept.operations.launch.task_infos.resources'")
            && reason.contains("resources per task"),
        "{reason}"
    );
    let group = json!({"type": "LAUNCH_GROUP", "launch_group": {"executor": {},
        "task_group": {"tasks": [task("t", MAX_RESOURCES + 1)]}}});
    assert!(limit_reason(accept(vec![group])).contains("resources per task"));
    let reconcile: Vec<Json> = (0..=MAX_RECONCILE)
        .map(|i| json!({"task_id": {"value": format!("t{i}")}}))
        .collect();
    let reason = limit_reason(json!({"type": "RECONCILE", "framework_id": {"value": "f"},
        "reconcile": {"tasks": reconcile}}));
    assert!(reason.contains("tasks per RECONCILE"), "{reason}");
    // Any other list, and the nesting, have limits too.
    let deep = (0..40).fold(json!(1), |v, _| json!([v]));
    let reason = limit_reason(json!({"type": "REVIVE", "framework_id": {"value": "f"}, "x": deep}));
    assert!(reason.contains("nested deeper than 32"), "{reason}");
}

#[test]
fn bytes_read_like_the_json_value() {
    // Nulls anywhere, numbers as strings: the same call either way.
    let v = json!({
        "type": "ACCEPT", "framework_id": {"value": "f"}, "extra": null,
        "accept": {"offer_ids": [null, {"value": "o1"}], "filters": {"refuse_seconds": "5"},
            "operations": [null, {"type": "LAUNCH", "id": null, "launch": {"task_infos": [
                {"name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
                 "resources": [{"name": "mem", "type": "SCALAR", "scalar": {"value": "64"},
                     "role": null}], "labels": {"labels": [null, {"key": "k"}]}}]}}]}
    });
    let from_bytes = Call::from_slice(v.to_string().as_bytes()).unwrap();
    let CallKind::Accept {
        offer_ids,
        operations,
        filters,
    } = from_bytes.kind
    else {
        panic!("{from_bytes:?}");
    };
    assert_eq!(offer_ids, vec!["o1"]);
    assert_eq!(filters.refuse_seconds(), 5.0);
    let OperationKind::Launch { task_infos } = &operations[0].kind else {
        panic!("{operations:?}");
    };
    assert_eq!(task_infos[0].resources[0].name, "mem");
    assert_eq!(
        task_infos[0].labels,
        Some(json!({"labels": [{"key": "k"}]}))
    );
    assert!(
        Call::from_slice(b"{not json")
            .unwrap_err()
            .to_string()
            .starts_with("Failed to parse body into JSON")
    );
    let head = Call::head(
        br#"{"decline": {"offer_ids": []}, "type": "DECLINE", "framework_id": {"value": "f"}}"#,
    )
    .unwrap();
    assert_eq!(head.kind.as_deref(), Some("DECLINE"));
    assert_eq!(head.framework_id.as_deref(), Some("f"));
}

#[test]
fn inverse_offer_answers_carry_their_ids_and_filters() {
    let c = parse(json!({
        "type": "DECLINE_INVERSE_OFFERS", "framework_id": {"value": "f"},
        "decline_inverse_offers": {"inverse_offer_ids": [{"value": "m-O3"}],
            "filters": {"refuse_seconds": "30"}}
    }))
    .unwrap();
    match c {
        CallKind::InverseOffers {
            accept,
            inverse_offer_ids,
            filters,
        } => {
            assert!(!accept);
            assert_eq!(inverse_offer_ids, vec!["m-O3".to_string()]);
            assert_eq!(filters.refuse_seconds(), 30.0);
        }
        other => panic!("{other:?}"),
    }
    let missing = parse(json!({"type": "ACCEPT_INVERSE_OFFERS", "framework_id": {"value": "f"}}))
        .unwrap_err();
    assert!(missing.to_string().contains("accept_inverse_offers"));
}
