//! Persistent volumes by operator on a real master and agent
//! (`engine/volumes.rs`, `docs/design/0011-files-and-volumes.md`):
//! CREATE_VOLUMES on an agent's reserved disk, seen in `/master/state`,
//! `GET_AGENTS` and offers to the role; refused while a task uses it;
//! GROW_VOLUME and SHRINK_VOLUME; DESTROY_VOLUMES; the legacy
//! `/master/create-volumes` and `/master/destroy-volumes` forms; bad input
//! (no reservation, unknown agent, volume in use, too large) 4xx with a
//! reason and nothing changed.

mod support;

use std::time::Duration;

use keel_api::mesos::{Filters, Id, TaskState};
use keel_api::operator::{GrowVolume, Offer, ShrinkVolume, Volumes};
use keel_api::resources::v1::{AllocationInfo, Resource, Scalar};
use keel_client::ClientError;
use keel_client::scheduler::{Accept, Call, Decline, Kill, Operation};
use serde_json::json;
use support::scheduler::*;
use support::*;

const T: Duration = Duration::from_secs(20);

fn volume(id: &str, role: &str, mb: f64) -> Resource {
    serde_json::from_value(
        json!({"name": "disk", "type": "SCALAR", "scalar": {"value": mb},
        "role": role, "reservation": {},
        "disk": {"persistence": {"id": id, "principal": "ops"},
                 "volume": {"container_path": "data", "mode": "RW"}}}),
    )
    .unwrap()
}

fn volumes(agent_id: &str, vs: Vec<Resource>) -> Volumes {
    Volumes {
        agent_id: Id::new(agent_id),
        volumes: vs,
    }
}

fn is_volume(r: &Resource, id: &str) -> bool {
    r.disk
        .as_ref()
        .and_then(|d| d.persistence.as_ref())
        .is_some_and(|p| p.id == id)
}

/// The size of volume `id` in `GET_AGENTS`, if it is there.
fn volume_size(m: &Master, id: &str) -> Option<f64> {
    let agents = m.api.get_agents().unwrap();
    agents.agents[0]
        .total_resources
        .iter()
        .find(|r| is_volume(r, id))
        .map(Resource::scalar_value)
}

