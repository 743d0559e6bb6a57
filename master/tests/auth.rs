//! Authentication and authorization on the wire, table-driven over every
//! scheduler and operator call type and Keel's endpoints: no credentials
//! and a wrong secret are 401 (with `WWW-Authenticate` and Mesos' realm),
//! a principal without the permission is 403 naming the action, an
//! allowed one gets the answer an open master gives. (Tokens and bad
//! input: `auth_input.rs`.)

mod support;

use std::time::Duration;

use keel_api::mesos::FrameworkInfo;
use keel_client::scheduler::compose::framework_info;
use serde_json::{Value as Json, json};
use support::auth::*;
use support::*;

const WRONG: (&str, &str) = ("fw", "not-the-secret");

fn fw_info(role: &str) -> FrameworkInfo {
    let mut info = framework_info("alice", "auth-test");
    info.role = Some(role.to_string());
    info
}

/// A principal and its secret.
type Who = (&'static str, &'static str);

/// Every operator call Keel answers: the body, and who may not (`None`:
/// any authenticated principal may, or the answer is filtered); `ops` may.
/// One operator call: its type, its body, who may not.
type OperatorCase = (&'static str, Json, Option<Who>);

/// The operator calls, as [`OperatorCase`]s.
fn operator_table() -> Vec<OperatorCase> {
    let reservation = json!({"agent_id": {"value": "no-such-agent"}, "resources": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
         "reservations": [{"type": "DYNAMIC", "role": "eng"}]}]});
    let volume = json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 8}, "role": "eng",
        "disk": {"persistence": {"id": "v", "principal": "fw"},
                 "volume": {"container_path": "data", "mode": "RW"}}});
    vec![
        ("GET_HEALTH", json!({}), None),
        ("GET_FLAGS", json!({}), Some(FW)),
        ("GET_VERSION", json!({}), None),
        ("GET_MASTER", json!({}), None),
        ("GET_AGENTS", json!({}), Some(FW)),
        ("GET_STATE", json!({}), None),
        ("GET_FRAMEWORKS", json!({}), None),
        ("GET_TASKS", json!({}), None),
        ("GET_ROLES", json!({}), None),
        ("GET_WEIGHTS", json!({}), None),
        ("GET_QUOTA", json!({}), None),
        (
            "UPDATE_WEIGHTS",
            json!({"update_weights": {"weight_infos": [{"role": "eng", "weight": 2}]}}),
            Some(VIEWER),
        ),
        (
            "UPDATE_QUOTA",
            json!({"update_quota": {"quota_configs": [{"role": "eng", "guarantees": {"cpus": {"value": 1}}}]}}),
            Some(VIEWER),
        ),
        (
            "RESERVE_RESOURCES",
            json!({"reserve_resources": reservation}),
            Some(VIEWER),
        ),
        (
            "UNRESERVE_RESOURCES",
            json!({"unreserve_resources": reservation}),
            Some(VIEWER),
        ),
        (
            "TEARDOWN",
            json!({"teardown": {"framework_id": {"value": "no-such-framework"}}}),
            Some(VIEWER),
        ),
        (
            "MARK_AGENT_GONE",
            json!({"mark_agent_gone": {"agent_id": {"value": "no-such-agent"}}}),
            Some(VIEWER),
        ),
        ("GET_EXECUTORS", json!({}), None),
        ("GET_LOGGING_LEVEL", json!({}), None),
        ("GET_OPERATIONS", json!({}), None),
        (
            "SET_LOGGING_LEVEL",
            json!({"set_logging_level": {"level": 0, "duration": {"nanoseconds": 1000000}}}),
            Some(VIEWER),
        ),
        (
            "SET_QUOTA",
            json!({"set_quota": {"quota_request": {"role": "dev", "guarantee": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}]}}}),
            Some(VIEWER),
        ),
        (
            "REMOVE_QUOTA",
            json!({"remove_quota": {"role": "dev"}}),
            Some(VIEWER),
        ),
        ("GET_MAINTENANCE_SCHEDULE", json!({}), Some(FW)),
        ("GET_MAINTENANCE_STATUS", json!({}), Some(FW)),
        (
            "UPDATE_MAINTENANCE_SCHEDULE",
            json!({"update_maintenance_schedule": {"schedule": {"windows": []}}}),
            Some(VIEWER),
        ),
        (
            "START_MAINTENANCE",
            json!({"start_maintenance": {"machines": [{"hostname": "nowhere"}]}}),
            Some(VIEWER),
        ),
        (
            "STOP_MAINTENANCE",
            json!({"stop_maintenance": {"machines": [{"hostname": "nowhere"}]}}),
            Some(VIEWER),
        ),
        (
            "DRAIN_AGENT",
            json!({"drain_agent": {"agent_id": {"value": "no-such-agent"}}}),
            Some(VIEWER),
        ),
        (
            "DEACTIVATE_AGENT",
            json!({"deactivate_agent": {"agent_id": {"value": "no-such-agent"}}}),
            Some(VIEWER),
        ),
        (
            "REACTIVATE_AGENT",
            json!({"reactivate_agent": {"agent_id": {"value": "no-such-agent"}}}),
            Some(VIEWER),
        ),
        (
            "LIST_FILES",
            json!({"list_files": {"path": "/agents/no-such-agent/frameworks/f"}}),
            Some(VIEWER),
        ),
        (
            "READ_FILE",
            json!({"read_file": {"path": "/agents/no-such-agent/frameworks/f/x", "offset": 0}}),
            Some(VIEWER),
        ),
        (
            "CREATE_VOLUMES",
            json!({"create_volumes": {"agent_id": {"value": "no-such-agent"}, "volumes": [volume.clone()]}}),
            Some(VIEWER),
        ),
        (
            "DESTROY_VOLUMES",
            json!({"destroy_volumes": {"agent_id": {"value": "no-such-agent"}, "volumes": [volume.clone()]}}),
            Some(VIEWER),
        ),
        (
            "GROW_VOLUME",
            json!({"grow_volume": {"agent_id": {"value": "no-such-agent"}, "volume": volume.clone(),
                "addition": {"name": "disk", "type": "SCALAR", "scalar": {"value": 1}, "role": "eng"}}}),
            Some(VIEWER),
        ),
        (
            "SHRINK_VOLUME",
            json!({"shrink_volume": {"agent_id": {"value": "no-such-agent"}, "volume": volume,
                "subtract": {"value": 1}}}),
            Some(VIEWER),
        ),
    ]
}

