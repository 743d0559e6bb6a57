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
