//! Roles through the APIs: operator reservations are offered only to their
//! role, weights and quota round-trip, MULTI_ROLE frameworks get offers per
//! role with `allocation_info`, and roles show up in GET_ROLES.

mod support;

use std::time::Duration;

use serde_json::{Value as Json, json};
use support::scheduler::*;
use support::*;

const T: Duration = Duration::from_secs(20);

fn call(port: u16, body: Json) -> (u16, String) {
    let (code, _, text) = post_json(port, "/api/v1", &body.to_string());
    (code, text)
}

fn get(port: u16, kind: &str) -> Json {
    let (code, text) = call(port, json!({"type": kind}));
    assert_eq!(code, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn reservations_weights_quota_and_multi_role() {
    let dir = tempfile::tempdir().unwrap();
    let m = Master::start(dir.path(), free_port(), "5s");
    let agent = start_agent(
        dir.path(),
        &m.addr(),
        &[
            "--resources",
            "cpus:4;mem:4096;cpus(static):1;disk(static):100",
        ],
    );
    wait_for(
        T,
        "agent",
        || !m.keel_agents().is_empty(),
        || agent.log_text(),
    );
    let agent_id = m.keel_agents()[0]["id"].as_str().unwrap().to_string();

    // Operator reservation of 1 cpu + 512 MB for role eng.
    let reserve = |kind: &str, cpus: f64| {
        call(
            m.port,
            json!({"type": kind, kind.to_lowercase(): {
            "agent_id": {"value": agent_id},
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}, "reservations": [{"type": "DYNAMIC", "role": "eng"}]},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": 512}, "reservations": [{"type": "DYNAMIC", "role": "eng"}]}]}}),
        )
    };
    assert_eq!(reserve("RESERVE_RESOURCES", 1.0).0, 202);
    // More than is unreserved: refused, nothing changes.
    let (code, text) = reserve("RESERVE_RESOURCES", 10.0);
    assert_eq!(code, 409, "{text}");
    let (_, state) = http_get(m.port, "/master/state").unwrap();
    let state: Json = serde_json::from_str(&state).unwrap();
    assert_eq!(state["slaves"][0]["reserved_resources"]["eng"]["cpus"], 1.0);
    assert_eq!(state["slaves"][0]["unreserved_resources"]["cpus"], 3.0);

    // A framework in another role never sees eng's or static's resources.
    let mut ops = Scheduler::subscribe(
        m.port,
        json!({"user": "root", "name": "ops", "role": "ops"}),
    );
    let offer = match ops.sees("OFFERS", T) {
        Some(o) => o["offers"]["offers"][0].clone(),
        None => panic!("ops got no offer; master log:\n{}", m.proc.log_text()),
    };
    for r in offer["resources"].as_array().unwrap() {
        assert_eq!(r["role"], "*", "ops got {r}");
        assert_eq!(r["allocation_info"]["role"], "ops");
    }
    assert_eq!(scalar(&offer, "cpus"), 3.0);
    assert_eq!(ops.call(json!({"type": "DECLINE", "decline": {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 60}}})).0, 202);

    // A MULTI_ROLE framework in eng and static gets one offer per role.
    let mut multi = Scheduler::subscribe(
        m.port,
        json!({"user": "root", "name": "multi",
        "roles": ["eng", "static"], "capabilities": [{"type": "MULTI_ROLE"}]}),
    );
    let mut by_role = std::collections::BTreeMap::new();
    while by_role.len() < 2 {
        for o in multi.expect("OFFERS", T)["offers"]["offers"]
            .as_array()
            .unwrap()
        {
            let role = o["allocation_info"]["role"].as_str().unwrap().to_string();
            for r in o["resources"].as_array().unwrap() {
                assert_eq!(r["allocation_info"]["role"], role.as_str());
            }
            by_role.insert(role, o.clone());
        }
    }
    let eng = &by_role["eng"];
    assert!(
        eng["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["role"] == "eng" && r["name"] == "cpus")
    );
    let st = &by_role["static"];
    assert!(
        st["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["role"] == "static" && r["name"] == "disk")
    );

    // GET_ROLES knows the roles and their frameworks.
    let roles = get(m.port, "GET_ROLES");
    let names: Vec<&str> = roles["get_roles"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for r in ["eng", "ops"] {
        assert!(names.contains(&r), "{names:?}");
    }

    // Weights and quota round-trip; bad values are refused with a reason.
    let (code, _) = call(
        m.port,
        json!({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "eng", "weight": 3.0}]}}),
    );
    assert_eq!(code, 200);
    let (code, text) = call(
        m.port,
        json!({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "eng", "weight": -1}]}}),
    );
    assert_eq!(code, 400, "{text}");
    assert_eq!(
        get(m.port, "GET_WEIGHTS")["get_weights"]["weight_infos"],
        json!([{"role": "eng", "weight": 3.0}])
    );
    let (code, _) = call(
        m.port,
        json!({"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [
        {"role": "ops", "guarantees": {"cpus": {"value": 1}}, "limits": {"cpus": {"value": 2}}}]}}),
    );
    assert_eq!(code, 200);
    let q = get(m.port, "GET_QUOTA");
    assert_eq!(q["get_quota"]["status"]["configs"][0]["role"], "ops");
    assert_eq!(
        q["get_quota"]["status"]["configs"][0]["limits"]["cpus"]["value"],
        2.0
    );
    let (code, _) = call(
        m.port,
        json!({"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [
        {"role": "ops", "guarantees": {"cpus": {"value": 3}}, "limits": {"cpus": {"value": 2}}}]}}),
    );
    assert_eq!(code, 400);

    // Weights and quota survive a master restart (they are registry state).
    let mut m = m;
    m.proc.kill9();
    let m2 = Master::start(dir.path(), m.port, "5s");
    assert_eq!(
        get(m2.port, "GET_WEIGHTS")["get_weights"]["weight_infos"],
        json!([{"role": "eng", "weight": 3.0}])
    );
    assert_eq!(
        get(m2.port, "GET_QUOTA")["get_quota"]["status"]["configs"][0]["role"],
        "ops"
    );

    // Unreserve gives the resources back to `*` once the agent is back.
    wait_for(
        T,
        "agent back",
        || m2.keel_agents().iter().any(|a| a["state"] == "active"),
        || agent.log_text(),
    );
    let (code, text) = call(
        m2.port,
        json!({"type": "UNRESERVE_RESOURCES", "unreserve_resources": {
        "agent_id": {"value": agent_id},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "reservations": [{"type": "DYNAMIC", "role": "eng"}]},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 512}, "reservations": [{"type": "DYNAMIC", "role": "eng"}]}]}}),
    );
    assert_eq!(code, 202, "{text}");
    let (_, state) = http_get(m2.port, "/master/state").unwrap();
    let state: Json = serde_json::from_str(&state).unwrap();
    assert_eq!(state["slaves"][0]["unreserved_resources"]["cpus"], 4.0);
}