/// A master without authentication, for the answers to expect.
fn open_master(dir: &std::path::Path) -> Master {
    let dir = dir.join("open");
    std::fs::create_dir_all(&dir).unwrap();
    Master::start(&dir, free_port(), "5s")
}

fn call_body(ty: &str, fields: &Json) -> String {
    let mut body = fields.clone();
    body["type"] = json!(ty);
    body.to_string()
}

fn assert_unauthenticated(reply: &Reply, realm: &str, what: &str) {
    assert_eq!(reply.0, 401, "{what}: {reply:?}");
    let challenges = header_values(reply, "www-authenticate");
    assert!(
        challenges.contains(&format!("Basic realm=\"{realm}\"")),
        "{what}: {challenges:?}"
    );
    assert!(!reply.2.is_empty(), "{what}: a 401 says why");
}

#[test]
fn every_operator_call_is_authenticated_and_authorized() {
    let dir = tempfile::tempdir().unwrap();
    let m = secured_master(dir.path());
    let open = open_master(dir.path());
    for (ty, fields, denied) in operator_table() {
        let body = call_body(ty, &fields);
        let normal = operator(open.port, As::Nobody, &body);
        assert!(
            normal.0 < 500 && normal.0 != 401 && normal.0 != 403,
            "{ty} on an open master: {normal:?}"
        );
        assert_unauthenticated(
            &operator(m.port, As::Nobody, &body),
            "mesos-master-readwrite",
            ty,
        );
        assert_unauthenticated(
            &operator(m.port, As::Basic(WRONG), &body),
            "mesos-master-readwrite",
            ty,
        );
        let allowed = operator(m.port, As::Basic(OPS), &body);
        assert_eq!(
            allowed.0, normal.0,
            "{ty}: {allowed:?} vs the open master's {normal:?}"
        );
        if let Some(who) = denied {
            let refused = operator(m.port, As::Basic(who), &body);
            assert_eq!(refused.0, 403, "{ty} as {}: {refused:?}", who.0);
            assert!(
                refused
                    .2
                    .contains(&format!("principal '{}' is not authorized to", who.0)),
                "{ty}: {}",
                refused.2
            );
        }
    }
}

