//! What each call needs, and SUBSCRIBE's principal rules.

use keel_api::resources::Resources;
use keel_api::scheduler::Call;
use serde_json::json;

use super::*;
use crate::auth::{Acls, Credentials, Method as How, Principal};
use crate::registry::QuotaConfig;

fn caller(name: &str) -> Caller {
    Caller(Some(Principal {
        name: name.into(),
        method: How::Basic,
    }))
}

fn framework(v: serde_json::Value) -> FrameworkInfo {
    keel_api::mesos::parse(v).unwrap()
}

#[test]
fn realms_are_mesos_realms() {
    assert_eq!(realm(&Method::POST, "/api/v1/scheduler"), SCHEDULER_REALM);
    assert_eq!(
        realm(&Method::POST, "/master/api/v1/scheduler"),
        SCHEDULER_REALM
    );
    assert_eq!(realm(&Method::POST, "/api/v1"), READWRITE_REALM);
    assert_eq!(realm(&Method::POST, "/api/v1/operator"), READWRITE_REALM);
    assert_eq!(
        realm(&Method::DELETE, "/api/keel/v1/tokens/x"),
        READWRITE_REALM
    );
    assert_eq!(realm(&Method::GET, "/api/keel/v1/agents"), READONLY_REALM);
    assert_eq!(realm(&Method::GET, "/master/state"), READONLY_REALM);
}

#[test]
fn operator_calls_need_their_actions() {
    let known = |id: &str| {
        (id == "f1").then(|| framework(json!({"user": "alice", "name": "n", "principal": "fw"})))
    };
    let needs = |call| operator_needs(&call, known);
    assert_eq!(needs(OperatorCall::GetHealth), vec![]);
    assert_eq!(
        needs(OperatorCall::GetFlags),
        vec![(Action::ViewFlags, None)]
    );
    assert_eq!(
        needs(OperatorCall::GetAgents),
        vec![(Action::ViewAgent, None)]
    );
    assert_eq!(
        needs(OperatorCall::UpdateWeights(vec![
            ("b".into(), 1.0),
            ("a".into(), 2.0),
            ("b".into(), 3.0)
        ])),
        vec![
            (Action::UpdateWeight, Some("a".into())),
            (Action::UpdateWeight, Some("b".into()))
        ]
    );
    assert_eq!(
        needs(OperatorCall::UpdateQuota(vec![QuotaConfig {
            role: "eng".into(),
            guarantees: Resources::default(),
            limits: Resources::default(),
        }])),
        vec![(Action::UpdateQuota, Some("eng".into()))]
    );
    let rs = Resources::parse("cpus(eng):1;mem(ops):2").unwrap();
    assert_eq!(
        needs(OperatorCall::ReserveResources {
            agent_id: "a".into(),
            resources: rs.clone()
        }),
        vec![
            (Action::ReserveResources, Some("eng".into())),
            (Action::ReserveResources, Some("ops".into()))
        ]
    );
    assert_eq!(
        needs(OperatorCall::UnreserveResources {
            agent_id: "a".into(),
            resources: rs
        }),
        vec![(Action::UnreserveResources, None)]
    );
    assert_eq!(
        needs(OperatorCall::Teardown {
            framework_id: "f1".into()
        }),
        vec![(Action::TeardownFramework, Some("fw".into()))]
    );
    assert_eq!(
        needs(OperatorCall::Teardown {
            framework_id: "unknown".into()
        }),
        vec![(Action::TeardownFramework, None)]
    );
}

#[test]
fn accepts_need_run_tasks_for_each_user() {
    let fw = framework(json!({"user": "alice", "name": "f"}));
    let call = Call::from_slice(
        json!({"type": "ACCEPT", "framework_id": {"value": "f1"}, "accept": {
            "offer_ids": [{"value": "o"}],
            "operations": [
                {"type": "LAUNCH", "launch": {"task_infos": [
                    {"name": "a", "task_id": {"value": "a"}, "agent_id": {"value": "s"}, "command": {"value": "true"}},
                    {"name": "b", "task_id": {"value": "b"}, "agent_id": {"value": "s"}, "command": {"value": "true", "user": "bob"}}
                ]}},
                {"type": "RESERVE", "reserve": {"resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "reservations": [{"type": "DYNAMIC", "role": "eng", "principal": "fw"}]}
                ]}},
                {"type": "UNRESERVE", "unreserve": {"resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "reservations": [{"type": "DYNAMIC", "role": "eng", "principal": "fw"}]}
                ]}}
            ]}})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let CallKind::Accept { operations, .. } = call.kind else {
        panic!("not ACCEPT");
    };
    assert_eq!(
        accept_needs(&operations, &fw),
        vec![
            (Action::RunTask, Some("alice".into())),
            (Action::RunTask, Some("bob".into())),
            (Action::ReserveResources, Some("eng".into())),
            (Action::UnreserveResources, Some("fw".into())),
        ]
    );
}

#[test]
fn subscribe_binds_the_framework_to_its_principal() {
    let creds = Credentials::from_pairs(&[("fw", "s")]).unwrap();
    let acls = Acls::parse(
        r#"{"permissive": false, "register_frameworks": [{"principals": {"values": ["fw"]}, "roles": {"values": ["eng"]}}]}"#,
    )
    .unwrap();
    let trust = Trust::new(Some(creds), acls, false);
    let mut info = framework(json!({"user": "u", "name": "f", "role": "eng"}));
    assert_eq!(subscribe(&trust, &caller("fw"), &mut info), Ok(Ok(())));
    assert_eq!(
        info.principal.as_deref(),
        Some("fw"),
        "an unset principal is the caller's"
    );
    let mut other = framework(json!({"user": "u", "name": "f", "role": "eng", "principal": "x"}));
    let err = subscribe(&trust, &caller("fw"), &mut other).unwrap_err();
    assert_eq!(err.status, StatusCode::BAD_REQUEST);
    assert!(
        err.reason
            .contains("Authenticated principal 'fw' does not match principal 'x'"),
        "{}",
        err.reason
    );
    let mut ops = framework(json!({"user": "u", "name": "f", "role": "ops"}));
    let denied = subscribe(&trust, &caller("fw"), &mut ops)
        .unwrap()
        .unwrap_err();
    assert_eq!(
        denied.to_string(),
        "principal 'fw' is not authorized to register a framework with role 'ops'"
    );
}