#[test]
fn persistent_volumes_are_created_used_offered_back_and_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    let m = Master::start(dir.path(), free_port(), "5s");
    let agent = start_agent(
        dir.path(),
        &m.addr(),
        &[
            "--resources",
            "cpus:2;mem:2048;cpus(eng):1;mem(eng):256;disk(eng):1000",
        ],
    );
    wait_for(
        T,
        "agent",
        || !m.keel_agents().is_empty(),
        || agent.log_text(),
    );
    let mut s = Scheduler::subscribe(m.port, json!({"user": "root", "name": "db", "role": "eng"}));
    let volume = json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 300}, "role": "eng",
        "disk": {"persistence": {"id": "pg-data", "principal": "db"}, "volume": {"container_path": "data", "mode": "RW"}}});

    // CREATE and LAUNCH in one ACCEPT: the task uses the new volume.
    let offer = s.expect("OFFERS", T)["offers"]["offers"][0].clone();
    let mut task = command_task(&offer, "pg", "true", 0.5, 64.0);
    let mut with_role = volume.clone();
    with_role["allocation_info"] = json!({"role": "eng"});
    task["resources"].as_array_mut().unwrap().push(with_role);
    let (code, _, _) = s.call(
        json!({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "CREATE", "create": {"volumes": [volume]}},
        {"type": "LAUNCH", "launch": {"task_infos": [task]}}], "filters": {"refuse_seconds": 0}}}),
    );
    assert_eq!(code, 202);
    loop {
        let u = s.expect("UPDATE", T)["update"]["status"].clone();
        assert_ne!(u["state"], "TASK_ERROR", "{u}");
        if u.get("uuid").is_some() {
            s.ack(&u);
        }
        if u["state"] == "TASK_FINISHED" {
            break;
        }
    }

    // The volume is offered back to eng; plain reserved disk shrank by its size.
    let is_volume = |r: &Json| r["disk"]["persistence"]["id"] == "pg-data";
    let offer = loop {
        let o = s.expect("OFFERS", T)["offers"]["offers"][0].clone();
        if o["resources"].as_array().unwrap().iter().any(is_volume) {
            break o;
        }
        s.call(json!({"type": "DECLINE", "decline": {"offer_ids": [o["id"]], "filters": {"refuse_seconds": 0}}}));
    };
    let plain_disk: f64 = offer["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "disk" && !is_volume(r))
        .map(|r| r["scalar"]["value"].as_f64().unwrap())
        .sum();
    assert_eq!(plain_disk, 700.0, "{offer}");

    // The volume is registry state: GET_AGENTS lists it.
    let (_, _, body) = post_json(m.port, "/api/v1", r#"{"type":"GET_AGENTS"}"#);
    assert!(body.contains("pg-data"), "{body}");

    let data = dir.path().join("agent/volumes/roles/eng/pg-data");
    assert!(
        data.is_dir(),
        "the task's volume has its directory on the agent"
    );

    // DESTROY gives the disk back, and the agent deletes the data.
    let v = offer["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| is_volume(r))
        .unwrap()
        .clone();
    let (code, _, _) = s.call(
        json!({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "DESTROY", "destroy": {"volumes": [v]}}], "filters": {"refuse_seconds": 0}}}),
    );
    assert_eq!(code, 202);
    let offer = s.expect("OFFERS", T)["offers"]["offers"][0].clone();
    assert!(!offer["resources"].as_array().unwrap().iter().any(is_volume));
    let disk: f64 = offer["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "disk")
        .map(|r| r["scalar"]["value"].as_f64().unwrap())
        .sum();
    assert_eq!(disk, 1000.0);
    wait_for(
        T,
        "the volume's data deleted",
        || !data.exists(),
        || agent.log_text(),
    );
}