/// Every scheduler call but SUBSCRIBE, on framework `{F}`'s stream.
fn scheduler_table() -> Vec<(&'static str, Json)> {
    let agent = json!({"value": "no-such-agent"});
    let uuid = "AAAAAAAAAAAAAAAAAAAAAA==";
    vec![
        (
            "ACCEPT",
            json!({"accept": {"offer_ids": [{"value": "no-such-offer"}], "operations": []}}),
        ),
        (
            "DECLINE",
            json!({"decline": {"offer_ids": [{"value": "no-such-offer"}]}}),
        ),
        (
            "ACCEPT_INVERSE_OFFERS",
            json!({"accept_inverse_offers": {"inverse_offer_ids": [{"value": "x"}]}}),
        ),
        (
            "DECLINE_INVERSE_OFFERS",
            json!({"decline_inverse_offers": {"inverse_offer_ids": [{"value": "x"}]}}),
        ),
        ("REVIVE", json!({})),
        ("SUPPRESS", json!({})),
        (
            "KILL",
            json!({"kill": {"task_id": {"value": "no-such-task"}}}),
        ),
        (
            "SHUTDOWN",
            json!({"shutdown": {"executor_id": {"value": "e"}, "agent_id": agent}}),
        ),
        (
            "ACKNOWLEDGE",
            json!({"acknowledge": {"agent_id": agent, "task_id": {"value": "t"}, "uuid": uuid}}),
        ),
        (
            "ACKNOWLEDGE_OPERATION_STATUS",
            json!({"acknowledge_operation_status": {"agent_id": agent, "uuid": uuid, "operation_id": {"value": "o"}}}),
        ),
        ("RECONCILE", json!({"reconcile": {"tasks": []}})),
        (
            "RECONCILE_OPERATIONS",
            json!({"reconcile_operations": {"operations": []}}),
        ),
        (
            "MESSAGE",
            json!({"message": {"agent_id": agent, "executor_id": {"value": "e"}, "data": "aGk="}}),
        ),
        ("REQUEST", json!({"request": {"requests": []}})),
        (
            "UPDATE_FRAMEWORK",
            json!({"update_framework": {"framework_info": "{INFO}"}}),
        ),
        ("TEARDOWN", json!({})),
    ]
}

fn scheduler_body(ty: &str, fields: &Json, framework_id: &str, info: &FrameworkInfo) -> String {
    let mut info = serde_json::to_value(info).unwrap();
    info["id"] = json!({"value": framework_id});
    let mut body = fields.clone();
    if ty == "UPDATE_FRAMEWORK" {
        body["update_framework"]["framework_info"] = info;
    }
    body["type"] = json!(ty);
    body["framework_id"] = json!({"value": framework_id});
    body.to_string()
}

#[test]
fn every_scheduler_call_is_authenticated_and_authorized() {
    let dir = tempfile::tempdir().unwrap();
    let m = secured_master(dir.path());
    let open = open_master(dir.path());
    let info = fw_info("eng");
    let (_oc, open_sub) = subscribe(open.port, None, info.clone()).expect("open SUBSCRIBE");
    let (_c, sub) = subscribe(m.port, creds(FW), info.clone()).expect("SUBSCRIBE as fw");
    let (fid, stream) = (
        sub.framework_id().value.clone(),
        sub.stream_id().to_string(),
    );
    let (ofid, ostream) = (
        open_sub.framework_id().value.clone(),
        open_sub.stream_id().to_string(),
    );
    for (ty, fields) in scheduler_table() {
        let normal = scheduler(
            open.port,
            As::Nobody,
            &ostream,
            &scheduler_body(ty, &fields, &ofid, &info),
        );
        assert!(
            normal.0 < 500 && normal.0 != 401 && normal.0 != 403,
            "{ty} on an open master: {normal:?}"
        );
        let body = scheduler_body(ty, &fields, &fid, &info);
        assert_unauthenticated(
            &scheduler(m.port, As::Nobody, &stream, &body),
            "mesos-master-scheduler",
            ty,
        );
        assert_unauthenticated(
            &scheduler(m.port, As::Basic(WRONG), &stream, &body),
            "mesos-master-scheduler",
            ty,
        );
        // Another principal may not act for the framework.
        let refused = scheduler(m.port, As::Basic(OPS), &stream, &body);
        assert_eq!(refused.0, 403, "{ty} as ops: {refused:?}");
        assert!(
            refused
                .2
                .contains("Authenticated principal 'ops' does not match principal 'fw'"),
            "{}",
            refused.2
        );
        let allowed = scheduler(m.port, As::Basic(FW), &stream, &body);
        assert_eq!(
            allowed.0, normal.0,
            "{ty}: {allowed:?} vs the open master's {normal:?}"
        );
    }
}

