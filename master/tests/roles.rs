//! Roles through the APIs: operator reservations are offered only to their
//! role, weights and quota round-trip, MULTI_ROLE frameworks get offers per
//! role with `allocation_info`, and roles show up in GET_ROLES.

mod support;

use std::time::Duration;

use keel_api::keel::AgentState;
use keel_api::mesos::{Filters, TaskState};
use keel_api::operator::{QuotaScalar, WeightInfo};
use keel_api::resources::v1::{AllocationInfo, Resource};
use keel_client::scheduler::{Accept, Call, Event, Operation, Subscribe};
use serde_json::{Value as Json, json};
use support::scheduler::*;
use support::*;

const T: Duration = Duration::from_secs(20);

/// A mutating operator call on the wire: its status code (200 or 202 on
/// success, 400 or 409 when refused) and text.
fn call(port: u16, body: Json) -> (u16, String) {
    let (code, _, text) = post_json(port, "/api/v1", &body.to_string());
    (code, text)
}

fn resource(json: Json) -> Resource {
    serde_json::from_value(json).unwrap()
}

/// DECLINE `offer` for 0 s.
fn decline_now(offer: &keel_api::operator::Offer) -> Call {
    Call::Decline(keel_client::scheduler::Decline {
        offer_ids: vec![offer.id.clone()],
        filters: Some(Filters {
            refuse_seconds: Some(0.0),
        }),
    })
}

