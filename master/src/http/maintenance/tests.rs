//! Parsing maintenance calls and the legacy bodies; the status view.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::*;
use crate::http::operator::parse_operator_call;

fn call(body: serde_json::Value) -> Result<OperatorCall, Rejection> {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    parse_operator_call(&h, body.to_string().as_bytes())
}

#[test]
fn v1_calls_parse_into_registry_values() {
    let c = call(serde_json::json!({"type": "UPDATE_MAINTENANCE_SCHEDULE",
        "update_maintenance_schedule": {"schedule": {"windows": [{
            "machine_ids": [{"hostname": "Node-1"}, {"ip": "10.0.0.2"}],
            "unavailability": {"start": {"nanoseconds": "5"}, "duration": {"nanoseconds": 9}}}]}}}))
    .unwrap();
    assert_eq!(
        c,
        OperatorCall::UpdateMaintenanceSchedule(vec![Window {
            machines: vec![
                Machine::new(Some("node-1"), None),
                Machine::new(None, Some("10.0.0.2"))
            ],
            start_ns: 5,
            duration_ns: Some(9),
        }])
    );
    let c = call(serde_json::json!({"type": "DRAIN_AGENT",
        "drain_agent": {"agent_id": {"value": "m-S1"}, "max_grace_period": "10mins",
                        "mark_gone": true, "unknown": 1}}))
    .unwrap();
    assert_eq!(
        c,
        OperatorCall::DrainAgent {
            agent_id: "m-S1".into(),
            max_grace_period_ns: Some(600_000_000_000),
            mark_gone: true
        }
    );
    let c = call(serde_json::json!({"type": "DRAIN_AGENT",
        "drain_agent": {"agent_id": {"value": "m-S1"}, "max_grace_period": {"seconds": 2}}}))
    .unwrap();
    assert!(matches!(
        c,
        OperatorCall::DrainAgent {
            max_grace_period_ns: Some(2_000_000_000),
            mark_gone: false,
            ..
        }
    ));
    assert_eq!(
        call(serde_json::json!({"type": "STOP_MAINTENANCE",
            "stop_maintenance": {"machines": [{"hostname": "a", "ip": "10.0.0.1"}]}}))
        .unwrap(),
        OperatorCall::StopMaintenance(vec![Machine::new(Some("a"), Some("10.0.0.1"))])
    );
    assert_eq!(
        call(serde_json::json!({"type": "REACTIVATE_AGENT",
            "reactivate_agent": {"agent_id": {"value": "m-S2"}}}))
        .unwrap(),
        OperatorCall::ReactivateAgent("m-S2".into())
    );
    assert_eq!(
        call(serde_json::json!({"type": "GET_MAINTENANCE_STATUS"})).unwrap(),
        OperatorCall::GetMaintenanceStatus
    );
}

#[test]
fn malformed_calls_get_400_with_a_reason() {
    for (body, needle) in [
        (
            serde_json::json!({"type": "UPDATE_MAINTENANCE_SCHEDULE"}),
            "Expecting 'update_maintenance_schedule'",
        ),
        (
            serde_json::json!({"type": "UPDATE_MAINTENANCE_SCHEDULE",
                "update_maintenance_schedule": {"schedule": {"windows": [{"machine_ids": []}]}}}),
            "unavailability",
        ),
        (
            serde_json::json!({"type": "DRAIN_AGENT", "drain_agent": {}}),
            "agent_id",
        ),
        (
            serde_json::json!({"type": "DRAIN_AGENT", "drain_agent": {
                "agent_id": {"value": "a"}, "max_grace_period": "forever"}}),
            "invalid duration",
        ),
        (
            serde_json::json!({"type": "DRAIN_AGENT", "drain_agent": {
                "agent_id": {"value": "a"}, "max_grace_period": {"seconds": -1}}}),
            "negative",
        ),
        (
            serde_json::json!({"type": "START_MAINTENANCE", "start_maintenance": {"machines": 3}}),
            "start_maintenance",
        ),
    ] {
        let r = call(body.clone()).unwrap_err();
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(r.reason.contains(needle), "{} lacks {needle}", r.reason);
    }
}

#[test]
fn legacy_bodies_become_the_v1_calls() {
    let body = br#"{"windows":[{"machine_ids":[{"hostname":"a"}],"unavailability":{"start":{"nanoseconds":1}}}]}"#;
    assert_eq!(
        parse_legacy(Legacy::Schedule, &Method::POST, body).unwrap(),
        OperatorCall::UpdateMaintenanceSchedule(vec![Window {
            machines: vec![Machine::new(Some("a"), None)],
            start_ns: 1,
            duration_ns: None,
        }])
    );
    assert_eq!(
        parse_legacy(Legacy::Schedule, &Method::GET, b"").unwrap(),
        OperatorCall::GetMaintenanceSchedule
    );
    assert_eq!(
        parse_legacy(Legacy::Down, &Method::POST, br#"[{"hostname":"a"}]"#).unwrap(),
        OperatorCall::StartMaintenance(vec![Machine::new(Some("a"), None)])
    );
    assert_eq!(
        parse_legacy(Legacy::Up, &Method::POST, br#"[{"ip":"10.0.0.1"}]"#).unwrap(),
        OperatorCall::StopMaintenance(vec![Machine::new(None, Some("10.0.0.1"))])
    );
    for (which, body) in [
        (Legacy::Down, &b"{not json"[..]),
        (Legacy::Down, br#"{"hostname":"a"}"#),
        (Legacy::Schedule, br#"{"windows":[{"machine_ids":[]}]}"#),
    ] {
        let e = parse_legacy(which, &Method::POST, body).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}

#[test]
fn the_status_lists_draining_machines_with_answers_and_down_machines() {
    use crate::registry::{Applied, Command};
    use keel_api::operator::maintenance::InverseOfferAnswer;
    let mut r = Registry::default();
    r.apply(&Command::Bootstrap {
        master_id: "m".into(),
    })
    .unwrap();
    let info = crate::registry::tests::info("a");
    let Ok(Applied::AgentAdmitted { agent_id }) = r.apply(&Command::AdmitAgent { info, at: 1.0 })
    else {
        panic!("not admitted")
    };
    let a = Machine::new(Some("a"), None);
    let b = Machine::new(Some("b"), None);
    r.apply(&Command::Maintenance(MaintenanceCommand::UpdateSchedule {
        windows: vec![Window {
            machines: vec![a.clone(), b.clone()],
            start_ns: 7,
            duration_ns: None,
        }],
    }))
    .unwrap();
    r.apply(&Command::Maintenance(MaintenanceCommand::Start {
        machines: vec![b.clone()],
    }))
    .unwrap();
    let answers = [InverseAnswer {
        agent_id,
        framework_id: "f".into(),
        answer: InverseOfferAnswer::DECLINE,
        at: 2.0,
    }];
    let status = cluster_status(&r, &answers);
    assert_eq!(status.down_machines, vec![MachineId::hostname("b")]);
    assert_eq!(status.draining_machines.len(), 1);
    let m = &status.draining_machines[0];
    assert_eq!(m.id, MachineId::hostname("a"));
    assert_eq!(m.statuses[0].status, InverseOfferAnswer::DECLINE);
    assert_eq!(m.statuses[0].framework_id, Id::new("f"));
    assert_eq!(m.statuses[0].timestamp.nanoseconds, 2_000_000_000);
    // The schedule reads back as it was posted.
    let s = schedule(&r);
    assert_eq!(windows(&s), r.maintenance().windows);
}