#[test]
fn subscriptions_and_launches_need_their_acls() {
    let dir = tempfile::tempdir().unwrap();
    let m = secured_master(dir.path());
    let refused = |c: (&str, &str), info: FrameworkInfo| match subscribe(m.port, creds(c), info) {
        Err(keel_client::ClientError::Subscribe(message)) => message,
        other => panic!(
            "not refused: {:?}",
            other.map(|(_, s)| s.framework_id().clone())
        ),
    };
    // Not allowed role ops: the ERROR event Mesos sends.
    assert_eq!(
        refused(FW, fw_info("ops")),
        "principal 'fw' is not authorized to register a framework with role 'ops'"
    );
    assert_eq!(
        refused(NOBODY, fw_info("eng")),
        "principal 'nobody' is not authorized to register a framework with role 'eng'"
    );
    // FrameworkInfo.principal must be the authenticated one (Mesos: 400).
    let mut other = fw_info("eng");
    other.principal = Some("ops".into());
    match subscribe(m.port, creds(FW), other) {
        Err(keel_client::ClientError::Status {
            status: 400,
            reason,
            ..
        }) => {
            assert!(
                reason.contains("does not match principal 'ops'"),
                "{reason}"
            )
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    let unauthenticated = subscribe(m.port, None, fw_info("eng"));
    assert!(matches!(
        unauthenticated,
        Err(keel_client::ClientError::Status { status: 401, .. })
    ));

    let (_c, sub) = subscribe(m.port, creds(FW), fw_info("eng")).expect("SUBSCRIBE");
    let (fid, stream) = (
        sub.framework_id().value.clone(),
        sub.stream_id().to_string(),
    );
    let launch = |user: &str| {
        json!({"type": "ACCEPT", "framework_id": {"value": fid}, "accept": {
            "offer_ids": [{"value": "no-such-offer"}],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [{
                "name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
                "command": {"value": "true", "user": user}}]}}]}})
        .to_string()
    };
    let root = scheduler(m.port, As::Basic(FW), &stream, &launch("root"));
    assert_eq!(root.0, 403, "{root:?}");
    assert_eq!(
        root.2,
        "principal 'fw' is not authorized to run tasks as user 'root'"
    );
    assert_eq!(
        scheduler(m.port, As::Basic(FW), &stream, &launch("alice")).0,
        202
    );
    let update = json!({"type": "UPDATE_FRAMEWORK", "framework_id": {"value": fid},
        "update_framework": {"framework_info": {"user": "alice", "name": "auth-test",
            "id": {"value": fid}, "role": "ops"}}});
    let moved = scheduler(m.port, As::Basic(FW), &stream, &update.to_string());
    assert_eq!(moved.0, 403, "{moved:?}");

    // Views: the framework as each principal sees it.
    let frameworks = |c| {
        client(m.port, creds(c))
            .get_frameworks()
            .unwrap()
            .frameworks
            .len()
    };
    assert_eq!(frameworks(OPS), 1);
    assert_eq!(frameworks(FW), 1);
    assert_eq!(frameworks(NOBODY), 0, "filtered, not refused");
    let state = client(m.port, creds(NOBODY)).legacy_state().unwrap();
    assert!(
        state.frameworks.is_empty() && state.flags.is_empty(),
        "{state:?}"
    );
    assert!(
        !client(m.port, creds(VIEWER))
            .legacy_state()
            .unwrap()
            .flags
            .is_empty()
    );

    // TEARDOWN by an operator needs teardown_frameworks.
    let teardown = call_body(
        "TEARDOWN",
        &json!({"teardown": {"framework_id": {"value": fid}}}),
    );
    let denied = operator(m.port, As::Basic(VIEWER), &teardown);
    assert_eq!(
        denied.2,
        "principal 'viewer' is not authorized to tear down frameworks of principal 'fw'"
    );
    assert_eq!(operator(m.port, As::Basic(OPS), &teardown).0, 200);
    wait_for(
        Duration::from_secs(5),
        "the framework torn down",
        || frameworks(OPS) == 0,
        || m.proc.log_text(),
    );
}