/// ACCEPT `offer` with `operations`, declining the rest for 0 s.
fn accept_now(offer: &keel_api::operator::Offer, operations: Vec<Operation>) -> Call {
    Call::Accept(Accept {
        offer_ids: vec![offer.id.clone()],
        operations,
        filters: Some(Filters {
            refuse_seconds: Some(0.0),
        }),
    })
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
    let agent_id = m.keel_agents()[0].id.clone();

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
    let state = m.api.legacy_state().unwrap();
    assert_eq!(
        state.slaves[0].reserved_resources["eng"].scalar("cpus"),
        1.0
    );
    assert_eq!(state.slaves[0].unreserved_resources.scalar("cpus"), 3.0);

    // A framework in another role never sees eng's or static's resources.
    let mut ops = Scheduler::subscribe(
        m.port,
        info(json!({"user": "root", "name": "ops", "role": "ops"})),
    );
    let offer = match ops.sees("OFFERS", T) {
        Some(Event::Offers(o)) => o[0].clone(),
        _ => panic!("ops got no offer; master log:\n{}", m.proc.log_text()),
    };
    let allocated = |r: &Resource| r.allocation_info.as_ref().and_then(|a| a.role.clone());
    for r in &offer.resources {
        assert_eq!(r.role.as_deref(), Some("*"), "ops got {r:?}");
        assert_eq!(allocated(r).as_deref(), Some("ops"));
    }
    assert_eq!(scalar(&offer, "cpus"), 3.0);
    let decline = Call::Decline(keel_client::scheduler::Decline {
        offer_ids: vec![offer.id.clone()],
        filters: Some(Filters {
            refuse_seconds: Some(60.0),
        }),
    });
    assert_eq!(ops.call(decline).0, 202);

    // A MULTI_ROLE framework in eng and static gets one offer per role.
    let mut multi = Scheduler::subscribe(
        m.port,
        info(json!({"user": "root", "name": "multi",
        "roles": ["eng", "static"], "capabilities": [{"type": "MULTI_ROLE"}]})),
    );
    let mut by_role = std::collections::BTreeMap::new();
    while by_role.len() < 2 {
        for o in multi.offers(T) {
            let role = o.role().to_string();
            for r in &o.resources {
                assert_eq!(allocated(r).as_deref(), Some(role.as_str()));
            }
            by_role.insert(role, o.clone());
        }
    }
    let eng = &by_role["eng"];
    assert!(
        eng.resources
            .iter()
            .any(|r| r.role.as_deref() == Some("eng") && r.name == "cpus")
    );
    let st = &by_role["static"];
    assert!(
        st.resources
            .iter()
            .any(|r| r.role.as_deref() == Some("static") && r.name == "disk")
    );

    // GET_ROLES knows the roles and their frameworks.
    let roles = m.api.get_roles().unwrap();
    let names: Vec<&str> = roles.roles.iter().map(|r| r.name.as_str()).collect();
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
    let eng_weight = vec![WeightInfo {
        role: "eng".into(),
        weight: 3.0,
    }];
    assert_eq!(m.api.get_weights().unwrap().weight_infos, eng_weight);
    let (code, _) = call(
        m.port,
        json!({"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [
        {"role": "ops", "guarantees": {"cpus": {"value": 1}}, "limits": {"cpus": {"value": 2}}}]}}),
    );
    assert_eq!(code, 200);
    let q = m.api.get_quota().unwrap();
    assert_eq!(q.status.configs[0].role, "ops");
    assert_eq!(q.status.configs[0].limits["cpus"], QuotaScalar(2.0));
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
    assert_eq!(m2.api.get_weights().unwrap().weight_infos, eng_weight);
    assert_eq!(m2.api.get_quota().unwrap().status.configs[0].role, "ops");

    // Unreserve gives the resources back to `*` once the agent is back.
    wait_for(
        T,
        "agent back",
        || {
            m2.keel_agents()
                .iter()
                .any(|a| a.state == AgentState::Active)
        },
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
    let state = m2.api.legacy_state().unwrap();
    assert_eq!(state.slaves[0].unreserved_resources.scalar("cpus"), 4.0);
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
    let mut s = Scheduler::subscribe(
        m.port,
        info(json!({"user": "root", "name": "db", "role": "eng"})),
    );
    let volume = resource(
        json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 300}, "role": "eng",
        "disk": {"persistence": {"id": "pg-data", "principal": "db"}, "volume": {"container_path": "data", "mode": "RW"}}}),
    );

    // CREATE and LAUNCH in one ACCEPT: the task uses the new volume.
    let offer = s.offer(T);
    let mut task = command_task(&offer, "pg", "true", 0.5, 64.0);
    let mut with_role = volume.clone();
    with_role.allocation_info = Some(AllocationInfo::role("eng"));
    task.resources.push(with_role);
    let (code, _) = s.call(accept_now(
        &offer,
        vec![
            Operation::create(vec![volume.clone()]),
            Operation::launch(vec![task]),
        ],
    ));
    assert_eq!(code, 202);
    loop {
        let u = s.update(T);
        assert_ne!(u.state, TaskState::TASK_ERROR, "{u:?}");
        if u.uuid.is_some() {
            s.ack(&u);
        }
        if u.state == TaskState::TASK_FINISHED {
            break;
        }
    }

    // The volume is offered back to eng; plain reserved disk shrank by its size.
    let is_volume = |r: &Resource| {
        r.disk
            .as_ref()
            .and_then(|d| d.persistence.as_ref())
            .is_some_and(|p| p.id == "pg-data")
    };
    // (The task's resources come back while the rest of the agent may
    // still be offered apart: wait for one offer with both.)
    let plain_disk_in = |o: &keel_api::operator::Offer| {
        o.resources
            .iter()
            .any(|r| r.name == "disk" && !is_volume(r))
    };
    let offer = loop {
        let o = s.offer(T);
        if o.resources.iter().any(is_volume) && plain_disk_in(&o) {
            break o;
        }
        s.call(decline_now(&o));
    };
    let plain_disk: f64 = offer
        .resources
        .iter()
        .filter(|r| r.name == "disk" && !is_volume(r))
        .map(Resource::scalar_value)
        .sum();
    assert_eq!(plain_disk, 700.0, "{offer:?}");

    // The volume is registry state: GET_AGENTS lists it.
    let agents = m.api.get_agents().unwrap();
    assert!(
        agents.agents[0].total_resources.iter().any(is_volume),
        "{agents:?}"
    );

    let data = dir.path().join("agent/volumes/roles/eng/pg-data");
    assert!(
        data.is_dir(),
        "the task's volume has its directory on the agent"
    );

    // DESTROY gives the disk back, and the agent deletes the data.
    let v = offer
        .resources
        .iter()
        .find(|r| is_volume(r))
        .unwrap()
        .clone();
    let (code, _) = s.call(accept_now(&offer, vec![Operation::destroy(vec![v])]));
    assert_eq!(code, 202);
    let offer = s.offer(T);
    assert!(!offer.resources.iter().any(is_volume));
    let disk: f64 = offer
        .resources
        .iter()
        .filter(|r| r.name == "disk")
        .map(Resource::scalar_value)
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
        info(json!({"user": "root", "name": "one", "role": "web"})),
    );

    // An unanswered offer is rescinded after --offer-timeout and re-offered.
    let first = s.offer(T);
    let Event::Rescind { offer_id } = s.expect("RESCIND", Duration::from_secs(5)) else {
        panic!("not RESCIND")
    };
    assert_eq!(offer_id, first.id);
    let offer = s.offer(Duration::from_secs(5));

    // RESERVE inside an ACCEPT: the rest of the offer comes back reserved.
    let res = |name: &str, v: f64| {
        resource(
            json!({"name": name, "type": "SCALAR", "scalar": {"value": v},
        "role": "web", "reservation": {"principal": "p"}, "allocation_info": {"role": "web"}}),
        )
    };
    let (code, _) = s.call(accept_now(
        &offer,
        vec![Operation::reserve(vec![
            res("cpus", 1.0),
            res("mem", 256.0),
        ])],
    ));
    assert_eq!(code, 202);
    let offer = s.offer(T);
    let reserved: f64 = offer
        .resources
        .iter()
        .filter(|r| r.name == "cpus" && r.role.as_deref() == Some("web"))
        .map(Resource::scalar_value)
        .sum();
    assert_eq!(reserved, 1.0, "{offer:?}");

    // UPDATE_FRAMEWORK: 200 when only mutable fields change; 400 otherwise.
    let fid = s.framework_id.clone();
    let update = |user: &str| {
        Call::UpdateFramework(Subscribe::new(info(
            json!({"user": user, "name": "renamed", "role": "web", "id": {"value": fid}}),
        )))
    };
    let (code, body) = s.call(update("root"));
    assert_eq!(code, 200, "{body}");
    let (code, _) = s.call(update("someone-else"));
    assert_eq!(code, 400);
    let v = m.api.get_frameworks().unwrap();
    assert_eq!(v.frameworks[0].framework_info.name, "renamed");
}