fn refused(r: Result<(), ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Status { status, reason, .. }) => (status, reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn decline(s: &Scheduler, offer: &Offer) {
    s.call(Call::Decline(Decline {
        offer_ids: vec![offer.id.clone()],
        filters: Some(Filters {
            refuse_seconds: Some(0.0),
        }),
    }));
}

#[test]
fn operators_create_grow_shrink_and_destroy_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let m = Master::start(dir.path(), free_port(), "5s");
    let resources = "cpus:2;mem:2048;cpus(eng):1;mem(eng):256;disk(eng):1000";
    let agent = start_agent(dir.path(), &m.addr(), &["--resources", resources]);
    wait_for(
        T,
        "agent",
        || !m.keel_agents().is_empty(),
        || agent.log_text(),
    );
    let agent_id = m.keel_agents()[0].id.clone();

    // Bad input first: refused with a reason, nothing changes.
    let before = m.api.get_agents().unwrap().agents[0]
        .total_resources
        .clone();
    for (result, code, needle) in [
        (
            refused(
                m.api
                    .create_volumes(volumes(&agent_id, vec![volume("x", "dev", 10.0)])),
            ),
            409,
            "reserved disk",
        ),
        (
            refused(
                m.api
                    .create_volumes(volumes(&agent_id, vec![volume("x", "eng", 5000.0)])),
            ),
            409,
            "reserved disk",
        ),
        (
            refused(
                m.api
                    .create_volumes(volumes("no-such-agent", vec![volume("x", "eng", 1.0)])),
            ),
            400,
            "unknown agent",
        ),
        (
            refused(
                m.api
                    .destroy_volumes(volumes(&agent_id, vec![volume("nope", "eng", 1.0)])),
            ),
            409,
            "has no volume nope",
        ),
        (
            refused(
                m.api
                    .create_volumes(volumes(&agent_id, vec![volume("x", "*", 1.0)])),
            ),
            400,
            "not on reserved disk",
        ),
    ] {
        assert_eq!(result.0, code, "{result:?}");
        assert!(result.1.contains(needle), "{} lacks {needle}", result.1);
    }
    assert_eq!(
        m.api.get_agents().unwrap().agents[0].total_resources,
        before
    );

    // CREATE_VOLUMES: in GET_AGENTS, /master/state and offers to eng.
    m.api
        .create_volumes(volumes(&agent_id, vec![volume("v1", "eng", 300.0)]))
        .unwrap();
    assert_eq!(volume_size(&m, "v1"), Some(300.0));
    let state = m.api.legacy_state().unwrap();
    let slave = &state.slaves[0];
    assert!(
        slave.reserved_resources_full["eng"]
            .iter()
            .any(|r| is_volume(r, "v1") && r.scalar_value() == 300.0),
        "{slave:?}"
    );
    assert_eq!(slave.reserved_resources["eng"].scalar("disk"), 1000.0);
    assert_eq!(slave.resources.scalar("disk"), 1000.0);
    let mut s = Scheduler::subscribe(
        m.port,
        info(json!({"user": "root", "name": "db", "role": "eng"})),
    );
    let offer = loop {
        let o = s.offer(T);
        if o.resources.iter().any(|r| is_volume(r, "v1")) {
            break o;
        }
        decline(&s, &o);
    };
    let plain: f64 = offer
        .resources
        .iter()
        .filter(|r| r.name == "disk" && !is_volume(r, "v1"))
        .map(Resource::scalar_value)
        .sum();
    assert_eq!(plain, 700.0, "{offer:?}");

    // A task uses it: destroying, growing or shrinking it is refused.
    let mut task = command_task(&offer, "user", "sleep 600", 0.1, 32.0);
    let mut v1 = volume("v1", "eng", 300.0);
    v1.allocation_info = Some(AllocationInfo::role("eng"));
    task.resources.push(v1);
    let (code, _) = s.call(Call::Accept(Accept {
        offer_ids: vec![offer.id.clone()],
        operations: vec![Operation::launch(vec![task])],
        filters: None,
    }));
    assert_eq!(code, 202);
    loop {
        let u = s.update(T);
        s.ack(&u);
        assert!(!u.state.is_terminal(), "{u:?}");
        if u.state == TaskState::TASK_RUNNING {
            break;
        }
    }
    let grow = |by: f64| GrowVolume {
        agent_id: Some(Id::new(&agent_id)),
        volume: Box::new(volume("v1", "eng", 300.0)),
        addition: serde_json::from_value(json!({"name": "disk", "type": "SCALAR",
            "scalar": {"value": by}, "role": "eng", "reservation": {}}))
        .unwrap(),
    };
    let shrink = |by: f64| ShrinkVolume {
        agent_id: Some(Id::new(&agent_id)),
        volume: Box::new(volume("v1", "eng", 300.0)),
        subtract: Scalar { value: by },
    };
    for result in [
        refused(
            m.api
                .destroy_volumes(volumes(&agent_id, vec![volume("v1", "eng", 300.0)])),
        ),
        refused(m.api.grow_volume(grow(10.0))),
        refused(m.api.shrink_volume(shrink(10.0))),
    ] {
        assert_eq!(result.0, 409, "{result:?}");
        assert!(result.1.contains("in use by a task"), "{result:?}");
    }
    assert_eq!(volume_size(&m, "v1"), Some(300.0));
    s.call(Call::Kill(Kill {
        task_id: Id::new("user"),
        agent_id: None,
        kill_policy: None,
    }));
    loop {
        let u = s.update(T);
        s.ack(&u);
        if u.state.is_terminal() {
            break;
        }
    }
    let data = dir.path().join("agent/volumes/roles/eng/v1");
    assert!(data.is_dir(), "the task's volume has its directory");

    // GROW_VOLUME and SHRINK_VOLUME, within the reservation.
    m.api.grow_volume(grow(100.0)).unwrap();
    assert_eq!(volume_size(&m, "v1"), Some(400.0));
    m.api.shrink_volume(shrink(350.0)).unwrap();
    assert_eq!(volume_size(&m, "v1"), Some(50.0));
    let (code, reason) = refused(m.api.shrink_volume(shrink(50.0)));
    assert_eq!(code, 400, "{reason}");
    assert!(reason.contains("must leave some"), "{reason}");
    let (code, reason) = refused(m.api.grow_volume(grow(5000.0)));
    assert_eq!(code, 409, "{reason}");
    assert!(reason.contains("reserved disk"), "{reason}");
    assert_eq!(volume_size(&m, "v1"), Some(50.0));

    // DESTROY_VOLUMES: gone from the registry, its data from the agent.
    m.api
        .destroy_volumes(volumes(&agent_id, vec![volume("v1", "eng", 50.0)]))
        .unwrap();
    assert_eq!(volume_size(&m, "v1"), None);
    wait_for(
        T,
        "the volume's data deleted",
        || !data.exists(),
        || agent.log_text(),
    );
    let state = m.api.legacy_state().unwrap();
    assert_eq!(
        state.slaves[0].reserved_resources["eng"].scalar("disk"),
        1000.0
    );

    // The legacy forms do the same.
    let form = |path: &str, v: &Resource| {
        let body = serde_urlencoded::to_string([
            ("slaveId", agent_id.as_str()),
            ("volumes", &serde_json::to_string(&vec![v]).unwrap()),
        ])
        .unwrap();
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        let (code, _, text) = http(m.port, "POST", path, &headers, body.as_bytes()).unwrap();
        (code, text)
    };
    let v2 = volume("v2", "eng", 200.0);
    assert_eq!(form("/master/create-volumes", &v2), (202, String::new()));
    assert_eq!(volume_size(&m, "v2"), Some(200.0));
    let (code, text) = form("/master/create-volumes", &v2);
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("already exists"), "{text}");
    assert_eq!(form("/master/destroy-volumes", &v2), (202, String::new()));
    assert_eq!(volume_size(&m, "v2"), None);
}