#[test]
fn keel_and_legacy_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let m = secured_master(dir.path());
    let get = |who, path: &str| request(m.port, who, "GET", path, &[], "");
    // Open as in Mesos.
    assert_eq!(get(As::Nobody, "/health").0, 200);
    assert_eq!(get(As::Nobody, "/version").0, 200);
    assert_eq!(get(As::Nobody, "/master/redirect").0, 307);
    // path, who may, who may not (None: every principal, filtered).
    for (path, denied) in [
        ("/master/state", None),
        ("/state", None),
        ("/master/frameworks", None),
        ("/master/tasks", None),
        ("/master/slaves", Some(FW)),
        ("/master/flags", Some(FW)),
        ("/flags", Some(FW)),
        ("/api/keel/v1/agents", Some(FW)),
        ("/api/keel/v1/agents/no-such-agent", Some(FW)),
        ("/api/keel/v1/masters", None),
        ("/api/keel/v1/tokens", Some(VIEWER)),
        ("/slaves", Some(FW)),
        ("/master/state-summary", None),
        ("/master/roles", None),
        ("/master/quota", None),
        ("/master/weights", None),
        ("/master/maintenance/schedule", Some(FW)),
        ("/master/maintenance/status", Some(FW)),
    ] {
        assert_unauthenticated(&get(As::Nobody, path), "mesos-master-readonly", path);
        assert_unauthenticated(&get(As::Basic(WRONG), path), "mesos-master-readonly", path);
        let allowed = get(As::Basic(OPS), path);
        assert!(allowed.0 == 200 || allowed.0 == 404, "{path}: {allowed:?}");
        if let Some(who) = denied {
            let refused = get(As::Basic(who), path);
            assert_eq!(refused.0, 403, "{path}: {refused:?}");
        }
    }
    // The legacy form writes: authorized as their v1 twins.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    for (path, body) in [
        ("/master/teardown", "frameworkId=no-such-framework"),
        (
            "/master/reserve",
            r#"slaveId=no-such&resources=[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"role":"eng","reservation":{}}]"#,
        ),
        (
            "/master/unreserve",
            r#"slaveId=no-such&resources=[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"role":"eng","reservation":{}}]"#,
        ),
    ] {
        let send = |who| request(m.port, who, "POST", path, &form, body);
        assert_unauthenticated(&send(As::Nobody), "mesos-master-readwrite", path);
        assert_eq!(send(As::Basic(VIEWER)).0, 403, "{path}");
        let allowed = send(As::Basic(OPS));
        assert!(allowed.0 == 400 || allowed.0 == 404, "{path}: {allowed:?}");
    }
    // The legacy maintenance writes (JSON bodies): as their v1 twins.
    let json_body = [("Content-Type", "application/json")];
    for (path, body, ok) in [
        ("/master/maintenance/schedule", r#"{"windows":[]}"#, 200),
        ("/master/machine/down", r#"[{"hostname":"nowhere"}]"#, 400),
        ("/master/machine/up", r#"[{"hostname":"nowhere"}]"#, 400),
    ] {
        let send = |who| request(m.port, who, "POST", path, &json_body, body);
        assert_unauthenticated(&send(As::Nobody), "mesos-master-readwrite", path);
        assert_eq!(send(As::Basic(VIEWER)).0, 403, "{path}");
        assert_eq!(send(As::Basic(OPS)).0, ok, "{path}");
    }
    let json_headers = [("Content-Type", "application/json")];
    for (method, path, body) in [
        ("POST", "/api/keel/v1/masters", r#"{"add": "127.0.0.1:1"}"#),
        ("DELETE", "/api/keel/v1/masters/9", ""),
        ("POST", "/api/keel/v1/tokens", r#"{"kind": "join"}"#),
        ("DELETE", "/api/keel/v1/tokens/00000000000000aa", ""),
    ] {
        let send = |who| request(m.port, who, method, path, &json_headers, body);
        assert_unauthenticated(&send(As::Nobody), "mesos-master-readwrite", path);
        let refused = send(As::Basic(VIEWER));
        assert_eq!(refused.0, 403, "{method} {path}: {refused:?}");
        assert!(
            refused.2.starts_with("{\"error\":"),
            "Keel's API answers JSON: {}",
            refused.2
        );
        assert_ne!(send(As::Basic(OPS)).0, 403, "{method} {path}");
    }
}