#[test]
fn update_framework_reserve_in_offer_and_offer_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let m = Master::start_with(dir.path(), free_port(), "5s", &["--offer-timeout", "1s"]);
    let agent = start_agent(dir.path(), &m.addr(), &["--resources", "cpus:2;mem:1024"]);
    wait_for(
        T,
        "agent",
        || !m.keel_agents().is_empty(),
        || agent.log_text(),
    );
    let mut s = Scheduler::subscribe(
        m.port,
        json!({"user": "root", "name": "one", "role": "web"}),
    );

    // An unanswered offer is rescinded after --offer-timeout and re-offered.
    let first = s.expect("OFFERS", T)["offers"]["offers"][0].clone();
    let rescind = s.expect("RESCIND", Duration::from_secs(5));
    assert_eq!(rescind["rescind"]["offer_id"], first["id"]);
    let offer = s.expect("OFFERS", Duration::from_secs(5))["offers"]["offers"][0].clone();

    // RESERVE inside an ACCEPT: the rest of the offer comes back reserved.
    let res = |name: &str, v: f64| {
        json!({"name": name, "type": "SCALAR", "scalar": {"value": v},
        "role": "web", "reservation": {"principal": "p"}, "allocation_info": {"role": "web"}})
    };
    let (code, _, _) = s.call(json!({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]],
        "operations": [{"type": "RESERVE", "reserve": {"resources": [res("cpus", 1.0), res("mem", 256.0)]}}],
        "filters": {"refuse_seconds": 0}}}));
    assert_eq!(code, 202);
    let offer = s.expect("OFFERS", T)["offers"]["offers"][0].clone();
    let reserved: f64 = offer["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "cpus" && r["role"] == "web")
        .map(|r| r["scalar"]["value"].as_f64().unwrap())
        .sum();
    assert_eq!(reserved, 1.0, "{offer}");

    // UPDATE_FRAMEWORK: 200 when only mutable fields change; 400 otherwise.
    let fid = s.framework_id.clone();
    let (code, _, body) = s.call(
        json!({"type": "UPDATE_FRAMEWORK", "update_framework": {"framework_info":
        {"user": "root", "name": "renamed", "role": "web", "id": {"value": fid}}}}),
    );
    assert_eq!(code, 200, "{body}");
    let (code, _, _) = s.call(
        json!({"type": "UPDATE_FRAMEWORK", "update_framework": {"framework_info":
        {"user": "someone-else", "name": "renamed", "role": "web", "id": {"value": fid}}}}),
    );
    assert_eq!(code, 400);
    let (_, _, body) = post_json(m.port, "/api/v1", r#"{"type":"GET_FRAMEWORKS"}"#);
    let v: Json = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["get_frameworks"]["frameworks"][0]["framework_info"]["name"],
        "renamed"
    );
}
